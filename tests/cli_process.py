"""The CLI as a real process in a process group of its own, as a terminal or a CI runner
starts it: conditions to wait for before signalling it, and what it left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

import psutil


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Wait for `condition` (polled every 10 ms); fail, naming `what`, after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


class CliProcess:
    """`python -m shadowdiff ARGS`, its output collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid  # also its process group: it leads a session of its own
        self.stderr_so_far = ""  # what it wrote to stderr until now, to wait for a line
        self._output = asyncio.ensure_future(self._collect())

    async def _collect(self) -> tuple[bytes, bytes]:
        assert self.process.stdout is not None and self.process.stderr is not None
        stderr = self.process.stderr
        chunks: list[bytes] = []

        async def read_stderr() -> bytes:
            while chunk := await stderr.read(65536):
                chunks.append(chunk)
                self.stderr_so_far = b"".join(chunks).decode(errors="replace")
            return b"".join(chunks)

        stdout, errors = await asyncio.gather(self.process.stdout.read(), read_stderr())
        return stdout, errors

    @classmethod
    async def start(cls, *args: str, prelude: str | None = None) -> CliProcess:
        """Start the CLI; `prelude`, when given, is Python run first in the same process
        (to plant a fault), then the CLI runs as `python -m shadowdiff` would."""
        command = ["-m", "shadowdiff"]
        if prelude is not None:
            command = ["-c", prelude + "\nfrom shadowdiff.__main__ import main\nmain()\n"]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        return cls(process)

    def catches_stop_signals(self) -> bool:
        """Whether SIGINT and SIGTERM have handlers yet (the kernel's SigCgt mask)."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("SigCgt:"):
                        caught = int(line.split()[1], 16)
                        return all(caught >> (s - 1) & 1 for s in (signal.SIGINT, signal.SIGTERM))
        except OSError:
            pass
        return False

    def workers(self) -> list[psutil.Process]:
        """The `--workers` processes started so far (not multiprocessing's resource tracker)."""
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                command = " ".join(child.cmdline())
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            if "spawn_main" in command:
                found.append(child)
        return found

    def send(self, signum: int, *, group: bool = False) -> bool:
        """Send to the process, or to its whole group as a terminal's Ctrl-C does; False
        when it has ended already (a second Ctrl-C after a quick exit)."""
        try:
            if group:
                os.killpg(self.pid, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    async def finish(self, timeout_s: float = 60) -> tuple[int, str, str]:
        """Exit code, stdout and stderr; kills the whole group if it does not end in time."""
        try:
            stdout, stderr = await asyncio.wait_for(asyncio.shield(self._output), timeout_s)
        except TimeoutError:
            self.kill_group()
            raise AssertionError(f"shadowdiff did not exit within {timeout_s} s") from None
        code = await self.process.wait()
        return code, stdout.decode(errors="replace"), stderr.decode(errors="replace")

    def left_behind(self) -> list[psutil.Process]:
        """Live processes of its group (zombies only wait for a reaper: they run nothing)."""
        alive = []
        for candidate in psutil.process_iter(["status"]):
            try:
                if (
                    os.getpgid(candidate.pid) == self.pid
                    and candidate.info["status"] != psutil.STATUS_ZOMBIE
                ):
                    alive.append(candidate)
            except (ProcessLookupError, psutil.Error):
                continue
        return alive

    async def nothing_left_behind(self, timeout_s: float = 10) -> bool:
        """Whether the group empties within `timeout_s` (multiprocessing's resource tracker
        leaves a moment after the last process holding its pipe)."""
        try:
            await until(lambda: not self.left_behind(), timeout_s, "the process group to end")
        except AssertionError:
            self.kill_group()
            return False
        return True

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
