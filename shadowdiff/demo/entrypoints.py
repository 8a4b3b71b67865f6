"""Two small in-process entry points for `shadowdiff demo`: one behaving like ingress-nginx's
defaults (the baseline), one like a Gateway data plane with a few realistic regressions.

They route by Host and path to echo backends called in-process, and add the forwarding headers
ingress-nginx adds, so the demo shows the same kinds of findings a real cutover produces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from shadowdiff.echo import EchoIdentity, echo_document

ACME_PREFIX: Final = "/.well-known/acme-challenge/"
# ingress-nginx's default HSTS value (hsts-max-age 31536000, hsts-include-subdomains true).
INGRESS_NGINX_HSTS: Final = "max-age=31536000; includeSubDomains"


@dataclass(frozen=True, slots=True)
class Route:
    host: str
    path: str  # a prefix; one ending in "/" also claims the path without it (see `_match`)
    backend: EchoIdentity


@dataclass(frozen=True, slots=True)
class EntryPointProfile:
    name: str
    routes: tuple[Route, ...]
    https_redirect_status: int  # ingress-nginx: 308; a Gateway RequestRedirect defaults to 302
    hsts_hosts: frozenset[str]  # hosts whose HTTPS answers carry HSTS
    trailing_slash_redirect: bool  # ingress-nginx answers /p with 301 to /p/ for path /p/


SHOP = EchoIdentity("shop", "shop-7d9c5b6f4-x2k4q", "demo")
DOCS = EchoIdentity("docs", "docs-5b8f7d9c6-lp7rt", "demo")
API_V1 = EchoIdentity("api-v1", "api-v1-6c4d8b7f5-kq9wz", "demo")
API_V2 = EchoIdentity("api-v2", "api-v2-84c7f9d6b-p3m7n", "demo")

BASELINE: Final = EntryPointProfile(
    name="ingress-nginx",
    routes=(
        Route("shop.demo.test", "/docs/", DOCS),
        Route("shop.demo.test", "/", SHOP),
        Route("api.demo.test", "/v1", API_V1),
        Route("api.demo.test", "/v2", API_V2),
    ),
    https_redirect_status=308,
    hsts_hosts=frozenset({"shop.demo.test", "api.demo.test"}),
    trailing_slash_redirect=True,
)

# The planted regressions, each one a finding the demo must show:
#   1. HTTP->HTTPS redirect answers 302, not 308 (RequestRedirect's default status);
#   2. api.demo.test lost its HSTS header (the response-header filter was only added to shop);
#   3. /v2 is routed to the api-v1 service (a copy-pasted backendRef);
#   4. /docs answers 404 instead of redirecting to /docs/ (PathPrefix /docs/ does not match /docs).
CANDIDATE: Final = EntryPointProfile(
    name="gateway",
    routes=(
        Route("shop.demo.test", "/docs/", DOCS),
        Route("shop.demo.test", "/", SHOP),
        Route("api.demo.test", "/v1", API_V1),
        Route("api.demo.test", "/v2", API_V1),
    ),
    https_redirect_status=302,
    hsts_hosts=frozenset({"shop.demo.test"}),
    trailing_slash_redirect=False,
)


def _match(profile: EntryPointProfile, host: str, path: str) -> tuple[Route | None, bool]:
    """The longest matching route, and whether `path` is a route's path minus its slash."""
    best: Route | None = None
    for route in profile.routes:
        matches = route.host == host and path.startswith(route.path)
        if matches and (best is None or len(route.path) > len(best.path)):
            best = route
    slashless = any(
        route.host == host and route.path.endswith("/") and path == route.path[:-1]
        for route in profile.routes
    )
    return best, slashless


def make_entry_point(profile: EntryPointProfile, *, tls: bool) -> web.Application:
    """One listener (plain or TLS) of an entry point, as seen behind a load balancer on 80/443."""

    async def handle(request: web.Request) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        path = request.path
        if not tls and not path.startswith(ACME_PREFIX):
            return web.Response(
                status=profile.https_redirect_status,
                headers={"Location": f"https://{host}{request.raw_path}"},
            )
        route, slashless = _match(profile, host, path)
        if slashless and profile.trailing_slash_redirect:
            return web.Response(status=301, headers={"Location": f"https://{host}{path}/"})
        if route is None or (slashless and route.path == "/"):
            return web.Response(status=404, text="default backend - 404\n")
        forwarded = [
            *((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            ("X-Forwarded-For", request.remote or ""),
            ("X-Real-IP", request.remote or ""),
            ("X-Forwarded-Host", host),
            ("X-Forwarded-Port", "443" if tls else "80"),
            ("X-Forwarded-Proto", "https" if tls else "http"),
            ("X-Scheme", "https" if tls else "http"),
        ]
        document = echo_document(
            route.backend,
            method=request.method,
            raw_path=request.raw_path,
            host=host,
            headers=forwarded,
            http_port=8080,
        )
        headers = {}
        if tls and host in profile.hsts_hosts:
            headers["Strict-Transport-Security"] = INGRESS_NGINX_HSTS
        return web.Response(
            body=json.dumps(document).encode(), content_type="application/json", headers=headers
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
