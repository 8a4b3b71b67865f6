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


# Fields whose members are field names or methods: a set, where order means nothing (field
# names are case-insensitive, RFC 9110 section 5.1; methods are not, section 9.1).
_NAME_SETS: Final = frozenset(
    {"vary", "access-control-allow-headers", "access-control-expose-headers"}
)
_UNORDERED: Final = frozenset({"access-control-allow-methods", "allow", "cache-control"})
# Values compared without regard to case: X-Frame-Options (RFC 7034 section 2.1) and
# X-Content-Type-Options (Fetch: an ASCII case-insensitive match of `nosniff`).
_CASELESS: Final = frozenset({"x-frame-options", "x-content-type-options"})


def comparable(name: str, values: list[str]) -> str:
    """The field's value in a form where two spellings of one meaning are equal: `combined`,
    and for the fields below, their own grammar. A security header written
    `max-age=31536000;includeSubDomains` by one data plane and with a space by another says
    the same to every browser, and must not be a difference."""
    members = [m for m in (m.strip(" \t") for v in values for m in _list_members(v)) if m]
    if name in _NAME_SETS:
        return ", ".join(sorted({member.lower() for member in members}))
    if name in _UNORDERED:
        if name == "cache-control":
            members = [_directive(member, "=") for member in members]
        return ", ".join(sorted(set(members)))
    if name in _CASELESS:
        return ", ".join(members).lower()
    if name == "strict-transport-security":
        # RFC 6797 section 6.1: directives in any order, names case-insensitive, values
        # quoted or not.
        return ", ".join(
            "; ".join(sorted(_directive(d, "=") for d in member.split(";") if d.strip(" \t")))
            for member in members
        )
    if name == "content-security-policy":
        # CSP 3 section 2.2.1: directives split at `;`, names case-insensitive, values split
        # at whitespace. Their order stays (of two with one name, the first applies).
        return ", ".join(
            "; ".join(_csp_directive(d) for d in member.split(";") if d.strip(" \t"))
            for member in members
        )
    if name == "content-type":
        return ", ".join(_media_type(member) for member in members)
    return ", ".join(members)


def _directive(text: str, separator: str) -> str:
    name, equals, value = text.strip(" \t").partition(separator)
    name, value = name.strip(" \t").lower(), value.strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return f"{name}{equals}{value}"


def _csp_directive(text: str) -> str:
    name, *sources = text.split()
    return " ".join([name.lower(), *sources])


def _media_type(text: str) -> str:
    """RFC 9110 section 8.3.1: type, subtype and parameter names are case-insensitive, and so
    is the value of `charset`; whitespace around `;` is optional."""
    essence, *parameters = text.split(";")
    normalized = [essence.strip(" \t").lower()]
    for parameter in parameters:
        parameter = _directive(parameter, "=")
        if parameter.startswith("charset="):
            parameter = parameter.lower()
        if parameter:
            normalized.append(parameter)
    return ";".join(normalized)
