"""Which response headers are compared, and how strictly. Pure data and functions.

Sources: RFC 9110 section 7.6.1 (connection-specific fields) for framing headers; the
ingress-nginx defaults and Gateway data-plane behaviour listed in docs/domain for the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from shadowdiff.difference import Severity

# Framing and hop-by-hop headers: they change with how the bytes travel, not with what was
# answered (chunked vs Content-Length is the proxy's choice). Neither presence nor value counts.
FRAMING_HEADERS: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)

# Headers whose values differ between any two answers by design. Their presence still counts
# (a Date that disappears is worth knowing), but only as information.
VALUE_NOISE_HEADERS: Final = frozenset(
    {
        "date",
        "age",
        "expires",
        "last-modified",
        "etag",
        "x-request-id",
        "x-amzn-trace-id",
        "traceparent",
        "tracestate",
        "traceresponse",  # W3C Trace Context Level 2: the server's own span
        "server-timing",  # durations, different on every answer (report/collect.py reads them)
        "x-b3-traceid",
        "x-b3-spanid",
        "via",
        "x-envoy-upstream-service-time",
    }
)
VALUE_NOISE_PREFIXES: Final = ("x-envoy-", "x-kong-")

# Security and cross-origin headers: a lost or weakened one is a regression users notice.
STRICT_HEADERS: Final = frozenset(
    {
        "strict-transport-security",
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "permissions-policy",
        "location",
        "www-authenticate",
    }
)
STRICT_PREFIXES: Final = ("access-control-",)


def is_framing(name: str) -> bool:
    return name in FRAMING_HEADERS


def is_value_noise(name: str) -> bool:
    return name in VALUE_NOISE_HEADERS or name.startswith(VALUE_NOISE_PREFIXES)


def severity_of(name: str) -> Severity:
    """How much a change to header `name` (lower-case) matters."""
    if name in STRICT_HEADERS or name.startswith(STRICT_PREFIXES):
        return "error"
    if is_value_noise(name):
        return "info"
    return "warning"


def group_by_name(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Lower-cased name -> all values in order received."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    return grouped


def _list_members(value: str) -> list[str]:
    """`value` split at each comma outside a quoted string (RFC 9110 section 5.6.4): one
    followed by an even number of quotes. Counted in one pass: the look-ahead pattern this
    replaces took quadratic time, minutes for a hostile 64 KiB line of quotes and commas."""
    if '"' not in value:
        return value.split(",")
    members, start = [], 0
    after = value.count('"')
    for index, char in enumerate(value):
        if char == '"':
            after -= 1
        elif char == "," and after % 2 == 0:
            members.append(value[start:index])
            start = index + 1
    members.append(value[start:])
    return members


def combined(values: list[str]) -> str:
    """The field's value as RFC 9110 section 5.3 lets a recipient combine its lines: one
    comma-separated list, with the whitespace around commas and empty members (section 5.6.1)
    left out. `Vary: Accept, Origin` on one line and on two then compare equal. (Set-Cookie,
    which cannot be combined, is compared by its own rules.)"""
    members = (member.strip(" \t") for value in values for member in _list_members(value))
    return ", ".join(member for member in members if member)
