"""`sources export`: every recorded request a scenario would replay (after hygiene and
selection, before anything is sent) as shadowdiff's JSONL, to filter with jq and read back as
`- jsonl: file`. Streaming, one line in memory at a time.

An export is an output like a report: credential headers (Authorization, Cookie, the sensitive
list of `shadowdiff.redaction` and the scenario's `redact.headers`, and any name that says it
holds a credential) are never written, even with `replay_credentials: true`; values from the
environment are written as `${NAME}`, and a recorded credential's value found elsewhere in the
request (a Referer, a query) as a fingerprint, exactly as reports show them.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

from shadowdiff.errors import UsageError
from shadowdiff.redaction import Redactor, Secrets, sensitive_literals
from shadowdiff.sources import records, selection_for
from shadowdiff.sources.jsonl import export_line
from shadowdiff.sources.record import Recorded
from shadowdiff.sources.select import SourceSummary, select_recorded

if TYPE_CHECKING:
    from shadowdiff.scenario import Scenario


def export_requests(
    scenario: Scenario,
    summaries: list[SourceSummary] | None = None,
    *,
    key: bytes | None = None,
) -> Iterator[str]:
    """One JSONL line (no newline) per selected recorded request of `scenario`, source by
    source in recorded order. `summaries` receives each source's counts as it is read; `key`
    is the fingerprint key (`shadowdiff.redaction.load_key`), one for this export if None.

    Raises UsageError when the scenario has no sources or a source cannot be opened."""
    if not scenario.recorded:
        raise UsageError(f"{scenario.source}: no sources to export (add a `sources:` section)")
    key = key if key is not None else secrets.token_bytes(32)
    redactor = Redactor(scenario.secrets, key)
    for index, source in enumerate(scenario.recorded):
        summary = SourceSummary(source.path)
        if summaries is not None:
            summaries.append(summary)
        selection = dataclasses.replace(
            # An export holds nothing in memory: the run's cap on kept requests does not apply.
            selection_for(source, scenario.selection),
            max_kept=None,
        )
        try:
            for recorded, spec in select_recorded(
                records(source, scenario.base_dir), selection, summary
            ):
                yield _line(recorded, spec.url, spec.headers, redactor, scenario.secrets, key)
        except OSError as exc:
            raise UsageError(
                f"{scenario.source}: sources[{index}].{source.kind}: cannot read "
                f"{redactor.text(source.path)}: {exc.strerror or exc}"
            ) from None


def export_summary(scenario: Scenario, summaries: list[SourceSummary]) -> list[str]:
    """One line per source for a person: what was exported and what was skipped, and why."""
    redactor = Redactor(Secrets(environment=scenario.secrets.environment), secrets.token_bytes(16))
    lines = []
    for summary in summaries:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped.items()))
        lines.append(
            f"{redactor.text(summary.name)}: {summary.replayed} of {summary.lines} exported"
            + (f"; skipped: {skipped}" if skipped else "")
        )
        lines += [f"  {redactor.text(problem)}" for problem in summary.first_problems]
    return lines


def _line(
    recorded: Recorded,
    url: str,
    headers: tuple[tuple[str, str], ...],
    redactor: Redactor,
    known: Secrets,
    key: bytes,
) -> str:
    kept = tuple((name, value) for name, value in headers if not redactor.is_sensitive_name(name))
    # The values of the credentials this request carried, wherever else they appear in it.
    carried = sensitive_literals(
        (h for h in recorded.headers if redactor.is_sensitive_name(h[0])),
        frozenset(name.lower() for name, _ in recorded.headers),
    )
    if carried:
        redactor = Redactor(dataclasses.replace(known, literals=known.literals | carried), key)
    document = redactor.walk(json.loads(export_line(recorded, url, kept)))
    return json.dumps(document, ensure_ascii=False)
