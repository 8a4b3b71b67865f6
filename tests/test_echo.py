"""`shadowdiff echo`: the backend users deploy behind both entry points, and its manifest."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from yarl import URL

from shadowdiff.cli import build_parser
from shadowdiff.markers import extract_markers

from .conftest import unused_port

MANIFEST = Path(__file__).parents[1] / "deploy" / "echo.yaml"


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    port = unused_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shadowdiff",
        "echo",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={
            **os.environ,
            "SERVICE_NAME": "cart",
            "POD_NAME": "cart-6d8f7c9b5-q2w4x",
            "NAMESPACE": "shop",
        },
    )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url):
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    yield url
    process.terminate()
    await process.wait()


async def test_echo_answers_in_echo_basic_format(echo_url: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            URL(f"{echo_url}/a//b/../c?x=1&y=2", encoded=True),
            headers={"X-Forwarded-Proto": "https", "x-multi": "1"},
            data=b"payload",
            skip_auto_headers=["User-Agent"],
        ) as response,
    ):
        body = await response.read()
        assert response.status == 200 and response.content_type == "application/json"
    document = json.loads(body)
    assert document["path"] == "/a//b/../c?x=1&y=2"
    assert document["method"] == "POST" and document["proto"] == "HTTP/1.1"
    assert document["host"].startswith("127.0.0.1:")
    assert document["headers"]["X-Forwarded-Proto"] == ["https"]
    assert document["headers"]["X-Multi"] == ["1"]  # canonical case, as echo-basic does
    assert "Host" not in document["headers"]
    assert (document["service"], document["pod"], document["namespace"]) == (
        "cart",
        "cart-6d8f7c9b5-q2w4x",
        "shop",
    )
    assert document["httpPort"] == echo_url.rsplit(":", 1)[1]
    markers = extract_markers((), body)
    assert markers is not None and markers.format == "echo-basic" and markers.workload == "cart"


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [("?status=503", {}, 503), ("", {"X-Echo-Status": "418"}, 418), ("?status=oops", {}, 400)],
)
async def test_echo_status_by_query_or_header(
    echo_url: str, query: str, headers: dict[str, str], status: int
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{echo_url}/{query}", headers=headers) as response,
    ):
        assert response.status == status


async def test_echo_delay_by_query(echo_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(f"{echo_url}/slow?delay=0.3s") as response:
            assert response.status == 200
        assert time.monotonic() - started >= 0.3  # a hang is pytest-timeout's to catch


def test_manifest_is_a_consistent_deployment_and_service() -> None:
    deployment, service = yaml.safe_load_all(MANIFEST.read_text())
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = template["spec"]["containers"]
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    # The container's arguments are a valid shadowdiff command line, on the declared port.
    args = build_parser().parse_args(container["args"])
    assert args.command == "echo" and args.port == port_names["http"]
    assert args.host == "0.0.0.0"  # reachable from the entry points, not only inside the pod
    # The identity comes from the variables `shadowdiff echo` reads.
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "SERVICE_NAME" in env
