"""Compare what two backends say they received (echo markers): which backend served the
request, the path and host after rewrites, the forwarding headers. Pure."""

from __future__ import annotations

import re
from typing import Final

from shadowdiff.compare.options import CompareOptions
from shadowdiff.difference import Difference, DifferenceKind, Severity
from shadowdiff.markers import EchoMarkers
from shadowdiff.spec import RequestSpec
from shadowdiff.trace import TRACEPARENT

# Headers a proxy adds on the way to the backend (ingress-nginx sets all of these).
FORWARDING_HEADERS: Final = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-forwarded-scheme",
        "x-scheme",
        "x-real-ip",
        "x-request-id",
        "x-original-forwarded-for",
        "forwarded",
    }
)
# Of those, the ones applications commonly act on (redirect URLs, client IPs, tracing).
CRITICAL_FORWARDING: Final = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-request-id",
        "forwarded",
    }
)
# The trace id of a traceparent value (W3C Trace Context section 3.2).
_TRACE_ID: Final = re.compile(r"[ \t]*[0-9a-f]{2}-([0-9a-f]{32})-")
# Values a proxy generates afresh for each request: only their presence compares.
GENERATED: Final = frozenset({"x-request-id"})


def _show(values: tuple[str, ...] | None) -> str | None:
    return None if values is None else ", ".join(values)


def _trace_ids(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Each traceparent value as its trace id alone (the span id may have been set aside
    already, see compare.observations); a value with none stays as it is."""
    if values is None:
        return None
    return tuple(
        f"trace id {match[1]}" if (match := _TRACE_ID.match(value)) else value for value in values
    )


def compare_markers(
    request: RequestSpec, baseline: EchoMarkers, candidate: EchoMarkers, options: CompareOptions
) -> list[Difference]:
    differences: list[Difference] = []
    backend = _compare_backend(baseline, candidate)
    if backend is not None:
        differences.append(backend)
    seen: tuple[tuple[DifferenceKind, str, str | None, str | None], ...] = (
        ("backend_path", "path", baseline.path, candidate.path),
        ("backend_host", "host", baseline.host, candidate.host),
        ("backend_method", "method", baseline.method, candidate.method),
    )
    for kind, field, before, after in seen:
        if before is not None and after is not None and before != after:
            differences.append(Difference(kind, field, before, after, "error"))
    if baseline.headers is not None and candidate.headers is not None:
        differences += _compare_seen_headers(request, baseline, candidate, options)
    return differences


def _compare_backend(baseline: EchoMarkers, candidate: EchoMarkers) -> Difference | None:
    """Another service or workload answered. Another replica of the same one never counts:
    which replica answers is the load balancer's choice, on each side and on every request."""
    same_service = bool(baseline.service) and baseline.service == candidate.service
    if baseline.service and candidate.service and not same_service:
        return Difference("backend", "service", baseline.service, candidate.service, "error")
    before, after = baseline.workload, candidate.workload
    if before and after:
        if before == after:
            return None
        # Two workloads behind one Service (a canary left in, another Deployment selected).
        return Difference("backend", "workload", before, after, "error")
    if same_service:
        return None  # replicas of one service, named in no pattern shadowdiff knows
    if baseline.pod and candidate.pod and baseline.pod != candidate.pod:
        # Pod names that follow no Kubernetes pattern (a custom POD_NAME): they may be replicas
        # of one workload. Shown, never failing; naming the workload field makes it exact.
        return Difference("backend", "pod", baseline.pod, candidate.pod, "info")
    return None


def _compare_seen_headers(
    request: RequestSpec, baseline: EchoMarkers, candidate: EchoMarkers, options: CompareOptions
) -> list[Difference]:
    assert baseline.headers is not None and candidate.headers is not None
    sent = {name.lower(): value for name, value in request.headers}
    names = (FORWARDING_HEADERS | sent.keys()) - options.per_target_headers - options.ignore_headers
    differences = []
    for name in sorted(names):
        before, after = baseline.headers.get(name), candidate.headers.get(name)
        if name == TRACEPARENT:
            # A data plane that traces makes its own span the backend's parent: only the trace
            # id is the contract a traceparent the scenario sends carries.
            before, after = _trace_ids(before), _trace_ids(after)
        severity: Severity = "error" if name in CRITICAL_FORWARDING or name in sent else "warning"
        if name in GENERATED and name in sent:
            # A request ID the client sent is a contract: kept on one side, replaced on the other?
            kept_before = before == (sent[name],)
            kept_after = after == (sent[name],)
            if kept_before != kept_after:
                differences.append(
                    Difference("backend_header", name, _show(before), _show(after), severity)
                )
            continue
        if name in GENERATED:
            if (before is None) != (after is None):
                differences.append(
                    Difference("backend_header", name, _show(before), _show(after), "warning")
                )
            continue
        if before != after:
            differences.append(
                Difference("backend_header", name, _show(before), _show(after), severity)
            )
    return differences
