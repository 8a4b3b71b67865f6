"""`python -m shadowdiff` and the `shadowdiff` command.

Stop signals are caught before anything else is imported: loading the command line (aiohttp,
numpy, pydantic) takes a good part of a second, and a Ctrl-C or a SIGTERM during it must still
end in a report, not in a traceback or a silent death.
"""

from shadowdiff.stop import STOP


def main() -> None:
    STOP.install()
    from shadowdiff.cli import entry_point

    entry_point()


if __name__ == "__main__":
    main()
