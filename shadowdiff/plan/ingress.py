"""Ingress resources as plain data, read from what `kubectl get ingress -A -o yaml` prints (a
`List`), single manifests, or multi-document files. Pure: the documents come in as data, and
anything that is not what the Kubernetes API says an Ingress is becomes a note, not an error."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

# ingress-nginx reads its annotations under this prefix (the controller's annotation docs).
NGINX_PREFIX: Final = "nginx.ingress.kubernetes.io/"


@dataclass(frozen=True, slots=True)
class IngressPath:
    path: str
    path_type: str  # Exact, Prefix or ImplementationSpecific
    backend: str  # service:port, or a resource's kind/name


@dataclass(frozen=True, slots=True)
class IngressRule:
    host: str | None  # None: the rule matches every host
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True, slots=True)
class Ingress:
    namespace: str
    name: str
    annotations: dict[str, str]  # ingress-nginx's, without the prefix
    other_annotations: tuple[str, ...]  # names of annotations ingress-nginx does not read
    rules: tuple[IngressRule, ...]
    tls_hosts: frozenset[str]
    default_backend: str | None
    location: str  # file and document, for notes

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _backend(value: Any) -> str:
    backend = _mapping(value)
    service = _mapping(backend.get("service"))
    if service:
        port = _mapping(service.get("port"))
        number = port.get("number", port.get("name", "?"))
        return f"{_text(service.get('name')) or '?'}:{_text(number) or '?'}"
    resource = _mapping(backend.get("resource"))
    if resource:
        return f"{_text(resource.get('kind')) or '?'}/{_text(resource.get('name')) or '?'}"
    # networking.k8s.io/v1beta1 spelled it serviceName and servicePort.
    if "serviceName" in backend:
        return f"{_text(backend.get('serviceName'))}:{_text(backend.get('servicePort'))}"
    return "?"


def _objects(documents: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """Each object of the documents, `List` items included, with its document's index."""
    for index, document in enumerate(documents):
        if isinstance(document, dict) and document.get("kind") == "List":
            for item in _sequence(document.get("items")):
                yield index, item
        elif document is not None:
            yield index, document


def read_ingresses(documents: Iterable[Any], file: str) -> tuple[list[Ingress], list[str]]:
    """The Ingress objects among `documents`, and a note for each object skipped."""
    found: list[Ingress] = []
    notes: list[str] = []
    for index, item in _objects(documents):
        where = f"{file}#{index + 1}"
        if not isinstance(item, dict) or item.get("kind") != "Ingress":
            kind = item.get("kind") if isinstance(item, dict) else None
            if not isinstance(kind, str):
                notes.append(f"{where}: not a Kubernetes object (no kind)")
            continue
        metadata = _mapping(item.get("metadata"))
        name = _text(metadata.get("name")) or "unnamed"
        namespace = _text(metadata.get("namespace")) or "default"
        annotations: dict[str, str] = {}
        others: list[str] = []
        for key, value in _mapping(metadata.get("annotations")).items():
            key_text = str(key)
            if key_text.startswith(NGINX_PREFIX):
                annotations[key_text[len(NGINX_PREFIX) :]] = _text(value) or ""
            elif key_text != "kubectl.kubernetes.io/last-applied-configuration":
                others.append(key_text)
        spec = _mapping(item.get("spec"))
        rules = []
        for rule in _sequence(spec.get("rules")):
            rule_map = _mapping(rule)
            paths = tuple(
                IngressPath(
                    path=_text(_mapping(entry).get("path")) or "/",
                    path_type=_text(_mapping(entry).get("pathType")) or "ImplementationSpecific",
                    backend=_backend(_mapping(entry).get("backend")),
                )
                for entry in _sequence(_mapping(rule_map.get("http")).get("paths"))
            )
            rules.append(IngressRule(_text(rule_map.get("host")), paths))
        tls_hosts = frozenset(
            host
            for entry in _sequence(spec.get("tls"))
            for host in (_text(h) for h in _sequence(_mapping(entry).get("hosts")))
            if host
        )
        default = spec.get("defaultBackend", spec.get("backend"))
        found.append(
            Ingress(
                namespace=namespace,
                name=name,
                annotations=annotations,
                other_annotations=tuple(others),
                rules=tuple(rules),
                tls_hosts=tls_hosts,
                default_backend=_backend(default) if isinstance(default, dict) else None,
                location=where,
            )
        )
    return found, notes
