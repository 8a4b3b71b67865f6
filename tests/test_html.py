"""`--html`: one self-contained page from the typed report, with plots.

The demo's page is parsed (html.parser, as a browser's tokenizer would split it) and its
outline held to tests/golden/demo-html-outline.txt; a report full of hostile text renders as
text; a report of thousands of requests plots only the busiest; and headless Chromium
(Debian's package) loads the demo's page with no console error and no request, and its
screenshot has the plot lines' colours inside the plot areas.
"""

from __future__ import annotations

import copy
import html
import io
import json
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from shadowdiff.render.html import render_html
from shadowdiff.render.html.page import DIFFERENCE_ROWS, ROUTE_PLOTS, TABLE_ROWS, visible
from shadowdiff.render.html.plots import PAIRS_COLOUR, SIDE_COLOURS
from shadowdiff.report.schema import Report

from .conftest import DemoRun
from .test_cli import shadowdiff

GOLDEN: Final = Path(__file__).parent / "golden" / "demo-html-outline.txt"
SECTIONS: Final = (
    "verdict",
    "summary",
    "signatures",
    "fixes",
    "requests",
    "latency",
    "paired-differences",
    "timeline",
    "tls",
)
# Elements that would fetch something or run something: a self-contained page has none.
FETCHING: Final = frozenset({"script", "link", "img", "iframe", "object", "embed", "base"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    section: str | None  # the id of the <section> or <header> it is in
    classes: set[str] = field(default_factory=set)


class Page(HTMLParser):
    """Every element (with the section it sits in) and every piece of text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.texts: list[tuple[str | None, str]] = []
        self.sections: list[str] = []
        self._open: list[tuple[str, str | None]] = []
        self._heading: list[str] | None = None
        self.headings: list[tuple[str, str]] = []
        self.feed(text)
        self.close()

    @property
    def section(self) -> str | None:
        for tag, identifier in reversed(self._open):
            if tag in ("section", "header"):
                return identifier
        return None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("section", "header") and attributes.get("id"):
            self.sections.append(str(attributes["id"]))
        void = tag in ("meta", "br", "input", "hr", "img", "link")
        if not void:
            self._open.append((tag, attributes.get("id")))
        classes = set((attributes.get("class") or "").split())
        self.elements.append(Element(tag, attributes, self.section, classes))
        if tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        self.elements.append(Element(tag, attributes, self.section, classes))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append((tag, "".join(self._heading).strip()))
            self._heading = None
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        self.texts.append((self.section, data))
        if self._heading is not None:
            self._heading.append(data)

    def text(self, section: str | None = None) -> str:
        return "".join(data for where, data in self.texts if section is None or where == section)

    def find(
        self, tag: str, css_class: str | None = None, section: str | None = None
    ) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and (css_class is None or css_class in e.classes)
            and (section is None or e.section == section)
        ]


def outline(page: Page) -> str:
    """Headings, sections, rows and plots: what the page holds, without the run's numbers."""
    lines = [f"sections: {', '.join(page.sections)}"]
    lines += [f"{tag} {text}" for tag, text in page.headings if tag != "h1"]
    for section in page.sections:
        rows = len(page.find("tr", section=section))
        figures = [e.attrs.get("id") for e in page.find("figure", section=section)]
        if rows or figures:
            lines.append(f"#{section}: {rows} table rows, figures {figures}")
    return "\n".join(lines) + "\n"


def svg_count(text: str) -> int:
    return len(re.findall(r"<svg\b", text))


def test_demo_page_has_every_section_a_row_per_signature_and_the_plots(demo: DemoRun) -> None:
    page = Page(demo.html)
    report = demo.report
    assert page.sections == [*SECTIONS]
    assert f"exit 1: {report['outcome']['reason']}" in page.text("verdict")
    signatures = page.find("tr", "signature")
    assert len(signatures) == len(report["signatures"]) == 13
    assert [row.attrs["data-severity"] for row in signatures] == [
        line["severity"] for line in report["signatures"]
    ]
    assert len(page.find("tr", "fails")) == 5  # the five errors fail the run
    assert len(page.find("tr", "request")) == len(report["requests"]) == 12
    # One CDF for the run, one per request (the demo has fewer than ROUTE_PLOTS), the paired
    # differences; the demo ends within a second or two: too short for a timeline plot.
    figures = [e.attrs["id"] for e in page.find("figure")]
    assert figures[:2] == ["plot-latency-all", "plot-latency-1"]
    assert len(figures) == 1 + 12 + 1, figures
    assert svg_count(demo.html) == len(figures)
    assert [text for tag, text in page.headings if tag == "h3"][-2:] == [
        "shop.demo.test",
        "api.demo.test",
    ]
    assert "HSTS is lost" in page.text("fixes")


def test_demo_page_outline_matches_golden_file(demo: DemoRun) -> None:
    current = outline(Page(demo.html))
    if os.environ.get("SHADOWDIFF_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(current, encoding="utf-8")
    assert current == GOLDEN.read_text(encoding="utf-8"), (
        f"{GOLDEN.name} differs; if meant, rewrite it with SHADOWDIFF_UPDATE_GOLDEN=1"
    )


def test_demo_page_loads_nothing_and_runs_nothing(demo: DemoRun) -> None:
    page = Page(demo.html)
    assert not [e.tag for e in page.elements if e.tag in FETCHING]
    handlers = [(e.tag, name) for e in page.elements for name in e.attrs if name.startswith("on")]
    assert handlers == []
    policy = [e.attrs for e in page.find("meta") if e.attrs.get("http-equiv")]
    assert policy and "default-src 'none'" in str(policy[0]["content"])
    # An SVG refers to its own definitions only (`#id`); namespaces are names, not fetched.
    references = [
        value
        for e in page.elements
        for name, value in e.attrs.items()
        if name in ("href", "xlink:href", "src") and value is not None
    ]
    assert references and all(value.startswith("#") for value in references), references
    assert "url(http" not in demo.html and "@import" not in demo.html


HOSTILE: Final = (
    "<script>alert('name')</script>",
    '"\' onmouseover=alert(1) x="',
    "line\r\nSet-Cookie: injected=1",
    "nul\x00byte",
    "bidi \u202egnp.exe\u202c and \u2066isolate\u2069",
    "漢字 Ελληνικά עברית 🙂",
    "lone \ud800 surrogate",
    "]]> --> <!-- {{ 7 * 7 }} {% raw %}",
)


def _hostile(report: dict[str, Any]) -> dict[str, Any]:
    """The demo's report with hostile text in every kind of string the page shows."""
    hostile = copy.deepcopy(report)
    text = " | ".join(HOSTILE)
    hostile["scenario"]["name"] = text
    hostile["outcome"]["reason"] = text
    for number, entry in enumerate(hostile["requests"]):
        entry["name"] = f"{number} {HOSTILE[number % len(HOSTILE)]}"
        entry["url"] = f"https://shop.demo.test/{HOSTILE[(number + 1) % len(HOSTILE)]}"
        entry["origin"] = text
        entry["failures"]["candidate"] = {text: {"count": 1, "message": text}}
    for line in hostile["signatures"]:
        line["host"] = text
        line["requests"] = [text, *line["requests"]]
        for example in line["examples"]:
            example["baseline"], example["candidate"] = text, text + "\x1b[31m"
            example["diff"] = "\n".join(HOSTILE)
        if line["hint"]:
            line["hint"] = {"cause": text, "fix": text, "source": text}
    for entry in hostile["tls"]:
        entry["host"] = text
        entry["candidate"]["leaf"]["subject"] = text
    hostile["thresholds"] = [
        {
            "check": text,
            "request": text,
            "measured": None,
            "limit": 1.0,
            "unit": "ms",
            "passed": False,
            "reason": text,
        }
    ]
    hostile["sources"] = [
        {
            "name": text,
            "lines": 1,
            "replayed": 1,
            "skipped": {text: 1},
            "templates": {},
            "templates_total": 0,
            "problems": [],
        }
    ]
    return hostile


async def test_hostile_text_in_a_report_shows_as_text_and_nothing_else(
    demo: DemoRun, tmp_path: Path
) -> None:
    saved = tmp_path / "hostile.json"
    # As a report file holds it: JSON escapes, a lone surrogate included.
    saved.write_text(json.dumps(_hostile(demo.report)), encoding="utf-8")
    written = tmp_path / "hostile.html"
    code, _, stderr = await shadowdiff("report", str(saved), "--html", str(written))
    assert code == 1 and "Traceback" not in stderr, stderr
    text = written.read_bytes().decode("utf-8")  # valid UTF-8: the surrogate is an escape
    page = Page(text)
    assert page.sections == [*SECTIONS, "thresholds", "sources"]
    assert not [e.tag for e in page.elements if e.tag in FETCHING]
    assert not [name for e in page.elements for name in e.attrs if name.startswith("on")]
    # Nothing invisible or reordering reaches the page: each is shown as an escape.
    assert not re.search("[\x00\x1b\r\u202e\u202c\u2066\u2069]", text)
    shown = page.text()
    for expected in (
        "<script>alert('name')</script>",
        '"\' onmouseover=alert(1) x="',
        "line\\r\\nSet-Cookie: injected=1",
        "nul\\x00byte",
        "bidi \\u202egnp.exe\\u202c and \\u2066isolate\\u2069",
        "漢字 Ελληνικά עברית 🙂",
        "lone \\ud800 surrogate",
        "{{ 7 * 7 }} {% raw %}",
        "\\x1b[31m",
    ):
        assert expected in shown, expected
    # Not a word of the report inside a plot: requests are numbers there.
    for svg in re.findall(r"<svg\b.*?</svg>", text, re.S):
        assert "alert" not in svg and "漢字" not in svg
    assert svg_count(text) == 1 + 12 + 1


@given(st.text())
def test_every_value_is_visible_and_inert(value: str) -> None:
    shown = str(escape(visible(value)))
    assert not re.search("[<>\"'\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]", shown)
    assert html.unescape(shown) == visible(value)
    shown.encode("utf-8")  # always writable


def _many_requests(report: dict[str, Any], count: int) -> dict[str, Any]:
    big = copy.deepcopy(report)
    template = big["requests"][0]
    big["requests"] = []
    for number in range(count):
        entry = copy.deepcopy(template)
        entry["name"] = f"route {number}"
        entry["pairs"] = number + 1
        for side in ("baseline", "candidate"):
            entry["latency_ms"]["histograms"][side]["count"] = number + 1
        entry["latency_ms"]["difference"]["count"] = number + 1
        big["requests"].append(entry)
    return big


def test_a_report_of_thousands_of_requests_plots_the_busiest_and_says_so(
    demo: DemoRun,
) -> None:
    big: Report = _many_requests(demo.report, 2000)  # type: ignore[assignment]
    text = render_html(big)
    page = Page(text)
    route_plots = [e for e in page.find("figure") if str(e.attrs["id"]).startswith("plot-latency-")]
    assert len(route_plots) == 1 + ROUTE_PLOTS
    # The busiest are the last ones (most pairs), by their number in the requests table.
    assert route_plots[1].attrs["id"] == "plot-latency-2000"
    assert f"The {ROUTE_PLOTS} busiest of 2000 requests are plotted" in page.text("latency")
    assert f"The {DIFFERENCE_ROWS} requests with the most pairs of 2000" in page.text(
        "paired-differences"
    )
    assert len(page.find("tr", "request")) == TABLE_ROWS
    assert f"{2000 - TABLE_ROWS} more requests in the JSON report" in page.text("requests")
    assert svg_count(text) == 1 + ROUTE_PLOTS + 1


def _with_timeline(report: dict[str, Any], intervals: int = 60) -> dict[str, Any]:
    """A report whose run lasted `intervals` seconds, with failures in the middle."""
    timed = copy.deepcopy(report)
    timed["timeline"] = {
        "interval_s": 1,
        "start_s": 1_800_000_000,
        "pairs": [100 + (i % 7) * 10 for i in range(intervals)],
        "failures": {
            "baseline": [0] * intervals,
            "candidate": [5 if 20 <= i < 30 else 0 for i in range(intervals)],
        },
        "server_errors": {
            "baseline": [1 if i % 10 == 0 else 0 for i in range(intervals)],
            "candidate": [0] * intervals,
        },
    }
    return timed


def test_a_run_over_time_gets_a_throughput_and_errors_plot(demo: DemoRun) -> None:
    page = Page(render_html(_with_timeline(demo.report)))  # type: ignore[arg-type]
    assert [e.attrs["id"] for e in page.find("figure", section="timeline")] == ["plot-timeline"]
    assert "intervals of 1 s from 2027-01-15T08:00:00+00:00" in page.text("timeline")
    # Two seconds of a run paced by its requests' repeat counts say nothing over time; of a
    # load run, they are what there is.
    short = _with_timeline(demo.report, intervals=2)
    assert Page(render_html(short)).find("figure", section="timeline") == []  # type: ignore[arg-type]
    short["load"] = {**short["load"], "model": "open"}
    assert len(Page(render_html(short)).find("figure", section="timeline")) == 1  # type: ignore[arg-type]


def test_a_report_saved_before_timelines_and_histograms_still_renders(demo: DemoRun) -> None:
    old = copy.deepcopy(demo.report)
    del old["timeline"]
    del old["latency"]["histograms"]
    for entry in old["requests"]:
        del entry["latency_ms"]["histograms"]
    page = Page(render_html(old))  # type: ignore[arg-type]
    assert "saved before it had a timeline" in page.text("timeline")
    assert "No answers to plot" in page.text("latency")
    assert len(page.find("tr", "signature")) == 13


def test_figures_that_do_not_read_cost_their_plot_not_the_page(demo: DemoRun) -> None:
    broken = copy.deepcopy(demo.report)
    broken["latency"]["histograms"]["baseline"]["buckets"] = [["<b>", 3]]
    broken["requests"][0]["latency_ms"]["difference"]["p50"] = "fast"
    broken["timeline"] = {**broken["timeline"], "pairs": list(range(5000))}
    page = Page(render_html(broken))  # type: ignore[arg-type]
    for section in ("latency", "paired-differences", "timeline"):
        assert "not drawn: the report's figures for it do not read" in page.text(section), section
    assert page.find("figure") == []
    assert len(page.find("tr", "signature")) == 13  # the rest of the page is whole


# --- In a real browser -------------------------------------------------------------------


def colour_pixels(png: bytes, colour: str, tolerance: int = 40) -> int:
    """Pixels within `tolerance` (per channel) of `colour` (`#rrggbb`)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    wanted = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int(np.all(np.abs(pixels - wanted) <= tolerance, axis=-1).sum())


@pytest.mark.chromium
@pytest.mark.timeout(120)
async def test_chromium_shows_the_demo_page_without_errors_and_draws_its_plots(
    demo: DemoRun, tmp_path: Path
) -> None:
    from .browser import chromium

    timed = tmp_path / "timed.html"
    timed.write_text(render_html(_with_timeline(demo.report)), encoding="utf-8")  # type: ignore[arg-type]
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.open(demo.html_path.as_uri(), width=1280, height=900)
        assert page.errors() == []
        # The page itself, and nothing else: no font, style sheet, script or image.
        assert page.requested() == [demo.html_path.as_uri()]
        assert await page.evaluate("document.querySelectorAll('script').length") == 0
        assert await page.evaluate("document.querySelectorAll('tr.signature').length") == 13

        checked: dict[str, dict[str, int]] = {}
        for selector in ("#plot-latency-all svg", "#plot-latency-1 svg"):
            box = await page.box(selector)
            assert box is not None and box["width"] > 200 and box["height"] > 100, box
            shot = await page.screenshot(box)
            (tmp_path / f"{selector.split()[0][1:]}.png").write_bytes(shot)
            checked[selector] = {
                side: colour_pixels(shot, colour) for side, colour in SIDE_COLOURS.items()
            }
        # Both sides' lines are drawn in each plot area: at least a line's length of pixels.
        for selector, pixels in checked.items():
            assert min(pixels.values()) >= 100, (selector, pixels)
        # A part of the page with no plot has none of the line colours: the test can fail.
        header = await page.box("#summary")
        assert header is not None
        plain = await page.screenshot(header)
        assert colour_pixels(plain, SIDE_COLOURS["baseline"]) < 20

        page = await browser.open(timed.as_uri(), width=1280, height=900)
        assert page.errors() == []
        box = await page.box("#plot-timeline svg")
        assert box is not None
        shot = await page.screenshot(box)
        assert colour_pixels(shot, PAIRS_COLOUR) >= 100
        assert colour_pixels(shot, SIDE_COLOURS["candidate"]) >= 20  # the failures
