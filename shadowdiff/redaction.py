"""Secrets never reach an output: what counts as one, and how each output hides it.

Three kinds of secret, each hidden wherever it appears in the text of a report or a message,
in every encoding a report uses (as written, JSON-escaped, percent-encoded, HTML-escaped):
- values substituted from the environment, shown as `${NAME}`, whatever their length (a value
  under four characters only where it stands alone, so that `${PORT}` does not eat every 80);
- values of sensitive headers written in the scenario (Authorization, Cookie, ... and the
  scenario's own `redact.headers`), and `user:password` from URLs, shown as a fingerprint;
- values that a side *answered* under a sensitive header name, which the scenario cannot know
  in advance: a difference on such a header (or a JSON field named like one) shows fingerprints.

A fingerprint is an HMAC-SHA256 of the value under a key the user keeps (`load_key`), so the
same value gives the same fingerprint across runs and "changed" stays visible without the value.
Pure, except `load_key`, which reads or creates the key file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, quote_plus

from shadowdiff.wire import encode_target_text

DEFAULT_SENSITIVE_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-amz-security-token",
        "x-csrf-token",
        "x-xsrf-token",
    }
)
KEY_VARIABLE: Final = "SHADOWDIFF_REDACTION_KEY"
# Shorter environment values are replaced only where they stand alone (not inside a word or
# a number), so that a two-digit value does not garble every figure of a report.
_SHORT_VALUE_CHARS: Final = 4
# Where shadowdiff cuts a long text (a line of a body diff, a grpc-message, the first bytes of a
# gRPC answer), sometimes after the closing quote of a repr: a secret cut there is a beginning
# of it that no whole spelling matches, hidden when at least this many characters remain.
_CUT: Final = re.compile(r"""['"]?…""")
_CUT_CHARS: Final = 4
# What shadowdiff writes of itself, never a value from a scenario, a server or the environment:
# left as written, so that a short environment value ("1") cannot turn the report's schema
# into `shadowdiff.report/${FLAG}` and make the report unreadable by shadowdiff itself.
# (`redact_headers` holds header names, which are not secret values.)
_OWN_FIELDS: Final = frozenset({"schema", "tool", "redaction", "redact_headers", "histograms"})
# Difference kinds whose `field` is a header name and whose values are that header's values.
# (Not `cookie`: its field is a cookie's name and its values are attribute shapes such as
# `httponly; secure`, never the cookie's value, and hiding them would hide what was lost.)
_HEADER_KINDS: Final = frozenset(
    {"header_missing", "header_added", "header_changed", "backend_header", "grpc_trailer"}
)
# The last name in a JSON path such as `$.headers.Authorization[0]` or `$['x-api-key']`.
_LAST_JSON_NAME: Final = re.compile(r"""(?:\.|\[['"])([^.\[\]'"]+)['"]?\]?(?:\[\d+\])*$""")

# Names that say they hold a credential, whatever the service calls them.
_CREDENTIAL_NAME: Final = re.compile(
    r"auth|token|secret|passw|api-?key|session|cookie|signature|credential|private"
)

KeySource = Literal["environment", "file", "ephemeral"]


@dataclass(frozen=True)
class Secrets:
    """What one scenario knows to be secret."""

    environment: Mapping[str, str] = field(default_factory=dict)  # value -> variable name
    literals: frozenset[str] = frozenset()  # sensitive header values, URL credentials
    headers: frozenset[str] = DEFAULT_SENSITIVE_HEADERS  # lower-case names


def sensitive_literals(headers: Iterable[tuple[str, str]], sensitive: frozenset[str]) -> set[str]:
    """The values of sensitive headers, and each cookie's value on its own, as secrets."""
    found = set()
    for name, value in headers:
        if name.lower() not in sensitive or not value:
            continue
        found.add(value)
        if name.lower() in ("cookie", "set-cookie"):
            for part in value.split(";"):
                _, equals, cookie_value = part.partition("=")
                if equals and cookie_value.strip():
                    found.add(cookie_value.strip())
        _scheme, space, credentials = value.partition(" ")
        if space and credentials.strip():
            found.add(credentials.strip())  # `Bearer xyz`: the token alone is a secret too
    return found


def _encodings(value: str) -> set[str]:
    """`value` as each output may spell it: as written, JSON-escaped, percent-encoded (as
    `quote` does, as shadowdiff encodes URLs, and with lower-case hex as some servers do),
    HTML-escaped, and as Python's repr shows it in messages."""
    raw = value.encode("utf-8", "surrogatepass")
    percent = {
        quote(raw, safe=""),
        quote(raw, safe="/:@!$&'()*+,;="),
        quote_plus(raw),
    }
    with contextlib.suppress(UnicodeError):  # a lone surrogate is never sent, so never encoded
        percent.add(encode_target_text(value))
    percent |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), p) for p in percent}
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        repr(value)[1:-1],
        repr(raw)[2:-1],  # within the repr of bytes (a gRPC answer's first bytes)
        *percent,
    }


class Redactor:
    """Hides one scenario's secrets in text and in report data."""

    def __init__(self, secrets_: Secrets, key: bytes) -> None:
        self._key = key
        self.headers = secrets_.headers
        placeholders: dict[str, str] = {}
        short: dict[str, str] = {}
        for value, name in secrets_.environment.items():
            if not value:
                continue
            target = short if len(value) < _SHORT_VALUE_CHARS else placeholders
            for spelling in _encodings(value):
                target.setdefault(spelling, f"${{{name}}}")
        for value in secrets_.literals:
            if not value:
                continue
            target = short if len(value) < _SHORT_VALUE_CHARS else placeholders
            for spelling in _encodings(value):
                target.setdefault(spelling, self.fingerprint(value))
        self._placeholders = {**short, **placeholders}
        # A server may change a secret's case (an echo in capitals, a hex digest's letters):
        # spellings long enough to be no ordinary word are hidden in any case.
        self._folded = {spelling.lower(): p for spelling, p in reversed(placeholders.items())}
        self._cut_spellings = sorted(placeholders.items(), key=lambda item: -len(item[0]))
        alternatives = [
            f"(?i:{re.escape(spelling)})"
            for spelling in sorted(placeholders, key=len, reverse=True)
        ] + [
            rf"(?<![A-Za-z0-9]){re.escape(spelling)}(?![A-Za-z0-9])"
            for spelling in sorted(short, key=len, reverse=True)
        ]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def fingerprint(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return f"[redacted {digest.hexdigest()[:10]}]"

    @property
    def key_id(self) -> str:
        """Names the key without revealing it: equal ids, comparable fingerprints."""
        return hmac.new(self._key, b"shadowdiff key id", hashlib.sha256).hexdigest()[:8]

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        value = self._pattern.sub(self._placeholder, value)
        return self._cut_secrets(value) if "…" in value else value

    def _placeholder(self, match: re.Match[str]) -> str:
        found = match.group()
        placeholder = self._placeholders.get(found) or self._folded.get(found.lower())
        if placeholder is not None:
            return placeholder
        # Letters the pattern matches in any case that lower() does not make equal (the long
        # s, the Kelvin sign): the spelling is found again as the pattern found it.
        return next(
            placeholder
            for spelling, placeholder in self._cut_spellings
            if re.fullmatch(re.escape(spelling), found, re.IGNORECASE)
        )

    def _cut_secrets(self, value: str) -> str:
        """`value` with the beginning of a secret hidden where a cut (`…`) ends it."""
        pieces, start = [], 0
        for cut in _CUT.finditer(value):
            head = value[start : cut.start()]
            for spelling, placeholder in self._cut_spellings:
                at = _cut_start(head, spelling)
                if at is not None:
                    head = head[:at] + placeholder
                    break
            pieces += [head, cut.group()]
            start = cut.end()
        return "".join([*pieces, value[start:]])

    def header_value(self, name: str, value: str | None) -> str | None:
        """A header's value as an output may show it."""
        if value is None:
            return None
        if self.is_sensitive_name(name):
            return self.fingerprint(value)
        return self.text(value)

    def is_sensitive_field(self, kind: str, field_name: str) -> bool:
        """Whether a difference's values are a sensitive header's, or a header's or JSON
        field's whose name says it holds a credential (`X-Upstream-Authorization`,
        `$.HTTP_AUTHORIZATION`, `$.session_token`)."""
        if kind in _HEADER_KINDS:
            return self.is_sensitive_name(field_name)
        if kind == "json_field":
            match = _LAST_JSON_NAME.search(field_name)
            return match is not None and self.is_sensitive_name(match.group(1))
        return False

    def is_sensitive_name(self, name: str) -> bool:
        normal = name.lower().replace("_", "-")
        return normal in self.headers or _CREDENTIAL_NAME.search(normal) is not None

    def walk(self, data: Any) -> Any:
        """`data` (JSON-ready) with every secret hidden: difference values on sensitive
        fields as fingerprints, and every known secret in every string."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list | tuple):
            # Tuples too (dataclasses.asdict keeps them, e.g. a certificate's names): JSON
            # writes them as lists, and a secret in one would otherwise pass unseen.
            return [self.walk(item) for item in data]
        if not isinstance(data, dict):
            return data
        kind, field_name = data.get("kind"), data.get("field")
        if (
            isinstance(kind, str)
            and isinstance(field_name, str)
            and self.is_sensitive_field(kind, field_name)
        ):
            data = {
                **data,
                "examples": [self._fingerprinted(e) for e in data.get("examples", [])],
            }
            data = self._fingerprinted(data)
        return {
            self.text(key) if isinstance(key, str) else key: (
                value if key in _OWN_FIELDS else self.walk(value)
            )
            for key, value in data.items()
        }

    def _fingerprinted(self, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        return {
            key: self.fingerprint(value)
            if key in ("baseline", "candidate") and isinstance(value, str)
            else value
            for key, value in entry.items()
        }


def _cut_start(head: str, spelling: str) -> int | None:
    """Where the longest beginning of `spelling` (at least _CUT_CHARS long, shorter than the
    whole, which the pattern already hid) ends `head`, in any case, or None."""
    folded = head.lower()
    if len(folded) == len(head):  # else a letter changed length (İ): compared as written
        head, spelling = folded, spelling.lower()
    at = head.find(spelling[0], max(len(head) - len(spelling) + 1, 0))
    while 0 <= at <= len(head) - _CUT_CHARS:
        if spelling.startswith(head[at:]):
            return at
        at = head.find(spelling[0], at + 1)
    return None


def load_key(environ: Mapping[str, str]) -> tuple[bytes, KeySource]:
    """The fingerprint key: `$SHADOWDIFF_REDACTION_KEY`, else a key file created once
    (`$XDG_CONFIG_HOME/shadowdiff/redaction.key`, mode 0600), else a key for this run only
    (fingerprints then compare within the run, not across runs)."""
    if environ.get(KEY_VARIABLE):
        return environ[KEY_VARIABLE].encode("utf-8", "surrogateescape"), "environment"
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    path = Path(config).expanduser() / "shadowdiff" / "redaction.key"
    try:
        return path.read_bytes(), "file"
    except OSError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key)
        return key, "file"
    except FileExistsError:
        try:
            return path.read_bytes(), "file"  # another process created it first
        except OSError:
            return key, "ephemeral"
    except OSError:
        return key, "ephemeral"
