// Sort the submissions table by clicking a header (again: reverse). #sort=<column>[-desc] in the
// address sorts on load. Cells sort by their data-sort value (numbers numerically).
(function () {
  var table = document.getElementById("subs");
  if (!table) return;
  var heads = table.tHead.rows[0].cells;
  function key(row, col) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim().toLowerCase() : v;
  }
  function sortBy(col, desc) {
    var numeric = heads[col].getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col), c;
      if (numeric) { c = parseFloat(x) - parseFloat(y); } else { c = x < y ? -1 : x > y ? 1 : 0; }
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    heads[col].setAttribute("aria-sort", desc ? "descending" : "ascending");
  }
  for (var i = 0; i < heads.length; i++) {
    (function (col) {
      heads[col].addEventListener("click", function () {
        sortBy(col, heads[col].getAttribute("aria-sort") === "ascending");
      });
    })(i);
  }
  var m = /sort=([a-z_]+)(-desc)?/.exec(location.hash);
  if (m) {
    for (var j = 0; j < heads.length; j++) {
      if (heads[j].getAttribute("data-col") === m[1]) sortBy(j, !!m[2]);
    }
  }
})();
