"""Compare the baseline's and the candidate's answers to one request. Pure: no I/O."""

from __future__ import annotations

import re
import string
from typing import Final

from yarl import URL

from shadowdiff.compare.cookies import compare_cookies, parse_cookie_date
from shadowdiff.compare.grpc import aligned, compare_grpc, without_grpc_fields
from shadowdiff.compare.headers import (
    combined,
    comparable,
    group_by_name,
    is_framing,
    is_value_noise,
    severity_of,
)
from shadowdiff.compare.json_body import is_json, json_differences, parse_json, render_json_value
from shadowdiff.compare.markers import compare_markers
from shadowdiff.compare.options import CompareOptions
from shadowdiff.compare.text_diff import text_diff
from shadowdiff.compare.websocket import WEBSOCKET_ANSWER_HEADERS, compare_websocket
from shadowdiff.content_coding import ContentDigest, Decoded, content_codings, decode
from shadowdiff.difference import Difference, DifferenceKind
from shadowdiff.markers import extract_markers
from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec
from shadowdiff.trace import parse_traceparent

# A body that changes in hundreds of fields is one finding, not hundreds of lines.
MAX_JSON_FIELDS: Final = 20
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# RFC 3986 section 2.3: characters a percent-encoding stands for without changing the URI.
_PERCENT: Final = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
_DEFAULT_OPTIONS: Final = CompareOptions()
# What a side's own span id becomes in its body before bodies are compared.
SPAN_SET_ASIDE: Final = b"{span-id}"
# A trace id and the span id after it, as a traceparent writes them.
_TRACE_AND_SPAN: Final = re.compile(rb"([0-9a-f]{32})-[0-9a-f]{16}")
# Compared by their own rules, not as plain header values.
_SPECIAL_HEADERS: Final = frozenset({"location", "set-cookie", "content-encoding"})


def compare(
    request: RequestSpec,
    baseline: Observation,
    candidate: Observation,
    options: CompareOptions = _DEFAULT_OPTIONS,
) -> list[Difference]:
    """Every way `candidate` differs from `baseline` for `request`, noise left out."""
    if baseline.failure or candidate.failure:
        return _compare_failures(baseline, candidate)
    protocol = _compare_protocols(baseline, candidate)
    if request.grpc is not None:
        return protocol + _compare_grpc_call(request, baseline, candidate, options)
    if (
        baseline.status == candidate.status
        and baseline.body_sha256 == candidate.body_sha256
        and baseline.headers == candidate.headers
    ):
        return protocol  # byte-identical answers, the common case: nothing else can differ
    headers = protocol + _compare_headers(request, baseline, candidate, options)
    if request.websocket is not None:
        headers += compare_websocket(baseline, candidate)
    if baseline.status != candidate.status:
        # A different status explains different bodies, Location and Content-Type; saying it
        # again for each is noise. Security headers still count: losing HSTS is its own finding.
        status = Difference(
            "status", "status", str(baseline.status), str(candidate.status), "error"
        )
        lost_security = (
            d
            for d in headers
            if d.kind == "header_missing" and d.severity == "error" and d.field != "location"
        )
        return [*protocol, status, *lost_security]
    if request.method == "HEAD":
        return headers
    return headers + _compare_bodies(request, baseline, candidate, options)


def _compare_grpc_call(
    request: RequestSpec, baseline: Observation, candidate: Observation, options: CompareOptions
) -> list[Difference]:
    """A gRPC call: its status, trailers and message, and the headers of the answer; its body
    only as gRPC reads it (the framed message)."""
    baseline, candidate = aligned(baseline, candidate)
    grpc = compare_grpc(request, baseline, candidate, options)
    if baseline.status != candidate.status:
        # A gRPC client reads an HTTP status without grpc-status as a gRPC code: both show.
        status = Difference(
            "status", "status", str(baseline.status), str(candidate.status), "error"
        )
        return [status, *grpc]
    headers = _compare_headers(
        request, without_grpc_fields(baseline), without_grpc_fields(candidate), options
    )
    if any(d.kind == "grpc" and d.field == "status" for d in grpc):
        # An error answer is often trailers-only, without the head a served call has
        # (grpc-accept-encoding, content-type variants): only lost security headers count.
        headers = [d for d in headers if d.kind == "header_missing" and d.severity == "error"]
    return headers + grpc


def _compare_protocols(baseline: Observation, candidate: Observation) -> list[Difference]:
    """HTTP/2 served on one side and HTTP/1.x on the other. Clients that need HTTP/2 (gRPC,
    or anything that multiplexes) lose it: a warning when the candidate drops it, information
    when it adds it. Only the version is compared here: what HTTP/2 writes differently by
    design (no reason phrase, lower-case header names, no Connection or Keep-Alive) is no
    difference anywhere (reasons are never compared, header names compare case-insensitively,
    framing headers not at all)."""
    baseline_h2, candidate_h2 = baseline.http_version == "2", candidate.http_version == "2"
    if baseline_h2 == candidate_h2:
        return []
    return [
        Difference(
            "protocol",
            "http_version",
            _version(baseline.http_version),
            _version(candidate.http_version),
            "warning" if baseline_h2 else "info",
        )
    ]


def _version(version: str | None) -> str | None:
    return None if version is None else f"HTTP/{version}"


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
    URL (RFC 9110 section 10.2.2), default ports dropped, the host in lower case and percent-
    encodings as RFC 3986 section 6.2.2 makes them equivalent (hex digits in upper case, an
    unreserved character decoded: `%7E` is `~`), so equal targets compare equal."""
    try:
        resolved = URL(request_url, encoded=True).join(URL(location, encoded=True))
        if resolved.explicit_port == _DEFAULT_PORTS.get(resolved.scheme):
            resolved = resolved.with_port(None)
        if resolved.raw_host:
            resolved = resolved.with_host(resolved.raw_host.lower())
    except ValueError:
        return location
    return _PERCENT.sub(_normal_percent, str(resolved))


def _normal_percent(match: re.Match[str]) -> str:
    character = chr(int(match.group()[1:], 16))
    return character if character in _UNRESERVED else match.group().upper()


def _compare_headers(
    request: RequestSpec, baseline: Observation, candidate: Observation, options: CompareOptions
) -> list[Difference]:
    baseline_headers = group_by_name(baseline.headers)
    candidate_headers = group_by_name(candidate.headers)
    sent = {name.lower() for name, _ in request.headers}
    differences: list[Difference] = []
    for name in sorted(baseline_headers.keys() | candidate_headers.keys()):
        if is_framing(name) or name in options.ignore_headers:
            continue
        if request.websocket is not None and name in WEBSOCKET_ANSWER_HEADERS:
            continue
        before, after = baseline_headers.get(name), candidate_headers.get(name)
        if name == "set-cookie":
            differences += compare_cookies(
                before or (), after or (), _date_s(baseline), _date_s(candidate)
            )
            continue
        if name == "content-encoding":
            if combined(before or []) != combined(after or []):
                differences.append(
                    Difference("content_encoding", name, _joined(before), _joined(after), "warning")
                )
            continue
        severity = severity_of(name)
        if before is None or after is None:
            kind: DifferenceKind = "header_added" if before is None else "header_missing"
            differences.append(Difference(kind, name, _joined(before), _joined(after), severity))
            continue
        # A request ID the client sent is a contract: it must come back unchanged.
        if is_value_noise(name) and name not in sent:
            continue
        if name == "location":
            before = [normalize_location(v, request.url) for v in before]
            after = [normalize_location(v, request.url) for v in after]
            if before != after:
                differences.append(
                    Difference("redirect", name, _joined(before), _joined(after), "error")
                )
            continue
        if comparable(name, before) != comparable(name, after):
            differences.append(
                Difference(
                    "header_changed",
                    name,
                    _joined(before),
                    _joined(after),
                    severity if severity != "info" else "warning",
                )
            )
    return differences


def _date_s(observation: Observation) -> int | None:
    """The answer's Date in seconds since the epoch: the time its own Set-Cookie Expires is
    judged by (parsed as a cookie date, which takes each HTTP-date form)."""
    dates = observation.header_values("date")
    return parse_cookie_date(dates[0]) if dates else None


def _joined(values: list[str] | None) -> str | None:
    return None if values is None else combined(values)


def decoded_body(observation: Observation, limit_bytes: int) -> Decoded:
    """The captured body with its Content-Encoding removed, or None with the reason (truncated,
    an encoding not decoded here such as zstd, invalid data, or more than `limit_bytes`)."""
    codings = content_codings(observation.headers)
    if not codings:
        return Decoded(observation.body)
    if observation.body_truncated:
        return Decoded(None, "truncated; not decoded")
    return decode(observation.body, codings, limit_bytes)


def _content_digest(observation: Observation) -> str | None:
    """The SHA-256 of the whole body's content (its Content-Encoding removed), or None when
    it is not known."""
    codings = content_codings(observation.headers)
    if not codings:
        return observation.body_sha256
    if observation.body_truncated:
        return observation.content_sha256  # hashed by the transport as the body arrived
    # Captured whole, it is hashed as a transport hashes a longer body: in bounded steps,
    # however far it inflates within MAX_STREAMED_CONTENT_BYTES.
    digest = ContentDigest(codings)
    digest.update(observation.body)
    return digest.hexdigest()


def _compare_bodies(
    request: RequestSpec, baseline: Observation, candidate: Observation, options: CompareOptions
) -> list[Difference]:
    if baseline.body_sha256 == candidate.body_sha256:
        return []
    limit = options.decoded_body_limit_bytes
    if baseline.body_truncated or candidate.body_truncated:
        # Past body_capture the content is known by its digest alone: the same content at
        # another compression level, or compressed on one side only, is alike (and a
        # content_encoding difference says the rest).
        content = _content_digest(baseline)
        if content is not None and content == _content_digest(candidate):
            return []
    baseline_decoded, candidate_decoded = (
        decoded_body(baseline, limit),
        decoded_body(candidate, limit),
    )
    baseline_body = _without_own_span(baseline_decoded.content, baseline.traceparent)
    candidate_body = _without_own_span(candidate_decoded.content, candidate.traceparent)
    if baseline_body is not None and candidate_body is not None:
        if baseline_body == candidate_body and not (
            baseline.body_truncated or candidate.body_truncated
        ):
            return []  # same content, other encoding: already reported as content_encoding
        baseline_markers = extract_markers(baseline.headers, baseline_body, options.extractors)
        candidate_markers = extract_markers(candidate.headers, candidate_body, options.extractors)
        if baseline_markers is not None and candidate_markers is not None:
            # Both answers are echoes: what matters is what the backend saw, not the echo's
            # bytes (pod names differ by replica, timestamps by request).
            return compare_markers(request, baseline_markers, candidate_markers, options)
        if not (baseline.body_truncated or candidate.body_truncated):
            json_fields = _compare_json(baseline_body, candidate_body, options)
            if json_fields is not None:
                return json_fields
    detail = (
        text_diff(baseline_body, candidate_body)
        if baseline_body is not None and candidate_body is not None
        else None
    )
    # JSON past body_capture is compared as text: say so, or a user reads a text diff of two
    # documents that may differ only in spacing and never learns that a larger body_capture
    # would compare them field by field.
    unparsed = _looks_like_json(baseline, baseline_body) and _looks_like_json(
        candidate, candidate_body
    )
    return [
        Difference(
            "body",
            "body",
            _body_summary(baseline, baseline_decoded, unparsed),
            _body_summary(candidate, candidate_decoded, unparsed),
            "warning",
            detail,
        )
    ]


def _looks_like_json(observation: Observation, content: bytes | None) -> bool:
    """True when the comparison would read the body as JSON had it been kept whole: it begins
    as a JSON object or array, or (its content not decoded) says it is JSON."""
    if content is not None:
        return content.lstrip()[:1] in (b"{", b"[")
    return any("json" in value.lower() for value in observation.header_values("content-type"))


def _without_own_span(body: bytes | None, sent: str | None) -> bytes | None:
    """`body` with the span ids of this pair's trace set aside: each side's traceparent has a
    span id of its own (the trace id is the pair's), and a data plane that traces puts its own
    span in the traceparent the backend sees, so a backend that echoes it would otherwise
    differ on every pair by design. Its own span id wherever it appears, and any span id
    written after the pair's trace id; the trace id stays, so a side that loses it differs."""
    parsed = None if body is None or sent is None else parse_traceparent(sent)
    if parsed is None or body is None:
        return body
    body = body.replace(parsed.span_id.encode("ascii"), SPAN_SET_ASIDE)
    trace_id = parsed.trace_id.encode("ascii")
    if trace_id not in body:
        return body
    return _TRACE_AND_SPAN.sub(
        lambda found: found[1] + b"-" + SPAN_SET_ASIDE if found[1] == trace_id else found[0], body
    )


def _body_summary(observation: Observation, decoded: Decoded, json_unparsed: bool) -> str:
    summary = f"{observation.body_bytes} bytes, sha256 {observation.body_sha256[:12]}"
    notes = [decoded.note] if decoded.note and decoded.content is None else []
    if json_unparsed and observation.body_truncated:
        notes.append(
            f"JSON not parsed: longer than body_capture ({len(observation.body)} bytes); "
            "a larger body_capture compares it field by field"
        )
    return f"{summary} ({'; '.join(notes)})" if notes else summary


def _compare_json(
    baseline_body: bytes, candidate_body: bytes, options: CompareOptions
) -> list[Difference] | None:
    baseline_json, candidate_json = parse_json(baseline_body), parse_json(candidate_body)
    if not (is_json(baseline_json) and is_json(candidate_json)):
        return None
    fields = [
        item
        for item in json_differences(baseline_json, candidate_json)
        if not options.ignores_json(item[0])
    ]
    differences = [
        Difference("json_field", path, render_json_value(before), render_json_value(after), "error")
        for path, before, after in fields[:MAX_JSON_FIELDS]
    ]
    if len(fields) > MAX_JSON_FIELDS:
        differences.append(
            Difference(
                "body", "json", None, f"{len(fields) - MAX_JSON_FIELDS} more fields differ", "error"
            )
        )
    return differences
