"""Pairs of submissions whose own code or written answer is identical or nearly so.

Code: each code cell, less what the assignment provides (the plotting code from "# PLOTTING CODE DO
NOT TOUCH BELOW" to the end of its loop, the 404 labels list, the prompt literal), imports, blank
lines and comments, is read with `tokenize` and normalised: identifiers become `V` (keywords,
builtins, attribute names after '.' and keyword-argument names are kept), strings become `S`,
numbers are kept. Each cell's k-grams of normalised tokens are hashed and winnowed (Schleimer,
Wilkerson & Aiken 2003, as in MOSS), and a submission's fingerprint is the union over its cells, so
renaming variables, editing comments and reordering or merging cells change little.

Across a batch, a fingerprint held by more than `max(2, common_fraction * n)` submissions is code
that most of the class writes the same way (loading the model, the usual hook loop, the usual SVD),
as MOSS's "-m" option: it is ignored, so two students who each wrote the usual code are not paired.

Answer: lower-cased words without punctuation, word 5-gram shingles, Jaccard.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import keyword
import re
import tokenize
from dataclasses import asdict, dataclass, field

from grader.spec.pack import Assignment, load_pack

K = 12  # tokens per k-gram
WINDOW = 6  # winnowing window: every shared run of >= K + WINDOW - 1 = 17 tokens is caught
SHINGLE = 5  # words per answer shingle
CODE_THRESHOLD = 0.6  # Jaccard of the (uncommon) code fingerprints
CONTAINMENT_THRESHOLD = 0.9  # share of the smaller submission's fingerprints found in the other
MIN_FINGERPRINTS = 20  # containment is only trusted when the smaller side has this many (~70 tokens)
ANSWER_THRESHOLD = 0.5  # Jaccard of answer shingles
COMMON_FRACTION = 0.1  # fingerprints in more than max(2, this * n) submissions are ignored
PARAMS = f"k{K}w{WINDOW}s{SHINGLE}"  # fingerprints made with other parameters are not comparable

PLOT_MARKER = "PLOTTING CODE DO NOT TOUCH BELOW"
_KEEP_NAMES = frozenset(keyword.kwlist) | frozenset(dir(builtins))
_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_FALLBACK_RE = re.compile(r"#[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|\d[\w.]*|\w+|\n|[^\s\w]")


@dataclass(frozen=True)
class Provided:
    """What the assignment gives every student (never evidence of copying): the prompt, the plotting cell's
    token labels, the question."""

    prompt: str
    labels: frozenset
    question: str

    @classmethod
    def of(cls, pack: Assignment | None = None) -> "Provided":
        pack = pack or load_pack()
        return cls(pack.prompt, frozenset(pack.labels), pack.markdown_cells[-1])


@dataclass
class Fingerprint:
    code: list[int]  # sorted winnowed k-gram hashes of the student's own code, all cells together
    answer: list[int]  # sorted word-shingle hashes of the answer ([] when there is none)
    code_tokens: int = 0  # normalised code tokens kept (after removing provided code)
    answer_words: int = 0
    params: str = PARAMS

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Fingerprint":
        if data.get("params", PARAMS) != PARAMS:
            raise ValueError(f"fingerprint made with {data.get('params')}, this grader uses {PARAMS}: recompute it")
        return cls(code=[int(h) for h in data["code"]], answer=[int(h) for h in data["answer"]],
                   code_tokens=int(data.get("code_tokens", 0)), answer_words=int(data.get("answer_words", 0)))


@dataclass
class Pair:
    a: str
    b: str
    code_score: float | None  # Jaccard of the uncommon code fingerprints (None: nothing to compare)
    code_containment: float | None
    answer_score: float | None  # Jaccard of answer shingles (None: a side has no answer)
    reason: str
    shared_fingerprints: int = field(default=0)

    def to_json(self) -> dict:
        return asdict(self)


# --- provided code ---------------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def strip_provided(source: str) -> str:
    """The cell without the provided plotting block, notebook magics and shell lines."""
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if PLOT_MARKER in line:
            depth = _indent(line)
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= depth):
                i += 1
            continue
        if not line.lstrip().startswith(("%", "!")):
            out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def _is_prompt(literal: str, provided: Provided) -> bool:
    """A string literal holding the assignment's prompt (or most of it, or a chat-template around it)."""
    if len(literal) < 100:
        return False
    body = literal.strip("rbuRBUfF").strip("\"'")
    return body[:80] in provided.prompt or provided.prompt[:80] in body


def _is_labels(strings: list[str], provided: Provided) -> bool:
    """A long list of string literals that are the assignment's token labels."""
    if len(strings) < 50:
        return False
    hits = sum(1 for s in strings if s.strip("\"'") in provided.labels)
    return hits >= 0.8 * len(strings)


# --- code ------------------------------------------------------------------------------------------

_FALLBACK_OPS = re.compile(r"==|!=|<=|>=|\*\*|//|->|:=|[-+*/%&|^@<>]=")


def _raw_tokens(source: str) -> list[tuple[int, str]]:
    """(token type, text) of the source; a regex split when `tokenize` rejects it (broken code)."""
    try:
        toks = [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)]
        return [(typ, text) for typ, text in toks if typ not in _SKIP_TOKENS]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    out: list[tuple[int, str]] = []
    for piece in re.findall(_FALLBACK_OPS.pattern + "|" + _FALLBACK_RE.pattern, source):
        if piece.startswith("#"):
            continue
        if piece == "\n":
            typ = tokenize.NEWLINE
        elif piece[0] in "\"'":
            typ = tokenize.STRING
        elif piece[0].isdigit():
            typ = tokenize.NUMBER
        elif piece[0].isalnum() or piece[0] == "_":
            typ = tokenize.NAME
        else:
            typ = tokenize.OP
        out.append((typ, piece))
    return out


def _logical_lines(tokens: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    lines: list[list[tuple[int, str]]] = [[]]
    for tok in tokens:
        lines[-1].append(tok)
        if tok[0] == tokenize.NEWLINE:
            lines.append([])
    return [line for line in lines if line]


def _provided_line(line: list[tuple[int, str]], provided: Provided) -> bool:
    """An import, the prompt literal or the labels list: not the student's own code."""
    body = [(t, s) for t, s in line if t not in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE)]
    if not body:
        return True
    if body[0] == (tokenize.NAME, "import") or body[0] == (tokenize.NAME, "from"):
        return True
    strings = [s for t, s in body if t == tokenize.STRING]
    return any(_is_prompt(s, provided) for s in strings) or _is_labels(strings, provided)


def _normalise_line(line: list[tuple[int, str]]) -> list[str]:
    """Identifiers -> V (keywords, builtins, attributes and keyword-argument names kept), strings -> S."""
    out: list[str] = []
    depth = 0
    for i, (typ, text) in enumerate(line):
        nxt = line[i + 1][1] if i + 1 < len(line) else ""
        if typ == tokenize.NAME:
            keep = text in _KEEP_NAMES or (out and out[-1] == ".") or (depth > 0 and nxt == "=")
            out.append(text if keep else "V")
        elif typ == tokenize.STRING:
            if not out or out[-1] != "S":  # implicit concatenation is one string
                out.append("S")
        elif typ == tokenize.NEWLINE:
            out.append(";")
        elif typ == tokenize.INDENT:
            out.append("{")
        elif typ == tokenize.DEDENT:
            out.append("}")
        else:
            if text in ("(", "[", "{"):
                depth += 1
            elif text in (")", "]", "}") and depth > 0:
                depth -= 1
            out.append(text)
    return out


def normalise_code(source: str, provided: Provided | None = None) -> list[str]:
    """The student's own code of one cell as normalised tokens (provided code, imports, comments gone)."""
    provided = provided or Provided.of()
    out: list[str] = []
    for line in _logical_lines(_raw_tokens(strip_provided(source))):
        if _provided_line(line, provided):
            out += ["{" if t == tokenize.INDENT else "}" for t, _ in line if t in (tokenize.INDENT, tokenize.DEDENT)]
        else:
            out += _normalise_line(line)
    return out


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")


def winnow(tokens: list[str], k: int = K, window: int = WINDOW) -> set[int]:
    """MOSS fingerprints: the minimum hash of every window of `window` consecutive k-gram hashes."""
    if len(tokens) < k:
        return {_hash(" ".join(tokens))} if len(tokens) >= k // 2 else set()
    grams = [_hash(" ".join(tokens[i:i + k])) for i in range(len(tokens) - k + 1)]
    if len(grams) <= window:
        return {min(grams)}
    return {min(grams[i:i + window]) for i in range(len(grams) - window + 1)}


def code_cells(nb) -> list[str]:
    """The sources of the notebook's code cells, in order."""
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    return [c["source"] if isinstance(c.get("source"), str) else "".join(c.get("source") or []) for c in cells]


def cell_fingerprints(source: str, provided: Provided | None = None) -> set[int]:
    """The winnowed fingerprints of one cell's own code."""
    return winnow(normalise_code(source, provided))


# --- answer ----------------------------------------------------------------------------------------


def answer_words(text: str | None) -> list[str]:
    """Lower-case words without punctuation or markdown; a leading "Answer:" is dropped."""
    words = re.findall(r"[a-z0-9]+", (text or "").lower().replace("'", ""))
    if words and words[0] == "answer":
        words = words[1:]
    return words


def _shingles(words: list[str], n: int) -> set[int]:
    if 0 < len(words) < n:
        return {_hash(" ".join(words))}
    return {_hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1)}


def answer_shingles(text: str | None, n: int = SHINGLE, provided: Provided | None = None) -> set[int]:
    """Hashed word n-grams of the answer, less those of the assignment's question (often quoted)."""
    provided = provided or Provided.of()
    return _shingles(answer_words(text), n) - _shingles(answer_words(provided.question), n)


def fingerprint(nb, answer: str | None, pack: Assignment | None = None) -> Fingerprint:
    """The code fingerprint of notebook `nb` (all code cells) and the shingles of its answer."""
    provided = Provided.of(pack)
    code: set[int] = set()
    n_tokens = 0
    for source in code_cells(nb):
        tokens = normalise_code(source, provided)
        n_tokens += len(tokens)
        code |= winnow(tokens)
    return Fingerprint(code=sorted(code), answer=sorted(answer_shingles(answer, provided=provided)), code_tokens=n_tokens,
                       answer_words=len(answer_words(answer)))


# --- pairs -----------------------------------------------------------------------------------------


def common_hashes(fps: dict[str, Fingerprint], common_fraction: float = COMMON_FRACTION) -> set[int]:
    """Code fingerprints held by more than max(2, common_fraction * n) submissions of the batch."""
    limit = max(2, int(common_fraction * len(fps)))
    counts: dict[int, int] = {}
    for fp in fps.values():
        for h in fp.code:
            counts[h] = counts.get(h, 0) + 1
    return {h for h, c in counts.items() if c > limit}


def _jaccard(a: set[int], b: set[int]) -> float | None:
    union = len(a | b)
    return len(a & b) / union if union else None


def code_scores(a: set[int], b: set[int]) -> tuple[float | None, float | None, int]:
    """(Jaccard, containment in the smaller side or None when it is too small to trust, shared count)."""
    shared = len(a & b)
    small = min(len(a), len(b))
    return _jaccard(a, b), (shared / small if small >= MIN_FINGERPRINTS else None), shared


def _reason(jac, cont, shared, ans, code_threshold, containment_threshold, answer_threshold) -> str:
    parts = []
    if jac is not None and jac >= code_threshold:
        parts.append(f"code {'identical' if jac >= 0.999 else 'nearly identical'} "
                     f"(Jaccard {jac:.2f}, {shared} fingerprints of code uncommon in the class shared)")
    elif cont is not None and cont >= containment_threshold:
        parts.append(f"code of one contained in the other ({cont:.0%} of the smaller one's {shared / cont:.0f} "
                     f"fingerprints of uncommon code)")
    if ans is not None and ans >= answer_threshold:
        parts.append(f"answer {'identical' if ans >= 0.999 else 'nearly identical'} "
                     f"(Jaccard {ans:.2f} of {SHINGLE}-word shingles)")
    return "; ".join(parts)


def similar_pairs(fps: dict[str, Fingerprint], code_threshold: float = CODE_THRESHOLD,
                  answer_threshold: float = ANSWER_THRESHOLD,
                  containment_threshold: float = CONTAINMENT_THRESHOLD,
                  common_fraction: float = COMMON_FRACTION) -> list[Pair]:
    """Every pair whose uncommon code or whose answer is at or over its threshold, most similar first."""
    common = common_hashes(fps, common_fraction)
    names = sorted(fps)
    code = {n: set(fps[n].code) - common for n in names}
    answers = {n: set(fps[n].answer) for n in names}
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            jac, cont, shared = code_scores(code[a], code[b])
            ans = _jaccard(answers[a], answers[b]) if answers[a] and answers[b] else None
            reason = _reason(jac, cont, shared, ans, code_threshold, containment_threshold, answer_threshold)
            if reason:
                pairs.append(Pair(a, b, _round(jac), _round(cont), _round(ans), reason, shared))
    pairs.sort(key=lambda p: (-max(p.code_score or 0, p.code_containment or 0, p.answer_score or 0), p.a, p.b))
    return pairs


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def side_by_side(nb_a, nb_b, pack: Assignment | None = None) -> list[tuple[str, str, float]]:
    """Matched code cells (source in a, source in b, Jaccard of their fingerprints), in a's order.

    Each cell of b is matched at most once, best matches first; cells without a shared fingerprint
    are left out.
    """
    provided = Provided.of(pack)
    cells_a, cells_b = code_cells(nb_a), code_cells(nb_b)
    fa = [cell_fingerprints(s, provided) for s in cells_a]
    fb = [cell_fingerprints(s, provided) for s in cells_b]
    scored = sorted(((_jaccard(x, y) or 0.0, i, j) for i, x in enumerate(fa) for j, y in enumerate(fb)
                     if x & y), reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    matched = []
    for score, i, j in scored:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            matched.append((i, cells_a[i], cells_b[j], round(score, 4)))
    return [(sa, sb, s) for _, sa, sb, s in sorted(matched)]
