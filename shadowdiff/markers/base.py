"""What an echo backend says it received, in one shape whatever the echo format. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shadowdiff.json_document import load_json

# Deployment pods are `<name>-<replicaset hash>-<5 chars>`, StatefulSet pods `<name>-<ordinal>`.
# Replicas of one workload differ only in that suffix; the conformance suite compares the
# prefix for the same reason.
_DEPLOYMENT_POD = re.compile(r"^(?P<workload>.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$")
_STATEFUL_POD = re.compile(r"^(?P<workload>.+)-\d+$")


@dataclass(frozen=True, slots=True)
class EchoMarkers:
    """The request as the backend saw it. None means the format does not say."""

    format: str
    service: str | None = None
    pod: str | None = None
    path: str | None = None  # with the query, when the format gives it
    host: str | None = None
    method: str | None = None
    headers: Mapping[str, tuple[str, ...]] | None = None  # lower-case names

    @property
    def workload(self) -> str | None:
        """The pod name without its replica suffix."""
        return pod_workload(self.pod) if self.pod else None


def pod_workload(pod: str) -> str:
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD):
        match = pattern.match(pod)
        if match:
            return match.group("workload")
    return pod


def lower_headers(items: Iterable[tuple[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Header name -> values, names lower-cased; a value may be a string or a list of them."""
    headers: dict[str, list[str]] = {}
    for name, value in items:
        values = value if isinstance(value, list) else [value]
        headers.setdefault(str(name).lower(), []).extend(str(v) for v in values)
    return {name: tuple(values) for name, values in headers.items()}


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None."""
    if not body.lstrip().startswith(b"{"):
        return None
    value = load_json(body)
    return value if isinstance(value, dict) else None


def text_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
