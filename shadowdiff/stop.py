"""Which signal asked the process to stop, recorded whenever it arrives.

SIGINT (Ctrl-C) and SIGTERM (CI timeouts, `kill`) must never cut a run short of its report, at
any moment: during start-up, while workers start, while the report is built. So the handler
never raises: it records the first signal and tells whoever listens (a running replay cancels
itself); later signals are counted and change nothing. Commands that have no report to save
ask for `raise_on_signal` instead. This module imports nothing heavy, so that the command
line can install it before importing the rest of shadowdiff.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Final

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """Raised by the handler in `raise_on_signal` mode: the command ends with 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT and SIGTERM handlers that record the first signal instead of raising."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.count = 0
        self.raise_on_signal = False
        self._listener: Callable[[], object] | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> None:
        """Handle both signals from now on (again: a no-op)."""
        for signum in STOP_SIGNALS:
            if signum not in self._previous:
                self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Restore the handlers found by `install` and forget what was received."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self.received, self.count, self.raise_on_signal = None, 0, False
        self._listener = None

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Block both signals in this thread meanwhile: one that comes waits, then arrives.

        Threads started meanwhile keep them blocked for good (a thread inherits the mask of
        the thread that starts it). Import heavy modules inside: numpy's BLAS starts threads
        as it is imported, and the kernel gives a process-wide signal to any thread that does
        not block it, which matters while the workers start (see workers.py)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def ignore_from_now(self) -> None:
        """Ignore both signals for the rest of the process's life. Call once the outcome is
        decided: Python's shutdown puts the default handlers back, and a late signal (the
        second of a double Ctrl-C) would then kill the process, losing its exit code."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def listen(self, callback: Callable[[], object] | None) -> None:
        """Call `callback` on the first signal (at once if one already came); None stops."""
        self._listener = callback
        if callback is not None and self.received is not None:
            callback()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.received is not None:
            return
        self.received = signal.Signals(signum)
        if self.raise_on_signal:
            raise StopRequested(signum)
        if self._listener is not None:
            self._listener()

    @property
    def exit_code(self) -> int | None:
        """What a process ended by the received signal exits with (128 + its number)."""
        return None if self.received is None else 128 + int(self.received)


# One per process: signal handlers are process-wide.
STOP: Final = StopSignals()
