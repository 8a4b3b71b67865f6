"""Property: whatever text a scenario holds, what reaches the wire is exactly one request with
exactly the headers the scenario stated, or nothing at all and a located error.

Header names and values, URL paths and `${VAR}` values are generated (control characters,
non-Latin-1 text, CR/LF sequences that spell a second request), loaded as a scenario file, and
sent by each transport to a server that parses with h11, a strict HTTP/1.1 parser.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowdiff.endpoint import TransportName
from shadowdiff.errors import ScenarioError
from shadowdiff.scenario import parse_scenario
from shadowdiff.transport import TRANSPORT_NAMES, USER_AGENT, open_transport

from .wire_server import wire_server

# Text biased towards what breaks HTTP/1.1 framing, plus anything else.
_NASTY = st.sampled_from(
    ["\r", "\n", "\r\n", "\x00", "\t", " ", ":", "Ω", "€", "é", "\x7f", "%", "/"]
)
_TEXT = st.lists(st.one_of(_NASTY, st.text(max_size=4)), max_size=8).map("".join)
_TOKEN = st.text(alphabet="abcdefXYZ-_!#0129", min_size=1, max_size=12)
_NAME = st.one_of(_TOKEN, _TEXT)

# Sent by the transports whatever the scenario says (documented in the README's safety section).
AUTOMATIC = {"host", "user-agent", "accept", "content-length"}


async def _send_once(transport: TransportName, text: str, environ: dict[str, str]) -> None:
    async with wire_server() as server:
        body = text.replace("PORT", str(server.port))
        try:
            scenario = parse_scenario(body, "p.yaml", base_dir=Path("."), environ=environ)
        except ScenarioError as error:
            assert error.problems and all(p.line >= 1 for p in error.problems), error.problems
            assert server.connections == 0
            return
        spec = scenario.requests[0]
        sender = open_transport(scenario.endpoint("baseline"), 1, transport)
        try:
            observation = await sender.send(spec)
        finally:
            await sender.close()
        assert observation.failure is None, observation.failure
    assert server.protocol_errors == []
    assert len(server.requests) == 1, server.requests
    seen = server.requests[0]
    assert seen.method == spec.method.encode()
    stated = {(name.lower(), value) for name, value in spec.headers}
    received = {(name.decode().lower(), value.decode()) for name, value in seen.headers}
    assert {h for h in received if h[0] not in AUTOMATIC} == stated
    names = [name for name, _ in received]
    assert names.count("host") == 1
    assert ("user-agent", USER_AGENT) in received or any(n == "user-agent" for n, _ in stated)


def _scenario(path: str, headers: dict[str, str], env_header: bool) -> str:
    request: dict[str, object] = {"name": "p", "url": "http://x.example.com" + path}
    request["headers"] = {**headers, **({"X-Env": "${VALUE}"} if env_header else {})}
    document = {
        "targets": {
            "baseline": {"address": "127.0.0.1", "ports": {"http": "PORT_HTTP"}},
            "candidate": {"address": "127.0.0.2"},
        },
        "requests": [request],
    }
    return yaml.safe_dump(document, allow_unicode=True).replace("PORT_HTTP", "PORT")


@pytest.mark.parametrize("transport", TRANSPORT_NAMES)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.one_of(st.just("/"), _TEXT.map(lambda t: "/" + t)),
    headers=st.dictionaries(_NAME, _TEXT, max_size=3),
    env_value=_TEXT,
    env_header=st.booleans(),
)
def test_the_wire_carries_exactly_what_the_scenario_states(
    transport: TransportName,
    path: str,
    headers: dict[str, str],
    env_value: str,
    env_header: bool,
) -> None:
    text = _scenario(path, headers, env_header)
    asyncio.run(_send_once(transport, text, {"VALUE": env_value}))
