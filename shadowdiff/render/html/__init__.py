"""The report as one self-contained HTML page with plots (`--html`): no script, no request
for anything (a Content-Security-Policy says so to the browser), so it opens from disk, from
a CI artifact or an e-mail alike. Reads report data only; writes no file.

`page` builds what the page shows and fills the template (`report.html.j2`, every value
escaped by Jinja2's autoescape); `plots` draws the plots with matplotlib. Both are imported
on the first call: a command that writes no HTML does not load Jinja2 or matplotlib.
"""

from __future__ import annotations

from shadowdiff.report.schema import Report


def render_html(report: Report) -> str:
    """The whole report as an HTML document, as text."""
    from shadowdiff.render.html.page import render_page

    return render_page(report)
