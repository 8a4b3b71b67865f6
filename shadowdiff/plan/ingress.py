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
    index: int  # in the rule's `paths`: a path of the wrong type is left out, not renumbered
    path: str
    path_type: str  # Exact, Prefix or ImplementationSpecific
    backend: str  # service:port, or a resource's kind/name


@dataclass(frozen=True, slots=True)
class IngressRule:
    index: int  # in the Ingress's `rules`: a rule of the wrong type is left out
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
    # (field, why): values of the wrong type, left out rather than guessed at.
    malformed: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return None


def _kind(value: Any) -> str:
    """What a YAML value is, for a note: `a list`, `a mapping`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


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
        malformed: list[tuple[str, str]] = []
        for key, value in _mapping(metadata.get("annotations")).items():
            key_text = str(key)
            if key_text.startswith(NGINX_PREFIX):
                short, text = key_text[len(NGINX_PREFIX) :], _text(value)
                if text is None:
                    malformed.append((short, f"{_kind(value)}, not text: not read"))
                else:
                    annotations[short] = text
            elif key_text != "kubectl.kubernetes.io/last-applied-configuration":
                others.append(key_text)
        spec = _mapping(item.get("spec"))
        rules = []
        for rule_index, rule in enumerate(_sequence(spec.get("rules"))):
            rule_map = _mapping(rule)
            host = rule_map.get("host")
            if host is not None and not isinstance(host, str):
                malformed.append((f"rule {rule_index} host", f"{_kind(host)}, not a host name"))
                continue
            paths = []
            for path_index, entry in enumerate(
                _sequence(_mapping(rule_map.get("http")).get("paths"))
            ):
                path = _mapping(entry).get("path", "/")
                if not isinstance(path, str):
                    malformed.append(
                        (f"rule {rule_index} path {path_index}", f"{_kind(path)}, not a path")
                    )
                    continue
                paths.append(
                    IngressPath(
                        index=path_index,
                        path=path or "/",
                        path_type=_text(_mapping(entry).get("pathType"))
                        or "ImplementationSpecific",
                        backend=_backend(_mapping(entry).get("backend")),
                    )
                )
            rules.append(IngressRule(rule_index, host or None, tuple(paths)))
        tls_hosts = set()
        for tls_index, entry in enumerate(_sequence(spec.get("tls"))):
            hosts = _mapping(entry).get("hosts")
            # A lone string is one host: probing it over plain HTTP would be the wrong probe.
            for host in [hosts] if isinstance(hosts, str) else _sequence(hosts):
                if isinstance(host, str) and host:
                    tls_hosts.add(host)
                else:
                    malformed.append((f"tls {tls_index} hosts", f"{_kind(host)}, not a host name"))
        default = spec.get("defaultBackend", spec.get("backend"))
        found.append(
            Ingress(
                namespace=namespace,
                name=name,
                annotations=annotations,
                other_annotations=tuple(others),
                rules=tuple(rules),
                tls_hosts=frozenset(tls_hosts),
                default_backend=_backend(default) if isinstance(default, dict) else None,
                location=where,
                malformed=tuple(malformed),
            )
        )
    return found, notes
