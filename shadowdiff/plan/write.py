"""A plan as a scenario file a person reads, edits and runs: targets from the environment,
one request per probe with its origin, and a comment for everything not probed.

Every string from a manifest is written as a YAML double-quoted string (ASCII, every control
character escaped) with `${` doubled, so that no manifest can add keys, end a comment or pull
a value from the environment of the run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from shadowdiff.plan.probes import Plan

# Printable ASCII other than `"` and `\`: nothing to escape (nearly every string of a manifest).
_PLAIN: Final = re.compile(r"[ !#-\[\]-~]*")


def _escaped(text: str) -> str:
    """`text` in YAML double-quoted escapes, ASCII only. Not JSON's: JSON writes a character
    beyond U+FFFF as a surrogate pair, which YAML refuses; YAML has \\U for it."""
    if _PLAIN.fullmatch(text):
        return text
    out = []
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\uFFFD")  # a lone surrogate is no character: YAML refuses it
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    return "".join(out)


def _quoted(text: str) -> str:
    return '"' + _escaped(text.replace("${", "$${")) + '"'


def _comment(text: str) -> str:
    """`text` fit for a one-line YAML comment: control and non-ASCII characters escaped."""
    return _escaped(text)


def scenario_text(plan: Plan, sources: Sequence[str], ingress_count: int) -> str:
    lines = [
        "# Written by `shadowdiff plan` from: " + _comment(", ".join(sources)),
        "# Set BASELINE_ADDRESS and CANDIDATE_ADDRESS (or edit the targets), then:",
        "#   shadowdiff validate THIS-FILE && shadowdiff run THIS-FILE",
        "version: 1",
        f"name: {_quoted(f'plan of {ingress_count} Ingress')}",
        "targets:",
        '  baseline: {address: "${BASELINE_ADDRESS}"}',
        '  candidate: {address: "${CANDIDATE_ADDRESS}"}',
        "requests:",
    ]
    for request in plan.requests:
        lines.append(f"  - name: {_quoted(request.name)}")
        lines.append(f"    url: {_quoted(request.url)}")
        if request.grpc_health is not None:
            lines.append(f"    grpc: {{health: {_quoted(request.grpc_health)}}}")
        elif request.method != "GET":
            lines.append(f"    method: {request.method}")
        if request.headers:
            lines.append("    headers:")
            lines.extend(f"      {_quoted(n)}: {_quoted(v)}" for n, v in request.headers)
        if request.body_size_bytes is not None:
            lines.append(f"    body: {{size: {request.body_size_bytes}}}")
        if request.repeat != 1:
            lines.append(f"    repeat: {request.repeat}")
        if request.allow_unsafe:
            lines.append("    allow_unsafe: true")
        if request.ignore:
            lines.append(f"    ignore: [{', '.join(request.ignore)}]")
        if request.backend_split:
            lines.append("    backend_split: true")
        lines.append(f"    origin: {_quoted(request.origin)}")
    if plan.not_probed:
        lines.append("")
        lines.append("# Not probed:")
        lines.extend(
            "#   " + _comment(f"{where}: {what}: {why}") for where, what, why in plan.not_probed
        )
    return "\n".join(lines) + "\n"
