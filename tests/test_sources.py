"""Recorded traffic: the real files in ../shared/fixtures/recorded read as they are, with the
counts each must give, and the report's `sources` section showing the same numbers."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shadowdiff.run import run_scenario
from shadowdiff.scenario import load_scenario
from shadowdiff.sources.goreplay import SEPARATOR, read_gor
from shadowdiff.sources.har import read_har
from shadowdiff.sources.jsonl import export_line, read_jsonl
from shadowdiff.sources.nginx_log import compile_format, read_json_log, read_log
from shadowdiff.sources.record import Recorded, Skipped
from shadowdiff.sources.select import Selection, SourceSummary, select

RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded"
LOG = RECORDED / "ingress-nginx" / "upstreaminfo.log"
HOSTS = {"default-web-8080": "shop.example.com", "default-web2-8080": "shop.example.com"}


def summary_of(items: Any, selection: Selection | None = None) -> tuple[list[Any], SourceSummary]:
    summary = SourceSummary("t")
    specs = list(select(items, selection or Selection(default_host="app.example.com"), summary))
    return specs, summary


def test_the_ingress_nginx_log_gives_the_expected_counts() -> None:
    items = list(read_log(LOG.read_text().splitlines(), str(LOG)))
    recorded = [i for i in items if isinstance(i, Recorded)]
    assert len(items) == 29
    assert Counter(i.method for i in recorded) == {"GET": 23, "POST": 2, "DELETE": 1, "PATCH": 1}
    assert sum(i.http_version == "2.0" and i.method == "GET" for i in recorded) == 2
    specs, summary = summary_of(
        iter(items), Selection(hosts_by_upstream=HOSTS, default_host="app.example.com")
    )
    assert summary.lines == 29 and summary.replayed == 23 == len(specs)
    assert dict(summary.skipped) == {"unsafe": 4, "never_reached_backend": 2}
    assert specs[0].url == "https://shop.example.com/products/42"
    assert ("User-Agent", "curl/7.54.0") in specs[0].headers


@pytest.mark.parametrize(
    ("name", "method", "count"),
    [
        ("chrome.har", "GET", 3),
        ("firefox.har", "GET", 14),
        ("head-content-length.har", "HEAD", 1),
        ("postdata.har", "POST", 1),
    ],
)
def test_each_har_fixture_gives_its_requests(name: str, method: str, count: int) -> None:
    path = RECORDED / "har" / name
    items = list(read_har(path.read_bytes(), str(path)))
    assert [i.method for i in items if isinstance(i, Recorded)] == [method] * count
    specs, summary = summary_of(iter(items))
    if method == "POST":
        assert specs == [] and summary.skipped == {"unsafe": 1}
        allowed, _ = summary_of(iter(items), Selection(allow_unsafe=True))
        assert allowed[0].body and allowed[0].allow_unsafe and not allowed[0].repeat_under_load
    else:
        assert len(specs) == count
        assert all(not name.startswith(":") for spec in specs for name, _ in spec.headers)
        assert all(
            name.lower() not in ("host", "connection", "cookie")
            for s in specs
            for name, _ in s.headers
        )


def test_a_path_that_is_not_utf8_is_counted_as_not_sendable() -> None:
    line = (
        b'10.0.0.1 - - [02/Dec/2026:10:00:00 +0000] "GET /caf\xe9 HTTP/1.1" 200 12 "-" "curl" '
        b"100 0.001 [web-80] [] 10.1.2.3:80 12 0.001 200 abc\n"
    )
    specs, summary = summary_of(read_log([line.decode("utf-8", "surrogateescape")], "t"))
    assert specs == [] and summary.skipped == {"not_sendable": 1}


@pytest.mark.parametrize("time", ["31/Feb/2026:10:00:00 +0000", "02/Foo/2026:10:00:00 +0000"])
def test_a_time_nginx_would_not_write_makes_the_line_malformed(time: str) -> None:
    """Not a request without a time: `load.pace: recorded` would then refuse the whole
    scenario for one line, and no time is what nginx writes there."""
    line = (
        f'10.0.0.1 - - [{time}] "GET /a HTTP/1.1" 200 12 "-" "curl" '
        "100 0.001 [web-80] [] 10.1.2.3:80 12 0.001 200 abc\n"
    )
    specs, summary = summary_of(read_log([line], "t"), Selection(default_host="a.test"))
    assert specs == [] and summary.skipped == {"malformed": 1}


@pytest.mark.parametrize(
    ("time", "seconds"),
    [
        (1764633600.25, 1764633600.25),
        (1764633600250, 1764633600.25),  # JavaScript's Date.now()
        (1764633600250000, 1764633600.25),
        (1764633600250000000, 1764633600.25),
        ("2025-12-02T00:00:00.25Z", 1764633600.25),
        ("yesterday", None),
        (-5, None),
        (True, None),
    ],
    ids=[
        "seconds",
        "milliseconds",
        "microseconds",
        "nanoseconds",
        "rfc3339",
        "words",
        "neg",
        "bool",
    ],
)
def test_jsonl_times_in_any_epoch_unit_read_as_seconds(time: object, seconds: float | None) -> None:
    line = json.dumps({"method": "GET", "url": "/", "time": time})
    (recorded,) = read_jsonl([line], "t.jsonl")
    assert isinstance(recorded, Recorded)
    assert recorded.time_s == (None if seconds is None else pytest.approx(seconds, abs=1e-3))


def test_a_har_entry_with_an_unreadable_start_is_malformed() -> None:
    import json

    har = {
        "log": {
            "entries": [
                {
                    "startedDateTime": "garbage",
                    "request": {"method": "GET", "url": "https://a.test/", "headers": []},
                }
            ]
        }
    }
    specs, summary = summary_of(read_har(json.dumps(har).encode(), "s.har"))
    assert specs == [] and summary.skipped == {"malformed": 1}


def test_a_log_format_string_and_escapes() -> None:
    log_format = (
        '$remote_addr [$time_local] "$request" $status $host $upstream_addr "$http_user_agent"'
    )
    line = '10.0.0.1 [07/Feb/2020:11:48:51 +0000] "GET /caf\\xC3\\xA9?q=1 HTTP/1.1" 200 shop.example.com 10.1.0.5:8080, 10.1.0.6:8080 "curl \\x22x\\x22"'
    [item] = list(read_log([line], "custom.log", log_format))
    assert isinstance(item, Recorded)
    assert (item.method, item.target, item.host) == ("GET", "/café?q=1", "shop.example.com")
    assert ("User-Agent", 'curl "x"') in item.headers
    assert compile_format(log_format).groupindex.keys() >= {"host", "upstream_addr"}


def test_bad_lines_are_skipped_counted_and_located() -> None:
    lines = [LOG.read_text().splitlines()[1], "not a log line", "", '{"broken']
    specs, summary = summary_of(read_log(lines, "a.log"), Selection(hosts_by_upstream=HOSTS))
    assert len(specs) == 1 and summary.skipped == {"malformed": 2}
    assert summary.first_problems[0].startswith("a.log:2: expected a line in the log_format")


def test_json_logs_with_the_common_keys_and_a_key_map() -> None:
    lines = [
        json.dumps(
            {
                "host": "shop.example.com",
                "method": "GET",
                "uri": "/a",
                "args": "x=1",
                "status": 200,
                "upstream_addr": "10.0.0.1:80",
            }
        ),
        json.dumps(
            {"vhost": "api.example.com", "verb": "HEAD", "path": "/b", "upstream_addr": "-"}
        ),
        "[1, 2]",
    ]
    items = list(read_json_log(lines, "j.log", {"vhost": "host", "verb": "request_method"}))
    assert isinstance(items[0], Recorded) and (items[0].host, items[0].target) == (
        "shop.example.com",
        "/a?x=1",
    )
    assert isinstance(items[1], Skipped) and items[1].reason == "never_reached_backend"
    assert isinstance(items[2], Skipped) and items[2].reason == "malformed"


def test_goreplay_requests_only(tmp_path: Path) -> None:
    separator = f"\n{SEPARATOR}\n".encode()
    data = (
        b"1 a1 1700000000000000000 0\nGET /x?y=1 HTTP/1.1\r\nHost: shop.example.com\r\nAccept: */*\r\n\r\n"
        + separator
        + b"2 a1 1700000000100000000 0\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        + separator
        + b"1 a2 1700000001000000000 0\nPOST /order HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 2\r\n\r\n{}"
    )
    path = tmp_path / "requests-ours.gor"
    path.write_bytes(data)
    with path.open("rb") as stream:
        items = list(read_gor(stream, str(path)))
    assert [(i.method, i.target, i.host) for i in items if isinstance(i, Recorded)] == [
        ("GET", "/x?y=1", "shop.example.com"),
        ("POST", "/order", "shop.example.com"),
    ]


def test_per_route_sample_and_filters_keep_breadth() -> None:
    lines = [
        json.dumps({"method": "GET", "url": f"https://shop.example.com/orders/{n}"})
        for n in range(50)
    ]
    lines += [json.dumps({"method": "GET", "url": "https://shop.example.com/healthz"})]
    lines += [json.dumps({"method": "GET", "url": f"https://other.test/p{n}"}) for n in range(3)]
    selection = Selection(per_route=5, paths_exclude=("/healthz",), hosts=("*.example.com",))
    specs, summary = summary_of(read_jsonl(lines, "r.jsonl"), selection)
    assert len(specs) == 5 and {s.name for s in specs} == {"GET shop.example.com/orders/{n}"}
    assert summary.skipped == {"sampled_out": 45, "filtered": 4}
    sampled, summary = summary_of(read_jsonl(lines[:50], "r.jsonl"), Selection(sample_share=0.2))
    assert 3 <= len(sampled) <= 20 and summary.replayed + summary.skipped["sampled_out"] == 50


def test_hygiene_and_credentials() -> None:
    line = json.dumps(
        {
            "method": "GET",
            "url": "https://shop.example.com/",
            "headers": [
                ["Connection", "keep-alive"],
                ["Cookie", "sid=1"],
                ["Authorization", "Bearer x"],
                ["X-Api-Key", "k-123"],
                ["X-Csrf-Token", "t-456"],
                ["Accept", "*/*"],
                ["X-Note", "a\r\nb"],
            ],
        }
    )
    specs, summary = summary_of(read_jsonl([line], "r.jsonl"))
    assert specs == [] and summary.skipped == {"not_sendable": 1}
    clean = line.replace('["X-Note", "a\\r\\nb"]', '["X-Note", "ok"]')
    [spec], _ = summary_of(read_jsonl([clean], "r.jsonl"))
    assert spec.headers == (("Accept", "*/*"), ("X-Note", "ok"))
    [spec], _ = summary_of(read_jsonl([clean], "r.jsonl"), Selection(replay_credentials=True))
    assert ("Cookie", "sid=1") in spec.headers and ("Authorization", "Bearer x") in spec.headers
    assert ("X-Api-Key", "k-123") in spec.headers and ("X-Csrf-Token", "t-456") in spec.headers


def test_export_round_trips_through_the_jsonl_reader() -> None:
    [item] = [i for i in read_har((RECORDED / "har" / "chrome.har").read_bytes(), "c.har")][:1]
    assert isinstance(item, Recorded)
    line = export_line(item, "https://mitmproxy.org/", (("Accept", "*/*"),))
    [back] = list(read_jsonl([line], "e.jsonl"))
    assert isinstance(back, Recorded) and (back.method, back.host, back.target) == (
        "GET",
        "mitmproxy.org",
        "/",
    )


async def test_the_report_sources_section_shows_the_same_numbers(
    start_entry_point: Callable[..., Any],
    write_scenario: Callable[..., Path],
    ca_file: Path,
    tmp_path: Path,
) -> None:
    gz = tmp_path / "access.log.gz"
    gz.write_bytes(gzip.compress(LOG.read_bytes()))
    baseline = await start_entry_point()
    candidate = await start_entry_point("127.0.0.2")
    body = f"""\
        compare: {{noise: {{share: 0}}}}
        tls_probe: {{probe: false}}
        sources:
          - ingress_nginx_log: {gz}
            hosts: {{default-web-8080: app.example.com, default-web2-8080: api.example.com}}
            default_host: app.example.com
          - har: {RECORDED / "har" / "postdata.har"}
        """
    path = write_scenario(baseline, candidate, body, ca_file)
    report = await run_scenario(load_scenario(path, environ={}))
    assert report["sources"] is not None
    log, har = report["sources"]
    assert (log["lines"], log["replayed"], log["skipped"]) == (
        29,
        23,
        {"never_reached_backend": 2, "unsafe": 4},
    )
    assert (har["lines"], har["replayed"], har["skipped"]) == (1, 0, {"unsafe": 1})
    assert report["totals"]["pairs"] == 23
    assert {entry["name"] for entry in report["requests"]} >= {
        "GET app.example.com/products/{n}",
        "GET api.example.com/v2",
    }
    assert len(baseline.requests) == 23


def test_sources_export_reads_back_as_the_same_requests(tmp_path: Path) -> None:
    """`sources export` writes what a run would replay; fed back as `- jsonl:`, the scenario
    replays the same requests (URL, method, headers) in the same order."""
    from shadowdiff.errors import UsageError
    from shadowdiff.sources.export import export_requests

    targets = "targets:\n  baseline: {address: 127.0.0.1}\n  candidate: {address: 127.0.0.2}\n"
    recorded = tmp_path / "recorded.yaml"
    recorded.write_text(
        targets
        + f"sources:\n  - ingress_nginx_log: {LOG}\n"
        + "    hosts: {default-web-8080: shop.example.com, default-web2-8080: api.example.com}\n"
        + f"  - har: {RECORDED / 'har' / 'firefox.har'}\n"
        + "select: {paths_exclude: ['/favicon.ico'], per_route: 3}\n"
    )
    scenario = load_scenario(recorded, environ={})
    summaries: list[SourceSummary] = []
    lines = list(
        export_requests(load_scenario(recorded, environ={}, read_sources=False), summaries)
    )
    assert len(lines) == len(scenario.requests) > 14
    assert [s.as_report() for s in summaries] == list(scenario.sources)
    exported = tmp_path / "requests.jsonl"
    exported.write_text("".join(line + "\n" for line in lines))
    replayed = tmp_path / "replayed.yaml"
    replayed.write_text(targets + f"sources:\n  - jsonl: {exported}\n")
    again = load_scenario(replayed, environ={})
    assert [(r.method, r.url, r.headers) for r in again.requests] == [
        (r.method, r.url, r.headers) for r in scenario.requests
    ]
    assert json.loads(lines[0])["upstream"] == "default-web-8080"
    no_sources = tmp_path / "plain.yaml"
    no_sources.write_text(targets + "requests: [{name: a, url: 'https://a.example.com/'}]\n")
    with pytest.raises(UsageError, match="no sources to export"):
        list(export_requests(load_scenario(no_sources, environ={})))


def test_a_line_without_end_is_skipped_without_being_held(tmp_path: Path) -> None:
    """A log with a 3 MiB line (or no newline at all) is read a bounded piece at a time; the
    long line is counted as malformed and the next one still read."""
    from shadowdiff.scenario.model import RecordedSource
    from shadowdiff.sources import records

    good = LOG.read_text().splitlines()[1]
    path = tmp_path / "long.log"
    path.write_bytes(
        b"x" * (3 * 1024 * 1024) + b"\n" + good.encode() + b"\n" + b"y" * (2 * 1024 * 1024)
    )
    source = RecordedSource.model_validate({"ingress_nginx_log": str(path)})
    items = list(records(source, tmp_path))
    assert [type(i).__name__ for i in items] == ["Skipped", "Recorded", "Skipped"]
    assert all(i.reason == "malformed" for i in items if isinstance(i, Skipped))


def test_a_signal_while_a_log_is_read_stops_the_reading_and_leaves_a_report(tmp_path: Path) -> None:
    """Before: Ctrl-C during the reading of a large log waited for the whole log to be read
    (11 s for 300 MB here) before the report said the run was interrupted."""
    import os
    import signal
    import subprocess
    import sys

    fifo = tmp_path / "live.log"
    os.mkfifo(fifo)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "targets:\n"
        "  baseline: {address: 127.0.0.1, ports: {http: 9, https: 9}}\n"
        "  candidate: {address: 127.0.0.2, ports: {http: 9, https: 9}}\n"
        f"sources:\n  - {{ingress_nginx_log: {fifo}, default_host: shop.example.com}}\n"
        "select: {per_route: 5}\n"
    )
    report = tmp_path / "r.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "shadowdiff", "run", str(scenario), "-q", "--json", str(report)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    line = LOG.read_text().splitlines()[1].encode() + b"\n"
    with fifo.open("wb") as writer:
        # Over a pipe's buffer: when this write returns, the reader has read most of it.
        writer.write(line * 6000)
        writer.flush()
        process.send_signal(signal.SIGINT)
        try:
            for _ in range(100):  # the reader looks at the signal every 4096 lines
                writer.write(line * 1000)
                writer.flush()
        except BrokenPipeError:
            pass  # it stopped reading and ended, as it should
    assert process.wait(timeout=30) == 130
    sources = json.loads(report.read_text())["sources"][0]
    assert sources["lines"] < 100_000 and "reading stopped" in sources["problems"][-1]


def test_a_recorded_url_that_cannot_be_parsed_or_dialled_is_skipped_not_a_crash() -> None:
    # A bracket that never closes ended the reading with a traceback; a port out of range was
    # selected, then ended the run with one (exit 70) when its port was mapped to a target's.
    lines = [
        json.dumps({"method": "GET", "url": url})
        for url in (
            "http://[::1/x",
            "http://shop.example.com:99999/x",
            "http://shop.example.com:abc/x",
            "http://shop.example.com:8080/x",
        )
    ]
    specs, summary = summary_of(read_jsonl(lines, "r.jsonl"))
    assert [spec.url for spec in specs] == ["http://shop.example.com:8080/x"]
    assert summary.skipped == {"malformed": 1, "not_sendable": 2}
