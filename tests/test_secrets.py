"""No secret reaches any output, in any encoding.

One scenario puts a secret in every place a user can: a literal Authorization, Proxy-
Authorization and Cookie header, `user:password@` in a URL, and environment values (one with a
quote and a backslash, one that lands in a query string, one of two characters). Two echo
servers reflect all of it back, differently on each side, so the report has differences on
exactly those values. Every output of every command is then searched for every secret, as
written and in each encoding an output could use.

This is the template for every output format: a new format (or a new text in an existing one)
is added to `OUTPUTS` below, and must pass the same search.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import html
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import WSMsgType, web
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from shadowdiff.render.markdown import markdown_text

from .grpc_servers import hostile_grpc_server
from .test_cli import shadowdiff

ENVIRONMENT = {
    "TOKEN": 'env"quoted\\secret-4',
    "QUERY_KEY": "qsecret é5",
    "SHORT": "zq",
    "PROXY_PASS": "proxy-env-secret-6",
    # A traceparent from the environment: its trace id, which the report records for the pair,
    # is as secret as the whole value.
    "TRACE_PARENT": "00-5ec2e75ac2e75ac2e75ac2e75ac2e75a-5ec2e75ac2e75ac2-01",
}
TRACE_PARTS = ("5ec2e75ac2e75ac2e75ac2e75ac2e75a", "5ec2e75ac2e75ac2")
LITERALS = (
    "literal-bearer-secret-1",
    "cookie-secret-2",
    "userinfo-pass-3",
    "server-set-cookie-secret-7",
    "server-api-key-secret-8",
    "push-pass-secret-14",  # the Pushgateway's password in --metrics-push
    # Keys a gRPC server answered in a trailer with a sensitive name, differently per side.
    "server-grpc-key-secret-15-baseline",
    "server-grpc-key-secret-15-candidate",
)
# A browser session with a cookie, a bearer token, an API key and proxy credentials (the cookie
# also in a query string), replayed with its credentials and exported (`sources export`).
HAR = Path(__file__).parent / "recorded" / "credentials-ours.har"
HAR_LITERALS = (
    "har-cookie-secret-9",
    "har-bearer-secret-10",
    "har-api-key-secret-11",
    "har-set-cookie-secret-12",
    "har-proxy-secret-13",
)


def spellings(secret: str) -> set[str]:
    """Every way an output could spell `secret`."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote(secret, safe="").lower(),
        base64.b64encode(secret.encode()).decode().rstrip("="),
        html.escape(secret),  # XML (JUnit) and HTML
        str(escape(secret)),  # HTML as Jinja2 escapes it (`&#34;` for a double quote)
        markdown_text(secret),  # the Markdown summary
        # A server may change its case; short values (a two-letter one) only as written.
        *((secret.upper(), secret.lower()) if len(secret) >= 4 else ()),
    }


def reflecting(side: str) -> Callable[[web.Request], Any]:
    """An echo that reflects everything it received; the candidate loses Authorization and
    changes the cookie, as a misconfigured data plane could, and answers its own secrets."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws":
            # A WebSocket echo of the message with the upgrade's headers, the candidate's
            # without Authorization.
            socket = web.WebSocketResponse(protocols=("chat.v2",))
            await socket.prepare(request)
            seen = dict(request.headers)
            if side == "candidate":
                seen.pop("Authorization", None)
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await socket.send_str(json.dumps({"message": message.data, "headers": seen}))
            return socket
        if request.path == "/text":
            # A text answer that differs: the report shows a diff of it.
            separator = ": " if side == "baseline" else " = "  # every line differs
            lines = [f"{name}{separator}{value}" for name, value in request.headers.items()]
            if side == "candidate":
                lines.insert(0, "served by the candidate")
                # A backend that changes a secret's case still shows the secret.
                lines.append("SHOUTED " + " ".join(v.upper() for v in request.headers.values()))
            return web.Response(text="\n".join(lines) + "\n")
        headers = {name: value for name, value in request.headers.items()}
        # Who logged in, as a backend decodes Basic credentials: the password as sent, not as
        # the URL wrote it (`%2F` there is `/` here).
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            headers["X-Login"] = f"{base64.b64decode(credentials).decode()} on the {side}"
        if side == "candidate":
            headers.pop("Authorization", None)
            headers["Cookie"] = headers.get("Cookie", "") + "; extra=1"
        response = web.json_response(
            {"path": request.raw_path, "query": request.query_string, "headers": headers}
        )
        response.headers["Set-Cookie"] = f"session=server-set-cookie-secret-7-{side}; Path=/"
        response.headers["X-Api-Key"] = f"server-api-key-secret-8-{side}"
        response.headers["X-Seen-Authorization"] = request.headers.get("Authorization", "-")
        return response

    return handle


SCENARIO = """\
compare: {noise: {share: 0}}
redact: {headers: [X-Seen-Authorization]}
requests:
  - name: everything
    url: 'https://alice:userinfo-pass-3%2Fx@app.example.com/account?key=${QUERY_KEY}'
    headers:
      Cookie: 'session=cookie-secret-2; theme=dark'
      X-Token: '${TOKEN}'
      X-Short: '${SHORT}'
      Proxy-Authorization: 'Basic ${PROXY_PASS}'
  - name: bearer
    url: 'https://app.example.com/api'
    headers: {Authorization: 'Bearer literal-bearer-secret-1', traceparent: '${TRACE_PARENT}'}
  - name: text
    url: 'https://app.example.com/text'
    headers: {Authorization: 'Bearer literal-bearer-secret-1', X-Token: '${TOKEN}'}
  - name: socket
    url: 'https://app.example.com/ws'
    headers: {Authorization: 'Bearer literal-bearer-secret-1'}
    allow_unsafe: true
    websocket: {subprotocols: [chat.v2], message: 'hello ${TOKEN}'}
"""


# gRPC calls whose metadata a server reflects into its trailers and (percent-encoded) into
# grpc-message (tests/grpc_servers.py, `_echo`), over h2c.
GRPC_REQUESTS = """\
  - name: grpc health
    url: 'http://api.example.com/'
    headers: {Authorization: 'Bearer literal-bearer-secret-1', X-Token: '${TOKEN}'}
    grpc: {health: ''}
  - name: grpc get
    url: 'http://api.example.com/'
    allow_unsafe: true
    headers: {Authorization: 'Bearer literal-bearer-secret-1', X-Token: '${TOKEN}'}
    grpc: {method: /orders.v1.Orders/Get}
"""


SOURCES_SCENARIO = f"""\
compare: {{noise: {{share: 0}}}}
sources:
  - har: {HAR}
select:
  replay_credentials: true      # sent to both echoes: reflected, compared, never printed
"""


async def test_no_secret_reaches_any_output(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    baseline = await start_entry_point(handler=reflecting("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=reflecting("candidate"))
    grpc_echoes = contextlib.AsyncExitStack()
    grpc_port = await grpc_echoes.enter_async_context(hostile_grpc_server("baseline"))
    await grpc_echoes.enter_async_context(hostile_grpc_server("candidate", "127.0.0.2", grpc_port))
    # Plain HTTP goes to the gRPC echoes (the other requests are HTTPS).
    scenario = write_scenario(
        dataclasses.replace(baseline, http_port=grpc_port),
        dataclasses.replace(candidate, http_port=grpc_port),
        SCENARIO + GRPC_REQUESTS,
        ca_file,
    )
    # Two files that fail validation on a value from the environment, at two stages.
    broken_url = write_scenario(
        baseline,
        candidate,
        SCENARIO.replace("https://app.example.com/api", "${TOKEN}"),
        ca_file,
        name="broken-url.yaml",
    )
    broken_number = write_scenario(
        baseline,
        candidate,
        SCENARIO + "defaults: {concurrency: '${SHORT}'}\n",
        ca_file,
        name="broken-number.yaml",
    )
    recorded = write_scenario(baseline, candidate, SOURCES_SCENARIO, ca_file, name="har.yaml")
    report_path = tmp_path / "report.json"
    recorded_report_path = tmp_path / "recorded-report.json"
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))

    def formats(prefix: str) -> list[str]:
        """--junit, --markdown and --html, into files named after the output."""
        return [
            "--junit",
            str(tmp_path / f"{prefix}.xml"),
            "--markdown",
            str(tmp_path / f"{prefix}.md"),
            "--html",
            str(tmp_path / f"{prefix}.html"),
        ]

    # What a Pushgateway receives (`--metrics-push`): the series, and the credentials given in
    # the URL as Basic authentication.
    pushed: list[tuple[str, bytes]] = []

    async def gateway(request: web.Request) -> web.Response:
        pushed.append((request.headers.get("Authorization", ""), await request.read()))
        return web.Response(status=200)

    push_app = web.Application()
    push_app.router.add_put("/{tail:.*}", gateway)
    push_runner = web.AppRunner(push_app, access_log=None)
    await push_runner.setup()
    await web.TCPSite(push_runner, "127.0.0.1", 0).start()
    push_url = f"http://push-user:push-pass-secret-14@127.0.0.1:{push_runner.addresses[0][1]}"

    os.environ.update(ENVIRONMENT)
    try:
        # Independent commands run side by side: each is a process of its own, and most of
        # each one's time is starting Python.
        run, recorded_run, exported, validated, validated_number = await asyncio.gather(
            shadowdiff(
                "run",
                str(scenario),
                "--json",
                str(report_path),
                "--pairs",
                str(tmp_path / "run.ndjson"),
                *formats("run"),
                "--metrics-push",
                push_url,
                "--metrics-job",
                "secrets",
                "--hgrm",
                str(tmp_path / "run"),
            ),
            shadowdiff(
                "run",
                str(recorded),
                "--json",
                str(recorded_report_path),
                "--pairs",
                str(tmp_path / "recorded.ndjson"),
                "--workers",
                "2",
                *formats("recorded"),
            ),
            shadowdiff("sources", "export", str(recorded)),
            shadowdiff("validate", str(broken_url)),
            shadowdiff("validate", str(broken_number)),
        )
        merged, rendered, compared, refused = await asyncio.gather(
            shadowdiff(
                "merge",
                str(report_path),
                "--json",
                str(tmp_path / "merged.json"),
                *formats("merge"),
            ),
            shadowdiff(
                "report", str(report_path), *formats("report"), "--hgrm", str(tmp_path / "report")
            ),
            shadowdiff(
                "compare-runs",
                str(report_path),
                str(report_path),
                "--json",
                str(tmp_path / "comparison.json"),
            ),
            shadowdiff("compare-runs", str(report_path), str(recorded_report_path)),
        )
    finally:
        for name in ENVIRONMENT:
            del os.environ[name]
        await push_runner.cleanup()
        await grpc_echoes.aclose()
    assert run[0] == 1, run[2]  # the differences were found...
    ((authorization, pushed_body),) = pushed
    assert authorization == "Basic " + base64.b64encode(b"push-user:push-pass-secret-14").decode()
    assert b"shadowdiff_differences_total" in pushed_body
    report = json.loads(report_path.read_text())
    fields = {(s["kind"], s["field"]) for s in report["signatures"]}
    assert ("json_field", "$.headers.Authorization") in fields, fields
    socket_fields = {s["field"] for s in report["signatures"] if "socket" in s["requests"]}
    assert "$.headers.Authorization" in socket_fields, report["signatures"]
    assert ("cookie", "session") in fields or ("header_changed", "x-api-key") in fields, fields
    assert "[redacted " in report_path.read_text()  # ...and shown as fingerprints
    diffs = [e["diff"] for s in report["signatures"] for e in s["examples"] if "diff" in e]
    (body_diff,) = [d for d in diffs if "+served by the candidate" in d]  # body diffs are covered
    assert "+Authorization = [redacted " in body_diff and "+X-Token = ${TOKEN}" in body_diff, diffs
    # gRPC: the metadata echoed in trailers and in grpc-message differs, hidden the same way.
    assert {("grpc", "status"), ("grpc_trailer", "x-api-key"), ("grpc_trailer", "x-seen")} <= fields
    assert any(d.startswith('grpc-message: "" → "token refused: [redacted ') for d in diffs), diffs
    assert validated[0] == 2 and "requests[1].url" in validated[2], validated
    assert validated_number[0] == 2 and "${SHORT}" in validated_number[2], validated_number
    # The recorded credentials were replayed, differ, and are shown as fingerprints...
    assert recorded_run[0] == 1, recorded_run[2]
    recorded_fields = {
        (s["kind"], s["field"]) for s in json.loads(recorded_report_path.read_text())["signatures"]
    }
    assert ("json_field", "$.headers.Authorization") in recorded_fields, recorded_fields
    # ...and the export holds both requests, without them.
    assert exported[0] == 0, exported[2]
    lines = [json.loads(line) for line in exported[1].splitlines()]
    assert [line["url"].split("?")[0] for line in lines] == [
        "https://app.example.com/account",
        "https://app.example.com/api/orders/7",
    ]
    assert ["accept", "text/html"] in lines[0]["headers"]
    written = {name.lower() for line in lines for name, _ in line["headers"]}
    assert not written & {"authorization", "proxy-authorization", "cookie", "x-api-key"}, written

    assert compared[0] == 0, compared[1] + compared[2]
    assert refused[0] == 2 and "different scenarios" in refused[2], refused
    outputs = {
        "compare-runs stdout": compared[1],
        "compare-runs --json": (tmp_path / "comparison.json").read_text(),
        "compare-runs refusal": refused[2],
        **{
            f"{prefix} --hgrm {side}": (tmp_path / f"{prefix}.{side}.hgrm").read_text()
            for prefix in ("run", "report")
            for side in ("baseline", "candidate")
        },
        "run stdout": run[1],
        "run stderr": run[2],
        "--json": report_path.read_text(),
        "report stdout": rendered[1],
        "report stderr": rendered[2],
        "validate stderr": validated[2],
        "validate stderr (number)": validated_number[2],
        "recorded run stdout": recorded_run[1],
        "recorded run stderr": recorded_run[2],
        "recorded --json": recorded_report_path.read_text(),
        "sources export stdout": exported[1],
        "sources export stderr": exported[2],
        "--metrics-push body": pushed_body.decode(),
        "run --pairs": (tmp_path / "run.ndjson").read_text(),
        "recorded run --pairs (2 workers)": (tmp_path / "recorded.ndjson").read_text(),
        "merge stdout": merged[1],
        "merge stderr": merged[2],
        "merge --json": (tmp_path / "merged.json").read_text(),
        "$GITHUB_STEP_SUMMARY (both runs)": step_summary.read_text(),
        **{
            f"{prefix} --{name}": (tmp_path / f"{prefix}.{extension}").read_text()
            for prefix in ("run", "recorded", "report", "merge")
            for name, extension in (("junit", "xml"), ("markdown", "md"), ("html", "html"))
        },
    }
    # The formats show the differences on those values, as fingerprints.
    assert merged[0] == 1, merged[2]
    assert len(outputs["run --pairs"].splitlines()) == report["totals"]["pairs"] + 2
    for name in (
        "run --junit",
        "run --markdown",
        "run --html",
        "report --html",
        "$GITHUB_STEP_SUMMARY (both runs)",
    ):
        assert "[redacted " in outputs[name], name
    secrets = [
        *ENVIRONMENT.values(),
        *TRACE_PARTS,
        *LITERALS,
        *HAR_LITERALS,
        "alice:userinfo-pass-3",
    ]
    leaks = [
        (output, secret, spelling)
        for output, text in outputs.items()
        for secret in secrets
        for spelling in spellings(secret)
        if spelling in text
    ]
    assert leaks == [], leaks


def test_every_spelling_an_output_may_use_is_hidden() -> None:
    from shadowdiff.redaction import Redactor, Secrets
    from shadowdiff.wire import encode_target_text

    secret = "correct horse {battery} Pässwort[1]/+="
    redactor = Redactor(Secrets(environment={secret: "KEY"}), b"k")
    spellings_ = [
        encode_target_text(secret),  # how shadowdiff itself sends it in a URL
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),  # some servers
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
    ]
    for spelling in spellings_:
        assert redactor.text(f"x={spelling};") == "x=${KEY};", spelling
        assert redactor.text(f"x={spelling.upper()};") == "x=${KEY};", spelling.upper()
        assert redactor.text(f"x={spelling.swapcase()}…") == "x=${KEY}…", spelling.swapcase()
    # Cut short, in another case: the beginning is hidden too.
    assert redactor.text(f"x={secret.upper()[:12]}…") == "x=${KEY}…"


@given(st.text(min_size=4, max_size=40), st.sampled_from([str.upper, str.lower, str.swapcase]))
def test_a_secret_in_another_case_is_hidden_and_nothing_raises(
    secret: str, change: Callable[[str], str]
) -> None:
    from shadowdiff.redaction import Redactor, Secrets

    redactor = Redactor(Secrets(environment={secret: "KEY"}), b"k")
    changed = change(secret)
    shown = redactor.text(f"<{changed}>")
    if changed.lower() == secret.lower() and len(changed) == len(secret):
        assert changed not in shown or changed in "<${KEY}>", shown


async def test_requests_built_through_the_library_are_redacted_too(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
) -> None:
    from shadowdiff.run import run_scenario
    from shadowdiff.scenario import load_scenario
    from shadowdiff.spec import RequestSpec

    baseline = await start_entry_point(handler=reflecting("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=reflecting("candidate"))
    path = write_scenario(
        baseline, candidate, "requests:\n  - {name: a, url: 'https://app.example.com/'}\n", ca_file
    )
    spec = RequestSpec(
        "library",
        "GET",
        "https://app.example.com/api",
        (("Authorization", "Bearer TopSecretToken99"),),
        None,
    )
    scenario = dataclasses.replace(load_scenario(path, environ={}), requests=(spec,))
    report = await run_scenario(scenario)
    assert report["signatures"] and "TopSecretToken99" not in json.dumps(report)


async def test_the_terminal_shows_names_as_text_without_markup_or_escape_sequences(
    tmp_path: Path,
) -> None:
    """A name like `filter [/] probe` crashed rendering as rich markup; escape sequences in a
    name or an answered header reached the terminal."""
    from io import StringIO

    from rich.console import Console

    from shadowdiff.render.terminal import displayable, print_report

    assert displayable("a\x1b]0;TITLE\x07b") == "a\\x1b]0;TITLE\\x07b"
    code, _, _ = await shadowdiff("demo", "--json", str(tmp_path / "demo.json"))
    assert code == 1  # the demo plants regressions
    report = json.loads((tmp_path / "demo.json").read_text())
    report["requests"][0]["name"] = "filter [/] probe \x1b[2J"
    report["signatures"][0]["requests"] = ["filter [/] probe \x1b[2J"]
    report["signatures"][0]["examples"][0]["candidate"] = "a\x1b]52;c;aGk=\x07"
    output = StringIO()
    print_report(report, Console(file=output, width=200))
    assert "filter [/] probe \\x1b[2J" in output.getvalue()
    assert "\x1b" not in output.getvalue()


def test_a_cookie_difference_keeps_its_attributes_readable() -> None:
    """Cookie differences show attribute shapes, never values: a cookie named `session` that
    lost HttpOnly must still say so, not show two fingerprints."""
    from shadowdiff.redaction import Redactor, Secrets

    line = {
        "kind": "cookie",
        "field": "session",
        "examples": [{"baseline": "httponly; path=/; secure", "candidate": "path=/; secure"}],
    }
    shown = Redactor(Secrets(), b"k").walk(line)
    assert shown["examples"][0]["candidate"] == "path=/; secure"


def test_secrets_inside_tuples_are_hidden_too() -> None:
    """`dataclasses.asdict` keeps tuples (a TLS posture's chain and names); JSON writes them as
    lists, so a secret inside one must be hidden like anywhere else."""
    from shadowdiff.redaction import Redactor, Secrets

    redactor = Redactor(Secrets(environment={"s3cr3t-token-value": "TOKEN"}), key=b"k" * 32)
    walked = redactor.walk({"names": ("a.example.com", "x-s3cr3t-token-value-y")})
    assert "s3cr3t-token-value" not in str(walked)
    assert walked["names"][0] == "a.example.com"


async def test_no_secret_reaches_watch_output(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """`shadowdiff watch`: its JSON lines, its stderr and its report (`--json`), with a
    nameserver that answers nothing (so DNS failures, with their messages, are in every row)."""
    import signal

    from shadowdiff.report import write_report
    from shadowdiff.run import run_scenario
    from shadowdiff.scenario import load_scenario

    from .conftest import unused_port
    from .test_watch import Watching

    baseline = await start_entry_point(handler=reflecting("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=reflecting("candidate"))
    scenario = write_scenario(baseline, candidate, SCENARIO, ca_file)
    checkpoint = tmp_path / "checkpoint.json"
    report_path = tmp_path / "watch.json"
    os.environ.update(ENVIRONMENT)
    try:
        write_report(str(checkpoint), await run_scenario(load_scenario(scenario)))
        watching = await Watching.start(
            str(scenario), "--checkpoint", str(checkpoint),
            "--nameserver", f"127.0.0.1:{unused_port()}", "--rollback-error-points", "50",
            "--rate", "10", "--interval", "0.3", "--json-lines", "--json", str(report_path),
        )  # fmt: skip
        await watching.until(lambda row: row["interval"] >= 2, 10)
        watching.process.send_signal(signal.SIGINT)
        code = await watching.finish()
    finally:
        for name in ENVIRONMENT:
            del os.environ[name]
    assert code == 0, watching.stderr
    assert watching.rows[-1]["dns"]["hosts"][0]["error"] in ("unreachable", "timeout")
    outputs = {
        "watch stdout": "\n".join(json.dumps(row) for row in watching.rows),
        "watch stderr": watching.stderr.decode(),
        "watch --json": report_path.read_text(),
    }
    secrets = [*ENVIRONMENT.values(), *LITERALS, "alice:userinfo-pass-3"]
    leaks = [
        (output, secret, spelling)
        for output, text in outputs.items()
        for secret in secrets
        for spelling in spellings(secret)
        if spelling in text
    ]
    assert leaks == [], leaks


async def test_a_one_character_secret_leaves_the_report_readable_by_shadowdiff(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    """A short environment value is hidden where it stands alone, but never in what shadowdiff
    writes of itself: `shadowdiff.report/1` must not become `shadowdiff.report/${FLAG}`."""
    from shadowdiff.report import read_report, write_report
    from shadowdiff.run import run_scenario
    from shadowdiff.scenario import load_scenario

    baseline = await start_entry_point(handler=reflecting("baseline"))
    candidate = await start_entry_point("127.0.0.2", handler=reflecting("candidate"))
    path = write_scenario(
        baseline,
        candidate,
        "defaults: {headers: {X-Api-Key: '${FLAG}'}}\n"
        "requests:\n  - {name: a, url: 'https://app.example.com/'}\n",
        ca_file,
    )
    report = await run_scenario(load_scenario(path, environ={"FLAG": "1"}))
    assert report["schema"] == "shadowdiff.report/1"
    saved = tmp_path / "report.json"
    write_report(saved, report)
    assert read_report(saved)["schema"] == "shadowdiff.report/1"
    assert "x-api-key" in report["redaction"]["headers"]
