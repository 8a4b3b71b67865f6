"""What an echo backend says it received, in one shape whatever the echo format. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shadowdiff.json_document import load_json

# Kubernetes names replicas by suffix: Deployment pods `<name>-<pod-template hash>-<5 chars>`,
# StatefulSet pods `<name>-<ordinal>`, DaemonSet and Job pods `<name>-<5 chars>` (generateName
# draws from consonants and digits that cannot spell words). Replicas of one workload differ
# only in that suffix; the conformance suite compares the prefix for the same reason.
_GENERATED = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(?P<workload>.+)-{_GENERATED}{{6,10}}-{_GENERATED}{{5}}$")
_STATEFUL_POD = re.compile(r"^(?P<workload>.+)-\d+$")
_GENERATED_POD = re.compile(rf"^(?P<workload>.+)-{_GENERATED}{{5}}$")


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
    # What the user named as the workload (a custom marker's `workload`); else derived from
    # the pod name when it follows a Kubernetes pattern.
    workload_name: str | None = None

    @property
    def workload(self) -> str | None:
        """The workload that answered: as named by the user, or the pod name without its
        replica suffix; None when neither is known."""
        if self.workload_name:
            return self.workload_name
        return pod_workload(self.pod) if self.pod else None


def pod_workload(pod: str) -> str | None:
    """The workload of a pod named the Kubernetes way; None for any other name (a custom
    POD_NAME says nothing about which replicas belong together)."""
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD, _GENERATED_POD):
        match = pattern.match(pod)
        if match:
            return match.group("workload")
    return None


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
