"""What a planned request may carry: the host names, URLs and headers that `shadowdiff
validate` accepts in a scenario, so that a plan always validates. Pure checks; each returns why
not, or None.

The header rules are the scenario loader's (`shadowdiff.wire`: token names, field values,
headers the transport sets, method overrides), plus the connection-specific headers: a
request may not set those, since the first proxy consumes them and they say nothing about
routing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from yarl import URL

from shadowdiff.wire import CONNECTION_HEADERS, prepare_url, request_problems, unsafe_reason

_HOP_BY_HOP: Final = "hop-by-hop (RFC 9110 section 7.6.1): the first proxy consumes it"
# Expect (RFC 9110 section 10.1.1) changes how the transport sends the request, not where.
_EXPECT: Final = "it changes how the request is sent (RFC 9110 section 10.1.1), not where"
# RFC 1123 section 2.1 (a label may start with a digit), as Kubernetes checks a rule's host.
_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_HOST_NAME_CHARS: Final = 253


def host_name_problem(host: str) -> str | None:
    """Why `host` is not an RFC 1123 host name (with an optional leading `*.` wildcard, as a
    rule's host may have), or None."""
    name = host[2:] if host.startswith("*.") else host
    if not name:
        return "empty"
    if len(name) > MAX_HOST_NAME_CHARS:
        return f"longer than {MAX_HOST_NAME_CHARS} characters"
    for label in name.split("."):
        if not label:
            return "an empty label (two dots, or a dot at an end)"
        if len(label) > 63:
            return "a label longer than 63 characters"
        if not _LABEL.fullmatch(label):
            return (
                "a label holds a character other than a letter, digit or inner hyphen "
                "(RFC 1123): no port, path, query, wildcard or space"
            )
    return None


def url_problem(url: str) -> str | None:
    """Why `url` cannot be sent (a hostile or placeholder host or path), or None."""
    try:
        prepared, userinfo = prepare_url(url)
        parsed = URL(prepared, encoded=True)
        # yarl parses the authority lazily: ask for every part here, inside the try.
        host, _ = parsed.host, parsed.port
    except ValueError as exc:  # WireError is a ValueError
        return str(exc)
    if not host:
        return "no host"
    if userinfo is not None:
        return "credentials in the URL"
    problems = request_problems("GET", prepared, ())
    return "; ".join(problems) if problems else None


def headers_problem(method: str, url: str, headers: Iterable[tuple[str, str]]) -> str | None:
    """Why a request with these headers cannot be planned: the scenario loader would refuse
    it, it may change state on the backends, or a header is connection-specific."""
    headers = tuple(headers)
    problems = request_problems(method, url, headers)
    if problems:
        return "; ".join(problems)
    unsafe = unsafe_reason(method, headers, None)
    if unsafe is not None:
        return unsafe
    for name, _ in headers:
        if name.lower() in CONNECTION_HEADERS:
            return f"header {name}: {_HOP_BY_HOP}"
        if name.lower() == "expect":
            return f"header {name}: {_EXPECT}"
    return None
