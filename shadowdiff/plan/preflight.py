"""`shadowdiff preflight`: before any request is sent, read what the cluster says about the new
entry point (`kubectl get gatewayclass,gateway,httproute,grpcroute,referencegrant,service -A -o
yaml`, and secret names) and list every reason it cannot work as configured: a class, Gateway or
listener not accepted or not programmed, a route not accepted or with unresolved references, a
parent or listener that does not exist, a hostname no listener takes, a backend in another
namespace without a ReferenceGrant, a missing Service or certificate Secret.

Pure: objects in, findings out. The rules follow the Gateway API specification (v1): status
conditions (GatewayClass Accepted; Gateway Accepted and Programmed; listener Accepted,
Programmed, ResolvedRefs, Conflicted; route parent Accepted and ResolvedRefs), listener
hostname matching (a `*.` wildcard matches one or more labels), and ReferenceGrant for
references across namespaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
ROUTE_KINDS: Final = ("HTTPRoute", "GRPCRoute")
# Condition types whose healthy status is "True"; for these others, "False" is healthy.
_HEALTHY_FALSE: Final = frozenset({"Conflicted"})


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # the object: Kind namespace/name (and listener or parent)
    problem: str  # one line: what is wrong, with the controller's reason and message

    def __str__(self) -> str:
        # One line whatever a controller's message or an object's name holds.
        return f"{self.where}: {self.problem}".replace("\r", "\\r").replace("\n", "\\n")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def objects(documents: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Every object of the documents, `List` items included."""
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            yield from (item for item in _sequence(document.get("items")) if isinstance(item, dict))
        elif isinstance(document, dict):
            yield document


def _key(item: dict[str, Any]) -> tuple[str, str]:
    metadata = _mapping(item.get("metadata"))
    return _text(metadata.get("namespace")) or "default", _text(metadata.get("name"))


def _conditions(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in _sequence(status.get("conditions")) if isinstance(c, dict)]


def _bad_conditions(
    status: dict[str, Any], required: tuple[str, ...], generation: Any = None
) -> Iterator[str]:
    """One line per condition that says the object does not work, and per required condition
    the controller never reported."""
    seen = set()
    for condition in _conditions(status):
        kind = _text(condition.get("type"))
        seen.add(kind)
        state = _text(condition.get("status"))
        healthy = "False" if kind in _HEALTHY_FALSE else "True"
        detail = ", ".join(
            part
            for part in (_text(condition.get("reason")), _text(condition.get("message")))
            if part
        )
        if state != healthy and (
            kind in required or kind in _HEALTHY_FALSE or kind == "ResolvedRefs"
        ):
            yield f"{kind} is {state or 'unknown'}" + (f" ({detail})" if detail else "")
        elif (
            generation is not None
            and kind in required
            and condition.get("observedGeneration") not in (None, generation)
        ):
            yield (
                f"{kind} was reported for generation {condition.get('observedGeneration')}, "
                f"the object is at {generation}: the controller has not seen the latest change"
            )
    for kind in required:
        if kind not in seen:
            yield f"no {kind} condition: no controller has reported on it"


def host_matches(listener_host: str | None, route_host: str) -> bool:
    """Whether a listener's hostname accepts a route hostname (Gateway API: a `*.` wildcard
    matches one or more leading labels; no listener hostname accepts every host)."""
    if not listener_host:
        return True
    listener_host, route_host = listener_host.lower(), route_host.lower()
    if listener_host.startswith("*."):
        suffix = listener_host[1:]
        if route_host.startswith("*."):
            return route_host.endswith(suffix)
        return route_host.endswith(suffix) and len(route_host) > len(suffix)
    if route_host.startswith("*."):
        return listener_host.endswith(route_host[1:])
    return listener_host == route_host


@dataclass(frozen=True, slots=True)
class _Listener:
    name: str
    hostname: str | None
    protocol: str
    tls_mode: str  # Terminate (the default) or Passthrough
    certificate_refs: tuple[tuple[str, str, str], ...]  # (kind, namespace, name)
    port: int | None = None
    routes_from: str = "Same"  # allowedRoutes.namespaces.from: Same (default), All, Selector


def _listeners(gateway: dict[str, Any], namespace: str) -> list[_Listener]:
    found = []
    for listener in _sequence(_mapping(gateway.get("spec")).get("listeners")):
        entry = _mapping(listener)
        tls = _mapping(entry.get("tls"))
        refs = tuple(
            (
                _text(_mapping(ref).get("kind")) or "Secret",
                _text(_mapping(ref).get("namespace")) or namespace,
                _text(_mapping(ref).get("name")),
            )
            for ref in _sequence(tls.get("certificateRefs"))
        )
        found.append(
            _Listener(
                _text(entry.get("name")),
                _text(entry.get("hostname")) or None,
                _text(entry.get("protocol")),
                _text(tls.get("mode")) or "Terminate",
                refs,
                entry.get("port") if isinstance(entry.get("port"), int) else None,
                _text(_mapping(_mapping(entry.get("allowedRoutes")).get("namespaces")).get("from"))
                or "Same",
            )
        )
    return found


def _granted(
    grants: list[dict[str, Any]],
    from_kind: str,
    from_namespace: str,
    to_kind: str,
    to: tuple[str, str],
) -> bool:
    """Whether a ReferenceGrant in the target's namespace lets `from_kind` objects of
    `from_namespace` refer to it."""
    to_namespace, to_name = to
    for grant in grants:
        if _key(grant)[0] != to_namespace:
            continue
        spec = _mapping(grant.get("spec"))
        # Groups count too: the routes and Gateways are gateway.networking.k8s.io's, a
        # Service and a Secret the core group's ("").
        allowed_from = any(
            _text(_mapping(f).get("group")) == GATEWAY_GROUP
            and _text(_mapping(f).get("kind")) == from_kind
            and _text(_mapping(f).get("namespace")) == from_namespace
            for f in _sequence(spec.get("from"))
        )
        allowed_to = any(
            _text(_mapping(t).get("group")) == ""
            and _text(_mapping(t).get("kind")) == to_kind
            and _text(_mapping(t).get("name")) in ("", to_name)
            for t in _sequence(spec.get("to"))
        )
        if allowed_from and allowed_to:
            return True
    return False


def preflight(
    items: Iterable[dict[str, Any]], secrets: set[tuple[str, str]] | None = None
) -> list[Finding]:
    """Every reason the Gateway API objects in `items` cannot serve as configured.

    `secrets` holds (namespace, name) of the Secrets that exist, with namespace "" when the
    list did not say (`kubectl get secret -A -o name` prints none); None when no list was
    given: certificate Secrets are then not checked."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_kind.setdefault(_text(item.get("kind")), []).append(item)
    findings: list[Finding] = []
    classes = {_key(c)[1]: c for c in by_kind.get("GatewayClass", [])}
    gateways = {_key(g): g for g in by_kind.get("Gateway", [])}
    services = {_key(s) for s in by_kind.get("Service", [])}
    grants = by_kind.get("ReferenceGrant", [])
    for name, gateway_class in classes.items():
        for line in _bad_conditions(_mapping(gateway_class.get("status")), ("Accepted",)):
            findings.append(Finding(f"GatewayClass {name}", line))
    listeners_of: dict[tuple[str, str], list[_Listener]] = {}
    for (namespace, name), gateway in gateways.items():
        where = f"Gateway {namespace}/{name}"
        metadata = _mapping(gateway.get("metadata"))
        spec = _mapping(gateway.get("spec"))
        status = _mapping(gateway.get("status"))
        class_name = _text(spec.get("gatewayClassName"))
        if classes and class_name not in classes:
            findings.append(
                Finding(where, f"gatewayClassName {class_name!r} names no GatewayClass")
            )
        for line in _bad_conditions(status, ("Accepted", "Programmed"), metadata.get("generation")):
            findings.append(Finding(where, line))
        listeners = _listeners(gateway, namespace)
        listeners_of[(namespace, name)] = listeners
        reported = {
            _text(_mapping(entry).get("name")): _mapping(entry)
            for entry in _sequence(status.get("listeners"))
        }
        for listener in listeners:
            listener_where = f"{where} listener {listener.name}"
            if listener.name not in reported:
                findings.append(Finding(listener_where, "no status reported for this listener"))
            else:
                for line in _bad_conditions(
                    reported[listener.name],
                    ("Accepted", "Programmed", "ResolvedRefs"),
                    metadata.get("generation"),
                ):
                    findings.append(Finding(listener_where, line))
            for kind, ref_namespace, ref_name in listener.certificate_refs:
                if ref_namespace != namespace and not _granted(
                    grants, "Gateway", namespace, kind, (ref_namespace, ref_name)
                ):
                    findings.append(
                        Finding(
                            listener_where,
                            f"certificate {kind} {ref_namespace}/{ref_name} is in another "
                            "namespace and no ReferenceGrant allows it",
                        )
                    )
                if (
                    kind == "Secret"
                    and secrets is not None
                    and (ref_namespace, ref_name) not in secrets
                    and ("", ref_name) not in secrets
                ):
                    findings.append(
                        Finding(
                            listener_where,
                            f"certificate Secret {ref_namespace}/{ref_name} does not exist",
                        )
                    )
            terminates = listener.protocol == "HTTPS" or (
                listener.protocol == "TLS" and listener.tls_mode == "Terminate"
            )
            if terminates and not listener.certificate_refs:
                findings.append(
                    Finding(listener_where, f"{listener.protocol} listener with no certificateRefs")
                )
    for kind in ROUTE_KINDS:
        for route in by_kind.get(kind, []):
            findings += _route_findings(kind, route, gateways, listeners_of, services, grants)
    return findings


def _route_findings(
    kind: str,
    route: dict[str, Any],
    gateways: dict[tuple[str, str], dict[str, Any]],
    listeners_of: dict[tuple[str, str], list[_Listener]],
    services: set[tuple[str, str]],
    grants: list[dict[str, Any]],
) -> list[Finding]:
    namespace, name = _key(route)
    where = f"{kind} {namespace}/{name}"
    spec = _mapping(route.get("spec"))
    findings: list[Finding] = []
    hostnames = [_text(h) for h in _sequence(spec.get("hostnames")) if _text(h)]
    reported = [_mapping(p) for p in _sequence(_mapping(route.get("status")).get("parents"))]
    for parent in _sequence(spec.get("parentRefs")):
        ref = _mapping(parent)
        if (_text(ref.get("kind")) or "Gateway") != "Gateway":
            continue
        gateway_key = (_text(ref.get("namespace")) or namespace, _text(ref.get("name")))
        section = _text(ref.get("sectionName")) or None
        parent_where = f"{where} parent {gateway_key[0]}/{gateway_key[1]}" + (
            f" listener {section}" if section else ""
        )
        if gateway_key not in gateways:
            findings.append(Finding(parent_where, "no such Gateway"))
            continue
        listeners = listeners_of.get(gateway_key, [])
        if section is not None:
            listeners = [listener for listener in listeners if listener.name == section]
            if not listeners:
                findings.append(Finding(parent_where, f"the Gateway has no listener {section!r}"))
                continue
        port = ref.get("port")
        if isinstance(port, int):
            listeners = [listener for listener in listeners if listener.port == port]
            if not listeners:
                findings.append(
                    Finding(parent_where, f"the Gateway has no listener on port {port}")
                )
                continue
        same_only = all(listener.routes_from == "Same" for listener in listeners)
        if namespace != gateway_key[0] and same_only:
            findings.append(
                Finding(
                    parent_where,
                    f"the listeners take routes from {gateway_key[0]} only (allowedRoutes "
                    f"namespaces from: Same, the default); this route is in {namespace}",
                )
            )
        for hostname in hostnames:
            if not any(host_matches(listener.hostname, hostname) for listener in listeners):
                findings.append(
                    Finding(parent_where, f"hostname {hostname} is accepted by no listener")
                )
        status = next(
            (
                p
                for p in reported
                if _text(_mapping(p.get("parentRef")).get("name")) == gateway_key[1]
                and (_text(_mapping(p.get("parentRef")).get("namespace")) or namespace)
                == gateway_key[0]
                and (_text(_mapping(p.get("parentRef")).get("sectionName")) or None) == section
            ),
            None,
        )
        if status is None:
            findings.append(Finding(parent_where, "no status from this parent: not attached"))
            continue
        generation = _mapping(route.get("metadata")).get("generation")
        for line in _bad_conditions(status, ("Accepted", "ResolvedRefs"), generation):
            findings.append(Finding(parent_where, line))
    for rule_index, rule in enumerate(_sequence(spec.get("rules"))):
        # A RequestMirror filter's backend is a reference like the rule's own.
        mirrors = [
            _mapping(_mapping(f).get("requestMirror")).get("backendRef")
            for f in _sequence(_mapping(rule).get("filters"))
            if _mapping(f).get("type") == "RequestMirror"
        ]
        for backend in [*_sequence(_mapping(rule).get("backendRefs")), *mirrors]:
            ref = _mapping(backend)
            backend_kind = _text(ref.get("kind")) or "Service"
            target = (_text(ref.get("namespace")) or namespace, _text(ref.get("name")))
            backend_where = f"{where} rule {rule_index} backend {target[0]}/{target[1]}"
            if target[0] != namespace and not _granted(
                grants, kind, namespace, backend_kind, target
            ):
                findings.append(
                    Finding(
                        backend_where,
                        f"the {backend_kind} is in another namespace and no ReferenceGrant "
                        f"in {target[0]} allows {kind}s from {namespace}",
                    )
                )
            if backend_kind == "Service" and services and target not in services:
                findings.append(Finding(backend_where, "no such Service"))
    return findings


def secret_names(text: str) -> set[tuple[str, str]]:
    """Secret names as kubectl lists them: `secret/NAME` lines (`-o name`, no namespace), or
    `NAMESPACE NAME ...` columns (`kubectl get secret -A` as it prints by default, or
    `-o custom-columns=...`; the header line is skipped)."""
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 1 and parts[0].startswith("secret/"):
            found.add(("", parts[0].removeprefix("secret/")))
        elif len(parts) >= 2 and parts[:2] != ["NAMESPACE", "NAME"]:
            found.add((parts[0], parts[1].removeprefix("secret/")))
    return found
