"""Decide what each difference signature means (reported, accepted, expired, noise) and fold
identical ones across requests into one line. Pure: plain data in, plain data out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from yarl import URL

from shadowdiff.difference import SEVERITY_ORDER, DifferenceKind, Severity
from shadowdiff.observation import LIMIT_STATUSES
from shadowdiff.report.collect import RequestTally, SignatureTally
from shadowdiff.report.hints import hint_for
from shadowdiff.report.schema import (
    RequestExample,
    Signature,
    SignatureExample,
    SignatureStatus,
)
from shadowdiff.routes import path_template
from shadowdiff.spec import Side
from shadowdiff.stats.intervals import newcombe_difference

# (kind, field, severity, status, host, baseline value, candidate value): one folded line.
_GroupKey = tuple[DifferenceKind, str, Severity, SignatureStatus, str, str | None, str | None]

# The kinds a failing answer shows as: another status, or no answer on one side.
_FAILURE_KINDS: Final = frozenset({"status", "transport"})

# Routes with the same finding fold into one `prefix*` line from this many routes on.
FOLD_ROUTES_AT: Final = 3


@dataclass(frozen=True, slots=True)
class NoiseThresholds:
    """A field noisy on the baseline is still reported when the candidate differs clearly more
    often: by more than `absolute` (a share of pairs) and by more than `relative` times the
    noise rate (Diffy's two thresholds), judged at the low end of the difference's 95%
    interval (`_clearly_more_often`)."""

    relative: float = 0.2
    absolute: float = 0.03


def route_pattern(url: str) -> str:
    """The path of `url` with identifiers generalised: /orders/123 -> /orders/{n}."""
    return path_template(URL(url, encoded=True).raw_path or "/")


def _clearly_more_often(
    seen: int, pairs: int, noisy: int, samples: int, thresholds: NoiseThresholds
) -> bool:
    """Whether the candidate differs in a field clearly more often (`seen` of `pairs`) than
    the baseline differs from itself (`noisy` of `samples`): the low end of the 95% interval
    of the difference between the two rates (Newcombe) past both thresholds. The rates
    themselves were compared before: with the few samples a run calibrates (a tenth of its
    pairs), two identical entry points whose upstream answers 503 to a random fifth of
    requests crossed the thresholds by chance in half of their runs of 30 pairs."""
    low = newcombe_difference(noisy, samples, seen, pairs).low
    return (
        low is not None
        and low > thresholds.absolute
        and low > thresholds.relative * (noisy / samples)
    )


def _failed(tally: RequestTally, side: Side) -> int:
    """Answers that are no service: a limit's refusal (429), a server error (5xx, 503 among
    them: a limit's default refusal too) or no answer at all."""
    statuses = tally.statuses[side]
    served_badly = sum(
        count
        for status, count in statuses.items()
        if status in LIMIT_STATUSES or 500 <= status <= 599
    )
    return served_badly + sum(tally.failures[side].values())


def _fails_more(tally: RequestTally, thresholds: NoiseThresholds) -> bool:
    """Whether the candidate failed (429, 5xx, no answer) clearly more of the pairs than the
    baseline: the low end of the 95% interval of the difference between the two shares
    (Newcombe) past both noise thresholds. The interval, not the two shares themselves: two
    identical entry points whose upstream refuses a fifth of requests differ by more than the
    thresholds by chance alone in about one run of 300 pairs in seven. Any 5xx and no answer,
    not only a limit's 429 and 503: a candidate answering 502 to half the pairs beside a
    rate-limited baseline is as plainly worse, and its status noise is as inflated."""
    pairs = tally.pairs
    return _clearly_more_often(
        _failed(tally, "candidate"), pairs, _failed(tally, "baseline"), pairs, thresholds
    )


def decide(
    tally: RequestTally, signature: SignatureTally, thresholds: NoiseThresholds
) -> SignatureStatus:
    if signature.noise and tally.noise_samples:
        # A baseline that refuses some requests (a limit, an overloaded upstream) makes status
        # noisy, and a noise rate measured on such samples can come near 100%. The failures
        # themselves are counted on both sides, though: a candidate that fails clearly more of
        # the pairs than the baseline does is reported whatever the noise.
        failing = signature.difference.kind in _FAILURE_KINDS and _fails_more(tally, thresholds)
        if not failing and not _clearly_more_often(
            signature.count, tally.pairs, signature.noise, tally.noise_samples, thresholds
        ):
            return "noise"
    if signature.accepted == signature.count:
        return "accepted"
    if signature.expired:
        return "expired"
    return "reported"


def _common_prefix(routes: Iterable[str]) -> str:
    routes = list(routes)
    prefix = routes[0]
    for route in routes[1:]:
        while not route.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else prefix


def fold_signatures(
    tallies: Iterable[RequestTally], thresholds: NoiseThresholds
) -> tuple[list[Signature], dict[str, dict[tuple[str, str], SignatureStatus]]]:
    """Report-level signatures, most severe and most frequent first, and the status of each
    request's signatures (for counting differing pairs)."""
    statuses: dict[str, dict[tuple[str, str], SignatureStatus]] = {}
    groups: dict[_GroupKey, list[tuple[RequestTally, SignatureTally, str]]] = {}
    for tally in tallies:
        decided = statuses.setdefault(tally.request.name, {})
        host = URL(tally.request.url, encoded=True).host or ""
        route = "(TLS)" if tally.tls_probe else route_pattern(tally.request.url)
        for key, signature in tally.signatures.items():
            if signature.count == 0:
                continue  # seen only in noise calibration
            status = decided[key] = decide(tally, signature, thresholds)
            d = signature.difference
            # Values are part of the key: 308->302 and 413->200 are two findings, not one.
            group_key = (d.kind, d.field, d.severity, status, host, d.baseline, d.candidate)
            groups.setdefault(group_key, []).append((tally, signature, route))

    lines: list[Signature] = []
    for (kind, field, severity, status, host, _, _), members in groups.items():
        by_route: dict[str, list[tuple[RequestTally, SignatureTally, str]]] = {}
        for member in members:
            by_route.setdefault(member[2], []).append(member)
        if len(by_route) >= FOLD_ROUTES_AT:
            folded = {_common_prefix(by_route) + "*": members}
        else:
            folded = by_route
        for route, group in folded.items():
            lines.append(_line(kind, field, severity, status, host, route, group, thresholds))
    lines.sort(key=lambda line: (SEVERITY_ORDER[line["severity"]], -line["count"], line["field"]))
    return lines, statuses


def _example(request: str, example: RequestExample) -> SignatureExample:
    """A request's example, named by its request."""
    named: SignatureExample = {
        "request": request,
        "pair": example["pair"],
        "trace_id": example["trace_id"],
        "baseline": example["baseline"],
        "candidate": example["candidate"],
    }
    if "diff" in example:
        named["diff"] = example["diff"]
    return named


def _line(
    kind: DifferenceKind,
    field: str,
    severity: Severity,
    status: SignatureStatus,
    host: str,
    route: str,
    group: list[tuple[RequestTally, SignatureTally, str]],
    thresholds: NoiseThresholds,
) -> Signature:
    count = sum(signature.count for _, signature, _ in group)
    pairs = sum(tally.pairs for tally, _, _ in group)
    noise = sum(signature.noise for _, signature, _ in group)
    samples = sum(tally.noise_samples for tally, _, _ in group)
    examples = [
        _example(tally.request.name, example)
        for tally, signature, _ in group
        for example in signature.examples
    ][:3]
    acceptance = next((s.acceptance for _, s, _ in group if s.acceptance), None)
    return {
        "kind": kind,
        "field": field,
        "severity": severity,
        "status": status,
        "host": host,
        "route": route,
        "requests": sorted({tally.request.name for tally, _, _ in group}),
        "count": count,
        "pairs": pairs,
        "share": round(count / pairs, 4) if pairs else 0.0,
        "noise_rate": round(noise / samples, 4) if samples else None,
        "accepted": None
        if acceptance is None
        else {
            "reason": acceptance.reason,
            "until": acceptance.until.isoformat() if acceptance.until else None,
            "expired": acceptance.expired,
        },
        "examples": examples,
        "hint": hint_for(
            kind,
            field,
            [(example["baseline"], example["candidate"]) for example in examples],
            sorted({tally.request.url for tally, _, _ in group}),
        ),
    }
