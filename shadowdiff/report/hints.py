"""Remediation hints: for a difference signature, the likely migration cause and the change that
fixes it, in Gateway API terms first and the data plane's own where the standard has none.

One table, one place. Sources, cited per rule:
- [GW] Gateway API v1 specification, HTTPRoute filters and matching
  (gateway-api apis/v1/httproute_types.go): RequestRedirect statusCode 301 and 302 are Core,
  other codes exist only where a release and an implementation added them; URLRewrite with
  ReplacePrefixMatch / ReplaceFullPath; RequestHeaderModifier / ResponseHeaderModifier set
  static values; PathPrefix matches whole path elements, and path matches are case-sensitive;
  rules are ordered by the precedence the spec defines (Exact before the longest prefix);
  a Listener's protocol (HTTPS terminates TLS, whose ALPN the data plane's policy sets),
  GRPCRoute (HTTP/2 end to end), and a Service's appProtocol for the backend side.
- [IN] ingress-nginx annotation and configuration docs (docs/user-guide/nginx-configuration/):
  ssl-redirect answers 308; use-regex locations are `~*` (case-insensitive); proxy-body-size
  defaults to 1m (413 beyond); X-Forwarded-For / X-Real-IP / X-Forwarded-Proto are set by the
  controller; HSTS is on by default for TLS hosts; the default backend answers unknown hosts;
  use-http2 (on by default) offers h2 by ALPN on TLS hosts; backend-protocol: GRPC (or GRPCS)
  proxies a host's paths with grpc_pass, HTTP/2 to the backend.
- [GW] GRPCRoute (apis/v1/grpcroute_types.go): GRPCMethodMatch matches service and method
  exactly (case-sensitive) by default; GEP-1911: a Service port's appProtocol
  `kubernetes.io/h2c` tells the data plane to speak HTTP/2 in clear text to the backend.
- gRPC's status codes and how a client reads an HTTP status without grpc-status
  (grpc/doc/statuscodes.md, doc/http-grpc-status-mapping.md): 404 is UNIMPLEMENTED, 502,
  503 and 504 UNAVAILABLE.

Pure: a signature's kind, field, examples and requests in, a hint or None out. A hint is a
likely cause, said as such: the report never claims it is the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypedDict

from shadowdiff.difference import DifferenceKind


class Hint(TypedDict):
    cause: str  # the likely migration cause, one sentence
    fix: str  # the change that fixes it, Gateway API first
    source: str  # where the rule comes from: [GW] Gateway API spec, [IN] ingress-nginx docs


_FORWARDING_HEADERS: Final = frozenset(
    {"x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port"}
)
_UNKNOWN_HOST: Final = "shadowdiff-unknown-host.invalid"


def _status(value: str | None) -> int | None:
    """The status code at the start of an example value ("308", "308 Permanent Redirect")."""
    if value is None:
        return None
    head = value.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() and len(head) == 3 else None


def hint_for(
    kind: DifferenceKind,
    field: str,
    examples: Sequence[tuple[str | None, str | None]],
    request_urls: Sequence[str] = (),
) -> Hint | None:
    """The hint for one signature: `examples` are (baseline, candidate) values as the report
    shows them; `request_urls` the URLs of the requests it covers."""
    baseline, candidate = examples[0] if examples else (None, None)
    field = field.lower()
    if any(_UNKNOWN_HOST in url for url in request_urls) and kind in ("status", "body", "backend"):
        return {
            "cause": "a host no rule names is answered differently: ingress-nginx sends it to "
            "its default backend (404), the new entry point to whatever listener catches it",
            "fix": "add a catch-all: a listener without hostname (or `*`) with an HTTPRoute "
            "that answers as the default backend did, or remove the catch-all on both",
            "source": "[GW] listener hostname matching; [IN] default backend",
        }
    if kind == "status":
        before, after = _status(baseline), _status(candidate)
        if before == 101:
            return {
                "cause": "the new entry point does not upgrade the WebSocket: its route does "
                "not pass Upgrade and Connection on to the backend (ingress-nginx does for "
                "every location), or another route, host or backend answers the GET",
                "fix": "turn on WebSocket (HTTP upgrade) support for this route in the data "
                "plane's backend or route policy where it is not on by default, and check that "
                "the HTTPRoute matches this path and host; the backend must see the Upgrade",
                "source": "[GW] HTTPRoute (upgrade support is implementation-specific); [IN] "
                "WebSocket support without annotation",
            }
        if before in (301, 302, 307, 308) and after in (301, 302, 303, 307, 308):
            return {
                "cause": f"the redirect code changed ({before} -> {after}); ingress-nginx "
                "answers its HTTPS redirect with 308",
                "fix": f"a RequestRedirect filter with `statusCode: {before}` where the "
                "installed CRDs and the implementation accept it (301 and 302 are Core; "
                "303, 307 and 308 only where added), else 301 to keep it permanent",
                "source": "[GW] HTTPRequestRedirectFilter.statusCode; [IN] ssl-redirect",
            }
        if 413 in (before, after):
            return {
                "cause": "the request-body limit differs (ingress-nginx: proxy-body-size, 1m "
                "by default)",
                "fix": "Gateway API has no body-size field: set the data plane's limit "
                "(its client or backend traffic policy) to the old proxy-body-size",
                "source": "[IN] proxy-body-size",
            }
        if before is not None and before < 400 and after == 404:
            return {
                "cause": "no route matches on the new entry point: a path match lost its "
                "regex, its case-insensitivity (ingress-nginx regex locations are `~*`), or "
                "its prefix semantics (PathPrefix matches whole path elements)",
                "fix": "check the HTTPRoute matches for this path: PathPrefix vs Exact vs "
                "RegularExpression (Implementation-specific), and the case of the path",
                "source": "[GW] HTTPPathMatch; [IN] use-regex",
            }
        if before == 401 or after == 401 or before == 403 or after == 403:
            return {
                "cause": "authentication or an allow-list is enforced on one side only "
                "(auth-url, auth-type, auth-tls-verify-client, whitelist-source-range)",
                "fix": "Gateway API has no standard external auth: configure the data "
                "plane's security policy (external auth, client certificates, IP allow-list) "
                "for this route",
                "source": "[IN] auth and source-range annotations",
            }
        return None
    if kind == "transport" and candidate == "tls_handshake":
        return {
            "cause": "the TLS handshake with the new entry point failed: no listener serves "
            "this hostname (SNI) with a certificate, the TLS versions or ciphers do not meet, "
            'or the request asks for a protocol it does not offer (`http: "2"` offers only h2 '
            "by ALPN); the report's failure message says which",
            "fix": "check the Gateway listener for this hostname (hostname, certificateRefs, "
            "TLS options) and that it offers h2 where the old entry point did; `http: auto` "
            "compares the protocol each side chooses instead",
            "source": "[GW] Listener TLS and ALPN; [IN] TLS per Ingress host",
        }
    if kind == "websocket" and field == "subprotocol":
        return {
            "cause": "another WebSocket subprotocol was chosen: Sec-WebSocket-Protocol did not "
            "reach the backend (a request header filter, or a data plane that drops it), or "
            "did not come back (a response header filter)",
            "fix": "let Sec-WebSocket-Protocol pass both ways: no RequestHeaderModifier or "
            "ResponseHeaderModifier removing it on the HTTPRoute, and the same backend "
            "version behind both entry points",
            "source": "[GW] HTTPRoute filters; [IN] headers passed as received",
        }
    if kind == "websocket" and field == "extensions":
        return {
            "cause": "the WebSocket extensions differ (permessage-deflate): the data plane "
            "negotiates or strips Sec-WebSocket-Extensions itself instead of passing the "
            "backend's answer through",
            "fix": "let Sec-WebSocket-Extensions pass to and from the backend unchanged (no "
            "header filter removing it); compression then works as before",
            "source": "[GW] HTTPRoute filters; [IN] headers passed as received",
        }
    if kind == "websocket" and field == "message_type":
        return {
            "cause": "the echo came back as binary on one side and text on the other: another "
            "backend (or version) answers behind the new entry point",
            "fix": "check which backend the HTTPRoute sends this path to (backendRefs)",
            "source": "[GW] HTTPRoute backendRefs",
        }
    if kind == "redirect":
        return {
            "cause": "the redirect points elsewhere: host, scheme, port or path of Location",
            "fix": "a RequestRedirect filter with the scheme, hostname, port and path "
            "(ReplaceFullPath / ReplacePrefixMatch) of the old Location",
            "source": "[GW] HTTPRequestRedirectFilter",
        }
    if kind == "header_missing" and field == "strict-transport-security":
        return {
            "cause": "HSTS is lost: ingress-nginx adds Strict-Transport-Security to TLS hosts "
            "by default",
            "fix": "a ResponseHeaderModifier filter that sets Strict-Transport-Security to "
            "the old value, or the data plane's own HSTS setting",
            "source": "[GW] ResponseHeaderModifier; [IN] hsts",
        }
    if kind in ("header_missing", "header_added", "header_changed") and field.startswith(
        "access-control-"
    ):
        return {
            "cause": "CORS answers differ (ingress-nginx: enable-cors and cors-* annotations)",
            "fix": "an HTTPRoute CORS filter where the installed release has it "
            "(experimental), else the data plane's CORS policy",
            "source": "[IN] enable-cors",
        }
    if kind in ("header_missing", "header_added", "header_changed"):
        return {
            "cause": f"the response header {field} is set on one side only, or otherwise",
            "fix": "a ResponseHeaderModifier filter (set, add or remove) for this route",
            "source": "[GW] ResponseHeaderModifier",
        }
    if kind == "cookie":
        return {
            "cause": "a Set-Cookie differs in name or attributes: ingress-nginx's affinity "
            "cookie (affinity: cookie, session-cookie-*), or its cookie rewriting "
            "(proxy-cookie-path, proxy-cookie-domain)",
            "fix": "for the affinity cookie, session persistence on the HTTPRoute rule where "
            "the release has it (sessionPersistence, experimental), else the data plane's "
            "policy; for rewritten cookies, the data plane's cookie or header rewriting",
            "source": "[IN] affinity, proxy-cookie-path; [GW] sessionPersistence",
        }
    if kind == "backend" and field == "split":
        return {
            "cause": "the weighted split between backends changed: the canary-weight of the "
            "canary Ingress (out of canary-weight-total, 100 by default) was not carried over, "
            "or was turned around",
            "fix": "on the HTTPRoute rule, give the two backendRefs the weights the Ingresses "
            "had: `weight: 100 - W` on the main Service and `weight: W` on the canary",
            "source": "[GW] HTTPBackendRef.weight; [IN] canary-weight, canary-weight-total",
        }
    if kind == "backend":
        return {
            "cause": "another backend answered: rule order, a path that an earlier or longer "
            "match now takes, or a path whose case no longer matches (ingress-nginx regex "
            "locations ignore case)",
            "fix": "check the HTTPRoute rules for this host: Exact matches win, then the "
            "longest PathPrefix; split or reorder rules so this path reaches the old service",
            "source": "[GW] HTTPRoute rule precedence",
        }
    if kind == "backend_path":
        return {
            "cause": "the backend sees another path: a rewrite-target was not translated, or "
            "translated differently",
            "fix": "a URLRewrite filter with ReplacePrefixMatch (or ReplaceFullPath) that "
            "gives the backend the path it saw before",
            "source": "[GW] HTTPURLRewriteFilter; [IN] rewrite-target",
        }
    if kind == "backend_host":
        return {
            "cause": "the backend sees another Host (ingress-nginx: upstream-vhost)",
            "fix": "a URLRewrite filter with `hostname`",
            "source": "[GW] HTTPURLRewriteFilter.hostname",
        }
    if kind == "backend_header" and field in _FORWARDING_HEADERS:
        return {
            "cause": f"{field} differs: ingress-nginx sets the forwarding headers from the "
            "client address it trusts",
            "fix": "the data plane's client-IP and forwarding settings (trusted hops, proxy "
            "protocol); RequestHeaderModifier sets only static values, so it cannot carry "
            "the client's address",
            "source": "[IN] forwarded headers; [GW] RequestHeaderModifier",
        }
    if kind == "backend_header" and field == "x-request-id":
        return {
            "cause": "the request ID differs: ingress-nginx passes the client's X-Request-ID "
            "on (and generates one, $req_id, when there is none)",
            "fix": "the data plane's request-ID setting: preserve an incoming X-Request-ID "
            "instead of replacing it",
            "source": "[IN] generate-request-id",
        }
    if kind == "backend_header" and "_" in field:
        return {
            "cause": "a header with an underscore: ingress-nginx drops such headers "
            "(enable-underscores-in-headers is off by default), many data planes pass them",
            "fix": "the data plane's setting for headers with underscores (drop them to keep "
            "the old behaviour), or turn them on in both",
            "source": "[IN] enable-underscores-in-headers",
        }
    if kind == "backend_header":
        return {
            "cause": f"the backend sees {field} differently",
            "fix": "a RequestHeaderModifier filter (set, add or remove) for this route",
            "source": "[GW] RequestHeaderModifier",
        }
    if kind in ("tls_protocol", "tls_cipher"):
        return {
            "cause": "the TLS versions or ciphers accepted differ (ingress-nginx: "
            "ssl-protocols and ssl-ciphers in its ConfigMap)",
            "fix": "the data plane's TLS policy for the listener (Gateway API leaves it to "
            "implementation-specific listener tls.options)",
            "source": "[GW] GatewayTLSConfig.options; [IN] ssl-protocols",
        }
    if kind == "protocol" and baseline == "HTTP/2":
        return {
            "cause": "the new entry point answers in HTTP/1.1 where the old one spoke HTTP/2: "
            "its listener does not offer h2 by ALPN (ingress-nginx offers it on every TLS "
            "host by default, use-http2), or, over plain HTTP, does not accept h2c",
            "fix": "offer h2 on the Gateway listener (protocol HTTPS, with h2 among the data "
            "plane's ALPN protocols in its client traffic or listener TLS policy); for h2c, the "
            "data plane's HTTP/2 setting for plain-text listeners; a route's protocol "
            "(GRPCRoute needs HTTP/2 end to end) and the Service's appProtocol "
            "(kubernetes.io/h2c) govern the backend side, not this one",
            "source": "[GW] Listener.protocol, GRPCRoute, Service appProtocol; [IN] use-http2",
        }
    if kind == "protocol":
        return {
            "cause": "the new entry point offers HTTP/2 where the old one answered in HTTP/1.1 "
            "(ingress-nginx with use-http2 off, or a plain-text listener without h2c)",
            "fix": "nothing, if clients handle HTTP/2 (browsers and curl do); otherwise leave "
            "h2 out of the listener's ALPN protocols in the data plane's TLS policy",
            "source": "[GW] Listener.protocol; [IN] use-http2",
        }
    if kind == "grpc":
        return _grpc_hint(field, candidate)
    if kind == "tls_alpn":
        return {
            "cause": "HTTP/2 is offered on one side only",
            "fix": "the data plane's HTTP/2 setting for the listener (ingress-nginx offers h2 "
            "by default: use-http2)",
            "source": "[IN] use-http2",
        }
    if kind == "tls_certificate" and field == "expiry":
        return {
            "cause": "the new entry point's certificate expires sooner: a certificate issued "
            "for a test, or one no renewal covers",
            "fix": "renew the Secret the listener's tls.certificateRefs names (or have the "
            "issuer that renews the Ingress's certificate renew it too)",
            "source": "[GW] GatewayTLSConfig.certificateRefs",
        }
    if kind in ("tls_certificate", "tls_default_certificate"):
        return {
            "cause": "another certificate is served: the listener's certificateRefs, or the "
            "certificate for an unknown SNI",
            "fix": "point the listener's tls.certificateRefs at the Secret the Ingress used, "
            "and give the Gateway a default certificate if clients connect without SNI",
            "source": "[GW] GatewayTLSConfig.certificateRefs",
        }
    return None


def _grpc_hint(field: str, candidate: str | None) -> Hint | None:
    """gRPC calls that ingress-nginx proxied with backend-protocol: GRPC and a GRPCRoute now
    routes (or an HTTPRoute that cannot carry them)."""
    code = None
    head = "" if candidate is None else candidate.split(" ", 1)[0]
    if head.isascii() and head.isdigit():
        code = int(head)
    if field == "status" and code == 12:
        return {
            "cause": "no route on the new entry point takes this gRPC method: a GRPCRoute "
            "missing for the host, a method match with a typo (service and method match "
            "exactly, case included), or a backend that does not serve this service",
            "fix": "a GRPCRoute for this host whose rule matches the service (and method) as "
            "clients call it, with the Service the Ingress named (backend-protocol: GRPC) as "
            "its backendRef",
            "source": "[GW] GRPCRoute, GRPCMethodMatch; [IN] backend-protocol",
        }
    if field == "status" and code in (13, 14):
        return {
            "cause": "the data plane cannot speak gRPC to the backend: it connects in HTTP/1.1 "
            "(an HTTPRoute, or a Service port without an HTTP/2 appProtocol) where "
            "ingress-nginx used HTTP/2 (grpc_pass), or in clear text to a TLS backend (GRPCS)",
            "fix": "route the host with a GRPCRoute, and set the backend Service port's "
            "appProtocol to kubernetes.io/h2c (or the data plane's HTTP/2 backend setting); "
            "for backend-protocol: GRPCS, a BackendTLSPolicy",
            "source": "[GW] GRPCRoute, Service appProtocol (GEP-1911), BackendTLSPolicy; "
            "[IN] backend-protocol",
        }
    if field == "status":
        return {
            "cause": "the gRPC call ends with another status: another backend answered (a "
            "GRPCRoute backendRef to another Service or port), or the backend saw the call "
            "differently (its metadata, an authentication the old entry point did)",
            "fix": "check the GRPCRoute's backendRefs and header matches for this host, and "
            "the backend's log for this call under the trace id",
            "source": "[GW] GRPCRoute; [IN] backend-protocol",
        }
    if field == "health":
        return {
            "cause": "the health service answers another status: the call reached another "
            "backend (a GRPCRoute backendRef to another Service or port), or the backend behind "
            "the new entry point is not ready",
            "fix": "point the GRPCRoute's backendRef at the Service and port the Ingress named, "
            "and check that its pods are ready",
            "source": "[GW] GRPCRoute backendRefs",
        }
    if field == "answer":
        return {
            "cause": "the method answers another message: another backend (or another "
            "version of it) served the call",
            "fix": "check the GRPCRoute's backendRefs (and their weights) for this method",
            "source": "[GW] GRPCRoute backendRefs",
        }
    return None
