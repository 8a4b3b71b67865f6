"""What to send to prove that an Ingress behaves the same behind the new entry point: for every
rule (host x path x pathType) a request per path, plus the probes its ingress-nginx annotations
call for. Pure: Ingress data in, planned requests and notes out.

What each annotation does comes from the ingress-nginx annotation reference
(docs/user-guide/nginx-configuration/annotations.md); where Gateway API behaves otherwise
(case-sensitive path matches, no regex in Core), the probe is the one that would show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Final

from shadowdiff.grpc import HEALTH_CHECK_METHOD
from shadowdiff.plan.ingress import Ingress, IngressPath
from shadowdiff.plan.sendable import headers_problem, host_name_problem, url_problem

# The Host of the probe for a host no rule names: what a default backend, or a catch-all
# listener, answers. `.invalid` can never be a real name (RFC 2606).
UNKNOWN_HOST: Final = "shadowdiff-unknown-host.invalid"
# Stand-in for the `*` of a wildcard host (`*.example.com`).
WILDCARD_LABEL: Final = "shadowdiff-wildcard"
# A generated oversize body is held in memory by the run: larger limits are not probed.
MAX_PROBE_BODY_BYTES: Final = 64 * 1024**2
# A weighted canary's probe is sent this often, so that its split is compared with power: a
# weight turned from 20% to 50% is found almost always (shadowdiff/report/split_finding.py).
CANARY_WEIGHT_REQUESTS: Final = 200
MAX_ORIGIN_CHARS: Final = 2000  # as the scenario format allows (`Request.origin`)

# Annotations whose effect cannot be seen from outside by a request we can choose, and why.
NOT_PROBEABLE: Final = {
    "configuration-snippet": "raw nginx configuration: its effect cannot be derived; compare "
    "the routes it touches by hand",
    "server-snippet": "raw nginx configuration for the whole server block",
    "auth-snippet": "raw nginx configuration for the auth subrequest",
    "stream-snippet": "raw nginx stream configuration (TCP/UDP, not HTTP)",
    "modsecurity-snippet": "raw ModSecurity rules",
    "enable-modsecurity": "WAF rules need attack payloads, which shadowdiff does not send",
    "enable-owasp-core-rules": "WAF rules need attack payloads, which shadowdiff does not send",
    "lua-resty-waf": "custom Lua",
    "proxy-read-timeout": "a timeout shows only with a slow backend",
    "proxy-send-timeout": "a timeout shows only with a slow backend",
    "proxy-connect-timeout": "a timeout shows only with an unreachable backend",
    "limit-rps": "a rate limit needs a burst of traffic; run a load model on this route",
    "limit-rpm": "a rate limit needs a burst of traffic; run a load model on this route",
    "limit-connections": "a connection limit needs many connections; run a load model",
}
# Annotations that refine another one's probe (listed so that none is reported as unknown).
COVERED_BY: Final = {
    "session-cookie-name": "affinity",
    "session-cookie-expires": "affinity",
    "session-cookie-max-age": "affinity",
    "session-cookie-path": "affinity",
    "session-cookie-samesite": "affinity",
    "affinity-mode": "affinity",
    "auth-tls-secret": "auth-tls-verify-client",
    "auth-tls-verify-depth": "auth-tls-verify-client",
    "auth-tls-error-page": "auth-tls-verify-client",
    "auth-tls-pass-certificate-to-upstream": "auth-tls-verify-client",
    "auth-method": "auth-url",
    "auth-signin": "auth-url",
    "auth-response-headers": "auth-url",
    "auth-realm": "auth-type",
    "auth-secret": "auth-type",
    "permanent-redirect-code": "permanent-redirect",
    "temporal-redirect-code": "temporal-redirect",
    "cors-allow-origin": "enable-cors",
    "cors-allow-methods": "enable-cors",
    "cors-allow-headers": "enable-cors",
    "cors-allow-credentials": "enable-cors",
    "cors-max-age": "enable-cors",
    "cors-expose-headers": "enable-cors",
    "canary-by-header-value": "canary-by-header",
    "canary-by-header-pattern": "canary-by-header",
}
# Annotations probed by the plain request to each path: its answer (status, headers, the
# redirect) is what is compared; the origin names them.
SEEN_BY_THE_PLAIN_REQUEST: Final = {
    "permanent-redirect": "compared: status and Location of the permanent redirect",
    "temporal-redirect": "compared: status and Location of the temporary redirect",
    "auth-url": "sent without credentials: both sides must refuse (or redirect) alike",
    "auth-type": "sent without credentials: both sides must answer 401 alike",
    "auth-tls-verify-client": "sent without a client certificate: both sides must refuse alike",
    "whitelist-source-range": "sent from this host's address: allowed or refused alike",
    "allowlist-source-range": "sent from this host's address: allowed or refused alike",
    "denylist-source-range": "sent from this host's address: allowed or refused alike",
    "ssl-redirect": "see the plain-HTTP probe",
    "force-ssl-redirect": "see the plain-HTTP probe",
    "backend-protocol": "noted: the backend speaks another protocol (GRPC and GRPCS: the gRPC "
    "health check on TLS hosts)",
    "server-alias": "each alias is probed as a host of its own",
    "app-root": "probed: / on the host",
    "affinity": "probed three times: the affinity cookie's name and attributes are compared",
    "enable-cors": "probed: a CORS preflight",
    "canary": "the canary's own probes follow its other annotations",
    "canary-by-header": "probed with the header set and unset",
    "canary-by-cookie": "probed with the cookie set and unset",
    "canary-weight": "probed 200 times: which backend answered is compared in proportion",
    "use-regex": "probed: a case variant (regex locations ignore case; Gateway API "
    "matches are case-sensitive)",
    "rewrite-target": "probed: a path that exercises the capture groups",
    "proxy-body-size": "probed: a body one byte over the limit (with --allow-unsafe)",
}
_REGEX_META: Final = re.compile(r"[\\^$.|?*+()\[\]{}]")


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    name: str
    url: str
    origin: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body_size_bytes: int | None = None
    repeat: int = 1
    allow_unsafe: bool = False
    ignore: tuple[str, ...] = ()  # difference kinds not compared (see `_random_backends`)
    backend_split: bool = False  # the backend compared in proportion (a weighted canary)
    # backend-protocol GRPC or GRPCS: the gRPC health check of this service ("" the server).
    grpc_health: str | None = None


@dataclass(slots=True)
class Plan:
    requests: list[PlannedRequest] = field(default_factory=list)
    # (where, what, why): annotations and rules not probed, for the file's comments.
    not_probed: list[tuple[str, str, str]] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)
    # The last suffix given to each base name: numbering resumes there, so that n requests
    # of one name take n steps, not n squared.
    _suffixes: dict[str, int] = field(default_factory=dict)
    # What is sent (method, URL, headers, body) -> its index in `requests`.
    _sent: dict[tuple[object, ...], int] = field(default_factory=dict)
    _noted: set[tuple[str, str, str]] = field(default_factory=set)

    def note(self, where: str, what: str, why: str) -> None:
        """Record what is not probed, once."""
        if (where, what, why) not in self._noted:
            self._noted.add((where, what, why))
            self.not_probed.append((where, what, why))

    def add(self, request: PlannedRequest) -> None:
        """Add `request` under a unique name; a request that sends exactly what an earlier one
        sends is not written again: the earlier one keeps its origin and takes the larger
        `repeat`."""
        sent = (
            request.method,
            request.url,
            request.headers,
            request.body_size_bytes,
            request.grpc_health,
        )
        earlier = self._sent.get(sent)
        if earlier is not None:
            first = self.requests[earlier]
            self.requests[earlier] = replace(
                first,
                repeat=max(first.repeat, request.repeat),
                backend_split=first.backend_split or request.backend_split,
            )
            return
        name, count = request.name, self._suffixes.get(request.name, 1)
        while name in self._names:
            count += 1
            name = f"{request.name} ({count})"
        self._suffixes[request.name] = count
        self._names.add(name)
        self._sent[sent] = len(self.requests)
        self.requests.append(replace(request, name=name, origin=request.origin[:MAX_ORIGIN_CHARS]))


def parse_size(text: str) -> int | None:
    """nginx's size syntax (`8m`, `100k`, `1g`, bytes): the number of bytes, or None."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", text)
    if match is None:
        return None
    unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * unit


def _literal_prefix(path: str) -> str:
    """The part of a regex path before its first metacharacter: a path that matches it."""
    meta = _REGEX_META.search(path)
    prefix = path[: meta.start()] if meta else path
    return prefix if prefix.startswith("/") else "/" + prefix


def _is_true(annotations: dict[str, str], name: str) -> bool:
    return annotations.get(name, "").strip().lower() == "true"


def _paths_to_probe(entry: IngressPath, annotations: dict[str, str]) -> list[tuple[str, str]]:
    """(path, what it probes) for one Ingress path."""
    regex = _is_true(annotations, "use-regex") or (
        "rewrite-target" in annotations and _REGEX_META.search(entry.path) is not None
    )
    if regex:
        base = _literal_prefix(entry.path)
        probes = [(base, "the regex path's literal prefix")]
        if "rewrite-target" in annotations and "(" in entry.path:
            probes.append(
                (base.rstrip("/") + "/shadowdiff/probe", "rewrite-target: the capture groups")
            )
        if any(c.isalpha() for c in base):
            probes.append((base.upper(), "use-regex: a case variant"))
        return probes
    probes = [(entry.path, f"{entry.path_type} path")]
    if entry.path_type in ("Prefix", "ImplementationSpecific") and entry.path != "/":
        other = entry.path.rstrip("/") if entry.path.endswith("/") else entry.path + "/"
        probes.append((other or "/", "Prefix path: the trailing slash"))
    return probes


def plan_ingresses(ingresses: list[Ingress], *, allow_unsafe: bool = False) -> Plan:
    """Probes for every rule of `ingresses`, and one for a host no rule names."""
    plan = Plan()
    for ingress in ingresses:
        _plan_one(plan, ingress, allow_unsafe)
    _random_backends(plan, ingresses)
    plan.add(
        PlannedRequest(
            "unknown host",
            f"http://{UNKNOWN_HOST}/",
            "default backend / unknown host: what answers a host no rule names",
        )
    )
    return plan


def _weighted_canary(annotations: dict[str, str]) -> bool:
    return annotations.get("canary-weight", "").strip() not in ("", "0")


def _random_backends(plan: Plan, ingresses: list[Ingress]) -> None:
    """Behind a weighted canary (canary-weight), each side picks the backend at random, so
    comparing the backend pair by pair would report that chance as a difference on both sides:
    a false alarm. The canary's own probes compare it in proportion instead (`backend_split`);
    every other probe to a host such a canary serves leaves the backend out, and says so."""
    hosts = {
        rule.host
        for ingress in ingresses
        if _weighted_canary(ingress.annotations)
        for rule in ingress.rules
        if isinstance(rule.host, str)
    }
    if not hosts:
        return
    for index, request in enumerate(plan.requests):
        host = request.url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if host in hosts and not request.backend_split and "backend" not in request.ignore:
            plan.requests[index] = replace(
                request,
                ignore=(*request.ignore, "backend"),
                origin=(
                    f"{request.origin}; backend not compared: a weighted canary on this host "
                    "picks it at random"
                )[:MAX_ORIGIN_CHARS],
            )
    for host in sorted(hosts):
        plan.note(
            host,
            "canary-weight",
            f"the canary's probes compare which backend answered in proportion over "
            f"{CANARY_WEIGHT_REQUESTS} pairs (backend_split); the host's other probes leave "
            "the backend out",
        )


def _host_note(host: str) -> str | None:
    """Why `host` (a rule's host or a server-alias) is not probed, or None."""
    problem = host_name_problem(host)
    return None if problem is None else f"not a host to send to: not an RFC 1123 name: {problem}"


def _aliases(plan: Plan, ingress: Ingress) -> list[str]:
    """The server-alias host names; each refused one is noted."""
    aliases = []
    for alias in ingress.annotations.get("server-alias", "").replace(",", " ").split():
        note = _host_note(alias)
        if note is None:
            aliases.append(alias)
        else:
            plan.note(ingress.key, f"server-alias {alias!r}", note)
    return aliases


def _sent_host(host: str) -> str:
    """The Host a probe sends: a wildcard's `*` as a label of its own."""
    return host.replace("*", WILDCARD_LABEL, 1) if host.startswith("*.") else host


def _plan_one(plan: Plan, ingress: Ingress, allow_unsafe: bool) -> None:
    annotations = ingress.annotations
    key = ingress.key
    for name in annotations:
        if name in NOT_PROBEABLE:
            plan.note(key, name, NOT_PROBEABLE[name])
        elif name not in SEEN_BY_THE_PLAIN_REQUEST and name not in COVERED_BY:
            plan.note(key, name, "plan does not know what to send for it")
    for what, why in ingress.malformed:
        plan.note(key, what, why)
    for name in ingress.other_annotations:
        plan.note(key, name, "not an ingress-nginx annotation")
    body_note = _body_size_note(annotations, allow_unsafe)
    if body_note is not None:
        plan.note(key, "proxy-body-size", body_note)
    notes = [
        f"{name}: {SEEN_BY_THE_PLAIN_REQUEST[name]}"
        if name in SEEN_BY_THE_PLAIN_REQUEST
        else f"{name}: part of {COVERED_BY[name]}"
        for name in sorted(annotations)
        if name in SEEN_BY_THE_PLAIN_REQUEST or name in COVERED_BY
    ]
    aliases = _aliases(plan, ingress)
    for rule in ingress.rules:
        rule_index = rule.index
        if not rule.host:
            plan.note(
                f"{key} rule {rule_index}", "host", "a rule for every host: see the unknown host"
            )
        elif (note := _host_note(rule.host)) is not None:
            plan.note(f"{key} rule {rule_index}", f"host {rule.host!r}", note)
            continue
        hosts = [rule.host, *aliases] if rule.host else [UNKNOWN_HOST]
        for host in map(_sent_host, hosts):
            tls = rule.host is not None and rule.host in ingress.tls_hosts
            for entry in rule.paths:
                where = (
                    f"{key} rule {rule_index} path {entry.index} "
                    f"({entry.path_type} {entry.path} -> {entry.backend})"
                )
                _plan_path(plan, annotations, host, tls, entry, where, notes, allow_unsafe)
        if "app-root" in annotations and rule.host:
            scheme = "https" if rule.host in ingress.tls_hosts else "http"
            url = f"{scheme}://{_sent_host(rule.host)}/"
            if url_problem(url) is None:
                plan.add(PlannedRequest(f"{key}: app-root GET {url}", url, f"{key}; app-root"))


def _plan_path(
    plan: Plan,
    annotations: dict[str, str],
    host: str,
    tls: bool,
    entry: IngressPath,
    where: str,
    notes: list[str],
    allow_unsafe: bool,
) -> None:
    """The probes of one path of one rule, on one of the rule's hosts."""
    base_url = f"{'https' if tls else 'http'}://{host}"
    reason = url_problem(base_url + "/")
    if reason is not None:
        plan.note(where, f"host {host!r}", f"not a host to send to: {reason}")
        return
    repeat = 3 if annotations.get("affinity") == "cookie" else 1
    weighted = _weighted_canary(annotations)
    if weighted:
        repeat = max(repeat, CANARY_WEIGHT_REQUESTS)
    origin = "; ".join([where, *notes])
    paths = _paths_to_probe(entry, annotations)
    if not entry.path.startswith("/"):
        plan.note(where, f"path {entry.path!r}", "an Ingress path starts with /")
        return
    if "?" in paths[0][0] or "#" in paths[0][0]:
        # An Ingress path is matched against the path alone: a `?` or `#` in it can never
        # match, and a probe built from it would send a query or a fragment instead.
        plan.note(where, f"path {paths[0][0]!r}", "holds a query or fragment (? or #): not a path")
        return
    for path, what in paths:
        url = base_url + path
        reason = url_problem(url)
        if reason is not None:
            plan.note(where, f"path {path!r}", reason)
            continue
        plan.add(
            PlannedRequest(
                f"GET {url}", url, f"{origin}; {what}", repeat=repeat, backend_split=weighted
            )
        )
    if annotations.get("backend-protocol", "").strip().upper() in ("GRPC", "GRPCS"):
        _grpc_probe(plan, base_url, entry, where, tls)
    force_plain = _is_true(annotations, "force-ssl-redirect")
    if (tls or force_plain) and url_problem(f"http://{host}{paths[0][0]}") is None:
        url = f"http://{host}{paths[0][0]}"
        why = "force-ssl-redirect" if force_plain else "a TLS host (ssl-redirect is on by default)"
        plan.add(PlannedRequest(f"GET {url}", url, f"{where}; plain HTTP to {why}"))
    _annotation_probes(plan, annotations, base_url, entry, where, allow_unsafe)


def _grpc_probe(plan: Plan, base_url: str, entry: IngressPath, where: str, tls: bool) -> None:
    """backend-protocol GRPC (or GRPCS): the gRPC health check of the server through the
    host, where this path takes it (`/`, or a prefix of its path). Only on TLS hosts:
    ingress-nginx speaks HTTP/2 to clients by ALPN on its TLS listener alone, so no gRPC
    client reached it over plain HTTP, and an h2c probe there would show what none uses."""
    if not tls:
        plan.note(
            where, "backend-protocol", "gRPC reaches ingress-nginx over TLS only: no TLS here"
        )
        return
    path, health = entry.path, HEALTH_CHECK_METHOD
    if entry.path_type == "Exact":
        takes = path == health
    elif entry.path_type == "Prefix":
        trimmed = path.rstrip("/")
        takes = trimmed == "" or health == trimmed or health.startswith(trimmed + "/")
    else:  # ImplementationSpecific: a plain prefix, as ingress-nginx matches it
        takes = health.startswith(path)
    if not takes:
        plan.note(
            where,
            "backend-protocol",
            f"the gRPC health check ({health}) is outside this path: a request with "
            "grpc: {method, message_base64} calls one of the service's own methods",
        )
        return
    url = base_url + "/"
    plan.add(
        PlannedRequest(
            f"gRPC health {url}",
            url,
            f"{where}; backend-protocol: the gRPC health check of the server",
            method="POST",
            grpc_health="",
        )
    )


def _annotation_probes(
    plan: Plan,
    annotations: dict[str, str],
    base_url: str,
    entry: IngressPath,
    where: str,
    allow_unsafe: bool,
) -> None:
    path = _paths_to_probe(entry, annotations)[0][0]
    url = base_url + path
    if url_problem(url) is not None:
        return
    # (name, what it probes, method, headers): each is checked as `validate` would check it.
    probes: list[tuple[str, str, str, tuple[tuple[str, str], ...]]] = []
    if _is_true(annotations, "enable-cors"):
        origin = annotations.get("cors-allow-origin", "").split(",")[0].strip()
        origin = origin if origin and origin != "*" else "https://shadowdiff.invalid"
        preflight = (("Origin", origin), ("Access-Control-Request-Method", "GET"))
        probes.append((f"CORS preflight {url}", "enable-cors", "OPTIONS", preflight))
    header = annotations.get("canary-by-header")
    if header:
        value = annotations.get("canary-by-header-value") or "always"
        for sent, what in ((value, "set"), ("never", "set to never")):
            probes.append(
                (
                    f"canary header {what} {url}",
                    f"canary-by-header {what}",
                    "GET",
                    ((header, sent),),
                )
            )
    cookie = annotations.get("canary-by-cookie")
    if cookie:
        probes.append(
            (f"canary cookie {url}", "canary-by-cookie", "GET", (("Cookie", f"{cookie}=always"),))
        )
    for name, what, method, headers in probes:
        reason = headers_problem(method, url, headers)
        if reason is None:
            plan.add(PlannedRequest(name, url, f"{where}; {what}", method, headers))
        else:
            plan.note(where, what.split(" ")[0], reason)
    size = _oversize_probe_bytes(annotations, allow_unsafe)
    if size is not None:
        plan.add(
            PlannedRequest(
                f"oversize POST {url}",
                url,
                f"{where}; proxy-body-size {annotations['proxy-body-size']}: one byte over",
                "POST",
                body_size_bytes=size,
                allow_unsafe=True,
            )
        )


def _oversize_probe_bytes(annotations: dict[str, str], allow_unsafe: bool) -> int | None:
    """The body size that exceeds `proxy-body-size` by one byte, when it is probed."""
    size_text = annotations.get("proxy-body-size")
    size = parse_size(size_text) if size_text is not None else None
    if size is None or size == 0 or size + 1 > MAX_PROBE_BODY_BYTES or not allow_unsafe:
        return None
    return size + 1


def _body_size_note(annotations: dict[str, str], allow_unsafe: bool) -> str | None:
    """Why `proxy-body-size` is not probed, or None when it is (or absent)."""
    size_text = annotations.get("proxy-body-size")
    if size_text is None:
        return None
    size = parse_size(size_text)
    if size is None:
        return f"not an nginx size: {size_text!r}"
    if size == 0:
        return "0 means no limit: nothing to probe"
    if size + 1 > MAX_PROBE_BODY_BYTES:
        return "a body over the limit would exceed 64 MiB"
    if not allow_unsafe:
        return (
            "an oversize POST reaches the backends when the limit is not enforced: "
            "plan --allow-unsafe writes it"
        )
    return None
