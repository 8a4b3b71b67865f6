"""`python -m shadowdiff` and the `shadowdiff` command.

Stop signals are caught before anything else is imported: loading the command line (aiohttp,
numpy, pydantic) takes a good part of a second, and a Ctrl-C or a SIGTERM during it must still
end in a report, not in a traceback or a silent death.
"""

import sys

from shadowdiff.stop import STOP


def main() -> None:
    STOP.install()
    with STOP.deferred():
        from shadowdiff.cli import main as run_command

    code = run_command()
    STOP.ignore_from_now()  # the report is written and the exit code decided
    sys.exit(code)


if __name__ == "__main__":
    main()
