"""The report's "Part 5 on correct captures" card: both runs side by side (grader/judge/carry.py).

Shows the TA why Part 5 was run again, what was put into which variable after which cell, each
creditable check on the student's own captures and on correct ones, and the cells that raised in the
second run (titles only: that run's outputs hold reference values and stay out of the report).
"""

from __future__ import annotations

from grader.status import CheckStatus


def _word(status: str | None) -> str:
    parsed = CheckStatus.parse(status)
    return parsed.ta_label if parsed else (status or "not judged")


def carry_card(page) -> dict | None:
    j = page.judgement
    outcome = getattr(j, "carry", None)
    if outcome is None:
        return None
    rows = [{"id": cid, "own": _word(c.get("own")), "carried": _word(c.get("carried")),
             "credited": bool(c.get("credited"))} for cid, c in outcome.checks.items()]
    carried = getattr(j, "carried", None)
    errors = []
    if carried is not None:
        errors = [f"{c.label}: {c.ename}: {(c.evalue or '')[:160]}" if c.ename else f"{c.label}: timed out"
                  for c in carried.execution.cells if c.ename or c.timed_out][:5]
    plot = outcome.plot or None
    plot_text = None
    if plot:
        plot_text = (f"fed `{plot.get('variable')}`, it would raise {plot['ename']}: {plot.get('evalue')}" if plot.get("ename")
                     else f"fed `{plot.get('variable')}`, it reads all {plot.get('frames')} layers and would write "
                          f"{plot.get('frames')} frames")
    where = j.execution.cell_name(outcome.injected_after_cell) if outcome.injected_after_cell is not None else None
    return {"ran": outcome.ran, "note": outcome.note, "reason": outcome.reason, "problem": outcome.problem,
            "variable": outcome.variable, "how": outcome.how_chosen, "found": outcome.found, "built": outcome.built,
            "hooks_removed": outcome.hooks_removed, "after": where, "status": outcome.status, "rows": rows,
            "plot": plot_text, "errors": errors, "credited": outcome.credited}
