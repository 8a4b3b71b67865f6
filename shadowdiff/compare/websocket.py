"""What two WebSocket upgrades agreed to, compared: the subprotocol chosen, the extensions
accepted and the type of the echoed message. Pure: no I/O.

Both answers reached this point as 101s that passed the client's checks (the transport fails
any other 101), so Sec-WebSocket-Accept is no difference: it answers each side's own random
key. The status, the other headers and the echo (the body) compare as for any request.
"""

from __future__ import annotations

from typing import Final

from shadowdiff.difference import Difference, Severity
from shadowdiff.observation import Observation

# Compared here, or not at all (the accept value), never as plain headers.
WEBSOCKET_ANSWER_HEADERS: Final = frozenset(
    {"sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"}
)


def _members(observation: Observation, name: str) -> list[str]:
    return [
        member.strip()
        for value in observation.header_values(name)
        for member in value.split(",")
        if member.strip()
    ]


def _subprotocol(observation: Observation) -> str | None:
    chosen = _members(observation, "sec-websocket-protocol")
    return chosen[0] if chosen else None


def _extensions(observation: Observation) -> dict[str, str]:
    """Accepted extension name (lower case) -> its parameters, spaces normalised and sorted:
    their order carries no meaning (RFC 6455 section 9.1), so it is never a difference."""
    accepted = {}
    for extension in _members(observation, "sec-websocket-extensions"):
        name, _, parameters = extension.partition(";")
        accepted[name.strip().lower()] = "; ".join(
            sorted(part.replace(" ", "") for part in parameters.split(";") if part.strip())
        )
    return accepted


def _written(extensions: dict[str, str]) -> str | None:
    if not extensions:
        return None
    return ", ".join(
        f"{name}; {parameters}" if parameters else name
        for name, parameters in sorted(extensions.items())
    )


def compare_websocket(baseline: Observation, candidate: Observation) -> list[Difference]:
    """How the candidate's upgrade differs from the baseline's, both 101s.

    A subprotocol lost or changed is an error: the client and the application no longer speak
    the same protocol (most client libraries close, or misread every message). A compression
    extension lost is a warning (it still works, with more bytes on the wire); parameters or an
    extension gained are information. An echo framed as binary instead of text is an error:
    browsers hand it to the page as a Blob, not a string.
    """
    if baseline.status != 101 or candidate.status != 101:
        return []
    differences = []
    before, after = _subprotocol(baseline), _subprotocol(candidate)
    if before != after:
        severity: Severity = "error" if before is not None else "warning"
        differences.append(Difference("websocket", "subprotocol", before, after, severity))
    before_extensions, after_extensions = _extensions(baseline), _extensions(candidate)
    if before_extensions != after_extensions:
        lost = before_extensions.keys() - after_extensions.keys()
        differences.append(
            Difference(
                "websocket",
                "extensions",
                _written(before_extensions),
                _written(after_extensions),
                "warning" if lost else "info",
            )
        )
    before_type, after_type = baseline.websocket_message, candidate.websocket_message
    if before_type is not None and after_type is not None and before_type != after_type:
        differences.append(
            Difference("websocket", "message_type", before_type, after_type, "error")
        )
    return differences
