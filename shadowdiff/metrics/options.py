"""Where a run's metrics go, as the `--metrics-*` flags say, and what is wrong with them,
checked before anything is sent. Pure: no socket, no client library (the command line imports
this before it knows whether metrics are wanted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

DEFAULT_ADDRESS: Final = "127.0.0.1"
DEFAULT_JOB: Final = "shadowdiff"
_MAX_JOB_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class MetricsOptions:
    """Where a run's metrics go; the `--metrics-*` flags, one to one. `port` 0 listens on any
    free port (the server says which)."""

    port: int | None = None
    address: str = DEFAULT_ADDRESS
    push_url: str | None = None
    job: str = DEFAULT_JOB

    @property
    def wanted(self) -> bool:
        return self.port is not None or self.push_url is not None


def listen_address(text: str) -> str:
    """An address as given on the command line: an IPv6 address may come in brackets, as it
    is written in a URL (`[::1]`)."""
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    return text


def options_problems(options: MetricsOptions) -> list[str]:
    """What is wrong with the options, one line each (flags named as the CLI spells them)."""
    problems = []
    if options.port is not None and not 0 <= options.port <= 65535:
        problems.append(f"--metrics-port must be from 0 to 65535; got {options.port}")
    if options.port is None and options.address != DEFAULT_ADDRESS:
        problems.append("--metrics-address applies to --metrics-port only")
    if not options.address or not options.address.isprintable() or " " in options.address:
        problems.append("--metrics-address: give an IP address or a host name")
    if options.push_url is not None:
        problems += _push_url_problems(options.push_url)
    elif options.job != DEFAULT_JOB:
        problems.append("--metrics-job applies to --metrics-push only")
    if not options.job or len(options.job) > _MAX_JOB_CHARS or not options.job.isprintable():
        problems.append(
            f"--metrics-job must be 1 to {_MAX_JOB_CHARS} printable characters "
            "(it becomes the job label)"
        )
    return problems


def _push_url_problems(url: str) -> list[str]:
    if not url.isprintable() or any(c.isspace() for c in url):
        return ["--metrics-push: the URL holds spaces or control characters"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return [f"--metrics-push {display_url(url)}: not a URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            f"--metrics-push {display_url(url)}: give the Pushgateway's http:// or https:// URL"
        ]
    if parts.query or parts.fragment:
        return [
            f"--metrics-push {display_url(url)}: no query or fragment (the job's path is "
            "added to the URL)"
        ]
    return []


def display_url(url: str) -> str:
    """`url` without its user and password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(the URL given)"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
