"""ingress-nginx access logs: the controller's default `upstreaminfo` format, any nginx
`log_format` string, or JSON lines written by a JSON `log-format-upstream`. Streaming: one line
in memory at a time, whatever the size of the log.

nginx writes bytes it considers unusual as `\\xHH` escapes (and `"` and `\\` too, inside quoted
fields); they are decoded back. A line that does not match the format is skipped with what was
expected, never an exception.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from shadowdiff.sources.record import Recorded, Skipped

# ingress-nginx's default `log-format-upstream` (the controller's configmap documentation).
UPSTREAMINFO: Final = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id"
)
# JSON logs have no fixed keys: these names, common in `log-format-upstream` examples, map to
# nginx variables unless the scenario gives its own map.
DEFAULT_JSON_KEYS: Final = {
    "host": "host",
    "http_host": "host",
    "server_name": "host",
    "method": "request_method",
    "request_method": "request_method",
    "uri": "uri",
    "path": "uri",
    "request_uri": "request_uri",
    "request_query": "args",
    "args": "args",
    "request": "request",
    "status": "status",
    "scheme": "scheme",
    "time": "time_iso8601",
    "time_iso8601": "time_iso8601",
    "time_local": "time_local",
    "msec": "msec",
    "timestamp": "time_iso8601",
    "user_agent": "http_user_agent",
    "http_user_agent": "http_user_agent",
    "referer": "http_referer",
    "http_referer": "http_referer",
    "upstream_addr": "upstream_addr",
    "proxy_upstream_name": "proxy_upstream_name",
    "upstream_name": "proxy_upstream_name",
    "protocol": "server_protocol",
    "server_protocol": "server_protocol",
}

_VARIABLE: Final = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# `\"`-escaped text, written unrolled (runs of plain characters between escapes) rather than as
# `(?:[^"\\]|\\.)*`: the same strings, without one alternation per character.
_QUOTED_VALUE: Final = r'[^"\\]*(?:\\.[^"\\]*)*'
# Upstream fields are lists when nginx tried several upstreams: `a:1, b:2` (or `a : b` across
# upstream groups); a lazy `\S+` would cut them in the wrong place.
_LIST_VALUE: Final = r"[^\s,]+(?:(?:, | : )[^\s,]+)*"
# What nginx writes for a variable with no value.
_BLANK: Final = ("", "-")
_ESCAPE: Final = re.compile(r"\\x([0-9A-Fa-f]{2})")
_TIME_LOCAL: Final = "%d/%b/%Y:%H:%M:%S %z"
_TIME_LOCAL_PARTS: Final = re.compile(
    r"(\d\d)/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/(\d{4}):(\d\d):(\d\d):(\d\d) "
    r"([+-])(\d\d)(\d\d)"
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}


def compile_format(log_format: str) -> re.Pattern[str]:
    """A regex with a named group per nginx variable of `log_format`."""
    pattern: list[str] = []
    position, seen = 0, set[str]()
    for match in _VARIABLE.finditer(log_format):
        literal = log_format[position : match.start()]
        pattern.append(re.escape(literal))
        name = match.group(1) or match.group(2)
        before = log_format[: match.start()]
        if before.endswith('"'):
            value = _QUOTED_VALUE
        elif before.endswith("["):
            value = r"[^\]]*"
        elif name.startswith("upstream_"):
            value = _LIST_VALUE
        else:
            value = r"\S*"
        group = name if name not in seen else f"{name}__{len(seen)}"
        seen.add(name)
        pattern.append(f"(?P<{group}>{value})")
        position = match.end()
    pattern.append(re.escape(log_format[position:]))
    return re.compile("".join(pattern))


def _unescape(value: str) -> str:
    """nginx's `\\xHH` escapes back to the bytes they stand for (as UTF-8 where they form it)."""
    if "\\x" not in value:
        return value
    raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


@functools.lru_cache(maxsize=256)
def _time_local(text: str) -> float:
    """`$time_local` (`07/Feb/2020:11:48:51 +0000`) in seconds. Every line of a second carries
    the same text, hence the cache; the common spelling is taken apart by hand, as strptime
    costs more than the rest of the line's reading, and anything else goes to strptime."""
    parts = _TIME_LOCAL_PARTS.fullmatch(text)
    if parts is None:
        return datetime.datetime.strptime(text, _TIME_LOCAL).timestamp()
    day, month, year, hour, minute, second, sign, offset_h, offset_m = parts.groups()
    offset = datetime.timedelta(hours=int(offset_h), minutes=int(offset_m))
    return datetime.datetime(
        int(year),
        _MONTHS[month],
        int(day),
        int(hour),
        int(minute),
        int(second),
        tzinfo=datetime.timezone(-offset if sign == "-" else offset),
    ).timestamp()


def _time(fields: Mapping[str, str]) -> float | None:
    """The line's time in seconds, None when the format logs none. Raises ValueError for a
    time nginx would not write (`31/Feb`, `nan`): the line is then malformed."""
    if fields.get("msec") not in (None, "", "-"):
        msec = float(fields["msec"])
        if not math.isfinite(msec):  # float() reads "nan" and "inf"
            raise ValueError("not a finite number of seconds")
        return msec
    if fields.get("time_iso8601") not in (None, "", "-"):
        return datetime.datetime.fromisoformat(fields["time_iso8601"]).timestamp()
    if fields.get("time_local") not in (None, "", "-"):
        return _time_local(fields["time_local"])
    return None


def recorded_from_fields(fields: Mapping[str, str], location: str) -> Recorded | Skipped:
    """One request from nginx variables (name -> value as logged). Called once per line of a
    log that may hold millions: lookups are kept few and inline."""
    get = fields.get
    method = get("request_method")
    target = get("request_uri")
    version = get("server_protocol")
    request_line = get("request")
    if request_line is not None and (method is None or target is None):
        parts = _unescape(request_line).split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return Skipped(location, "never_reached_backend", "a request line nginx refused")
        method, target, version = parts[0], parts[1], parts[2]
    if target is None:
        uri = get("uri")
        if uri is not None:
            args = get("args")
            target = uri if args is None or args in _BLANK else f"{uri}?{args}"
    if not method or not target:
        return Skipped(
            location,
            "malformed",
            "no method and path ($request, or $request_method and $request_uri)",
        )
    upstream = get("proxy_upstream_name")
    address = get("upstream_addr")
    if ("proxy_upstream_name" in fields and (upstream is None or upstream in _BLANK)) or (
        "upstream_addr" in fields and (address is None or address in _BLANK)
    ):
        # No upstream: nginx answered itself (a bad request line, a redirect, a 404 with no
        # route); replaying it says nothing about the backends.
        return Skipped(location, "never_reached_backend", "no upstream served it")
    headers: tuple[tuple[str, str], ...] = ()
    agent, referer = get("http_user_agent"), get("http_referer")
    if agent is not None and agent not in _BLANK:
        headers = (("User-Agent", _unescape(agent)),)
    if referer is not None and referer not in _BLANK:
        headers += (("Referer", _unescape(referer)),)
    status = get("status")
    host = get("host")
    scheme = get("scheme")
    try:
        time_s = _time(fields)
    except (ValueError, OverflowError, KeyError):  # KeyError: a month nginx does not write
        return Skipped(location, "malformed", "a time as nginx writes it ($msec, $time_local...)")
    return Recorded(
        location=location,
        method=method,
        target=_unescape(target),
        host=None if host is None or host in _BLANK else host,
        scheme=None if scheme is None or scheme in _BLANK else scheme,
        headers=headers,
        time_s=time_s,
        upstream=None if upstream is None or upstream in _BLANK else upstream,
        http_version=(version or "").removeprefix("HTTP/") or None,
        status=int(status) if status and status.isdigit() else None,
    )


def read_log(
    lines: Iterable[str], file: str, log_format: str = UPSTREAMINFO
) -> Iterator[Recorded | Skipped]:
    """Each line of an nginx access log written with `log_format`."""
    pattern = compile_format(log_format)
    # A variable logged twice has its later groups renamed `name__N`; the last one counts.
    renamed = any("__" in name for name in pattern.groupindex)
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if not text or text.isspace():
            continue
        match = pattern.fullmatch(text)
        if match is None:
            yield Skipped(
                f"{file}:{number}", "malformed", "a line in the log_format given for this source"
            )
            continue
        fields = match.groupdict()
        if renamed:
            fields = {name.split("__")[0]: value for name, value in fields.items()}
        yield recorded_from_fields(fields, f"{file}:{number}")


def read_json_log(
    lines: Iterable[str], file: str, keys: Mapping[str, str] | None = None
) -> Iterator[Recorded | Skipped]:
    """Each line of a JSON access log; `keys` maps the log's keys to nginx variable names."""
    key_map = {**DEFAULT_JSON_KEYS, **(keys or {})}
    for number, line in enumerate(lines, start=1):
        location = f"{file}:{number}"
        if not line.strip():
            continue
        try:
            document: Any = json.loads(line)
        except (ValueError, RecursionError):
            yield Skipped(location, "malformed", "one JSON object per line")
            continue
        if not isinstance(document, dict):
            yield Skipped(location, "malformed", "one JSON object per line")
            continue
        fields = {
            key_map[key]: str(value)
            for key, value in document.items()
            if key in key_map and isinstance(value, str | int | float)
        }
        yield recorded_from_fields(fields, location)
