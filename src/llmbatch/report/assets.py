"""The static parts of the HTML report: its style sheet, its one script, its Content-Security-Policy.

The policy allows exactly this style and this script, by their SHA-256 hashes,
and nothing else: no network at view time, and no code that data smuggled into
the page could add.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSP", "CSS", "SCRIPT"]

CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--bg:#f6f7f9;--card:#fff;--line:#dfe3e8;--accent:#2f6fdf;
--accent2:#9cbcf5;--fail:#d1495b;--warn:#e89f3c;--ok:#2e9e6a;--track:#eef1f5}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#9aa5b4;--bg:#14171c;--card:#1c2027;
--line:#2e343d;--accent:#6d9cf0;--accent2:#31507f;--track:#262b33}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:1360px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:0 0 8px}
.sub{color:var(--muted);margin:0 0 20px;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;margin-bottom:20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.card .n{color:var(--muted);font-size:12px}
.v.fail{color:var(--fail)}.v.ok{color:var(--ok)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px}
figcaption{color:var(--muted);font-size:12px;margin-top:4px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:var(--line);stroke-width:1}svg .axis{stroke:var(--muted);stroke-width:1;fill:none}
svg text{fill:var(--muted);font-size:11px}svg .axis-label{font-size:12px}
svg .bar{fill:var(--accent)}svg .bar-fail{fill:var(--fail)}svg .bar-warn{fill:var(--warn)}
svg .bar-input{fill:var(--accent)}svg .bar-cached{fill:var(--accent2)}svg .bar-output{fill:var(--ok)}
svg .bar-written{fill:var(--warn)}
svg .line{fill:none;stroke:var(--accent);stroke-width:2}
svg .area{fill:var(--accent2);opacity:.75}
svg .track{fill:var(--track)}
svg .bar-label,svg .bar-value{fill:var(--fg);font-size:12px}
svg .p50{stroke:var(--ok);stroke-width:1.5;stroke-dasharray:4 3}
svg .p95{stroke:var(--warn);stroke-width:1.5;stroke-dasharray:4 3}
svg .pause{stroke:var(--muted);stroke-width:1;stroke-dasharray:2 3}
svg .mark-label{fill:var(--fg)}
svg .nodata{fill:var(--muted);font-size:14px}
section{margin-top:20px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px}
code,pre{font:12px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0}
input[type=search]{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;
background:var(--bg);color:var(--fg);min-width:280px}
table{border-collapse:collapse;width:100%;margin-top:10px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px}
td.num{font-variant-numeric:tabular-nums;text-align:right}
td.reason{overflow-wrap:anywhere}td.id{overflow-wrap:anywhere;max-width:260px}
.note{color:var(--muted);font-size:12px}
"""

SCRIPT = """
(function () {
  var box = document.getElementById("filter");
  var rows = document.querySelectorAll("#failed tbody tr");
  if (!box) { return; }
  box.addEventListener("input", function () {
    var q = box.value.toLowerCase();
    var shown = 0;
    rows.forEach(function (tr) {
      var hide = q !== "" && tr.textContent.toLowerCase().indexOf(q) < 0;
      tr.hidden = hide;
      if (!hide) { shown += 1; }
    });
    document.getElementById("filter-count").textContent = shown + " shown";
  });
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CSP = (
    f"default-src 'none'; style-src {_csp_hash(CSS)}; script-src {_csp_hash(SCRIPT)}; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
"""Nothing but the page's own style and script: no network, no injected code."""
