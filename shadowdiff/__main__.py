"""`python -m shadowdiff` and the `shadowdiff` command.

Stop signals are caught before anything else is imported: loading the command line (aiohttp,
numpy, pydantic) takes a good part of a second, and a Ctrl-C or a SIGTERM during it must still
end in a report, not in a traceback or a silent death.
"""

# Held back from the very first line: importing even the handlers' module takes some 20 ms
# (contextlib, typing, re), and a Ctrl-C meanwhile would end in a traceback. A signal that
# comes now waits, and arrives once `main` has installed the handlers. `_signal`, the C
# module under `signal`, is loaded with the interpreter: `signal` itself imports enum first.
# (By name: typeshed has no stub for it.)
_signal = __import__("_signal")
_signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})

import sys  # noqa: E402  (after the mask, on purpose)

from shadowdiff.stop import STOP  # noqa: E402


def main() -> None:
    STOP.install()
    with STOP.deferred():  # unblocks both signals as it ends: a held one arrives then
        from shadowdiff.cli import main as run_command

    code = run_command()
    STOP.ignore_from_now()  # the report is written and the exit code decided
    sys.exit(code)


if __name__ == "__main__":
    main()
