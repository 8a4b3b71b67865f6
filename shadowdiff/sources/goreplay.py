"""GoReplay `.gor` files: records separated by a line of three monkey emoji, each a header line
`TYPE ID TIMESTAMP_NS LATENCY` and then the raw HTTP message. Only requests (type 1) are read;
recorded and replayed responses are skipped silently. Streaming: one record in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from shadowdiff.sources.record import Recorded, Skipped

SEPARATOR: Final = "\U0001f435\U0001f648\U0001f649"
MAX_RECORD_BYTES: Final = 64 * 1024**2


def _request(record: list[bytes], location: str) -> Recorded | Skipped | None:
    header = record[0].decode("ascii", "replace").split()
    if len(header) < 3:
        return Skipped(location, "malformed", "a header line `TYPE ID TIMESTAMP_NS ...`")
    if header[0] != "1":
        return None  # a response: not replayed
    message = b"".join(record[1:])
    head, _, body = message.partition(b"\r\n\r\n")
    if not _:
        head, _, body = message.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not lines:
        return Skipped(location, "malformed", "an HTTP request after the header line")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return Skipped(location, "malformed", "a request line such as `GET /path HTTP/1.1`")
    headers, host = [], None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return Skipped(location, "malformed", "header lines `Name: value`")
        name, value = name.strip(), value.strip()
        if name.lower() == "host":
            host = value
        headers.append((name, value))
    try:
        time_s: float | None = int(header[2]) / 1e9
    except ValueError:
        time_s = None
    return Recorded(
        location=location,
        method=parts[0],
        target=parts[1],
        host=host,
        headers=tuple(headers),
        body=body or None,
        time_s=time_s,
        http_version=parts[2].removeprefix("HTTP/"),
    )


def read_gor(lines: Iterable[bytes], file: str) -> Iterator[Recorded | Skipped]:
    """Each request record of a .gor file (read as binary lines)."""
    separator = SEPARATOR.encode("utf-8")
    record: list[bytes] = []
    size, start = 0, 1
    for number, line in enumerate(lines, start=1):
        if line.rstrip(b"\r\n") == separator:
            if record:
                found = _request(record, f"{file}:{start}")
                if found is not None:
                    yield found
            record, size, start = [], 0, number + 1
            continue
        size += len(line)
        if size > MAX_RECORD_BYTES:
            if record:
                yield Skipped(f"{file}:{start}", "malformed", "a record under 64 MiB")
            record = []
            continue
        record.append(line)
    if record:
        found = _request(record, f"{file}:{start}")
        if found is not None:
            yield found
