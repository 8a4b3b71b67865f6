"""Compare two answers to a gRPC call: grpc-status (by name), grpc-message, the other
trailers (as headers, with their noise rules), and the answer's message (the health status by
name, or a method's raw bytes). Pure: no I/O.

A trailers-only answer (grpc-status in the one header block) and an answer with a trailer
block say the same thing, so the status fields are read from whichever came and never compared
as headers: a data plane may send either for the same error.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from shadowdiff.compare.headers import combined, group_by_name, is_value_noise, severity_of
from shadowdiff.compare.options import CompareOptions
from shadowdiff.difference import Difference, DifferenceKind
from shadowdiff.grpc import (
    GRPC_STATUS_FIELDS,
    GrpcAnswer,
    decode_health_status,
    grpc_fields,
    read_answer,
    shown_message,
)
from shadowdiff.observation import Observation
from shadowdiff.spec import RequestSpec

# How much of a raw answer message is shown, in bytes (as hex).
_SHOWN_BYTES: Final = 32


def aligned(baseline: Observation, candidate: Observation) -> tuple[Observation, Observation]:
    """The two answers with their trailing metadata in the same place. A trailers-only answer
    carries it in its one header block, beside the head fields proxies add: when the other
    answer has a trailer block, the fields it sent there move from the trailers-only head to
    trailers (with the status fields), so the same metadata is not a header lost on one side
    and a trailer gained on the other."""
    return _trailers_like(baseline, candidate), _trailers_like(candidate, baseline)


def _trailers_like(answer: Observation, other: Observation) -> Observation:
    if answer.trailers or not other.trailers:
        return answer
    names = {name.lower() for name, _ in other.trailers} | GRPC_STATUS_FIELDS
    trailers = tuple((n, v) for n, v in answer.headers if n.lower() in names)
    if not any(name.lower() == "grpc-status" for name, _ in trailers):
        return answer  # no status in the head: not trailers-only (read_answer says what it is)
    headers = tuple((n, v) for n, v in answer.headers if n.lower() not in names)
    return dataclasses.replace(answer, headers=headers, trailers=trailers)


def without_grpc_fields(observation: Observation) -> Observation:
    """`observation` without the status fields of a trailers-only head, for the header
    comparison: they are compared as gRPC's, wherever they came."""
    headers = tuple(
        (name, value)
        for name, value in observation.headers
        if name.lower() not in GRPC_STATUS_FIELDS
    )
    return dataclasses.replace(observation, headers=headers)


def compare_grpc(
    request: RequestSpec, baseline: Observation, candidate: Observation, options: CompareOptions
) -> list[Difference]:
    """The gRPC differences between two answers that both arrived."""
    call = request.grpc
    assert call is not None
    baseline_answer, candidate_answer = _answer(baseline), _answer(candidate)
    if isinstance(baseline_answer, str) or isinstance(candidate_answer, str):
        # The transport refuses these; an observation from elsewhere may still hold one.
        before = baseline_answer if isinstance(baseline_answer, str) else "a gRPC answer"
        after = candidate_answer if isinstance(candidate_answer, str) else "a gRPC answer"
        if before == after:
            return []
        return [Difference("grpc", "status", before, after, "error")]
    if baseline_answer.status != candidate_answer.status:
        # Another status explains another message, other trailers and no answer message.
        detail = None
        if baseline_answer.message or candidate_answer.message:
            # Quoted as they are: printable already (shadowdiff.grpc.printable_message).
            before, after = (shown_message(a.message) for a in (baseline_answer, candidate_answer))
            detail = f'grpc-message: "{before}" → "{after}"'
        return [
            Difference(
                "grpc",
                "status",
                baseline_answer.status_text,
                candidate_answer.status_text,
                "error",
                detail,
            )
        ]
    differences: list[Difference] = []
    if baseline_answer.message != candidate_answer.message:
        differences.append(
            Difference(
                "grpc",
                "message",
                shown_message(baseline_answer.message) or None,
                shown_message(candidate_answer.message) or None,
                "warning",
            )
        )
    differences += _compare_trailers(baseline, candidate, options)
    if call.health:
        before_health, after_health = _health(baseline_answer), _health(candidate_answer)
        if before_health != after_health:
            differences.append(Difference("grpc", "health", before_health, after_health, "error"))
    elif baseline.body_sha256 != candidate.body_sha256:
        differences.append(
            Difference(
                "grpc",
                "answer",
                _answer_summary(baseline, baseline_answer),
                _answer_summary(candidate, candidate_answer),
                "error",
            )
        )
    return differences


def _answer(observation: Observation) -> GrpcAnswer | str:
    return read_answer(
        observation.status,
        observation.headers,
        observation.trailers,
        observation.body,
        observation.body_bytes,
    )


def _health(answer: GrpcAnswer) -> str | None:
    if answer.payload is None:
        return None if answer.payload_bytes == 0 else f"{answer.payload_bytes} bytes, not read"
    try:
        return decode_health_status(answer.payload)
    except ValueError as exc:
        return f"not a HealthCheckResponse ({exc})"


def _answer_summary(observation: Observation, answer: GrpcAnswer) -> str | None:
    if observation.body_bytes == 0:
        return None
    # As Python writes bytes: readable where the message holds text (protobuf strings).
    shown = repr((answer.payload or observation.body[5:])[:_SHOWN_BYTES])
    more = "…" if answer.payload_bytes > _SHOWN_BYTES else ""
    return f"{answer.payload_bytes} bytes, sha256 {observation.body_sha256[:12]}: {shown}{more}"


def _compare_trailers(
    baseline: Observation, candidate: Observation, options: CompareOptions
) -> list[Difference]:
    """The trailers other than gRPC's status fields, by the header comparison's rules."""
    before_fields = group_by_name(
        (n, v)
        for n, v in grpc_fields(baseline.headers, baseline.trailers)
        if n not in GRPC_STATUS_FIELDS
    )
    after_fields = group_by_name(
        (n, v)
        for n, v in grpc_fields(candidate.headers, candidate.trailers)
        if n not in GRPC_STATUS_FIELDS
    )
    differences = []
    for name in sorted(before_fields.keys() | after_fields.keys()):
        if name in options.ignore_headers:
            continue
        before, after = before_fields.get(name), after_fields.get(name)
        severity = severity_of(name)
        before_text = None if before is None else combined(before)
        after_text = None if after is None else combined(after)
        if before is None or after is None:
            differences.append(Difference(_TRAILER, name, before_text, after_text, severity))
        elif not is_value_noise(name) and before_text != after_text:
            differences.append(
                Difference(
                    _TRAILER,
                    name,
                    before_text,
                    after_text,
                    severity if severity != "info" else "warning",
                )
            )
    return differences


_TRAILER: Final[DifferenceKind] = "grpc_trailer"
