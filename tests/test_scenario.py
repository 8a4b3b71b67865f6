"""Scenario loading: validation messages located by file, line and field; expansion."""

from __future__ import annotations

import json
import os
import textwrap
import threading
from pathlib import Path

import pytest

from shadowdiff.errors import ScenarioError
from shadowdiff.scenario import Scenario, ScenarioFile, load_scenario, parse_scenario

TARGETS = """\
targets:
  baseline: {address: 127.0.0.1}
  candidate: {address: "::1", ports: {http: 8080, https: 8443}}
"""


def parse(body: str, environ: dict[str, str] | None = None) -> Scenario:
    text = TARGETS + textwrap.dedent(body)
    return parse_scenario(text, "s.yaml", base_dir=Path("/nonexistent"), environ=environ or {})


def problems_of(body: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse(body, environ)
    return [str(problem) for problem in caught.value.problems]


def test_typo_bad_port_and_bad_method_are_three_located_lines(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            targets:
              baseline:
                address: 10.0.0.1
                ports: {https: 70000}
              candidate:
                adress: 10.0.0.2
            requests:
              - name: home
                method: GTE
                url: https://shop.example.com/
            """
        )
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    lines = [str(problem) for problem in caught.value.problems]
    assert lines == [
        f"{path}:4:20: targets.baseline.ports.https: input should be less than or equal to 65535; got 70000",
        f"{path}:6:5: targets.candidate.adress: unknown field; expected one of address, ports, "
        "tls, headers, http (did you mean 'address'?)",
        f"{path}:9:13: requests[0].method: expected one of GET, HEAD, OPTIONS, POST, PUT, PATCH, "
        "DELETE; got 'GTE'",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "requests:\n  - {name: a, url: 'ftp://x.example.com/'}\n",
            "s.yaml:5:20: requests[0].url: expected an absolute http:// or https:// URL",
        ),
        (
            "requests:\n  - {name: a, url: 'https://x.example.com/', headers: {Host: other}}\n",
            "s.yaml:5:56: requests[0].headers.Host: cannot be set: the Host header comes from the URL",
        ),
        (
            "requests:\n  - {name: a, url: 'https://x.example.com/'}\n  - {name: a, url: 'https://x.example.com/b'}\n",
            "s.yaml:6:12: requests[1].name: duplicate name 'a'",
        ),
        (
            "requests:\n  - {name: a, url: 'https://x.example.com/', body: {text: hi, size: 3}}\n",
            "s.yaml:5:52: requests[0].body: a body has exactly one of text, json, file or size; got text, size",
        ),
        ("requests: []\n", "s.yaml:4:11: requests: no requests"),
        (
            "defaults: {concurrency: 0}\nrequests:\n  - {name: a, url: 'https://x.example.com/'}\n",
            "s.yaml:4:25: defaults.concurrency: input should be greater than or equal to 1; got 0",
        ),
        (
            "matrix:\n  - {name: m, hosts: ['bad host'], paths: [/]}\n",
            "s.yaml:5:23: matrix[0].hosts[0]: expected a hostname such as app.example.com",
        ),
        (
            "matrix:\n  - {name: m, hosts: [a.example.com], paths: [nope]}\n",
            "s.yaml:5:47: matrix[0].paths[0]: a path starts with '/'",
        ),
        (
            "requests:\n  - {name: a, url: 'https://x.example.com/'}\nrequests:\n  - {name: b, url: 'https://x.example.com/'}\n",
            "s.yaml:6:1: requests: duplicate key",
        ),
        ("requests: [\n", "s.yaml:5:1: YAML:"),
        (
            # Infinity reached the JSON report (the state it embeds) as `Infinity`: no JSON.
            "compare: {noise: {relative: .inf}}\nrequests:\n  - {name: a, url: 'https://x.example.com/'}\n",
            "s.yaml:4:29: compare.noise.relative: input should be a finite number",
        ),
    ],
    ids=[
        "url-scheme",
        "host-header",
        "duplicate-name",
        "two-bodies",
        "no-requests",
        "concurrency-range",
        "matrix-host",
        "matrix-path",
        "duplicate-key",
        "broken-yaml",
        "infinite-number",
    ],
)
def test_invalid_scenario_reports_located_problem(body: str, expected: str) -> None:
    lines = problems_of(body)
    assert any(line.startswith(expected) for line in lines), lines


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_method_is_refused_unless_allowed(method: str) -> None:
    request = f"requests:\n  - {{name: a, method: {method}, url: 'https://x.example.com/'}}\n"
    (line,) = problems_of(request)
    assert line.startswith("s.yaml:5:23: requests[0].method: ")
    assert "allow_unsafe: true" in line
    allowed = request.replace("}", ", allow_unsafe: true}")
    scenario = parse(allowed)
    assert scenario.requests[0].method == method


def test_unsafe_method_in_matrix_is_refused() -> None:
    (line,) = problems_of(
        "matrix:\n  - {name: m, hosts: [a.example.com], paths: [/], methods: [GET, DELETE]}\n"
    )
    assert "matrix[0].methods" in line and "DELETE" in line


def test_environment_values_are_substituted_and_remembered() -> None:
    scenario = parse(
        """\
        defaults:
          headers: {Authorization: "Bearer ${TOKEN}", X-Env: "${STAGE:-staging}"}
        requests:
          - {name: a, url: "https://${HOST}/"}
        """,
        environ={"TOKEN": "s3cr3t-token", "HOST": "app.example.com"},
    )
    (request,) = scenario.requests
    assert request.url == "https://app.example.com/"
    assert dict(request.headers) == {"Authorization": "Bearer s3cr3t-token", "X-Env": "staging"}
    assert scenario.environment_values == {
        "s3cr3t-token": "TOKEN",
        "app.example.com": "HOST",
    }


def test_missing_environment_variable_is_located() -> None:
    (line,) = problems_of("requests:\n  - {name: a, url: 'https://${NOPE}/'}\n")
    assert line.startswith("s.yaml:5:20: requests[0].url: environment variable NOPE is not set")


def test_matrix_expands_every_combination_and_merges_headers() -> None:
    scenario = parse(
        """\
        defaults: {headers: {Accept: '*/*', X-Team: shop}}
        matrix:
          - name: routes
            schemes: [http, https]
            hosts: [a.example.com, b.example.com]
            paths: [/, /x]
            methods: [GET, HEAD]
            header_sets: [{}, {x-team: other}]
        """
    )
    requests = scenario.requests
    assert len(requests) == 2 * 2 * 2 * 2 * 2
    assert len({r.name for r in requests}) == len(requests)
    overridden = [r for r in requests if ("x-team", "other") in r.headers]
    assert len(overridden) == 16
    assert all(("X-Team", "shop") not in r.headers for r in overridden)


def test_bodies_from_text_json_size_and_file(tmp_path: Path) -> None:
    (tmp_path / "payload.bin").write_bytes(b"\x00\x01")
    (tmp_path / "s.yaml").write_text(
        TARGETS
        + textwrap.dedent(
            """\
            requests:
              - {name: t, method: POST, allow_unsafe: true, url: 'https://a.example.com/', body: {text: héllo}}
              - {name: j, method: POST, allow_unsafe: true, url: 'https://a.example.com/', body: {json: {a: 1}}}
              - {name: s, method: POST, allow_unsafe: true, url: 'https://a.example.com/', body: {size: 2KiB}}
              - {name: f, method: POST, allow_unsafe: true, url: 'https://a.example.com/', body: {file: payload.bin}}
            """
        )
    )
    text, jsonb, sized, filed = load_scenario(tmp_path / "s.yaml").requests
    assert text.body == "héllo".encode()
    assert jsonb.body == b'{"a":1}' and ("Content-Type", "application/json") in jsonb.headers
    assert sized.body == b"x" * 2048
    assert filed.body == b"\x00\x01"


def test_missing_ca_file_is_located(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "targets:\n  baseline: {address: 127.0.0.1, tls: {ca: missing.pem}}\n"
        "  candidate: {address: 127.0.0.1}\nrequests:\n  - {name: a, url: 'https://a.example.com/'}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "s.yaml")
    assert str(caught.value).startswith(
        f"{tmp_path / 's.yaml'}:2:44: targets.baseline.tls.ca: file not found"
    )


def test_tls_and_manifest_files_that_are_no_regular_file_say_what_they_are(
    tmp_path: Path,
) -> None:
    """A FIFO, a device or a folder named as a TLS file (read at validation and again by the
    run) is refused by what it is, never called missing; nothing waits for a FIFO's writer."""
    os.mkfifo(tmp_path / "ca.fifo")
    (tmp_path / "s.yaml").write_text(
        "targets:\n"
        "  baseline: {address: 127.0.0.1, tls: {ca: ca.fifo}}\n"
        "  candidate: {address: 127.0.0.1, tls: {client_cert: /dev/null}}\n"
        "coverage: {ingress: [.]}\n"
        "requests:\n  - {name: a, url: 'https://a.example.com/', tls: {ca: ca.fifo}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "s.yaml")
    found = sorted(str(problem).split(": ", 1)[1] for problem in caught.value.problems)
    assert found == [
        f"coverage.ingress[0]: not a regular file (a directory): {tmp_path}",
        f"requests[0].tls.ca: not a regular file (a FIFO): {tmp_path / 'ca.fifo'}; {AGAIN}",
        f"targets.baseline.tls.ca: not a regular file (a FIFO): {tmp_path / 'ca.fifo'}; {AGAIN}",
        f"targets.candidate.tls.client_cert: not a regular file (a device): /dev/null; {AGAIN}",
    ]


AGAIN = "name a regular file (it is read more than once)"


def test_tls_paths_of_no_user_or_too_long_a_name_are_located(tmp_path: Path) -> None:
    """`~name` of no user (expanduser raised RuntimeError) and a name past the system's limit
    (is_file raised ENAMETOOLONG) ended as exit 70; both are located problems."""
    long_name = "x" * 5000
    (tmp_path / "s.yaml").write_text(
        "targets:\n"
        "  baseline: {address: 127.0.0.1, tls: {ca: '~no-such-user-here/ca.pem'}}\n"
        f"  candidate: {{address: 127.0.0.1, tls: {{ca: {long_name}}}}}\n"
        f"requests:\n  - {{name: a, url: 'https://a.example.com/', tls: {{ca: {long_name}}}}}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "s.yaml")
    found = sorted(str(problem).split(": ", 1)[1][:60] for problem in caught.value.problems)
    assert found == [
        f"requests[0].tls.ca: cannot read {tmp_path}/xxx"[:60],
        f"targets.baseline.tls.ca: file not found: {tmp_path}/~no-such-user-here/ca.pem"[:60],
        f"targets.candidate.tls.ca: cannot read {tmp_path}/xxx"[:60],
    ]
    (tmp_path / "r.yaml").write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.1}\n"
        "sources:\n  - {har: '~no-such-user-here/x.har'}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "r.yaml")
    (problem,) = caught.value.problems
    assert "sources[0].har" in str(problem) and "~no-such-user-here/x.har" in str(problem)


def test_a_body_file_that_is_a_fifo_is_read_once_its_writer_comes(tmp_path: Path) -> None:
    """Read once, a body may come from a pipe: a named FIFO is read as `<(...)` is."""
    os.mkfifo(tmp_path / "body.fifo")
    (tmp_path / "s.yaml").write_text(
        "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.2}\n"
        "requests:\n  - {name: a, method: POST, allow_unsafe: true, url: 'http://a.example.com/',"
        " body: {file: body.fifo}}\n"
    )
    writer = threading.Thread(target=(tmp_path / "body.fifo").write_bytes, args=(b"piped",))
    writer.start()
    try:
        (request,) = load_scenario(tmp_path / "s.yaml").requests
    finally:
        writer.join(timeout=5)
    assert request.body == b"piped"


def test_missing_scenario_file_is_one_line() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("does/not/exist.yaml")
    assert str(caught.value) == "does/not/exist.yaml: no such file"


def test_json_schema_describes_the_format() -> None:
    schema = ScenarioFile.model_json_schema(by_alias=True)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= {"targets", "defaults", "requests", "matrix"}
    assert "json" in json.dumps(schema["$defs"]["Body"]["properties"])


def test_bundled_scenarios_are_valid() -> None:
    for path in sorted(Path(__file__).parents[1].joinpath("scenarios").glob("*.yaml")):
        assert load_scenario(path, environ={}).requests, path


def test_unset_variables_and_missing_files_are_reported_in_one_pass(tmp_path: Path) -> None:
    text = (
        "targets:\n"
        "  baseline: {address: '${A}'}\n"
        "  candidate: {address: '${B}', tls: {ca: missing-ca.pem}}\n"
        "requests:\n"
        "  - {name: a, url: 'https://x.example.com/${P}', method: POST, allow_unsafe: true, body: {file: nothere.bin}}\n"
    )
    with pytest.raises(ScenarioError) as error:
        parse_scenario(text, "s.yaml", base_dir=tmp_path, environ={})
    fields = [problem.field for problem in error.value.problems]
    assert fields == [
        "targets.baseline.address",
        "targets.candidate.address",
        "targets.candidate.tls.ca",
        "requests[0].url",
        "requests[0].body.file",
    ], error.value.problems
