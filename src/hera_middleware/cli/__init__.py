"""The ``hera-middleware`` command: check, explain and replay rule files; report events.

``main(argv) -> int`` is the whole command (``python -m hera_middleware`` runs it too)::

    hera-middleware check hera.yaml
    hera-middleware explain hera.yaml
    hera-middleware replay hera.yaml --har login.har --explain
    hera-middleware report events.jsonl --by day --format markdown
    hera-middleware schema rules > hera.schema.json
    hera-middleware run --rules hera.yaml -- uvicorn myapp:app
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import _check, _explain, _replay, _report, _run, _schema

__all__ = ["main"]

_DESCRIPTION = "Check, explain and replay hera-middleware rule files; report on its events."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hera-middleware", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        help="validate rule files (and what they extend)",
        description="Validate rule files and what they extend. Exit 0 when every file is "
        "valid; else print each problem as file:line:col: code: message (hint) and exit 1.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="rule file or preset:<name>")
    check.set_defaults(run=_check.run)

    explain = commands.add_parser(
        "explain",
        help="print the compiled rule table and the options in effect",
        description="Print the rules in effect after extends and disable (id, origin, "
        "event, match, conditions, fields and their sources) and the option values in "
        "effect with where each came from (HERA_* environment variables included).",
    )
    explain.add_argument("file", metavar="FILE", help="rule file or preset:<name>")
    explain.set_defaults(run=_explain.run)

    replay = commands.add_parser(
        "replay",
        help="run recorded exchanges through the rules and print the events",
        description="Run recorded HTTP exchanges through the rules with the real ASGI "
        "adapter and print the events they would emit, with the rule that fired.",
    )
    replay.add_argument("file", metavar="FILE", help="rule file or preset:<name>")
    replay.add_argument(
        "--har", action="append", default=[], metavar="EXPORT.har", help="a HAR 1.2 export"
    )
    replay.add_argument(
        "--exchanges",
        action="append",
        default=[],
        metavar="FILE.jsonl",
        help="exchanges in the JSON-lines exchange format",
    )
    replay.add_argument(
        "--explain", action="store_true", help="say why rules matching the path did not fire"
    )
    replay.add_argument(
        "--expect",
        action="store_true",
        help="compare with each exchange's expected events; exit 1 on a difference",
    )
    replay.set_defaults(run=_replay.run)

    report = commands.add_parser(
        "report",
        help="analytics from event lines (a file or stdin)",
        description="Read event lines (a file, or stdin for - or no file), skipping "
        "non-audit and malformed lines, and print PKCE, social login, MFA, captcha and "
        "breach-check analytics. Memory stays constant whatever the input size.",
    )
    report.add_argument("input", nargs="?", default="-", metavar="FILE|-")
    report.add_argument("--since", metavar="TIME", help="only events at or after TIME (UTC)")
    report.add_argument("--until", metavar="TIME", help="only events before TIME (UTC)")
    report.add_argument("--by", choices=["hour", "day"], help="one row per hour or day")
    report.add_argument(
        "--format", choices=["text", "json", "markdown"], default="text", help="default: text"
    )
    report.set_defaults(run=_report.run)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of rule files or of event lines",
        description="Print a JSON Schema: `rules` for rule files (editors validate and "
        "complete hera.yaml with it), `events` for event lines (log pipelines).",
    )
    schema.add_argument("kind", choices=["rules", "events"])
    schema.set_defaults(run=_schema.run)

    run = commands.add_parser(
        "run",
        help="start uvicorn or gunicorn with the middleware around the app",
        description="Start `uvicorn ...` or `gunicorn ...` (after --) with the middleware "
        "wrapped around the app, without editing any file: ASGI or WSGI apps, app "
        "factories and gunicorn configuration files included. The rules and options are "
        "checked first; they reach the server as HERA_* environment variables.",
    )
    run.add_argument("--rules", metavar="FILE", help="rule file or preset (default: HERA_RULES)")
    run.add_argument("--domain", help="domain of every event (HERA_DOMAIN)")
    run.add_argument("--output", help="stdout, stderr, file:PATH, logger:NAME (HERA_OUTPUT)")
    run.add_argument("--on-full", dest="on_full", choices=["drop", "block"], help="HERA_ON_FULL")
    run.add_argument(
        "--record", metavar="FILE", help="record cleaned exchanges for replay (HERA_RECORD)"
    )
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- SERVER ARGS")
    run.set_defaults(run=_run.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        status: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `hera-middleware explain hera.yaml | head`: the reader has what it wanted.
        # Point stdout at /dev/null so the interpreter's last flush stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    return status
