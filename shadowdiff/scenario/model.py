"""The scenario file format as pydantic models: field types, defaults, and the JSON Schema.

This is the edge where untrusted YAML becomes typed data. It checks shape and single-field
rules; rules that span fields or touch the file system live in `shadowdiff.scenario.load`.
`shadowdiff schema` prints `ScenarioFile.model_json_schema()` for editors.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shadowdiff.difference import DifferenceKind, Severity
from shadowdiff.wire import (
    WireError,
    header_name_problem,
    header_value_problem,
    prepare_url,
    websocket_problems,
)

Method = Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
Scheme = Literal["http", "https"]

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_BYTE_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
# A generated body is built once and held in memory for the whole run.
MAX_GENERATED_BODY_BYTES: Final = 64 * 1024**2
_BYTE_UNITS: Final = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}


def _check_header_name(name: str) -> str:
    # Underscores are legal token characters, and worth probing.
    problem = header_name_problem(name)
    if problem is not None:
        raise ValueError(f"{problem}; got {name!r}")
    return name


def _check_header_value(value: str) -> str:
    problem = header_value_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _check_address(address: str) -> str:
    candidate = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ipaddress.ip_address(candidate)
        return candidate
    except ValueError:
        pass
    labels = address.rstrip(".").split(".")
    if not address or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError(
            f"expected an IPv4 address, an IPv6 address or a hostname; got {address!r}"
        )
    return address


def _check_hostname(host: str) -> str:
    # Non-ASCII names are sent in their IDNA form (UTS #46), as curl and browsers do.
    ascii_host = host
    if not host.isascii():
        try:
            ascii_host = prepare_url(f"http://{host}/")[0].removeprefix("http://")[:-1]
        except WireError as exc:
            raise ValueError(str(exc)) from None
    labels = ascii_host.rstrip(".").split(".")
    if not host or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError(f"expected a hostname such as app.example.com; got {host!r}")
    return ascii_host


def _check_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"a path starts with '/'; got {path!r}")
    # Control characters are refused; non-ASCII text is percent-encoded as UTF-8.
    try:
        return prepare_url(f"http://host{path}")[0].removeprefix("http://host")
    except WireError as exc:
        raise ValueError(str(exc)) from None


def _parse_byte_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 2MiB or 1024")
    if isinstance(value, int):
        size = value
    else:
        match = _BYTE_SIZE.match(str(value))
        if not match:
            raise ValueError(f"expected a size such as 2MiB, 512KiB or 1024; got {value!r}")
        size = int(match.group(1)) * _BYTE_UNITS[match.group(2)]
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


def _http_as_text(value: Any) -> Any:
    """`http: 2` and `http: 1.1` are numbers in YAML: read them as the versions they name."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (2, 1.1):
        return "2" if value == 2 else "1.1"
    return value


HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]
Headers = dict[HeaderName, HeaderValue]
Address = Annotated[str, AfterValidator(_check_address)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
UrlPath = Annotated[str, AfterValidator(_check_path)]
Port = Annotated[int, Field(ge=1, le=65535)]
HttpSetting = Annotated[
    Literal["1.1", "2", "auto"],
    BeforeValidator(_http_as_text),
    # Editors see what the loader reads: `2` and `1.1` unquoted too.
    WithJsonSchema({"enum": ["1.1", "2", "auto", 2, 1.1]}),
]
_HTTP_DESCRIPTION: Final = (
    '"1.1" (the default); "2": h2 by ALPN over TLS (a server that does not choose it is the '
    'failure tls_handshake), h2c with prior knowledge over plain HTTP; "auto": over TLS, '
    "h2 or HTTP/1.1 as the server chooses by ALPN, HTTP/1.1 over plain HTTP"
)
ByteSize = Annotated[int, Field(json_schema_extra={"examples": ["2MiB", 1024]})]
_PositiveByteSize = Annotated[
    int,
    BeforeValidator(_parse_byte_size),
    Field(ge=1, json_schema_extra={"examples": ["64KiB", 65536]}),
]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo must never pass silently.
    # Infinity and NaN are no setting, and JSON (the report embeds the scenario) has neither.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Ports(_Strict):
    """Ports to connect to on the target's address, per scheme of the request URL."""

    http: Port = 80
    https: Port = 443


class TargetTls(_Strict):
    """How to trust and authenticate to one entry point. Paths are relative to the scenario."""

    ca: str | None = Field(None, description="PEM CA bundle; default: the system trust store")
    client_cert: str | None = Field(None, description="PEM client certificate for mTLS")
    client_key: str | None = Field(None, description="PEM key of client_cert")
    insecure: bool = Field(False, description="skip certificate verification (prints a warning)")


TlsVersion = Literal["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
TLS_VERSIONS: Final[tuple[TlsVersion, ...]] = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
CipherFamily = Literal["ECDHE-ECDSA-AESGCM", "ECDHE-RSA-AESGCM", "ECDHE-CHACHA20", "DHE", "RSA"]


class RequestTls(_Strict):
    """One request's TLS, on both targets: each field given replaces the target's setting."""

    ca: str | None = Field(
        None, description="PEM CA bundle to verify against instead of the target's"
    )
    insecure: bool | None = Field(
        None,
        description="true: skip certificate verification (prints a warning); false: verify "
        "even where the target says insecure",
    )
    versions: list[TlsVersion] | None = Field(
        None, min_length=1, description="the TLS versions offered, consecutive: [TLSv1.2]"
    )
    sni: Hostname | None = Field(
        None,
        description="SNI to send instead of the URL's host (Host is unchanged; the certificate "
        "is checked against this name): probes 421 Misdirected Request",
    )

    @field_validator("versions")
    @classmethod
    def _consecutive(cls, versions: list[TlsVersion] | None) -> list[TlsVersion] | None:
        if versions:
            positions = sorted({TLS_VERSIONS.index(version) for version in versions})
            if positions != list(range(positions[0], positions[-1] + 1)):
                raise ValueError(
                    "list consecutive versions, such as [TLSv1.2, TLSv1.3]: a TLS client "
                    "offers a range"
                )
        return versions


class Target(_Strict):
    """One entry point: where to connect, while URLs keep the production hostname."""

    address: Address = Field(description="IPv4, IPv6 or hostname to connect to")
    ports: Ports = Ports()
    tls: TargetTls = TargetTls()
    headers: Headers = Field(default_factory=dict, description="added to every request")
    http: HttpSetting = Field(
        "1.1", description="the HTTP version of requests that do not set one: " + _HTTP_DESCRIPTION
    )


class Targets(_Strict):
    baseline: Target = Field(description="the entry point in production today (Ingress NGINX)")
    candidate: Target = Field(description="the new entry point (a Gateway API data plane)")


class Timeouts(_Strict):
    connect_s: float = Field(5.0, gt=0, le=600)
    total_s: float = Field(30.0, gt=0, le=3600)


class ResponseLimits(_Strict):
    """The most response head either transport accepts; a larger one is `malformed_response`.
    Well above real answers (large Content-Security-Policy and Set-Cookie lines are a few KiB),
    and small enough that a hostile answer cannot exhaust memory."""

    header_line_bytes: _PositiveByteSize = Field(
        65_536, description="the longest status or header line"
    )
    header_bytes: _PositiveByteSize = Field(
        262_144, description="the whole response head (status line and headers)"
    )
    header_fields: int = Field(500, ge=1, description="the most header fields")


class Defaults(_Strict):
    """Settings every request inherits. Redirects are never followed: they are what is tested."""

    timeouts: Timeouts = Timeouts()
    headers: Headers = Field(default_factory=dict)
    concurrency: int = Field(16, ge=1, le=10_000, description="request pairs in flight")
    transport: Literal["lean", "aiohttp"] = Field(
        "lean", description="lean: HTTP/1.1 on the event loop with httptools; aiohttp: its client"
    )
    body_capture: Annotated[int, Field(ge=0)] = Field(
        65_536, description="bytes of each response body kept for comparison (all are hashed)"
    )
    response_limits: ResponseLimits = ResponseLimits()
    trace: bool = Field(
        True,
        description="send a W3C traceparent on every request (one trace id per pair, each side "
        "its own span id, sampled); false for an entry point that misbehaves with it",
    )

    @model_validator(mode="before")
    @classmethod
    def _sizes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "body_capture" in data:
            data = {**data, "body_capture": _parse_byte_size(data["body_capture"])}
        return data


class Body(_Strict):
    """A request body: exactly one of text, json, file or a generated size."""

    text: str | None = None
    json_value: Any = Field(None, alias="json")
    file: str | None = None
    size: ByteSize | None = Field(
        None,
        le=MAX_GENERATED_BODY_BYTES,
        description="generated body of this many bytes (at most 64 MiB: it is held in memory)",
    )
    content_type: HeaderValue | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [key for key in ("text", "json", "file", "size") if key in data]
        if len(given) != 1:
            raise ValueError(
                "a body has exactly one of text, json, file or size; "
                f"got {', '.join(given) if given else 'none'}"
            )
        if "size" in data:
            data = {**data, "size": _parse_byte_size(data["size"])}
        return data


def _check_subprotocol(name: str) -> str:
    if websocket_problems([name], [], None):
        raise ValueError("not a subprotocol name (RFC 6455: token characters only)")
    return name


def _check_unique_subprotocols(names: list[str]) -> list[str]:
    # RFC 6455 section 4.1: the offered subprotocols "MUST all be unique strings".
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"subprotocol offered twice: {', '.join(repeated)}")
    return names


def _check_extension_offer(offer: str) -> str:
    if websocket_problems([], [offer], None):
        raise ValueError(
            "not an extension offer: a name, then `; parameter` or `; parameter=value`, such "
            "as 'permessage-deflate; client_max_window_bits'"
        )
    return offer


def _check_message(message: str) -> str:
    problems = websocket_problems([], [], message)
    if problems:
        raise ValueError(problems[0].removeprefix("message: "))
    return message


class WebSocket(_Strict):
    """The request sent as a WebSocket upgrade (HTTP/1.1 GET with Upgrade: websocket)."""

    subprotocols: Annotated[
        list[Annotated[str, AfterValidator(_check_subprotocol)]],
        AfterValidator(_check_unique_subprotocols),
    ] = Field(
        default_factory=list,
        max_length=32,
        description="offered in Sec-WebSocket-Protocol, in order of preference",
    )
    extensions: list[Annotated[str, AfterValidator(_check_extension_offer)]] = Field(
        default_factory=list,
        max_length=16,
        description="offered in Sec-WebSocket-Extensions, e.g. permessage-deflate (the one "
        "spoken; others are offered and compared)",
    )
    message: Annotated[str, AfterValidator(_check_message)] | None = Field(
        None,
        max_length=1024 * 1024,
        description="one text frame sent after the upgrade, its echo (the first data message "
        "back) compared as the body; application data: needs allow_unsafe",
    )
    idle_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="seconds the socket stays idle after the upgrade, before the message: a "
        "side that closes it sooner (an idle timeout) fails with reset; shorter than total_s",
    )


class GrpcRequest(_Strict):
    """A gRPC unary call over HTTP/2: the health check, or a method with a raw message."""

    health: str | None = Field(
        None,
        max_length=1024,
        description="grpc.health.v1.Health/Check for this service (HealthCheckRequest.service; "
        '"" asks about the server as a whole); sent without allow_unsafe',
    )
    method: str | None = Field(
        None,
        max_length=1024,
        description="a method path such as /orders.v1.Orders/Get (needs allow_unsafe: a gRPC "
        "call is a POST whose effects are the method's)",
    )
    message_base64: str | None = Field(
        None, max_length=1_000_000, description="the serialized request message, in base64"
    )
    message_hex: str | None = Field(
        None, max_length=1_000_000, description="the serialized request message, in hex"
    )

    @model_validator(mode="after")
    def _one_call(self) -> GrpcRequest:
        if (self.health is None) == (self.method is None):
            raise ValueError("a gRPC call has exactly one of health or method")
        if self.message_base64 is not None and self.message_hex is not None:
            raise ValueError("a message is given once: message_base64 or message_hex")
        if self.health is not None and (self.message_base64 or self.message_hex) is not None:
            raise ValueError("the health check's message is made from `health`: no message")
        return self


class Request(_Strict):
    """One named request, sent to both targets `repeat` times."""

    name: str = Field(min_length=1)
    method: Method = "GET"
    url: str = Field(description="absolute URL with the production hostname and scheme")
    headers: Headers = Field(default_factory=dict)
    body: Body | None = None
    repeat: int = Field(1, ge=1, le=10_000_000)
    allow_unsafe: bool = Field(
        False,
        description="send a method other than GET/HEAD/OPTIONS, a body, or a method override "
        "(it reaches the backends twice)",
    )
    repeat_under_load: bool = Field(
        False,
        description="with allow_unsafe: a load model may send it again and again; without "
        "this, an unsafe request is sent exactly `repeat` times",
    )
    tls: RequestTls | None = Field(
        None, description="HTTPS only: TLS settings replacing both targets' for this request"
    )
    http: HttpSetting | None = Field(
        None,
        description="the HTTP version on both targets, instead of theirs: " + _HTTP_DESCRIPTION,
    )
    websocket: WebSocket | None = Field(
        None,
        description="send the request as a WebSocket upgrade (a GET, HTTP/1.1), compare the "
        "answer, and echo one message through it",
    )
    grpc: GrpcRequest | None = Field(
        None,
        description="a gRPC call over HTTP/2 to the URL's host (its path must be /): the "
        "answer's grpc-status, grpc-message, trailers and message are compared",
    )
    ignore: list[DifferenceKind] = Field(
        default_factory=list,
        description="kinds of difference not compared for this request, e.g. [backend] when a "
        "weighted canary picks the backend at random on both sides",
    )
    backend_split: bool = Field(
        False,
        description="behind a weighted canary: compare the share of answers each backend "
        "service gave on each side over all pairs of this request (a chi-square test), instead "
        "of the backend pair by pair; repeat the request 100 times or more",
    )
    origin: str | None = Field(
        None,
        max_length=2000,
        description="where the request comes from, for reports to point back to: `shadowdiff "
        "plan` writes namespace/ingress, rule and annotation",
    )


class Matrix(_Strict):
    """Every combination of schemes x hosts x paths x methods x header sets, as requests."""

    name: str = Field(min_length=1)
    # pydantic copies list defaults per instance, so a literal default is safe here.
    schemes: list[Scheme] = Field(["https"], min_length=1)
    hosts: list[Hostname] = Field(min_length=1)
    paths: list[UrlPath] = Field(min_length=1)
    methods: list[Method] = Field(["GET"], min_length=1)
    header_sets: list[Headers] = Field([{}], min_length=1)
    repeat: int = Field(1, ge=1, le=10_000_000)
    allow_unsafe: bool = False
    repeat_under_load: bool = False
    http: HttpSetting | None = Field(None, description="as a request's `http`")


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return pattern


def _check_json_path(pattern: str) -> str:
    if not pattern.startswith("$"):
        raise ValueError(f"a JSON path starts with '$', such as $.items[*].id; got {pattern!r}")
    return pattern


Regex = Annotated[str, AfterValidator(_check_regex)]
JsonPathPattern = Annotated[str, AfterValidator(_check_json_path)]


class MarkerSource(_Strict):
    """Where one echo marker is read: exactly one of a JSON pointer, a header or a regex."""

    json_pointer: str | None = Field(None, alias="json", description="RFC 6901, e.g. /meta/pod")
    header: HeaderName | None = None
    regex: Regex | None = Field(None, description="group `value`, else group 1, of the body")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [key for key in ("json", "header", "regex") if key in data]
            if len(given) != 1:
                raise ValueError(
                    "a marker source has exactly one of json, header or regex; "
                    f"got {', '.join(given) if given else 'none'}"
                )
        return data


class MarkerSpec(_Strict):
    """A custom echo format: where the backend's answer says what it received."""

    name: str = Field(min_length=1)
    service: MarkerSource | None = None
    pod: MarkerSource | None = None
    workload: MarkerSource | None = Field(
        None,
        description="what identifies the workload (Deployment, StatefulSet...) when pod names "
        "do not follow the Kubernetes patterns",
    )
    path: MarkerSource | None = None
    host: MarkerSource | None = None
    method: MarkerSource | None = None


class Noise(_Strict):
    """Noise calibration: send some requests twice to the baseline; a field that differs between
    two baseline answers is noise on that request unless the candidate differs clearly more."""

    share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="of repeated requests also sent again to the baseline (the first of each "
        "request always is, when share > 0); 0 turns calibration off",
    )
    relative: float = Field(0.2, ge=0, description="candidate rate must exceed noise by this ratio")
    absolute: float = Field(0.03, ge=0, le=1, description="and by this many pairs in a hundred")


class CompareSettings(_Strict):
    fail_on: Severity = Field("error", description="lowest severity that fails the run")
    ignore_headers: list[HeaderName] = Field(default_factory=list)
    ignore_json: list[JsonPathPattern] = Field(
        default_factory=list, description="JSON paths to skip; * is one step, ** any depth"
    )
    markers: list[MarkerSpec] = Field(default_factory=list, description="custom echo formats")
    builtin_markers: bool = Field(True, description="recognise the built-in echo formats")
    noise: Noise = Noise()
    latency_regression_ratio: float = Field(
        1.1, gt=1, description="a percentile is slower when its whole 95% interval exceeds this"
    )
    latency_min_difference_ms: float = Field(
        5.0,
        ge=0,
        description="a request is slower only when its paired per-pair difference's whole 95% "
        "interval also exceeds this",
    )
    latency_severity: Severity = Field(
        "warning", description="the severity of a request found clearly slower"
    )


class Acceptance(_Strict):
    """An expected difference: shown in the report, does not fail the run until `until`."""

    field: str = Field(min_length=1, description="difference field; * and ? are wildcards")
    kind: DifferenceKind | None = None
    request: str | None = Field(None, description="request name; * and ? are wildcards")
    host: Hostname | None = None
    baseline: str | None = Field(None, description="only when the baseline value is this")
    candidate: str | None = Field(None, description="only when the candidate value is this")
    reason: str = Field(min_length=1)
    until: datetime.date | None = Field(None, description="expiry date; after it the run fails")


class ClientsNeed(_Strict):
    """What the entry point's clients need: losing one of these is an error, not a warning."""

    versions: list[TlsVersion] = Field(default_factory=list)
    cipher_families: list[CipherFamily] = Field(default_factory=list)


class TlsProbeSettings(_Strict):
    """The TLS probe: handshakes with both entry points for every HTTPS hostname, compared."""

    probe: bool = Field(True, description="probe at the start of every run")
    expiry_error_days: int = Field(
        7, ge=0, le=3650, description="a candidate certificate expiring sooner is an error"
    )
    expiry_warning_days: int = Field(
        30, ge=0, le=3650, description="a candidate certificate expiring sooner is a warning"
    )
    clients_need: ClientsNeed = ClientsNeed()


class Stage(_Strict):
    """A stretch of an open-model run: the rate moves linearly to `rate` over `duration_s`."""

    duration_s: float = Field(gt=0, le=7 * 24 * 3600)
    rate: float = Field(ge=0, le=1_000_000, description="pairs per second at the end of the stage")


class LoadSettings(_Strict):
    """How requests are paced. Without this section each request is sent `repeat` times with
    `defaults.concurrency` pairs in flight."""

    model: Literal["closed", "open"] = Field(
        "closed",
        description="closed: a fixed number of pairs in flight; open: pairs start at a target "
        "rate whatever the answers do, latency measured from the intended start",
    )
    concurrency: int | None = Field(None, ge=1, le=10_000, description="closed: pairs in flight")
    rate: float | None = Field(None, gt=0, le=1_000_000, description="open: pairs per second")
    arrivals: Literal["constant", "poisson"] = "constant"
    stages: list[Stage] = Field(default_factory=list, description="open: ramps, from rate 0")
    duration_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    max_pairs: int | None = Field(None, ge=1)
    warmup_s: float = Field(0, ge=0, description="excluded from latency figures")
    max_in_flight: int = Field(10_000, ge=1, description="open: pairs in flight at most")
    rate_tolerance: float = Field(
        0.05, gt=0, lt=1, description="a run short of its target rate by more is invalid"
    )
    pace: Literal["recorded"] | None = Field(
        None,
        description="recorded: start each recorded request at its recorded time (scaled by "
        "speed), measured like the open model; every request needs a recorded time",
    )
    speed: float = Field(
        1.0, gt=0, le=1000, description="pace: recorded: 2 (or 2x) replays twice as fast"
    )

    @model_validator(mode="before")
    @classmethod
    def _speed_as_written(cls, data: Any) -> Any:
        speed = data.get("speed") if isinstance(data, dict) else None
        if isinstance(speed, str) and re.fullmatch(r"\s*[0-9]*\.?[0-9]+\s*x\s*", speed):
            data = {**data, "speed": float(speed.strip()[:-1])}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> LoadSettings:
        if self.pace == "recorded":
            timed = {"model", "concurrency", "rate", "stages", "duration_s", "max_pairs"}
            given = sorted(timed & self.model_fields_set)
            if given:
                raise ValueError(
                    "pace: recorded takes its timing from the recording; leave out "
                    + ", ".join(given)
                )
            return self
        if "speed" in self.model_fields_set:
            raise ValueError("speed applies to pace: recorded only")
        if self.model == "open" and self.rate is None and not self.stages:
            raise ValueError("an open model needs a rate or stages")
        if (
            self.model == "open"
            and not self.stages
            and self.duration_s is None
            and self.max_pairs is None
        ):
            raise ValueError("an open model with a constant rate needs duration_s or max_pairs")
        if self.stages and self.duration_s is not None:
            raise ValueError("stages set the duration; leave duration_s out")
        return self

    @property
    def total_duration_s(self) -> float | None:
        return sum(stage.duration_s for stage in self.stages) if self.stages else self.duration_s


_THRESHOLD = re.compile(
    r"^\s*(?:(?P<subject>baseline|candidate|ratio)\.(?P<metric>p50|p90|p95|p99|p99\.9|mean|max|error_rate)"
    r"|(?P<rate>difference_rate))\s*(?P<op><=|<|>=|>)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|s|us|%)?\s*$"
)
_TIME_UNITS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class Threshold(_Strict):
    """A pass/fail bound on the run, in the spirit of k6: `candidate.p99 < 250ms`,
    `ratio.p99 < 1.2`, `candidate.error_rate < 0.1%`, `difference_rate < 0.5%`."""

    check: str = Field(description="SUBJECT.METRIC OP VALUE[UNIT], or difference_rate OP VALUE%")
    request: str | None = Field(None, description="only requests whose name matches (* and ?)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"check": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _parse(self) -> Threshold:
        self.parsed  # noqa: B018 - raises on a bad expression
        return self

    @property
    def parsed(self) -> tuple[str, str, str, float]:
        """(subject, metric, operator, limit): latency limits in milliseconds, rates as
        fractions, ratios as plain numbers. Subject is "run" for difference_rate."""
        match = _THRESHOLD.match(self.check)
        if match is None:
            raise ValueError(
                "expected SUBJECT.METRIC OP VALUE such as 'candidate.p99 < 250ms', "
                "'ratio.p99 < 1.2', 'candidate.error_rate < 0.1%' or 'difference_rate < 0.5%'; "
                f"got {self.check!r}"
            )
        value, unit = float(match["value"]), match["unit"]
        subject, metric = (
            (match["subject"], match["metric"]) if match["subject"] else ("run", "difference_rate")
        )
        if subject == "ratio" and metric == "error_rate":
            # It was read as the candidate's error rate; and a ratio of two error rates has
            # no value while the baseline has no error, which is the usual case.
            raise ValueError(
                "ratio.error_rate is not a threshold: bound candidate.error_rate, or "
                f"difference_rate; got {self.check!r}"
            )
        if metric in ("error_rate", "difference_rate"):
            if unit not in (None, "%"):
                raise ValueError(
                    f"{metric} is a share: write it in % or as a fraction; got {self.check!r}"
                )
            limit = value / 100 if unit == "%" else value
        elif subject == "ratio":
            if unit is not None:
                raise ValueError(f"a ratio has no unit; got {self.check!r}")
            limit = value
        else:
            if unit not in _TIME_UNITS:
                raise ValueError(f"a latency needs a unit (us, ms or s); got {self.check!r}")
            limit = value * _TIME_UNITS[unit]
        if not math.isfinite(limit):
            # Infinity would reach the JSON report as `Infinity`, which no JSON parser takes.
            raise ValueError(f"the limit is too large to be a number; got {self.check!r}")
        return subject, metric, match["op"], limit


class RecordedSource(_Strict):
    """Recorded traffic to replay: exactly one of the four file kinds (`-` reads stdin)."""

    ingress_nginx_log: str | None = Field(None, description="an access log; also .gz")
    har: str | None = Field(None, description="a HAR 1.2 file from a browser or proxy")
    jsonl: str | None = Field(None, description="shadowdiff's own line format")
    goreplay: str | None = Field(None, description="a GoReplay .gor file (requests only)")
    format: str = Field(
        "upstreaminfo",
        description="for logs: upstreaminfo (ingress-nginx's default), json, or an nginx "
        "log_format string",
    )
    json_keys: dict[str, str] = Field(
        default_factory=dict, description="for JSON logs: key in the log -> nginx variable name"
    )
    hosts: dict[str, Hostname] = Field(
        default_factory=dict,
        description="$proxy_upstream_name (namespace-service-port) -> production hostname",
    )
    default_host: Hostname | None = Field(None, description="for lines whose host is unknown")
    scheme: Scheme = "https"

    @model_validator(mode="after")
    def _exactly_one(self) -> RecordedSource:
        given = [k for k in ("ingress_nginx_log", "har", "jsonl", "goreplay") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a source names exactly one of ingress_nginx_log, har, jsonl or goreplay; "
                f"got {', '.join(given) if given else 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(
            k for k in ("ingress_nginx_log", "har", "jsonl", "goreplay") if getattr(self, k)
        )

    @property
    def path(self) -> str:
        return str(getattr(self, self.kind))


class SourceSelection(_Strict):
    """Which recorded requests are replayed."""

    methods: list[str] | None = Field(None, description="default: all safe methods")
    hosts: list[str] = Field(default_factory=list, description="globs, e.g. *.example.com")
    paths_exclude: list[str] = Field(default_factory=list, description="globs, e.g. /healthz")
    per_route: int | None = Field(None, ge=1, description="at most N per route template")
    sample: str | int | None = Field(None, description="a share such as 10%, or a count")
    allow_unsafe: bool = Field(
        False, description="replay recorded unsafe requests, each once (they run twice)"
    )
    replay_credentials: bool = Field(
        False, description="replay recorded Authorization and Cookie headers (never printed)"
    )

    @model_validator(mode="after")
    def _sample(self) -> SourceSelection:
        self.sample_parts  # noqa: B018 - raises on a bad sample
        return self

    @property
    def sample_parts(self) -> tuple[float | None, int | None]:
        """(share, count) from `sample`."""
        if self.sample is None:
            return None, None
        if isinstance(self.sample, int) and not isinstance(self.sample, bool):
            if self.sample < 1:
                raise ValueError("sample: a count is at least 1")
            return None, self.sample
        text = str(self.sample).strip()
        if text.endswith("%"):
            try:
                share = float(text[:-1]) / 100
            except ValueError:
                share = -1.0
            if 0 < share <= 1:
                return share, None
        raise ValueError(f"sample: expected a share such as 10% or a count; got {self.sample!r}")


class CoverageSettings(_Strict):
    """Route coverage: which rules of the old and new entry points' manifests the run's
    requests reached (`shadowdiff/plan/coverage.py`)."""

    ingress: list[str] = Field(
        default_factory=list, description="files of `kubectl get ingress -A -o yaml`"
    )
    routes: list[str] = Field(
        default_factory=list, description="files of `kubectl get httproute -A -o yaml`"
    )
    min: float | None = Field(
        None,
        ge=0,
        le=1,
        description="a threshold: the share of rules reached (100% or 1.0); under it exits 4",
    )

    @model_validator(mode="before")
    @classmethod
    def _percent(cls, data: Any) -> Any:
        value = data.get("min") if isinstance(data, dict) else None
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9]*\.?[0-9]+\s*%\s*", value):
            data = {**data, "min": float(value.strip()[:-1]) / 100}
        return data

    @model_validator(mode="after")
    def _some_files(self) -> CoverageSettings:
        if not self.ingress and not self.routes:
            raise ValueError("coverage needs ingress or routes files")
        return self


class PreflightSettings(_Strict):
    """Check the new entry point's Gateway API objects before sending anything
    (`shadowdiff preflight`): a problem stops the run with exit 1."""

    files: list[str] = Field(
        min_length=1,
        description="kubectl get gatewayclass,gateway,httproute,grpcroute,referencegrant,"
        "service -A -o yaml",
    )
    secrets: str | None = Field(None, description="kubectl get secret -A -o name")

    @model_validator(mode="before")
    @classmethod
    def _one_file(cls, data: Any) -> Any:
        # `preflight: gateway.yaml` and `preflight: [a.yaml, b.yaml]` say only the files.
        if isinstance(data, str):
            return {"files": [data]}
        return {"files": data} if isinstance(data, list) else data


class Redaction(_Strict):
    """What reports never show beyond the built-in list (see `shadowdiff.redaction`)."""

    headers: list[HeaderName] = Field(
        default_factory=list,
        description="more header names whose values are shown only as fingerprints",
    )


class RollbackWhen(_Strict):
    """When `shadowdiff watch` calls for a rollback: the candidate worse than the checkpoint's
    baseline beyond chance (shadowdiff/watch/compare.py) for `intervals` intervals in a row."""

    error_rate_points: float | None = Field(
        None,
        gt=0,
        le=100,
        description="error rate (failures and 5xx) above the checkpoint's by this many points",
    )
    p99_ratio: float | None = Field(
        None, gt=1, le=1000, description="p99 above this many times the checkpoint's"
    )
    intervals: int = Field(2, ge=1, le=10_000, description="consecutive intervals over a limit")

    @model_validator(mode="after")
    def _some_limit(self) -> RollbackWhen:
        if self.error_rate_points is None and self.p99_ratio is None:
            raise ValueError("rollback_when needs error_rate_points or p99_ratio")
        return self


class ScenarioFile(_Strict):
    """A shadowdiff scenario: two entry points and the requests to replay against both."""

    version: Literal[1] = 1
    name: str | None = None
    targets: Targets
    defaults: Defaults = Defaults()
    requests: list[Request] = Field(default_factory=list)
    matrix: list[Matrix] = Field(default_factory=list)
    compare: CompareSettings = CompareSettings()
    tls_probe: TlsProbeSettings = TlsProbeSettings()
    load: LoadSettings | None = None
    thresholds: list[Threshold] = Field(default_factory=list)
    accept: list[Acceptance] = Field(default_factory=list)
    redact: Redaction = Redaction()
    sources: list[RecordedSource] = Field(default_factory=list)
    select: SourceSelection = SourceSelection()
    coverage: CoverageSettings | None = None
    preflight: PreflightSettings | None = None
    rollback_when: RollbackWhen | None = None
