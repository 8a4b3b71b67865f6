"""Set-Cookie compared by cookie name and attributes, never by value (RFC 6265 section 4.1).
Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from shadowdiff.difference import Difference, Severity

# Attributes whose loss weakens the cookie: a finding of error severity.
PROTECTIVE: Final = ("secure", "httponly", "samesite")
COMPARED: Final = ("secure", "httponly", "samesite", "path", "domain", "max-age", "partitioned")


def cookie_attributes(set_cookie: str) -> tuple[str, dict[str, str]]:
    """Name and compared attributes (lower-case keys) of one Set-Cookie value."""
    name_value, *attributes = set_cookie.split(";")
    # RFC 6265 section 5.2: a pair without `=` is a value with an empty name; the value is
    # never shown, so it must not become the name either.
    name = name_value.partition("=")[0].strip() if "=" in name_value else "(no name)"
    found: dict[str, str] = {}
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
    return (
        "; ".join(
            key if value == "" else f"{key}={value}" for key, value in sorted(attributes.items())
        )
        or "(no attributes)"
    )


def compare_cookies(baseline: Iterable[str], candidate: Iterable[str]) -> list[Difference]:
    baseline_cookies = dict(cookie_attributes(value) for value in baseline)
    candidate_cookies = dict(cookie_attributes(value) for value in candidate)
    differences = []
    for name in sorted(baseline_cookies.keys() | candidate_cookies.keys()):
        before, after = baseline_cookies.get(name), candidate_cookies.get(name)
        if before == after:
            continue
        severity: Severity = "warning"
        if before is None or after is None:
            severity = "error" if after is None else "warning"
        elif any(key in before and key not in after for key in PROTECTIVE) or (
            before.get("samesite") != after.get("samesite")
        ):
            severity = "error"
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
