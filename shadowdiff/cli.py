"""The command line: parse arguments, call the library, render, choose the exit code.

This is the only module that exits or prints for the user; everything it does is available
from Python through the library.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from shadowdiff import __version__
from shadowdiff.errors import PreflightFailed, ScenarioError, UsageError, describe_exception
from shadowdiff.metrics.options import (
    DEFAULT_ADDRESS,
    DEFAULT_JOB,
    MetricsOptions,
    listen_address,
    options_problems,
)
from shadowdiff.render.formats import FORMATS, append_step_summary, write_format
from shadowdiff.render.terminal import displayable, print_report
from shadowdiff.report import ExitCode, read_report, write_report
from shadowdiff.report.document import report_json
from shadowdiff.report.pair_stream import PairStreamSettings
from shadowdiff.report.schema import Report
from shadowdiff.report.verdict import exit_code_table
from shadowdiff.run import RunOptions, RunResult, check_options, run
from shadowdiff.scenario import Scenario, load_scenario
from shadowdiff.scenario.schema import scenario_json_schema
from shadowdiff.sources import SourceSummary
from shadowdiff.spec import SIDES
from shadowdiff.stop import STOP, StopRequested

T = TypeVar("T")
_stderr = Console(stderr=True, highlight=False)


def _run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when it is installed (faster sockets and TLS), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def _check_output_path(path: str | None, flag: str = "--json") -> None:
    if path == "-":
        return  # standard output
    if path and not Path(path).resolve().parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {Path(path).resolve().parent} does not exist")


def _check_format_paths(args: argparse.Namespace) -> None:
    for name in FORMATS:
        if getattr(args, name) == "-":
            # Standard output carries the terminal report (or --json -).
            raise UsageError(f"--{name} -: give a file name")
        _check_output_path(getattr(args, name), f"--{name}")
    if args.hgrm is not None:
        if args.hgrm in ("", "-"):
            raise UsageError(f"--hgrm {args.hgrm}: give a file name prefix")
        _check_output_path(f"{args.hgrm}.baseline.hgrm", "--hgrm")


def _write_formats(
    report: Report, args: argparse.Namespace, *, step_summary: bool = False, source: str = ""
) -> None:
    """--junit, --markdown, --hgrm and, for `run` in a GitHub Actions step, the step summary:
    written once the report is built, for an interrupted run too (the report of what
    completed). `source` names a report read from a file, for errors in its histograms."""
    for name in FORMATS:
        if path := getattr(args, name):
            try:
                write_format(name, path, report)
            except OSError as exc:
                raise UsageError(f"--{name} {path}: cannot write: {exc.strerror or exc}") from None
    if args.hgrm:
        from shadowdiff.render.formats import write_hgrm
        from shadowdiff.report.run_figures import report_histograms

        histograms = report_histograms(report, source or "the report")
        try:
            write_hgrm(args.hgrm, histograms)
        except OSError as exc:
            raise UsageError(f"--hgrm {args.hgrm}: cannot write: {exc.strerror or exc}") from None
    summary = os.environ.get("GITHUB_STEP_SUMMARY") if step_summary else None
    if summary:
        try:
            whole = append_step_summary(summary, report)
        except OSError as exc:
            raise UsageError(f"$GITHUB_STEP_SUMMARY {summary}: {exc.strerror or exc}") from None
        if not whole:
            _stderr.print(
                "[yellow]warning:[/] the step summary was cut to stay under GitHub's 1 MiB",
                markup=True,
            )


def _add_format_flags(parser: argparse.ArgumentParser) -> None:
    for name, file_format in FORMATS.items():
        parser.add_argument(f"--{name}", metavar="PATH", help=file_format.help)
    parser.add_argument(
        "--hgrm",
        metavar="PREFIX",
        help="write each side's latency as an HdrHistogram percentile distribution (values in "
        "milliseconds) to PREFIX.baseline.hgrm and PREFIX.candidate.hgrm",
    )


def _add_pairs_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs", metavar="PATH", help="write one JSON line per pair here, as pairs complete"
    )
    parser.add_argument(
        "--pairs-limit", type=int, metavar="N", help="with --pairs: at most N pair lines"
    )
    parser.add_argument(
        "--pairs-max-bytes",
        type=int,
        metavar="BYTES",
        help="with --pairs: at most this many bytes of pair lines (default 1 GiB)",
    )


def _warn_insecure(scenario: Scenario) -> None:
    for side in SIDES:
        if getattr(scenario.targets, side).tls.insecure:
            _stderr.print(
                f"[yellow]warning:[/] certificate verification is off for the {side} "
                "(tls.insecure); a wrong certificate will not be reported",
            )
    for request in scenario.requests:
        if request.tls is not None and request.tls.insecure:
            _stderr.print(
                "[yellow]warning:[/] certificate verification is off for request "
                f"{escape(repr(request.name))} (tls.insecure); a wrong certificate will not be "
                "reported",
            )


async def _run_with_signals(scenario: Scenario, options: RunOptions, *, quiet: bool) -> RunResult:
    """`run`, stopped by SIGINT or SIGTERM at any moment (even before it starts) with the
    report of what completed, and a progress line on a terminal unless `quiet`."""
    from shadowdiff.render.follow_summary import FollowSummaryLine
    from shadowdiff.render.progress import ProgressLine

    display = None if quiet or options.tls_only or options.follow else ProgressLine()
    on_progress = display.update if display is not None else None
    if options.follow and not quiet:
        on_progress = FollowSummaryLine(sys.stderr).update

    def announce_metrics(url: str) -> None:
        if not quiet:
            print(f"metrics: serving {url} until the run ends", file=sys.stderr, flush=True)

    task = asyncio.ensure_future(
        run(
            scenario,
            options,
            on_progress=on_progress,
            stop_cause=lambda: STOP.received.name if STOP.received is not None else None,
            resources=True,
            on_metrics_serving=announce_metrics,
        )
    )
    loop = asyncio.get_running_loop()
    # The handler runs between two bytecodes of this thread, possibly inside the loop's own
    # code: hand the cancellation to the loop rather than cancel from there.
    STOP.listen(lambda: loop.call_soon_threadsafe(task.cancel))
    try:
        return await task
    finally:
        STOP.listen(None)
        if display is not None:
            display.close()


def _finish(
    report: Report, json_path: str | None, quiet: bool, *, all_tls_tables: bool = False
) -> int:
    if json_path == "-":
        # The JSON takes standard output, for a pipe; the terminal report goes to stderr.
        sys.stdout.write(report_json(report))
        sys.stdout.flush()
        if not quiet or report["outcome"]["exit_code"]:
            print_report(report, Console(stderr=True), all_tls_tables=all_tls_tables)
    else:
        if json_path:
            write_report(json_path, report)
        if not quiet or report["outcome"]["exit_code"]:
            print_report(report, all_tls_tables=all_tls_tables)
    code: int = report["outcome"]["exit_code"]
    return code


def command_run(args: argparse.Namespace) -> int:
    from shadowdiff.replay.engine import tune_garbage_collection

    # A signal while a large recorded log is read stops the reading; the run then reports
    # that it was interrupted before its first pair.
    # A followed log is read by the run, from its end: loading names it without reading it.
    scenario = load_scenario(
        args.scenario, keep_reading=lambda: STOP.received is None, read_sources=not args.follow
    )
    from shadowdiff.replay.shard import resolve_shard

    options = RunOptions(
        concurrency=args.concurrency,
        seed=args.seed,
        tls_only=args.tls_only,
        workers=args.workers,
        follow=args.follow,
        follow_pairs_per_s=args.follow_rate,
        metrics=MetricsOptions(
            args.metrics_port, args.metrics_address, args.metrics_push, args.metrics_job
        ),
        trace=not args.no_trace,
        shard=resolve_shard(args.shard, os.environ),
        pairs=_pair_stream(args),
    )
    try:
        check_options(scenario, options)
    except UsageError as exc:
        raise UsageError(f"{args.scenario}: {exc}") from None
    tune_garbage_collection()
    _check_output_path(args.json)
    _check_format_paths(args)
    _warn_insecure(scenario)
    if args.follow and not args.quiet:
        _announce_follow(scenario, options)
    result = _run_async(lambda: _run_with_signals(scenario, options, quiet=args.quiet))
    code = _finish(result.report, args.json, args.quiet, all_tls_tables=args.tls_only)
    _write_formats(result.report, args, step_summary=True)
    if result.metrics_push_error is not None:
        # The run's verdict stands: the push is a copy of its figures, not part of them.
        _stderr.print(
            f"[yellow]warning:[/] {escape(displayable(result.metrics_push_error))}", markup=True
        )
    if result.internal_error is not None:
        # The report is saved; `main` says what went wrong, in one line with no secret in it.
        from shadowdiff.redaction import load_key
        from shadowdiff.report.document import redactor_for

        redactor = redactor_for(scenario, load_key(os.environ)[0])
        raise InternalFailure(
            redactor.text(describe_exception(result.internal_error))
        ) from result.internal_error
    return code


def _announce_follow(scenario: Scenario, options: RunOptions) -> None:
    from shadowdiff.redaction import load_key
    from shadowdiff.replay.stream import DEFAULT_RATE_PER_S
    from shadowdiff.report.document import redactor_for

    path = redactor_for(scenario, load_key(os.environ)[0]).text(scenario.recorded[0].path)
    rate = options.follow_pairs_per_s or DEFAULT_RATE_PER_S
    print(
        f"following {path} from its end, at most {rate:g} pairs/s; Ctrl-C or SIGTERM ends "
        "it and writes the report",
        file=sys.stderr,
        flush=True,
    )


def _pair_stream(args: argparse.Namespace) -> PairStreamSettings | None:
    """--pairs and its bounds, as `run` takes them."""
    from shadowdiff.report.pair_stream import DEFAULT_LIMIT_BYTES, PairStreamSettings

    if args.pairs is None:
        if args.pairs_limit is not None or args.pairs_max_bytes is not None:
            raise UsageError("--pairs-limit and --pairs-max-bytes bound --pairs: give --pairs PATH")
        return None
    if args.pairs == "-":
        # Standard output carries the terminal report (or --json -).
        raise UsageError("--pairs -: give a file name")
    _check_output_path(args.pairs, "--pairs")
    limit_bytes = DEFAULT_LIMIT_BYTES if args.pairs_max_bytes is None else args.pairs_max_bytes
    return PairStreamSettings(args.pairs, args.pairs_limit, limit_bytes)


def _rollback_rules(scenario: Scenario, args: argparse.Namespace) -> Any:
    """`rollback_when` of the scenario, each limit replaced by its flag when given."""
    from shadowdiff.watch import RollbackRules

    written = scenario.rollback_when
    rules = RollbackRules(
        written.error_rate_points if written else None,
        written.p99_ratio if written else None,
        written.intervals if written else 2,
    )
    flags = {
        "error_rate_points": args.rollback_error_points,
        "p99_ratio": args.rollback_p99_ratio,
        "intervals": args.rollback_intervals,
    }
    problems = []
    if flags["error_rate_points"] is not None and not 0 < flags["error_rate_points"] <= 100:
        problems.append("--rollback-error-points must be more than 0 and at most 100")
    if flags["p99_ratio"] is not None and not 1 < flags["p99_ratio"] <= 1000:
        problems.append("--rollback-p99-ratio must be more than 1 and at most 1000")
    if flags["intervals"] is not None and not 1 <= flags["intervals"] <= 10_000:
        problems.append("--rollback-intervals must be from 1 to 10000")
    if problems:
        raise UsageError("\n".join(problems))
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(rules, **given)


def command_watch(args: argparse.Namespace) -> int:
    from shadowdiff.metrics.serve import MetricsServer
    from shadowdiff.render.watch_table import WatchDisplay, reference_line, summary_lines
    from shadowdiff.watch import (
        WatchOptions,
        build_watch_report,
        checkpoint_side,
        parse_nameserver,
        read_checkpoint,
        watch,
        watch_redactor,
        write_watch_report,
    )
    from shadowdiff.watch.compare import MIN_CHECKPOINT_LATENCIES
    from shadowdiff.watch.metrics import WatchMetrics

    scenario = load_scenario(args.scenario, keep_reading=lambda: STOP.received is None)
    try:
        nameserver = parse_nameserver(args.nameserver)
    except ValueError as exc:
        raise UsageError(f"--nameserver: {exc}") from None
    if not 0 < args.rate <= 1000:
        raise UsageError("--rate must be more than 0 and at most 1000 rounds a second")
    if not 0.2 <= args.interval <= 3600:
        raise UsageError("--interval must be from 0.2 to 3600 seconds")
    rules = _rollback_rules(scenario, args)
    metrics_problems = options_problems(MetricsOptions(args.metrics_port, args.metrics_address))
    if metrics_problems:
        raise UsageError("\n".join(metrics_problems))
    checkpoint = read_checkpoint(args.checkpoint)
    answered = checkpoint["baseline"].latency.count
    if rules.p99_ratio is not None and answered < MIN_CHECKPOINT_LATENCIES:
        raise UsageError(
            f"{args.checkpoint}: the baseline has {answered} timed answers; a p99 rule needs "
            f"at least {MIN_CHECKPOINT_LATENCIES} (run the checkpoint with more repeats)"
        )
    if args.json == "-":
        raise UsageError("--json -: give a file name (standard output carries the rows)")
    _check_output_path(args.json)
    options = WatchOptions(nameserver, rules, args.rate, args.interval, args.seed)
    redactor = watch_redactor(scenario)
    display = WatchDisplay(
        args.interval,
        f"watch {scenario.name} via {args.nameserver}",
        json_lines=args.json_lines,
        out=sys.stdout,
        console=Console(highlight=False),
    )
    reference = redactor.walk(checkpoint_side(checkpoint["baseline"]))
    limits = [
        f"error rate +{rules.error_rate_points:g} points" if rules.error_rate_points else "",
        f"p99 x{rules.p99_ratio:g}" if rules.p99_ratio else "",
    ]
    said = " or ".join(limit for limit in limits if limit)
    _stderr.print(
        escape(
            f"watching {scenario.name}: {args.rate:g} rounds/s, every {args.interval:g} s; "
            + (
                f"rollback when {said} for {rules.intervals} intervals"
                if said
                else "no rollback_when: watching only"
            )
            + "; Ctrl-C or SIGTERM ends it and writes the report"
        ),
        soft_wrap=True,
    )
    _stderr.print(escape(reference_line(reference)), soft_wrap=True)

    metrics = WatchMetrics() if args.metrics_port is not None else None

    def on_row(row: Any) -> None:
        shown = redactor.walk(row)
        display.show(shown)
        if metrics is not None:
            metrics.observe(shown)

    async def watch_with_signals() -> Any:
        server = None
        if metrics is not None:
            # Listening first: a port in use is an error before anything is sent.
            server = MetricsServer(metrics.registry)
            url = await server.start(args.metrics_address, args.metrics_port)
            print(f"metrics: serving {url} until the watch ends", file=sys.stderr, flush=True)
        task = asyncio.ensure_future(watch(scenario, checkpoint, options, on_row=on_row))
        loop = asyncio.get_running_loop()
        STOP.listen(lambda: loop.call_soon_threadsafe(task.cancel))
        try:
            return await task
        finally:
            STOP.listen(None)
            display.close()
            if server is not None:
                await server.close()

    result = _run_async(watch_with_signals)
    stop_cause = STOP.received.name if STOP.received is not None else None
    report = build_watch_report(
        scenario, args.checkpoint, checkpoint, options, result, stop_cause or "cancelled"
    )
    if args.json:
        try:
            write_watch_report(args.json, report)
        except OSError as exc:
            raise UsageError(f"--json {args.json}: cannot write: {exc.strerror or exc}") from None
    for line in summary_lines(report):
        _stderr.print(escape(line), soft_wrap=True)
    if result.internal_error is not None:
        raise InternalFailure(
            redactor.text(describe_exception(result.internal_error))
        ) from result.internal_error
    code: int = report["outcome"]["exit_code"]
    return code


def command_demo(args: argparse.Namespace) -> int:
    from shadowdiff.demo.run import run_demo

    _check_output_path(args.json)
    _check_format_paths(args)
    pairs = _pair_stream(args)
    _, report = _run_async(lambda: run_demo(pairs=pairs))
    code = _finish(report, args.json, quiet=False)
    _write_formats(report, args)
    return code


# How the loader says a `${VAR}` has no value: `validate --no-env` lists these as needs.
_UNSET = re.compile(r"environment variable (\w+) is not set")


def command_validate(args: argparse.Namespace) -> int:
    problems: list[str] = []
    for file in args.scenarios:
        try:
            scenario = load_scenario(file, environ={} if args.no_env else None)
        except ScenarioError as exc:
            unset = {p: _UNSET.match(p.message) for p in exc.problems} if args.no_env else {}
            needed = {p: match.group(1) for p, match in unset.items() if match is not None}
            problems += [str(problem) for problem in exc.problems if problem not in needed]
            if needed:
                names = ", ".join(dict.fromkeys(needed.values()))
                print(f"{file}: needs environment variables {names}")
            if needed and len(needed) == len(exc.problems):
                print(f"{file}: ok without the environment, apart from those")
            continue
        size = f"{scenario.pair_count} pairs"
        if scenario.load is not None and scenario.load.pace == "recorded":
            size += f" at the recorded pace, speed {scenario.load.speed:g}"
        elif scenario.pair_count is None and scenario.load is not None:
            size = f"{scenario.load.total_duration_s:g} s of {scenario.load.model}-model load"
        print(f"{file}: ok, {len(scenario.requests)} requests, {size}")
        _print_sources(scenario)
    if problems:
        raise UsageError("\n".join(problems))
    return ExitCode.IDENTICAL


def _print_sources(scenario: Scenario) -> None:
    """Per recorded source, what it will replay and what it skipped: a file that is no HAR
    or log at all reads as 0 requests, and must say why."""
    if not scenario.sources:
        return
    from shadowdiff.redaction import load_key
    from shadowdiff.report.document import redactor_for

    redactor = redactor_for(scenario, load_key(os.environ)[0])
    for source in scenario.sources:
        skipped = ", ".join(f"{n} {reason}" for reason, n in source["skipped"].items())
        line = f"  {source['name']}: {source['replayed']} of {source['lines']} to replay"
        print(displayable(redactor.text(line + (f"; skipped: {skipped}" if skipped else ""))))
        for problem in source["problems"]:
            print(displayable(redactor.text(f"    {problem}")))


def command_schema(args: argparse.Namespace) -> int:
    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


def command_report(args: argparse.Namespace) -> int:
    _check_format_paths(args)
    report = read_report(args.report)
    if args.hgrm:
        from shadowdiff.report.run_figures import report_histograms

        report_histograms(report, args.report)  # a file's histograms checked before any output
    print_report(report)
    _write_formats(report, args, source=args.report)
    code: int = report["outcome"]["exit_code"]
    return code


def command_compare_runs(args: argparse.Namespace) -> int:
    from shadowdiff.render.compare_runs import print_comparison
    from shadowdiff.report.compare_runs import (
        compare_reports,
        comparison_document,
        write_comparison,
    )
    from shadowdiff.report.run_figures import read_report_figures
    from shadowdiff.stats.run_comparison import PERCENTILES, RunThresholds

    _check_output_path(args.json)
    ratios = dict.fromkeys(PERCENTILES, args.max_latency_ratio)
    if args.max_p99_ratio is not None:
        ratios["p99"] = args.max_p99_ratio
    thresholds = RunThresholds(
        latency_ratio=ratios,
        latency_min_difference_ms=args.min_latency_difference_ms,
        error_rate_increase=args.max_error_increase / 100,
        rate_drop=None if args.max_rate_drop is None else args.max_rate_drop / 100,
    )
    checkpoint = read_report_figures(args.checkpoint)
    current = read_report_figures(args.current)
    result = compare_reports(checkpoint, current, thresholds)
    document = comparison_document(result)
    if args.json == "-":
        sys.stdout.write(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        print_comparison(result, Console(stderr=True))
    else:
        if args.json:
            try:
                write_comparison(args.json, document)
            except OSError as exc:
                raise UsageError(
                    f"--json {args.json}: cannot write: {exc.strerror or exc}"
                ) from None
        print_comparison(result)
    return int(result.exit_code)


def _number_at_least(minimum: float, maximum: float = float("inf")) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
        if not minimum <= value <= maximum:
            upper = "" if maximum == float("inf") else f" and at most {maximum:g}"
            raise argparse.ArgumentTypeError(f"expected at least {minimum:g}{upper}; got {text}")
        return value

    return parse


def command_merge(args: argparse.Namespace) -> int:
    from shadowdiff.redaction import load_key
    from shadowdiff.report.merge import merge_reports

    _check_output_path(args.json)
    _check_format_paths(args)
    report = merge_reports(args.reports, redaction_key=load_key(os.environ))
    code = _finish(report, args.json, args.quiet)
    _write_formats(report, args)
    return code


def command_sources_export(args: argparse.Namespace) -> int:
    from shadowdiff.redaction import load_key
    from shadowdiff.sources.export import export_requests, export_summary

    scenario = load_scenario(args.scenario, read_sources=False)
    summaries: list[SourceSummary] = []
    out = sys.stdout
    for line in export_requests(scenario, summaries, key=load_key(os.environ)[0]):
        out.write(line + "\n")
    out.flush()
    for line in export_summary(scenario, summaries):
        print(line, file=sys.stderr)
    return ExitCode.IDENTICAL


def command_plan(args: argparse.Namespace) -> int:
    from shadowdiff.plan import plan_files

    try:
        text, notes = plan_files(args.manifests, allow_unsafe=args.allow_unsafe)
    except ScenarioError as exc:
        raise UsageError("\n".join(str(problem) for problem in exc.problems)) from None
    sys.stdout.write(text)
    sys.stdout.flush()
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return ExitCode.IDENTICAL


def command_preflight(args: argparse.Namespace) -> int:
    from shadowdiff.plan import preflight_files

    try:
        findings = preflight_files(args.manifests, args.secrets)
    except ScenarioError as exc:
        raise UsageError("\n".join(str(problem) for problem in exc.problems)) from None
    for finding in findings:
        print(displayable(str(finding)))
    if findings:
        print(
            f"preflight: {_problems(len(findings))}; fix them before sending traffic",
            file=sys.stderr,
        )
        return ExitCode.DIFFERENCES
    print("preflight: nothing keeps the Gateways and routes from serving", file=sys.stderr)
    return ExitCode.IDENTICAL


def _problems(count: int) -> str:
    return f"{count} problem" if count == 1 else f"{count} problems"


def command_echo(args: argparse.Namespace) -> int:
    from aiohttp import web

    from shadowdiff.echo import EchoIdentity, make_echo_app

    found = EchoIdentity.from_environment()
    # Each flag overrides its own variable; the other keeps what the environment says.
    identity = EchoIdentity(args.service or found.service, args.pod or found.pod, found.namespace)
    announcement = f"echo backend {identity.service}/{identity.pod} on {args.host}:{args.port}"
    # aiohttp calls `print` once the listener is up: the line is a readiness signal.
    web.run_app(
        make_echo_app(identity, args.port),
        host=args.host,
        port=args.port,
        print=lambda _: _stderr.print(announcement),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowdiff",
        description="Replay requests against two entry points (baseline and candidate) "
        "and report what differs.",
        epilog=_exit_code_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"shadowdiff {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="replay a scenario against both targets")
    run.add_argument("scenario", help="scenario file (YAML)")
    run.add_argument("--json", metavar="PATH", help="write the versioned JSON report here")
    _add_format_flags(run)
    run.add_argument("--concurrency", "-c", type=int, metavar="N", help="pairs in flight")
    run.add_argument(
        "--quiet", "-q", action="store_true", help="no progress; report only on failure"
    )
    run.add_argument("--seed", type=int, help="seed for the send order within pairs")
    run.add_argument(
        "--tls-only", action="store_true", help="only probe TLS: a certificate table per hostname"
    )
    run.add_argument(
        "--no-trace",
        action="store_true",
        help="send no W3C traceparent header (as defaults.trace: false)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes sending requests, each a share of the pairs (default 1; one per core)",
    )
    run.add_argument(
        "--follow",
        action="store_true",
        help="replay what the scenario's one log gains from now on, as tail -F follows it, "
        "until Ctrl-C or SIGTERM; exits with the verdict's code",
    )
    run.add_argument(
        "--follow-rate",
        type=float,
        metavar="PAIRS_PER_S",
        help="with --follow: start at most this many pairs a second (default 20); lines "
        "beyond it are counted as sampled out",
    )
    _add_metrics_flags(run)
    run.add_argument(
        "--shard",
        metavar="K/N",
        help="send only shard K of N (0-based) of the run, with its mix of requests; "
        "'auto' (or no flag in a Kubernetes Indexed Job) reads $JOB_COMPLETION_INDEX and "
        "$SHADOWDIFF_SHARDS",
    )
    _add_pairs_flags(run)
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    run.set_defaults(handler=command_run)

    watch = commands.add_parser(
        "watch",
        help="during the DNS cutover: where DNS points, each entry point against a "
        "checkpoint, and when to roll back (exit 5)",
    )
    watch.add_argument("scenario", help="scenario file (YAML); only its safe requests are sent")
    watch.add_argument(
        "--checkpoint",
        required=True,
        metavar="REPORT.json",
        help="`shadowdiff run --json` report taken before the cutover; its baseline is the "
        "reference",
    )
    watch.add_argument(
        "--nameserver",
        required=True,
        metavar="HOST:PORT",
        help="the nameserver to ask for each hostname (an IP address; port 53 by default)",
    )
    watch.add_argument(
        "--rate",
        type=float,
        default=2.0,
        metavar="ROUNDS_PER_S",
        help="rounds a second, each one request via DNS and one to each entry point (default 2)",
    )
    watch.add_argument(
        "--interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between DNS look-ups and table rows (default 10)",
    )
    watch.add_argument(
        "--rollback-error-points",
        type=float,
        metavar="N",
        help="roll back when the candidate's error rate is above the checkpoint's by N points "
        "(overrides rollback_when.error_rate_points)",
    )
    watch.add_argument(
        "--rollback-p99-ratio",
        type=float,
        metavar="R",
        help="roll back when the candidate's p99 is above R times the checkpoint's "
        "(overrides rollback_when.p99_ratio)",
    )
    watch.add_argument(
        "--rollback-intervals",
        type=int,
        metavar="K",
        help="for K intervals in a row (overrides rollback_when.intervals; default 2)",
    )
    watch.add_argument("--json", metavar="PATH", help="write the watch report here when it ends")
    watch.add_argument(
        "--json-lines", action="store_true", help="one JSON object per interval on stdout"
    )
    watch.add_argument("--seed", type=int, help="seed for the address a client request picks")
    watch.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    watch.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the watch's rows as Prometheus metrics at http://ADDRESS:PORT/metrics "
        "(0: any free port, printed on stderr); see docs/metrics.md",
    )
    watch.add_argument(
        "--metrics-address",
        default=DEFAULT_ADDRESS,
        type=listen_address,
        metavar="ADDRESS",
        help=f"with --metrics-port: the address to listen on (default {DEFAULT_ADDRESS})",
    )
    watch.set_defaults(handler=command_watch)

    demo = commands.add_parser(
        "demo", help="run the bundled scenario against two embedded entry points"
    )
    demo.add_argument("--json", metavar="PATH", help="write the versioned JSON report here")
    _add_format_flags(demo)
    _add_pairs_flags(demo)
    demo.set_defaults(handler=command_demo)

    validate = commands.add_parser("validate", help="check scenario files without sending anything")
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    validate.add_argument(
        "--no-env",
        action="store_true",
        help="check without the environment: list the variables a run would need",
    )
    validate.set_defaults(handler=command_validate)

    schema = commands.add_parser("schema", help="print the JSON Schema of the scenario format")
    schema.set_defaults(handler=command_schema)

    report = commands.add_parser("report", help="render a saved JSON report")
    report.add_argument("report", metavar="REPORT.json")
    _add_format_flags(report)
    report.set_defaults(handler=command_report)

    compare = commands.add_parser(
        "compare-runs",
        help="compare two saved reports of one scenario (a checkpoint and now): rate, error "
        "rates and latency percentiles with intervals; exit 4 when worse beyond a threshold",
        description="Compare two JSON reports of the same scenario run at two times (the "
        "checkpoint recorded before the cutover, and now), per entry point and overall. A "
        "figure is worse only when its whole interval lies beyond its threshold (all the "
        "intervals hold together at 95%).",
    )
    compare.add_argument("checkpoint", metavar="CHECKPOINT.json", help="the earlier run's report")
    compare.add_argument("current", metavar="CURRENT.json", help="the later run's report")
    compare.add_argument("--json", metavar="PATH", help="write the comparison as JSON here")
    compare.add_argument(
        "--max-latency-ratio",
        type=_number_at_least(1.0),
        default=1.2,
        metavar="RATIO",
        help="p50, p90 and p99 may be this many times the checkpoint's (default 1.2)",
    )
    compare.add_argument(
        "--max-p99-ratio",
        type=_number_at_least(1.0),
        metavar="RATIO",
        help="p99 only: overrides --max-latency-ratio",
    )
    compare.add_argument(
        "--min-latency-difference-ms",
        type=_number_at_least(0.0),
        default=5.0,
        metavar="MS",
        help="a slower percentile must also be this many ms slower (default 5)",
    )
    compare.add_argument(
        "--max-error-increase",
        type=_number_at_least(0.0, 100.0),
        default=0.5,
        metavar="POINTS",
        help="the error rate and the 5xx rate may rise by this many percentage points "
        "(default 0.5)",
    )
    compare.add_argument(
        "--max-rate-drop",
        type=_number_at_least(0.0, 100.0),
        metavar="PERCENT",
        help="the answered rate may fall by this many percent (default: not checked)",
    )
    compare.set_defaults(handler=command_compare_runs)
    merge = commands.add_parser(
        "merge", help="merge the JSON reports of shards or machines into one report, exactly"
    )
    merge.add_argument("reports", nargs="+", metavar="REPORT.json")
    merge.add_argument("--json", metavar="PATH", help="write the merged JSON report here")
    _add_format_flags(merge)
    merge.add_argument(
        "--quiet", "-q", action="store_true", help="print the report only when it fails"
    )
    merge.set_defaults(handler=command_merge)

    plan = commands.add_parser(
        "plan",
        help="write a scenario that probes every rule and annotation of Ingress manifests",
    )
    plan.add_argument(
        "manifests", nargs="+", metavar="INGRESS.yaml", help="kubectl get ingress -A -o yaml"
    )
    plan.add_argument(
        "--allow-unsafe",
        action="store_true",
        help="also write probes that send a body (proxy-body-size: a POST one byte over)",
    )
    plan.set_defaults(handler=command_plan)

    preflight = commands.add_parser(
        "preflight",
        help="list what keeps Gateway API objects from serving, before any traffic (exit 1)",
    )
    preflight.add_argument(
        "manifests",
        nargs="+",
        metavar="GATEWAY.yaml",
        help="kubectl get gatewayclass,gateway,httproute,grpcroute,referencegrant,service -A "
        "-o yaml",
    )
    preflight.add_argument(
        "--secrets",
        metavar="FILE",
        help="kubectl get secret -A -o name: certificate Secrets are checked by name only",
    )
    preflight.set_defaults(handler=command_preflight)

    sources = commands.add_parser("sources", help="work with recorded traffic")
    source_commands = sources.add_subparsers(
        dest="sources_command", required=True, metavar="COMMAND"
    )
    export = source_commands.add_parser(
        "export",
        help="write the scenario's selected recorded requests as JSONL to stdout "
        "(credentials never written)",
    )
    export.add_argument("scenario", help="scenario file (YAML) with a sources section")
    export.set_defaults(handler=command_sources_export)

    echo = commands.add_parser("echo", help="serve an echo backend (echo-basic JSON)")
    echo.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    echo.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    echo.add_argument("--service", help="service name (default $SERVICE_NAME)")
    echo.add_argument("--pod", help="pod name (default $POD_NAME or the host name)")
    echo.set_defaults(handler=command_echo)
    return parser


def _add_metrics_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://ADDRESS:PORT/metrics while the run goes on "
        "(0: any free port, printed on stderr); see docs/metrics.md",
    )
    parser.add_argument(
        "--metrics-address",
        default=DEFAULT_ADDRESS,
        type=listen_address,
        metavar="ADDRESS",
        help=f"with --metrics-port: the address to listen on (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--metrics-push",
        metavar="URL",
        help="push the metrics to this Pushgateway when the run ends (a short CI run); "
        "user:password@ in the URL goes as Basic authentication",
    )
    parser.add_argument(
        "--metrics-job",
        default=DEFAULT_JOB,
        metavar="NAME",
        help=f"with --metrics-push: the job label to push under (default {DEFAULT_JOB})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Installed already by `python -m shadowdiff` and the `shadowdiff` command, before the
    # imports; installed (and removed afterwards) here when the CLI is called from Python.
    installed_here = not STOP.installed
    STOP.install()
    try:
        return _main(argv)
    finally:
        if installed_here:
            STOP.uninstall()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.handler not in (command_run, command_watch):
        # Nothing to save: a signal ends these commands at once.
        if STOP.exit_code is not None:
            return STOP.exit_code
        STOP.raise_on_signal = True
    try:
        return int(args.handler(args))
    except UsageError as exc:
        for line in str(exc).splitlines():
            _print_error(line)
        return ExitCode.USAGE
    except PreflightFailed as exc:
        for finding in exc.findings:
            print(displayable(finding))
        _print_error(f"{exc}: fix them before sending traffic (nothing was sent)")
        return ExitCode.DIFFERENCES
    except StopRequested as stop:
        return 128 + stop.signum
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except InternalFailure as exc:
        _print_error(f"internal: {exc}")
        if args.debug and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    except Exception as exc:
        _print_error(f"internal: {describe_exception(exc)}")
        if args.debug:
            traceback.print_exception(exc, file=sys.stderr)
        return ExitCode.INTERNAL_ERROR


class InternalFailure(Exception):
    """A run that failed on a bug after its report was saved; the message is redacted."""


def _print_error(line: str) -> None:
    if sys.stderr.isatty():
        # The line may quote a file's content: shown as text, never as markup.
        _stderr.print(
            f"[red]error:[/] {escape(displayable(line))}",
            soft_wrap=True,
            markup=True,
            highlight=False,
        )
    else:
        print(f"error: {line}", file=sys.stderr)


_DEBUG_HELP = "on an internal error, print the traceback too"


def _exit_code_epilog() -> str:
    width = max(len(str(code)) for code, _ in exit_code_table())
    lines = [f"  {code:>{width}}  {meaning}" for code, meaning in exit_code_table()]
    return "exit codes (every command):\n" + "\n".join(lines)


def entry_point() -> None:
    sys.exit(main())
