"""Debian's Chromium, headless, driven over the DevTools protocol (a websocket on loopback,
with aiohttp's client): open a file, hear every console message, exception and request the
page makes, measure elements and take screenshots of them.

The browser is started by the test with its own profile folder, listens on an ephemeral
loopback port (it prints the address on stderr: the readiness signal), and is closed, or
killed, when the `async with` ends; every step has a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

START_TIMEOUT_S: Final = 30.0
STEP_TIMEOUT_S: Final = 30.0
_LISTENING: Final = re.compile(rb"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    """Debian's `chromium` (installed by ./dev test)."""
    return shutil.which("chromium")


@dataclass
class Page:
    """One tab, its messages so far, and the commands the tests need."""

    browser: DevTools
    session: str
    loaded: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session)

    def events(self, method: str) -> list[dict[str, Any]]:
        return [
            event["params"]
            for event in self.browser.events
            if event.get("sessionId") == self.session and event["method"] == method
        ]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions, browser log errors (a Content-Security-Policy
        refusal, a resource that failed) and failed loads, as text."""
        found = [
            f"console.{call['type']}: {call['args']}"
            for call in self.events("Runtime.consoleAPICalled")
            if call["type"] in ("error", "assert")
        ]
        found += [
            f"exception: {thrown['exceptionDetails']}"
            for thrown in self.events("Runtime.exceptionThrown")
        ]
        found += [
            f"log {entry['entry']['source']}: {entry['entry']['text']}"
            for entry in self.events("Log.entryAdded")
            if entry["entry"]["level"] == "error"
        ]
        found += [
            f"load failed: {failed['errorText']}" for failed in self.events("Network.loadingFailed")
        ]
        return found

    def requested(self) -> list[str]:
        return [sent["request"]["url"] for sent in self.events("Network.requestWillBeSent")]

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def box(self, selector: str) -> dict[str, float] | None:
        """The element's box in page coordinates (CSS pixels), or None when there is none."""
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; const r = e.getBoundingClientRect();"
            " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()"
        )
        return dict(found) if found else None

    async def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the page, or of `clip` (page coordinates) at one device pixel per CSS
        pixel, beyond the window if need be."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        answer = await self.send("Page.captureScreenshot", params)
        return base64.b64decode(answer["data"])


@dataclass
class DevTools:
    """The browser-wide websocket: commands by id, events kept in order."""

    socket: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 0
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def read(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                waiting = self.pending.pop(data["id"], None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(data)
                continue
            async with self.arrived:
                self.events.append(data)
                self.arrived.notify_all()
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(ConnectionError("the browser closed its DevTools socket"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = answer
        await self.socket.send_str(json.dumps(message))
        async with asyncio.timeout(STEP_TIMEOUT_S):
            data = await answer
        if "error" in data:
            raise AssertionError(f"{method}: {data['error']}")
        result: dict[str, Any] = data.get("result", {})
        return result

    async def wait_for(self, method: str, session: str) -> dict[str, Any]:
        def seen() -> dict[str, Any] | None:
            for event in self.events:
                if event["method"] == method and event.get("sessionId") == session:
                    params: dict[str, Any] = event["params"]
                    return params
            return None

        async with asyncio.timeout(STEP_TIMEOUT_S), self.arrived:
            await self.arrived.wait_for(lambda: seen() is not None)
        found = seen()
        assert found is not None
        return found

    async def open(self, url: str, width: int, height: int) -> Page:
        """A new tab showing `url`, listened to from before the first byte loads."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        await page.send("Page.navigate", {"url": url})
        await self.wait_for("Page.loadEventFired", page.session)
        return page


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile in `profile`, its DevTools on loopback."""
    binary = chromium_binary()
    assert binary is not None, "chromium is not installed"
    flags = [
        "--headless",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
    ]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    process = await asyncio.create_subprocess_exec(
        binary,
        *flags,
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr: list[bytes] = []
    drain: asyncio.Task[None] | None = None
    closing = False
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                line = await process.stderr.readline()
                if not line:
                    raise AssertionError(f"chromium ended before listening: {b''.join(stderr)!r}")
                stderr.append(line)
                if listening := _LISTENING.search(line):
                    break

        async def keep_draining() -> None:
            # Chromium writes to stderr all along; a full pipe would stall it.
            assert process.stderr is not None
            while await process.stderr.readline():
                pass

        drain = asyncio.ensure_future(keep_draining())
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(listening.group(1).decode(), max_msg_size=0) as socket,
        ):
            browser = DevTools(socket)
            reader = asyncio.ensure_future(browser.read())
            try:
                yield browser
            finally:
                with contextlib.suppress(Exception):
                    await browser.send("Browser.close")
                    closing = True
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
    finally:
        try:
            # Closed by the protocol: it ends by itself; otherwise it is killed at once.
            async with asyncio.timeout(10 if closing else 0):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
