"""Set-Cookie compared by cookie name and attributes, never by value (RFC 6265 section 4.1).
Pure, except that a cookie lifetime with no Date to judge it by is judged by the clock.

A cookie's lifetime is compared by what a browser makes of it, never by how it is spelled:
`Max-Age=3600` and `Expires=<a date an hour on>` both make a persistent cookie. Three
lifetimes differ in a way a user notices (RFC 6265 sections 5.2.1, 5.2.2 and 5.3): a session
cookie (no valid Max-Age or Expires), a persistent one, and a deleted one (Max-Age of zero or
less, or an Expires in the past)."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from typing import Final, Literal

from shadowdiff.difference import Difference, Severity

Lifetime = Literal["session", "persistent", "deleted"]

# Attributes whose loss weakens the cookie: a finding of error severity.
PROTECTIVE: Final = ("secure", "httponly", "samesite")
COMPARED: Final = ("secure", "httponly", "samesite", "path", "domain", "partitioned")
# RFC 6265 section 5.1.1: what separates the tokens of a cookie date.
_DATE_DELIMITERS: Final = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
# ASCII: a Unicode digit is no digit to a browser.
_TIME: Final = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\D.*)?", re.DOTALL | re.ASCII)
_DAY: Final = re.compile(r"(\d{1,2})(?:\D.*)?", re.DOTALL | re.ASCII)
_YEAR: Final = re.compile(r"(\d{2,4})(?:\D.*)?", re.DOTALL | re.ASCII)
_MONTHS: Final = (
    *("jan", "feb", "mar", "apr", "may", "jun"),
    *("jul", "aug", "sep", "oct", "nov", "dec"),
)
_MAX_AGE: Final = re.compile(r"-?[0-9]+")


def parse_cookie_date(text: str) -> int | None:
    """Seconds since the epoch of a cookie date, or None where a browser ignores it: the
    algorithm of RFC 6265 section 5.1.1, lenient as browsers are (any of the HTTP-date forms,
    two-digit years, extra tokens)."""
    clock = day = month = year = None
    for token in _DATE_DELIMITERS.split(text):
        if clock is None and (found := _TIME.fullmatch(token)):
            clock = (int(found[1]), int(found[2]), int(found[3]))
        elif day is None and (found := _DAY.fullmatch(token)):
            day = int(found[1])
        elif month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS.index(token[:3].lower()) + 1
        elif year is None and (found := _YEAR.fullmatch(token)):
            year = int(found[1])
    if clock is None or day is None or month is None or year is None:
        return None
    if 70 <= year <= 99:
        year += 1900
    elif 0 <= year <= 69:
        year += 2000
    hour, minute, second = clock
    if year < 1601 or hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None  # RFC 6265 section 5.1.1: a date that does not exist is a failure
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def cookie_lifetime(set_cookie: str, now_s: float) -> Lifetime:
    """What a browser that receives `set_cookie` at `now_s` makes of its lifetime. The last
    valid Max-Age wins over any Expires, the last valid Expires counts when there is no Max-Age,
    and an attribute a browser ignores (`Max-Age=soon`, an Expires that is no date) is ignored."""
    max_age_deletes: bool | None = None
    expires_s: int | None = None
    for attribute in set_cookie.split(";")[1:]:
        key, _, value = attribute.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "max-age" and _MAX_AGE.fullmatch(value):
            # Read without int(): a hostile Max-Age may have more digits than int() takes.
            max_age_deletes = value.startswith("-") or not value.strip("0")
        elif key == "expires" and (parsed := parse_cookie_date(value)) is not None:
            expires_s = parsed
    if max_age_deletes is not None:
        return "deleted" if max_age_deletes else "persistent"
    if expires_s is not None:
        return "deleted" if expires_s <= now_s else "persistent"
    return "session"


def cookie_attributes(set_cookie: str, now_s: float) -> tuple[str, dict[str, str]]:
    """Name and compared attributes (lower-case keys) of one Set-Cookie value, with its
    lifetime under the key `lifetime` (judged at `now_s`)."""
    name_value, *attributes = set_cookie.split(";")
    # RFC 6265 section 5.2: a pair without `=` is a value with an empty name; the value is
    # never shown, so it must not become the name either.
    name = name_value.partition("=")[0].strip() if "=" in name_value else "(no name)"
    found: dict[str, str] = {"lifetime": cookie_lifetime(set_cookie, now_s)}
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        key = key.strip().lower()
        if key in COMPARED:
            found[key] = value.strip().lower() if key in ("samesite", "domain") else value.strip()
            if key == "domain":
                # RFC 6265 section 5.2.3: a leading dot is ignored (`.example.com` is
                # `example.com`, and both cover the subdomains).
                found[key] = found[key].removeprefix(".")
    return name, found


def _shape(attributes: dict[str, str]) -> str:
    """`persistent; httponly; path=/`: the lifetime first, then the attributes by name."""
    rest = sorted((key, value) for key, value in attributes.items() if key != "lifetime")
    return "; ".join(
        [attributes["lifetime"], *(key if value == "" else f"{key}={value}" for key, value in rest)]
    )


def _severity(before: dict[str, str], after: dict[str, str]) -> Severity:
    if any(key in before and key not in after for key in PROTECTIVE) or (
        before.get("samesite") != after.get("samesite")
    ):
        return "error"
    # A cookie deleted on one side only: a logout that keeps the session, or a session lost.
    if (before["lifetime"] == "deleted") != (after["lifetime"] == "deleted"):
        return "error"
    return "warning"


def compare_cookies(
    baseline: Iterable[str],
    candidate: Iterable[str],
    baseline_now_s: float | None = None,
    candidate_now_s: float | None = None,
) -> list[Difference]:
    """Set-Cookie values compared by name. Each side's Expires is judged against that side's
    own time (its Date header, as its clock made the Expires), else the other side's, else
    this machine's clock: a server's clock that is off by minutes moves no cookie."""
    baseline_now_s = baseline_now_s if baseline_now_s is not None else candidate_now_s
    candidate_now_s = candidate_now_s if candidate_now_s is not None else baseline_now_s
    if baseline_now_s is None or candidate_now_s is None:
        baseline_now_s = candidate_now_s = time.time()
    baseline_cookies = dict(cookie_attributes(value, baseline_now_s) for value in baseline)
    candidate_cookies = dict(cookie_attributes(value, candidate_now_s) for value in candidate)
    differences = []
    for name in sorted(baseline_cookies.keys() | candidate_cookies.keys()):
        before, after = baseline_cookies.get(name), candidate_cookies.get(name)
        if before == after:
            continue
        if before is None or after is None:
            severity: Severity = "error" if after is None else "warning"
        else:
            severity = _severity(before, after)
        differences.append(
            Difference(
                "cookie",
                name,
                None if before is None else _shape(before),
                None if after is None else _shape(after),
                severity,
            )
        )
    return differences
