"""What may go on the wire: the rules every request passes before it is sent.

Pure checks, applied twice: by the scenario loader (one located error per problem, before
anything is sent) and by the engine and the transports just before sending, as the last line
of defence for requests built by hand through the library or read from recorded traffic.
Messages never quote a header value: it may be a secret.

RFC 9110 section 5.5 allows horizontal tab, space and visible ASCII in a field value, plus
obs-text (bytes above 0x7F) that shadowdiff does not send: a non-ASCII value is an error, not a
guess at an encoding. In URLs non-ASCII text is percent-encoded as UTF-8 and host names go
through IDNA (UTS #46), as curl and browsers do; everything else is sent as written, since
`//`, `..` and stray `%` are what a probe tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import idna

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers that make a safe-looking request act as another method on many frameworks (which
# also read them with underscores, as CGI-style variables).
METHOD_OVERRIDE_HEADERS: Final = frozenset(
    {"x-http-method-override", "x-method-override", "x-http-method"}
)
# Set by the transports from the URL and the body, never by a request.
AUTOMATIC_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding"})
# Connection-specific fields (RFC 9110 section 7.6.1; HTTP2-Settings, RFC 7540 section 3.2.1):
# the first proxy consumes them, so a recorded or planned request never carries them.
CONNECTION_HEADERS: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "http2-settings"}
)
# RFC 9113 section 8.2.2: the fields that make an HTTP/2 request malformed (TE but "trailers").
_HTTP2_FORBIDDEN: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)


def http2_forbidden(name: str, value: str) -> bool:
    """Whether HTTP/2 forbids the request field `name: value`: the loader refuses what the
    HTTP/2 transport could not send, by the same rule."""
    lower = name.lower()
    return lower in _HTTP2_FORBIDDEN and (lower != "te" or value.strip() != "trailers")


# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Anything but HTAB, SP and VCHAR (0x21-0x7E).
_NOT_FIELD_CHAR: Final = re.compile(r"[^\t\x20-\x7e]")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_NAMED_CONTROLS: Final = {"\r": "CR", "\n": "LF", "\x00": "NUL", "\t": "tab", "\x7f": "DEL"}
# What the path and query may hold once encoded: visible ASCII (RFC 9112 request-target).
_ENCODE_IN_TARGET: Final = re.compile(r"[^\x21-\x7e]")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class WireError(ValueError):
    """A string cannot be sent as written; the message says why without quoting it."""


def _describe(char: str, position: int) -> str:
    if char in _NAMED_CONTROLS:
        what = f"a control character ({_NAMED_CONTROLS[char]})"
    elif ord(char) < 0x20 or ord(char) == 0x7F:
        what = f"a control character (U+{ord(char):04X})"
    else:
        what = f"a non-ASCII character (U+{ord(char):04X})"
    return f"{what} at position {position + 1}"


def header_name_problem(name: str) -> str | None:
    """Why `name` cannot be a header name, or None."""
    if not _TOKEN.fullmatch(name):
        return "not a valid header name (RFC 9110 token characters only)"
    return None


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as a header value, or None. Never quotes the value."""
    bad = _NOT_FIELD_CHAR.search(value)
    if bad is not None:
        hint = (
            "; header values are sent as ASCII: percent-encode or base64 the text"
            if ord(bad.group()) > 0x7F
            else "; it would end the header line and let the rest of the value become "
            "another header or request"
            if bad.group() in "\r\n"
            else ""
        )
        return f"the value holds {_describe(bad.group(), bad.start())}{hint}"
    if value != value.strip(" \t"):
        return "the value starts or ends with whitespace, which servers strip"
    return None


def method_problem(method: str) -> str | None:
    if not _TOKEN.fullmatch(method):
        return "not a valid method (RFC 9110 token characters only)"
    return None


def encode_target_text(text: str) -> str:
    """Percent-encode non-ASCII text (as UTF-8) and spaces; keep everything else as written."""
    return _ENCODE_IN_TARGET.sub(
        lambda match: "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8")), text
    )


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host  # as written: case and a trailing dot can be probes
    trailing_dot = host.endswith(".")
    try:
        encoded = idna.encode(host.rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise WireError(f"the host name is not a valid internationalised name: {exc}") from None
    return encoded + ("." if trailing_dot else "")


def prepare_url(url: str) -> tuple[str, str | None]:
    """The URL as it will be sent, and its `user:password` part (removed from the URL) if any.

    Raises `WireError` for control characters anywhere, for text that is not Unicode (a
    recorded line's invalid UTF-8, kept as surrogates), and for a host name IDNA refuses.
    """
    control = _CONTROL.search(url)
    if control is not None:
        raise WireError(f"the URL holds {_describe(control.group(), control.start())}")
    if not url.isascii():
        try:
            url.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise WireError(
                f"the URL holds bytes that are not UTF-8 at character {exc.start + 1}"
            ) from None
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url, None  # not absolute: the caller reports it
    end = len(rest)
    for delimiter in "/?#":
        found = rest.find(delimiter)
        if found != -1:
            end = min(end, found)
    authority, target = rest[:end], rest[end:]
    userinfo, at, host_port = authority.rpartition("@")
    if host_port.startswith("["):
        host, port_part = host_port, ""
        close = host_port.find("]")
        if close != -1:
            host, port_part = host_port[: close + 1], host_port[close + 1 :]
    else:
        host, colon, port = host_port.partition(":")
        port_part = colon + port
    if " " in host_port:
        raise WireError("the URL's host holds a space")
    encoded = f"{scheme}://{_ascii_host(host)}{port_part}{encode_target_text(target)}"
    return encoded, (userinfo if at else None)


def target_problem(url: str) -> str | None:
    """Why `url` (already prepared) cannot be written on a request line, or None."""
    bad = _CONTROL.search(url) or _ENCODE_IN_TARGET.search(url)
    if bad is not None:
        return f"the URL holds {_describe(bad.group(), bad.start())}"
    return None


def unsafe_reason(
    method: str,
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
    *,
    grpc_health: bool = False,
) -> str | None:
    """Why this request may change state on the backends, or None when it is safe to send
    twice (and again): only GET, HEAD and OPTIONS, with no body and no method override, and
    the gRPC health check (`grpc_health`: a POST with a body that only reads)."""
    if grpc_health:
        method, body = "GET", None
    if method not in SAFE_METHODS:
        return f"{method} may change state on the backends"
    if body is not None:
        return f"a {method} with a body may change state on the backends"
    for name, _ in headers:
        if name.lower().replace("_", "-") in METHOD_OVERRIDE_HEADERS:
            return f"{name} can turn a {method} into another method on the backend"
    return None


def request_problems(method: str, url: str, headers: Iterable[tuple[str, str]]) -> list[str]:
    """Everything that stops a request from being written as stated: empty when it can be."""
    problems = []
    if (problem := method_problem(method)) is not None:
        problems.append(f"method: {problem}")
    problem = target_problem(url) or _absolute_problem(url)
    if problem is not None:
        problems.append(f"url: {problem}")
    for name, value in headers:
        if (problem := header_name_problem(name)) is not None:
            problems.append(f"header {name!r}: {problem}")
        elif name.lower() in AUTOMATIC_HEADERS:
            problems.append(f"header {name}: set from the URL and the body, never by a request")
        elif (problem := header_value_problem(value)) is not None:
            problems.append(f"header {name}: {problem}")
    return problems


def _absolute_problem(url: str) -> str | None:
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("http", "https"):
        return "not an absolute http:// or https:// URL"
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        # The loader turns `user:password@` into an Authorization header; a request built
        # otherwise must do the same, so that every transport sends it alike.
        return "credentials in the URL: send them as an Authorization header"
    if not authority or "\\" in authority:
        return "no host name"
    return None


def refusal(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
    *,
    allow_unsafe: bool,
    grpc_health: bool = False,
) -> str | None:
    """Why this request must not be sent at all, or None: it cannot be written as stated, or
    it may change state on the backends and was not allowed to."""
    headers = tuple(headers)
    problems = request_problems(method, url, headers)
    if problems:
        return "; ".join(problems)
    unsafe = unsafe_reason(method, headers, body, grpc_health=grpc_health)
    if unsafe is not None and not allow_unsafe:
        return f"{unsafe}; set allow_unsafe to send it"
    return None


# Set by the WebSocket probe itself (RFC 6455 section 4.1): a request may not write them.
WEBSOCKET_HEADERS: Final = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "sec-websocket-accept",
    }
)
# An extension offer: a name, then `; parameter` or `; parameter=value` (RFC 6455 section 9.1).
_TOKEN_TEXT: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_TEXT: Final = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_EXTENSION_OFFER: Final = re.compile(
    rf"{_TOKEN_TEXT}( *; *{_TOKEN_TEXT}( *= *({_TOKEN_TEXT}|{_QUOTED_TEXT}))?)*"
)
# Why a WebSocket message is not sent without `allow_unsafe`: the upgrade is a GET, but what
# the application does with a frame is anyone's guess (a chat message is posted twice).
WEBSOCKET_MESSAGE_UNSAFE: Final = (
    "a WebSocket message is application data that may change state on the backends"
)


def websocket_problems(
    subprotocols: Iterable[str], extensions: Iterable[str], message: str | None
) -> list[str]:
    """Why a WebSocket probe's offer cannot be written as stated: empty when it can be.
    Subprotocols are tokens (RFC 6455 section 4.1), extensions an offer each; the message is
    sent as UTF-8 text, so it must be Unicode that encodes."""
    problems = [
        f"subprotocol {index + 1}: not a token (RFC 6455: token characters only)"
        for index, name in enumerate(subprotocols)
        if not _TOKEN.fullmatch(name)
    ]
    problems += [
        f"extension {index + 1}: not an extension offer such as "
        "'permessage-deflate; client_max_window_bits'"
        for index, offer in enumerate(extensions)
        if not _EXTENSION_OFFER.fullmatch(offer)
    ]
    if message is not None:
        try:
            message.encode("utf-8")
        except UnicodeEncodeError as exc:
            problems.append(f"message: not UTF-8 text at character {exc.start + 1}")
    return problems


def websocket_refusal(
    method: str,
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
    subprotocols: Iterable[str],
    extensions: Iterable[str],
    message: str | None,
    *,
    allow_unsafe: bool,
) -> str | None:
    """Why a WebSocket probe must not be sent, beyond what `refusal` says of any request: the
    upgrade is a GET without a body whose WebSocket headers are the probe's own, and a message
    is application data (sent only with `allow_unsafe`)."""
    problems = []
    if method != "GET" or body is not None:
        problems.append("a WebSocket upgrade is a GET without a body")
    problems += [
        f"header {name}: set by the WebSocket probe, never by a request"
        for name, _ in headers
        if name.lower() in WEBSOCKET_HEADERS
    ]
    problems += websocket_problems(subprotocols, extensions, message)
    if problems:
        return "; ".join(problems)
    if message is not None and not allow_unsafe:
        return f"{WEBSOCKET_MESSAGE_UNSAFE}; set allow_unsafe to send it"
    return None
