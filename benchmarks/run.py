"""Run every benchmark in one process run and write ``benchmarks/results.md``.

    python -m benchmarks            # the full run (about 10 minutes on 2 cores)
    python -m benchmarks --quick    # fewer, shorter rounds, smaller counts, no valgrind
                                    # (about 2 minutes)
    python -m benchmarks --only asgi,wsgi

Needs the ``bench`` extra (``pip install -e '.[test,bench]'``). Figures are medians of
interleaved rounds with min and max; every ratio is taken within a round.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

import hera_middleware

from . import e2e, inprocess, instructions, throughput
from ._timing import Series, fmt, per_round, spread

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.md"
NOTES_MARK = "<!-- notes: everything below this line is kept when the file is regenerated -->"
SECTIONS = ("asgi", "wsgi", "instructions", "scaling", "output", "memory", "e2e")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, str, bool]] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def target(self, what: str, goal: str, got: str, ok: bool) -> None:
        self.targets.append((what, goal, got, ok))
        log(f"  {'met   ' if ok else 'MISSED'} {what}: {got} (target {goal})")


def _overhead_table(
    report: Report, results: dict[str, Series], base_of: Callable[[str], str], peers: list[str]
) -> None:
    report.add(
        "| variant | µs/request: median (min–max) | over its bare app, µs | ratio to bare |",
        "|---|---|---|---|",
    )
    for name, series in results.items():
        base = results[base_of(name)]
        if series is base:
            report.add(f"| {name} | {spread(series)} | — | 1.00 |")
            continue
        delta = per_round(series, base, lambda a, b: a - b)
        ratio = per_round(series, base, lambda a, b: a / b)
        report.add(f"| {name} | {spread(series)} | {spread(delta, 2)} | {fmt(ratio.median, 2)} |")
    report.add("")
    del peers


def _section_inprocess(
    report: Report, kind: str, results: dict[str, Series], hera: str, peer: str, match_goal: float
) -> None:
    def base_of(name: str) -> str:
        return (
            "bare app, unmatched path"
            if "no candidate" in name or "unmatched" in name
            else "bare app"
        )

    _overhead_table(report, results, base_of, [])
    bare, bare_other = results["bare app"], results["bare app, unmatched path"]
    nocand = per_round(results[f"{hera}, no candidate rule"], bare_other, lambda a, b: a - b)
    report.target(
        f"{kind}: no candidate rule, over the bare app", "≤ +1 µs", f"+{spread(nocand, 2)} µs",
        nocand.median <= 1.0,
    )  # fmt: skip
    otel = per_round(results[peer], bare, lambda a, b: a - b)
    for out in ("a file", "/dev/null"):
        matched = per_round(
            results[f"{hera}, rule matches, event to {out}"], bare, lambda a, b: a - b
        )
        report.target(
            f"{kind}: rule matches, one event to {out}, over the bare app",
            f"≤ +{match_goal:g} µs", f"+{spread(matched, 2)} µs", matched.median <= match_goal,
        )  # fmt: skip
        cheaper = per_round(otel, matched, lambda a, b: a / b if b > 0 else float("inf"))
        report.target(
            f"{kind}: times cheaper than {peer} (event to {out})", "≥ 15×",
            f"{spread(cheaper)}×", cheaper.median >= 15,
        )  # fmt: skip


def run_asgi(report: Report, args: argparse.Namespace, outputs: dict[str, str]) -> None:
    log("ASGI in-process (Starlette token endpoint)")
    results = inprocess.asgi(outputs, args.rounds, args.seconds, log)
    report.add(
        "## In-process ASGI: Starlette token endpoint",
        "",
        "A POST with an urlencoded body (`code_verifier` and four other fields) to a",
        "Starlette endpoint that parses the form and answers JSON, called directly with ASGI",
        "messages. HeraEvents loads `examples/fastapi_app/hera.yaml`: `/oauth/token` has",
        "four candidate rules, one of which writes `pkce_token_exchange`; `/api/token` (the",
        "same endpoint) has none. A HeraEvents variant that writes events calls `flush()`",
        "after every 4,000 requests inside its timed batch, so the writer thread's work is in",
        "the figure and its queue never overflows (this loop never releases the GIL, so the",
        "writer gets hardly a turn before `flush()`; a server releases it at every socket",
        "call).",
        "",
    )
    _section_inprocess(
        report, "ASGI", results, "HeraEvents", "OpenTelemetry ASGI (SDK tracer provider)", 8
    )


def run_wsgi(report: Report, args: argparse.Namespace, outputs: dict[str, str]) -> None:
    log("WSGI in-process (Flask token endpoint)")
    results = inprocess.wsgi(outputs, args.rounds, args.seconds, log)
    report.add(
        "## In-process WSGI: Flask token endpoint",
        "",
        "The same endpoint on Flask, called as a WSGI server calls it (iterate, close).",
        "",
    )
    _section_inprocess(
        report, "WSGI", results, "HeraEventsWSGI", "OpenTelemetry WSGI (SDK tracer provider)", 5
    )


#: The issue's reference times of the bare apps (µs), which its µs targets are relative to.
REFERENCE_BARE = {"asgi": 11.0, "wsgi": 80.0}
#: kind -> (no-candidate target, matching target), µs over the bare app.
OVERHEAD_GOALS = {"asgi": (1.0, 8.0), "wsgi": (1.0, 5.0)}


def run_instructions(report: Report, args: argparse.Namespace) -> None:
    if args.quick and not args.only_given:
        report.add(
            "## Instructions per request",
            "",
            "Skipped in a `--quick` run (about 4 minutes under valgrind):"
            " `python -m benchmarks --only instructions` runs it alone.",
            "",
        )
        return
    if not instructions.available():
        report.add(
            "## Instructions per request",
            "",
            "Skipped: valgrind is not installed (Debian's package `valgrind`).",
            "",
        )
        log("instructions: skipped, no valgrind")
        return
    log("instructions per request (callgrind)")
    per = instructions.measure(log)
    report.add(
        "## Instructions per request",
        "",
        "Timings on a shared or busy machine move by tens of per cent between runs;",
        "instruction counts do not. Each variant runs in a fresh process under",
        f"`valgrind --tool=callgrind`, once with {instructions.FEW:,} and once with",
        f"{instructions.MANY:,} requests; the difference per request is shown (start-up",
        "cancels out; the writer thread's instructions are in, as the events are flushed).",
        "The µs targets are over the issue's reference bare apps (Starlette 11 µs, Flask",
        "80 µs); *as µs at the reference* scales each overhead by that bare app's time, an",
        "estimate of what the overhead costs where those references were measured.",
        "",
        "| variant | instructions/request | over its bare app | as a share of it"
        " | as µs at the reference |",
        "|---|---|---|---|---|",
    )
    for kind in ("asgi", "wsgi"):
        bare = per[f"{kind} bare"]
        for variant, label in instructions.VARIANTS.items():
            if not variant.startswith(kind):
                continue
            over = per[variant] - bare
            share = over / bare
            us = share * REFERENCE_BARE[kind]
            cells = (
                "— | — | —" if variant == f"{kind} bare" else f"{over:+,} | {share:.1%} | {us:+.2f}"
            )
            report.add(f"| {label} | {per[variant]:,} | {cells} |")
    report.add("")
    for kind in ("asgi", "wsgi"):
        bare = per[f"{kind} bare"]
        name = kind.upper()
        no_goal, match_goal = OVERHEAD_GOALS[kind]
        miss = (per[f"{kind} hera miss"] - bare) / bare * REFERENCE_BARE[kind]
        match = (per[f"{kind} hera match"] - bare) / bare * REFERENCE_BARE[kind]
        cheaper = (per[f"{kind} otel"] - bare) / max(per[f"{kind} hera match"] - bare, 1)
        report.target(
            f"{name}, instruction counts: no candidate rule, as µs at the reference",
            f"≤ +{no_goal:g} µs", f"+{miss:.2f} µs", miss <= no_goal,
        )  # fmt: skip
        report.target(
            f"{name}, instruction counts: rule matches, one event, as µs at the reference",
            f"≤ +{match_goal:g} µs", f"+{match:.2f} µs", match <= match_goal,
        )  # fmt: skip
        report.target(
            f"{name}, instruction counts: times cheaper than OpenTelemetry",
            "≥ 15×", f"{cheaper:.1f}×", cheaper >= 15,
        )  # fmt: skip


def run_scaling(report: Report, args: argparse.Namespace, outputs: dict[str, str]) -> None:
    log("rule-count scaling")
    counts = [10, 100, 1000, 10000]
    results = inprocess.scaling(counts, outputs["devnull"], args.rounds, args.seconds, log)
    report.add(
        "## Rule-count scaling",
        "",
        "HeraEvents around a minimal ASGI token app, with N generated rules of distinct",
        "paths: a third static (`POST /s{i}/oauth/token`), a third templated",
        "(`POST /t{i}/{realm}/oauth/token`), a third templated under one shared prefix",
        f"(`GET /u/{{user}}/mfa{{i}}`). *match*: `POST {inprocess.MATCH_PATH}`, one rule holds",
        f"and writes an event (to /dev/null); *miss*: `POST {inprocess.MISS_PATH}`, no rule.",
        "",
        "| rules | match: µs/request | miss: µs/request | match vs 10 rules | miss vs 10 rules |",
        "|---|---|---|---|---|",
    )
    for count in counts:
        match, miss = results[f"{count} rules, match"], results[f"{count} rules, miss"]
        rm = per_round(match, results["10 rules, match"], lambda a, b: a / b)
        rs = per_round(miss, results["10 rules, miss"], lambda a, b: a / b)
        report.add(
            f"| {count:,} | {spread(match, 2)} | {spread(miss, 2)} | {fmt(rm.median, 2)} |"
            f" {fmt(rs.median, 2)} |"
        )
    bm, bs = results["bare, match path"], results["bare, miss path"]
    report.add(f"| bare app | {spread(bm, 2)} | {spread(bs, 2)} | | |", "")
    for kind in ("match", "miss"):
        ratio = per_round(
            results[f"10000 rules, {kind}"], results[f"10 rules, {kind}"], lambda a, b: a / b
        )
        report.target(
            f"rule count: 10,000 vs 10 rules, {kind}ing path (µs/request)", "≤ 1.2×",
            f"{spread(ratio, 2)}×", ratio.median <= 1.2,
        )  # fmt: skip


def run_output(report: Report, args: argparse.Namespace, workdir: Path) -> None:
    log("output throughput")
    n = args.events
    configs = {
        "file, 1 thread": (throughput.to_file, 1),
        "file, 8 threads": (throughput.to_file, 8),
        "pipe, 1 thread": (throughput.to_pipe, 1),
        "pipe, 8 threads": (throughput.to_pipe, 8),
    }
    rates: dict[str, Series] = {name: Series(name, []) for name in configs}
    checks: dict[str, set[str]] = {name: set() for name in configs}
    for r in range(args.rounds):
        for name, (fn, threads) in configs.items():
            tag = name.replace(", ", "-").replace(" ", "")
            rate, check = fn(workdir, tag, n, threads)
            rates[name].values.append(rate / 1000)
            checks[name].add(check)
        log(f"  round {r + 1}/{args.rounds}")
    report.add(
        "## Output throughput",
        "",
        f"{n:,} `pkce_token_exchange` events per run through `send_event` (envelope, orjson,",
        "queue, writer thread, one `os.write` per line) with `on_full: block`, so nothing is",
        "dropped; the time runs until `flush()` returns. The pipe is a FIFO read by another",
        "process. Afterwards every line is checked to be one whole JSON object, and counted.",
        "",
        "| output | thousand events/s: median (min–max) | lines whole and all there |",
        "|---|---|---|",
    )
    for name, series in rates.items():
        report.add(f"| {name} | {spread(series)} | {', '.join(sorted(checks[name]))} |")
    report.add("")
    one = rates["file, 1 thread"]
    report.target(
        "output: events/s from one thread to a file", "≥ 300,000",
        f"{fmt(one.median * 1000, 0)} ({fmt(one.low * 1000, 0)}–{fmt(one.high * 1000, 0)})",
        one.median >= 300,
    )  # fmt: skip
    torn = {k: v for k, v in checks.items() if v != {"ok"}}
    report.target(
        "output: every line whole", "no torn line", "ok" if not torn else str(torn), not torn
    )


def run_memory(report: Report, args: argparse.Namespace) -> None:
    log(f"memory: {args.memory_requests:,} requests in a fresh process")
    cmd = [sys.executable, "-m", "benchmarks.memory", str(args.memory_requests), "50000"]
    out = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, check=True, text=True)
    m = orjson.loads(out.stdout)
    growth = (m["rss_after_kib"] - m["rss_before_kib"]) / 1024
    report.add(
        "## Memory",
        "",
        f"A fresh process sends {m['requests']:,} token requests through HeraEvents (the rule",
        "matches, events to /dev/null, `flush()` every 5,000 requests) after 50,000 warm-up",
        "requests; RSS from `/proc/self/status` after `flush()` and `gc.collect()`. One run",
        "(it takes long); *peak* is the highest RSS seen every 100,000 requests.",
        "",
        "| RSS before | RSS after | peak | growth | events written | dropped | internal errors |",
        "|---|---|---|---|---|---|---|",
        f"| {m['rss_before_kib'] / 1024:.1f} MiB | {m['rss_after_kib'] / 1024:.1f} MiB"
        f" | {m['rss_peak_kib'] / 1024:.1f} MiB | {growth:+.2f} MiB | {m['events_written']:,}"
        f" | {m['events_dropped']:,} | {m['internal_errors']} |",
        "",
    )
    report.target(
        f"memory: RSS growth over {m['requests']:,} requests", "< 1 MiB", f"{growth:+.2f} MiB",
        growth < 1,
    )  # fmt: skip


def run_e2e(report: Report, args: argparse.Namespace, workdir: Path) -> None:
    log(f"end to end: uvicorn, {args.e2e_requests:,} requests per round")
    results, info = e2e.run(workdir, args.rounds, args.e2e_requests, args.connections, log)
    without, with_ = results["without the middleware"], results["with HeraEvents"]
    report.add(
        "## End to end: the FastAPI example under uvicorn",
        "",
        "`examples/fastapi_app/app.py` under uvicorn (1 worker, access log off) on",
        "127.0.0.1, with and without its `HeraEvents` (`benchmarks/e2e_app.py`; each token",
        "request is a successful PKCE exchange, so with the middleware every request writes",
        f"one event, to a file). {args.e2e_requests:,} POST `/oauth/token` per round over",
        f"{args.connections} keep-alive connections from `benchmarks/loadgen.py` (another",
        "process); the two servers run side by side and the rounds alternate.",
        "",
        "| server | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    )
    for name, series in results.items():
        report.add(
            f"| {name} | {spread(series['rps'], 0)} | {spread(series['p50'], 2)} |"
            f" {spread(series['p99'], 2)} |"
        )
    rps = per_round(with_["rps"], without["rps"], lambda a, b: a / b)
    p99 = per_round(with_["p99"], without["p99"], lambda a, b: a / b)
    p50 = per_round(with_["p50"], without["p50"], lambda a, b: a / b)
    report.add(
        f"| ratio with / without | {spread(rps, 3)} | {spread(p50, 3)} | {spread(p99, 3)} |",
        "",
        f"Event lines written: {info['event_lines']:,}.",
        "",
    )
    report.target(
        "end to end: requests/s with / without", "≥ 0.97", spread(rps, 3), rps.median >= 0.97
    )
    report.target(
        "end to end: p99 latency with / without", "≤ 1.05", spread(p99, 3), p99.median <= 1.05
    )


def _versions() -> str:
    names = [
        "hera-middleware", "starlette", "fastapi", "uvicorn", "flask", "werkzeug", "orjson",
        "opentelemetry-sdk", "opentelemetry-instrumentation-asgi",
        "opentelemetry-instrumentation-wsgi", "prometheus-fastapi-instrumentator",
    ]  # fmt: skip
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write(report: Report, args: argparse.Namespace, started: float, path: Path) -> None:
    notes = ""
    if path.exists():
        old = path.read_text()
        if NOTES_MARK in old:
            notes = old.split(NOTES_MARK, 1)[1].lstrip("\n")
    mode = " --quick" if args.quick else ""
    only = f" --only {','.join(args.only)}" if args.only != list(SECTIONS) else ""
    head = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks{mode}{only}` on"
        f" {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC in"
        f" {time.monotonic() - started:.0f} s: {_cpu()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()} on {platform.system()} {platform.release()}.",
        "",
        f"Packages: {_versions()}.",
        "",
        f"Load average (1 min) at the start and the end: {args.load_start:.2f} and"
        f" {os.getloadavg()[0]:.2f}; the figures below include whatever else ran meanwhile.",
        "",
        f"Each figure is the median of {args.rounds} interleaved rounds, with min and max;"
        " differences and ratios are taken within a round, then their median is shown.",
        "",
        "## Targets",
        "",
        "| what | target | result | |",
        "|---|---|---|---|",
    ]
    for what, goal, got, ok in report.targets:
        head.append(f"| {what} | {goal} | {got} | {'met' if ok else '**missed**'} |")
    head.append("")
    text = "\n".join([*head, *report.lines, NOTES_MARK, "", notes]).rstrip("\n") + "\n"
    path.write_text(text)
    log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="sections: " + ",".join(SECTIONS)
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (at least 5)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the results file")
    args = parser.parse_args(argv)
    args.only_given = args.only != ",".join(SECTIONS)
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; sections are {', '.join(SECTIONS)}")
    args.rounds = args.rounds or (5 if args.quick else 7)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5")
    args.seconds = 0.08 if args.quick else 0.25
    args.events = 50_000 if args.quick else 200_000
    args.memory_requests = 200_000 if args.quick else 1_000_000
    args.e2e_requests = 3_000 if args.quick else 10_000
    args.connections = 8
    started = time.monotonic()
    args.load_start = os.getloadavg()[0]
    report = Report()
    with tempfile.TemporaryDirectory(prefix="hera-bench-") as tmp:
        workdir = Path(tmp)
        outputs = {"file": f"file:{workdir / 'events.jsonl'}", "devnull": "file:/dev/null"}
        steps: dict[str, Callable[[], None]] = {
            "asgi": lambda: run_asgi(report, args, outputs),
            "wsgi": lambda: run_wsgi(report, args, outputs),
            "instructions": lambda: run_instructions(report, args),
            "scaling": lambda: run_scaling(report, args, outputs),
            "output": lambda: run_output(report, args, workdir),
            "memory": lambda: run_memory(report, args),
            "e2e": lambda: run_e2e(report, args, workdir),
        }
        before = hera_middleware.stats()
        for name in SECTIONS:
            if name in args.only:
                steps[name]()
        after = hera_middleware.stats()
    lost = {k: after[k] - before[k] for k in ("events_dropped", "internal_errors", "facts_unknown")}
    report.add("## Counters of this run", "", f"In the benchmark process: {_fmt_counts(lost)}.", "")
    write(report, args, started, args.output)
    return 0


def _fmt_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())
