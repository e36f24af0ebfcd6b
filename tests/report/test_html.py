"""``llmbatch report``: one self-contained HTML page, every chart drawn, all data escaped (issue 8).

The Chromium tests open the page in headless Chromium (Debian package ``chromium``)
with an error collector injected ahead of the page's own code: the page must load
without errors, console messages or Content-Security-Policy violations, and every
chart must have drawn marks. One screenshot is kept at tests/artifacts/report.png.
"""

from __future__ import annotations

import re
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _report_helpers import ARTIFACTS, Item, chart_marks, error, load_in_chromium, make_store, ok

from llmbatch._store.job import FAILED, PENDING, RequestRow
from llmbatch.report.html import CHART_IDS, CSP, FAILED_ROWS_SHOWN, render_report

HOSTILE_IDS = [
    "<script>document.body.dataset.pwned = 'script'</script>",
    '"><img src=x onerror="document.body.dataset.pwned=\'img\'">',
    "</td></tr></tbody></table><h1>moved</h1>",
    "&amp; already escaped &lt;",
    "</svg><svg onload=\"document.body.dataset.pwned='svg'\">",
]

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="headless Chromium is not installed: apt-get install -y chromium (Debian package)",
)


class Cells(HTMLParser):
    """The text of each cell of the failed-records table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_table = self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("id", "failed") in attrs:
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._in_body and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def failed_cells(page: str) -> list[list[str]]:
    parser = Cells()
    parser.feed(page)
    return parser.rows


def hostile_job(job_dir: Path) -> Path:
    items = [Item(f"ok{i}") for i in range(5)]
    items += [Item(text, FAILED, "<kind>", f"reason: {text}") for text in HOSTILE_IDS]
    meta = {"identity": {"model": "<b>model</b>", "endpoint": "sim", "input": "<i>in</i>.jsonl"}}
    return make_store(job_dir, items, [ok(10, 11, 5), error(11, 12, 5, "<err>")], meta)


def test_every_chart_is_drawn_for_a_real_job(sim_job: Path, tmp_path: Path) -> None:
    page = render_report(sim_job, tmp_path / "report.html").read_text("utf-8")
    marks = chart_marks(page)
    assert marks.found == set(CHART_IDS)
    for chart in CHART_IDS:
        assert marks.marks[chart], f"{chart} has nothing drawn"
        assert not any("no data" in text for text in marks.texts[chart]), chart
    assert len(failed_cells(page)) > 0
    assert "sk-secret" not in page and "llmbatch run reviews.jsonl" in page


def test_a_job_without_requests_says_no_data(tmp_path: Path) -> None:
    job = make_store(tmp_path / "job", [Item("a", PENDING), Item("b", PENDING)])
    page = render_report(job, tmp_path / "report.html").read_text("utf-8")
    marks = chart_marks(page)
    assert marks.found == set(CHART_IDS)
    for chart in CHART_IDS:
        assert marks.marks[chart] == []
        assert "no data: this job has sent no requests yet" in marks.texts[chart], chart


def test_record_ids_and_reasons_are_escaped(tmp_path: Path) -> None:
    page = render_report(hostile_job(tmp_path / "job"), tmp_path / "report.html").read_text("utf-8")
    for raw in ("<script>document", "<img", "<h1>moved", "<svg onload", "<b>model", "<kind>", "<err>"):
        assert raw not in page
    # Each cell reads back as exactly the stored text (so nothing was cut, moved or double-escaped).
    rows = failed_cells(page)
    assert [row[1] for row in rows] == HOSTILE_IDS
    assert [row[4] for row in rows] == [f"reason: {text}" for text in HOSTILE_IDS]
    assert {row[2] for row in rows} == {"<kind>"}
    assert "&lt;b&gt;model&lt;/b&gt;" in page


def test_the_page_needs_nothing_from_the_network(sim_job: Path, tmp_path: Path) -> None:
    page = render_report(sim_job, tmp_path / "report.html").read_text("utf-8")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "default-src 'none'" in CSP and "unsafe-inline" not in CSP
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace is a name, not a fetch
    assert not re.search(r"\s(src|href)=", page)


def test_the_failed_table_stops_at_a_thousand_rows(tmp_path: Path) -> None:
    items = [Item(f"f{i}", FAILED, "missing", "no answer") for i in range(1203)]
    page = render_report(make_store(tmp_path / "job", items), tmp_path / "r.html").read_text("utf-8")
    rows = failed_cells(page)
    assert len(rows) == FAILED_ROWS_SHOWN == 1000
    assert rows[0][1] == "f0" and rows[-1][1] == "f999"
    assert "Showing the first 1,000 of 1,203" in page
    assert "Failed records (1,203)" in page


def spend_texts(page: str) -> list[str]:
    return chart_marks(page).texts["chart-spend"]


def test_spend_is_split_by_the_jobs_prices(tmp_path: Path) -> None:
    usage = {"prompt_tokens": 1_000_000, "cached_tokens": 200_000, "completion_tokens": 100_000}
    # 800k input at 0.15 + 200k cached at 0.075 + 100k output at 0.60 per million.
    request = ok(1, 2, 1, cost=0.195, **usage)
    price = {"input": 0.15, "cached_input": 0.075, "output": 0.60}
    job = make_store(tmp_path / "job", [Item("a")], [request], {"price": price})
    texts = spend_texts(render_report(job, tmp_path / "r.html").read_text("utf-8"))
    assert "$0.1200 · 800,000 tok" in texts
    assert "$0.0150 · 200,000 tok" in texts
    assert "$0.0600 · 100,000 tok" in texts


def test_spend_shows_cache_writes_at_their_own_rate(tmp_path: Path) -> None:
    # Anthropic-style: 100k plain input at 1.00, 300k read at 0.10, 600k written at 1.25.
    usage = {"prompt_tokens": 1_000_000, "cached_tokens": 300_000, "completion_tokens": 0}
    request = ok(1, 2, 1, cost=0.88, cache_write_tokens=600_000, **usage)
    price = {"input": 1.0, "cached_input": 0.1, "cache_write": 1.25, "output": 5.0}
    job = make_store(tmp_path / "job", [Item("a")], [request], {"price": price})
    texts = spend_texts(render_report(job, tmp_path / "r.html").read_text("utf-8"))
    assert "$0.1000 · 100,000 tok" in texts  # input
    assert "$0.0300 · 300,000 tok" in texts  # cached input
    assert "$0.7500 · 600,000 tok" in texts  # cache writes


def test_spend_without_prices_is_split_by_token_count(tmp_path: Path) -> None:
    request = ok(1, 2, 1, cost=0.3, prompt_tokens=200, completion_tokens=100)
    meta = {"identity": {"model": "a-model-with-no-price"}}
    job = make_store(tmp_path / "job", [Item("a")], [request], meta)
    page = render_report(job, tmp_path / "r.html").read_text("utf-8")
    assert "$0.2000 · 200 tok" in spend_texts(page) and "$0.1000 · 100 tok" in spend_texts(page)
    assert "split by token count" in page


def test_a_free_model_spends_nothing(tmp_path: Path) -> None:
    request = ok(1, 2, 1, cost=0.0, prompt_tokens=200, completion_tokens=100)
    price = {"input": 0.0, "output": 0.0, "cached_input": None, "cache_write": None, "batch": 1.0}
    job = make_store(tmp_path / "job", [Item("a")], [request], {"price": price})
    page = render_report(job, tmp_path / "r.html").read_text("utf-8")
    assert "$0.0000 · 200 tok" in spend_texts(page)
    assert "$0.0000 recorded." in page


def test_unknown_cost_and_no_price_shows_tokens(tmp_path: Path) -> None:
    request: RequestRow = ok(1, 2, 1, cost=None, prompt_tokens=200, completion_tokens=100)
    job = make_store(tmp_path / "job", [Item("a")], [request], {"identity": {"model": "unpriced"}})
    page = render_report(job, tmp_path / "r.html").read_text("utf-8")
    assert "200 tokens" in spend_texts(page)
    assert "Cost unknown" in page


# -- in a real browser ----------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@needs_chromium
def test_report_renders_in_headless_chromium(sim_job: Path, tmp_path: Path) -> None:
    page = render_report(sim_job, tmp_path / "report.html")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    loaded = load_in_chromium(page, tmp_path, screenshot=screenshot)

    assert loaded.errors == []
    assert loaded.console == []
    marks = chart_marks(loaded.dom)
    assert marks.found == set(CHART_IDS)
    for chart in CHART_IDS:
        assert marks.marks[chart], f"{chart} has nothing drawn in the browser"
    assert len(failed_cells(loaded.dom)) > 0
    assert png_size(screenshot) == (1280, 2000)
    assert screenshot.stat().st_size > 30_000, "the screenshot looks blank"


@needs_chromium
def test_hostile_ids_do_not_run_in_the_browser(tmp_path: Path) -> None:
    page = render_report(hostile_job(tmp_path / "job"), tmp_path / "report.html")
    loaded = load_in_chromium(page, tmp_path)
    assert loaded.errors == [] and loaded.console == []
    assert "data-pwned" not in loaded.dom
    assert "<h1>moved</h1>" not in loaded.dom
    assert [row[1] for row in failed_cells(loaded.dom)] == HOSTILE_IDS


@needs_chromium
def test_the_browser_check_sees_errors_and_fetches(tmp_path: Path) -> None:
    """The harness itself: a page that fetches, logs an error and throws is caught three ways."""
    page = tmp_path / "bad.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
        '<body><img src="https://example.com/x.png"></body></html>',
        "utf-8",
    )
    loaded = load_in_chromium(page, tmp_path)
    assert any(e.startswith("csp: img-src") for e in loaded.errors)
    assert any("violates the following Content Security Policy" in line for line in loaded.console)
    page.write_text('<!DOCTYPE html><html><head></head><body><script>console.error("x"); nope()</script>')
    loaded = load_in_chromium(page, tmp_path)
    assert "console.error: x" in loaded.errors
    assert any("ReferenceError" in e for e in loaded.errors)
