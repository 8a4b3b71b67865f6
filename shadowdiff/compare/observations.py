"""Compare the baseline's and the candidate's answers to one request. Pure: no I/O."""

from __future__ import annotations

from typing import Final

from yarl import URL

from shadowdiff.compare.difference import Difference, DifferenceKind
from shadowdiff.compare.headers import group_by_name, is_framing, is_value_noise, severity_of
from shadowdiff.compare.json_body import is_json, json_differences, parse_json, render_json_value
from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec

# A body that changes in hundreds of fields is one finding, not hundreds of lines.
MAX_JSON_FIELDS: Final = 20
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def compare(
    request: RequestSpec, baseline: Observation, candidate: Observation
) -> list[Difference]:
    """Every way `candidate` differs from `baseline` for `request`, noise left out."""
    if baseline.failure or candidate.failure:
        return _compare_failures(baseline, candidate)
    differences: list[Difference] = []
    if baseline.status != candidate.status:
        differences.append(
            Difference("status", "status", str(baseline.status), str(candidate.status), "error")
        )
        # A different status explains different bodies, Location and Content-Type; saying it
        # again for each is noise. Security headers still count: losing HSTS is its own finding.
        return differences + [
            d
            for d in _compare_headers(request, baseline, candidate)
            if d.severity == "error" and d.field != "location"
        ]
    differences += _compare_headers(request, baseline, candidate)
    if request.method != "HEAD":
        differences += _compare_bodies(baseline, candidate)
    return differences


def _compare_failures(baseline: Observation, candidate: Observation) -> list[Difference]:
    baseline_error = baseline.failure.error_class if baseline.failure else None
    candidate_error = candidate.failure.error_class if candidate.failure else None
    if baseline_error == candidate_error:
        return []
    return [
        Difference(
            "transport",
            "error",
            baseline_error or f"HTTP {baseline.status}",
            candidate_error or f"HTTP {candidate.status}",
            "error",
        )
    ]


def normalize_location(location: str, request_url: str) -> str:
    """An absolute form of a Location value: relative references resolved against the request
    URL (RFC 9110 section 10.2.2) and default ports dropped, so equal targets compare equal."""
    try:
        resolved = URL(request_url, encoded=True).join(URL(location, encoded=True))
    except ValueError:
        return location
    if resolved.explicit_port == _DEFAULT_PORTS.get(resolved.scheme):
        resolved = resolved.with_port(None)
    return str(resolved)


def _compare_headers(
    request: RequestSpec, baseline: Observation, candidate: Observation
) -> list[Difference]:
    baseline_headers = group_by_name(baseline.headers)
    candidate_headers = group_by_name(candidate.headers)
    sent = {name.lower() for name, _ in request.headers}
    differences = []
    for name in sorted(baseline_headers.keys() | candidate_headers.keys()):
        if is_framing(name):
            continue
        baseline_values = baseline_headers.get(name)
        candidate_values = candidate_headers.get(name)
        severity = severity_of(name)
        if baseline_values is None or candidate_values is None:
            kind: DifferenceKind = "header_added" if baseline_values is None else "header_missing"
            differences.append(
                Difference(
                    kind, name, _joined(baseline_values), _joined(candidate_values), severity
                )
            )
            continue
        # A request ID the client sent is a contract: it must come back unchanged.
        if is_value_noise(name) and name not in sent:
            continue
        if name == "location":
            baseline_values = [normalize_location(v, request.url) for v in baseline_values]
            candidate_values = [normalize_location(v, request.url) for v in candidate_values]
            if baseline_values != candidate_values:
                differences.append(
                    Difference(
                        "redirect",
                        name,
                        _joined(baseline_values),
                        _joined(candidate_values),
                        "error",
                    )
                )
            continue
        if name == "set-cookie":
            baseline_values = [_cookie_shape(v) for v in baseline_values]
            candidate_values = [_cookie_shape(v) for v in candidate_values]
        if baseline_values != candidate_values:
            differences.append(
                Difference(
                    "header_changed",
                    name,
                    _joined(baseline_values),
                    _joined(candidate_values),
                    severity if severity != "info" else "warning",
                )
            )
    return differences


def _cookie_shape(set_cookie: str) -> str:
    """A Set-Cookie without its value and expiry time, which differ on every response."""
    name_value, _, attributes = set_cookie.partition(";")
    name = name_value.partition("=")[0].strip()
    kept = sorted(
        part.strip().lower()
        for part in attributes.split(";")
        if part.strip() and not part.strip().lower().startswith("expires=")
    )
    return "; ".join([f"{name}=…", *kept])


def _joined(values: list[str] | None) -> str | None:
    return None if values is None else ", ".join(values)


def _compare_bodies(baseline: Observation, candidate: Observation) -> list[Difference]:
    if baseline.body_sha256 == candidate.body_sha256:
        return []
    if not (baseline.body_truncated or candidate.body_truncated):
        baseline_json, candidate_json = parse_json(baseline.body), parse_json(candidate.body)
        if is_json(baseline_json) and is_json(candidate_json):
            fields = list(json_differences(baseline_json, candidate_json))
            differences = [
                Difference(
                    "json_field", path, render_json_value(before), render_json_value(after), "error"
                )
                for path, before, after in fields[:MAX_JSON_FIELDS]
            ]
            if len(fields) > MAX_JSON_FIELDS:
                differences.append(
                    Difference(
                        "body",
                        "json",
                        None,
                        f"{len(fields) - MAX_JSON_FIELDS} more fields differ",
                        "error",
                    )
                )
            return differences
    return [
        Difference(
            "body",
            "body",
            f"{baseline.body_bytes} bytes, sha256 {baseline.body_sha256[:12]}",
            f"{candidate.body_bytes} bytes, sha256 {candidate.body_sha256[:12]}",
            "warning",
        )
    ]
