"""The Markdown summary (`--markdown`, and the GitHub step summary `run` appends to): read
by a CommonMark parser with GitHub's tables (markdown-it-py), as a step summary is shown. A
hostile answer cannot break the table or put HTML on the page; the step summary stays under
GitHub's 1 MiB."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from markdown_it import MarkdownIt

from shadowdiff.render.markdown import (
    STEP_SUMMARY_LIMIT_BYTES,
    TRUNCATED_LINE,
    fit_step_summary,
    markdown_text,
    render_markdown,
)

from .conftest import DemoRun
from .test_cli import shadowdiff

# GitHub-flavoured enough for what is tested: tables, and raw HTML let through (as a page
# would let it through if the escaping failed; GitHub's sanitiser is not the defence here).
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])

HOSTILE_HEADER = "DENY | <script>alert(1)</script> ``x`` *b* ~~s~~ $x$ [l](https://e.test) &amp;"


class Page(HTMLParser):
    """The rendered summary: every tag opened, and each table's rows as cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _without_trace(cell: str) -> str:
    """An example cell without the pair's trace id that ends it."""
    found = re.fullmatch(r"(.*) \(trace [0-9a-f]{32}\)", cell, flags=re.DOTALL)
    assert found is not None, cell
    return found[1]


def shown(markdown: str) -> Page:
    page = Page()
    page.feed(MARKDOWN.render(markdown))
    return page


def differences_table(page: Page) -> list[list[str]]:
    (table, *_) = page.tables
    assert table[0] == [
        "severity",
        "where",
        "difference",
        "requests",
        "pairs",
        "example: baseline → candidate",
    ]
    return table[1:]


# Tags the summary itself writes (tables and bold); anything else came from a value.
OWN_TAGS = {
    "h3",
    "h4",
    "p",
    "strong",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "ul",
    "li",
}


def hostile_answers(side: str) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        headers = {"X-Frame-Options": "DENY" if side == "baseline" else HOSTILE_HEADER}
        return web.json_response({"ok": True}, headers=headers)

    return handle


async def test_a_hostile_header_value_cannot_break_the_table_or_add_html(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """A candidate on loopback answers an X-Frame-Options value full of Markdown and HTML."""
    baseline = await start_entry_point(handler=hostile_answers("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=hostile_answers("candidate"))
    scenario = write_scenario(
        baseline,
        candidate,
        "requests:\n  - {name: 'home | <b>x</b>', url: 'https://app.example.com/'}\n",
        ca_file,
    )
    summary = tmp_path / "summary.md"
    code, _, stderr = await shadowdiff(
        "run", str(scenario), "-q", "--markdown", str(summary), "--json", str(tmp_path / "r.json")
    )
    assert code == 1, stderr
    page = shown(summary.read_text(encoding="utf-8"))
    assert set(page.tags) <= OWN_TAGS, page.tags
    (row,) = [row for row in differences_table(page) if "x-frame-options" in row[2]]
    assert len(row) == 6
    assert row[3] == "home | <b>x</b>"  # the request's name, as text
    assert _without_trace(row[5]) == f"DENY → {HOSTILE_HEADER}"  # as text


def test_a_line_break_or_pipe_in_any_value_stays_inside_its_cell(demo: DemoRun) -> None:
    """An answer's header cannot hold a line break (the transport would not read it as one
    value), so this builds the report directly: a body field, a host or a name can."""
    report: Any = copy.deepcopy(demo.report)
    hostile = "a\n| x | y |\n|---|\r\n<img src=x onerror=alert(1)>`b`\x1b[2J"
    first = report["signatures"][0]
    first["examples"][0]["candidate"] = hostile
    first["requests"] = ["name\n| with | pipes |"]
    first["host"] = "h|o\nst"
    report["scenario"]["name"] = "demo\n# heading <i>"
    page = shown(render_markdown(report))
    assert set(page.tags) <= OWN_TAGS, page.tags
    rows = differences_table(page)
    assert len(rows) == len(report["signatures"]) and all(len(row) == 6 for row in rows)
    assert rows[0][1] == "h|o\\nst/v2/items"
    assert rows[0][3] == "name\\n| with | pipes |"
    assert (
        _without_trace(rows[0][5])
        == "api-v2 → a\\n| x | y |\\n|---|\\r\\n<img src=x onerror=alert(1)>`b`\\x1b[2J"
    )
    assert len(page.tables) == 2  # differences and TLS: no table made from a value


def test_accepted_and_noise_lines_are_listed_under_the_table(demo: DemoRun) -> None:
    report: Any = copy.deepcopy(demo.report)
    accepted, noise = copy.deepcopy(report["signatures"][:2])
    accepted |= {"status": "accepted", "accepted": {"reason": "<planned> | ok", "until": None}}
    noise |= {"status": "noise", "noise_rate": 0.5}
    report["signatures"] += [accepted, noise]
    for line in report["signatures"]:
        line["hint"] = None  # the list of likely fixes has items of its own
    markdown = render_markdown(report)
    page = shown(markdown)
    assert len(differences_table(page)) == len(report["signatures"]) - 2
    assert page.tags.count("li") == 2
    assert (
        "- accepted: backend: service on api.demo.test/v2/items: &lt;planned&gt; \\| ok" in markdown
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a|b", "a\\|b"),
        ("`code`", "\\`code\\`"),
        ("<script>&amp;", "&lt;script&gt;&amp;amp;"),
        ("*x* _y_ ~z~ $m$ [l]", "\\*x\\* \\_y\\_ \\~z\\~ \\$m\\$ \\[l\\]"),
        ("back\\slash", "back\\\\slash"),
        ("line\nbreak\r\ttab\x00", "line\\\\nbreak\\\\r\\\\ttab\\\\x00"),
        ("api.demo.test/v1 (TLS): é", "api.demo.test/v1 (TLS): é"),
        ("gnp\u202e.exe \u2066x\u2069", "gnp\\\\u202e.exe \\\\u2066x\\\\u2069"),
    ],
    ids=[
        "pipe",
        "backticks",
        "html",
        "emphasis-math-links",
        "backslash",
        "controls",
        "plain",
        "bidi",
    ],
)
def test_markdown_text_escapes_what_could_act(value: str, escaped: str) -> None:
    assert markdown_text(value) == escaped


def test_markdown_text_reads_back_as_the_value() -> None:
    value = "| `a` <b>&lt;</b> *c* \\ $d$ ~e~ [f](g) _h_"
    page = shown(f"| h |\n|---|\n| {markdown_text(value)} |\n")
    assert page.tables[0][1] == [value]


SUMMARY = "# one\n" + "é" * 100 + "\n" + "three" * 40 + "\n"
FIRST_LINES_BYTES = len(b"# one\n") + len(("é" * 100 + "\n").encode())
NOTE_BYTES = len(TRUNCATED_LINE.encode())


@pytest.mark.parametrize(
    ("room_bytes", "expected"),
    [
        (len(SUMMARY.encode()), SUMMARY),
        (FIRST_LINES_BYTES + NOTE_BYTES + 3, SUMMARY[: SUMMARY.index("three")] + TRUNCATED_LINE),
        (FIRST_LINES_BYTES + NOTE_BYTES - 1, "# one\n" + TRUNCATED_LINE),
        (NOTE_BYTES + 2, TRUNCATED_LINE),
        (NOTE_BYTES - 1, ""),
    ],
    ids=["fits", "cut-after-a-line", "never-inside-a-line", "only-the-note", "nothing-fits"],
)
def test_fit_step_summary_cuts_at_a_line_and_says_so(room_bytes: int, expected: str) -> None:
    fitted = fit_step_summary(SUMMARY, room_bytes)
    assert fitted == expected
    assert len(fitted.encode("utf-8")) <= room_bytes


async def _two_echoes(
    start_entry_point: Callable[..., Any], write_scenario: Callable[..., Path]
) -> Path:
    """A one-request scenario against two echoes that name different services (exit 1)."""
    baseline = await start_entry_point(name="baseline")
    candidate = await start_entry_point("127.0.0.2", name="candidate")
    return write_scenario(
        baseline, candidate, "requests:\n  - {name: home, url: 'http://app.example.com/'}\n"
    )


async def test_run_appends_to_the_step_summary_and_report_renders_the_same_files(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = await _two_echoes(start_entry_point, write_scenario)
    summary = tmp_path / "step-summary.md"
    summary.write_text("## Earlier step output\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    written = {name: tmp_path / f"run.{name}" for name in ("json", "junit", "markdown")}
    flags = [part for name, path in written.items() for part in (f"--{name}", str(path))]
    code, _, stderr = await shadowdiff("run", str(scenario), "-q", *flags)
    assert code == 1, stderr  # the two echoes name different services
    markdown = written["markdown"].read_text(encoding="utf-8")
    assert summary.read_text(encoding="utf-8") == "## Earlier step output\n\n\n" + markdown

    # `report` re-renders the saved JSON into the same files, and leaves the summary alone.
    again = {name: tmp_path / f"again.{name}" for name in ("junit", "markdown")}
    flags = [part for name, path in again.items() for part in (f"--{name}", str(path))]
    code, _, stderr = await shadowdiff("report", str(written["json"]), *flags)
    assert code == 1, stderr
    for name, path in again.items():
        assert path.read_text(encoding="utf-8") == written[name].read_text(encoding="utf-8")
    assert summary.read_text(encoding="utf-8") == "## Earlier step output\n\n\n" + markdown


async def test_a_nearly_full_step_summary_is_cut_under_1_mib(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = await _two_echoes(start_entry_point, write_scenario)
    summary = tmp_path / "step-summary.md"
    earlier = ("x" * 99 + "\n") * ((STEP_SUMMARY_LIMIT_BYTES - 300) // 100)
    summary.write_text(earlier, encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, stderr = await shadowdiff("run", str(scenario), "-q")
    assert code == 1
    assert "the step summary was cut" in stderr
    text = summary.read_text(encoding="utf-8")
    assert summary.stat().st_size <= STEP_SUMMARY_LIMIT_BYTES
    assert text.startswith(earlier + "\n\n### ❌ shadowdiff")
    assert text.endswith(TRUNCATED_LINE)


async def test_format_paths_are_checked_before_anything_is_sent(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    tmp_path: Path,
) -> None:
    baseline = await start_entry_point(name="baseline")
    candidate = await start_entry_point("127.0.0.2", name="candidate")
    scenario = write_scenario(
        baseline, candidate, "requests:\n  - {name: home, url: 'http://app.example.com/'}\n"
    )
    missing = tmp_path / "no-such-folder" / "report.xml"
    code, _, stderr = await shadowdiff("run", str(scenario), "--junit", str(missing))
    assert code == 2
    assert stderr.strip() == f"error: --junit {missing}: folder {missing.parent} does not exist"
    code, _, stderr = await shadowdiff("run", str(scenario), "--markdown", "-")
    assert (code, stderr.strip()) == (2, "error: --markdown -: give a file name")
    assert baseline.requests == candidate.requests == []
