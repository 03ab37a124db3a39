"""``hera-middleware report [FILE|-]``: analytics from event lines, as text, JSON or Markdown."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from ._tally import SECTIONS, Tally, parse_time

__all__ = ["render", "run"]

_HEADINGS = {
    "first_time": "first time",
    "failure_rate": "failure rate",
    "first_time_share": "first-time share",
    "completion_rate": "completion rate",
    "success_rate": "success rate",
    "fail_rate": "fail rate",
    "failures_by_reason": "failures by reason",
    "client_id": "client",
}


def _cell(name: str, value: Any) -> str:
    if name.endswith(("_rate", "_share")):
        return "-" if value is None else f"{value * 100:.1f}%"
    if name == "failures_by_reason":
        return ", ".join(f"{reason} {n}" for reason, n in value.items()) or "-"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    names = list(rows[0])
    headings = [_HEADINGS.get(n, n) for n in names]
    return headings, [[_cell(n, row[n]) for n in names] for row in rows]


def _numeric(heading: str, cells: list[str]) -> bool:
    return heading != "failures by reason" and all(
        c == "-" or c.rstrip("%").replace(".", "", 1).isdigit() for c in cells
    )


def _text(headings: list[str], cells: list[list[str]]) -> list[str]:
    columns = list(zip(headings, *cells, strict=True))
    widths = [max(len(c) for c in column) for column in columns]
    right = [_numeric(h, list(column[1:])) for h, column in zip(headings, columns, strict=True)]
    out = []
    for row in [headings, *cells]:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)
        ]
        out.append("  ".join(parts).rstrip())
    return out


def _markdown(headings: list[str], cells: list[list[str]]) -> list[str]:
    columns = list(zip(headings, *cells, strict=True))
    right = [_numeric(h, list(column[1:])) for h, column in zip(headings, columns, strict=True)]
    rule = ["---:" if r else "---" for r in right]
    return ["| " + " | ".join(row) + " |" for row in [headings, rule, *cells]]


def _scope_line(tally: Tally) -> str:
    text = f"{tally.lines} lines read: {tally.audit} audit events"
    text += f", {tally.skipped} other lines skipped"
    bounds = [("since", tally.since), ("until", tally.until)]
    shown = ", ".join(f"{word} {value}" for word, value in bounds if value)
    return text + (f"; {tally.counted} counted ({shown})" if shown else "")


def render(tally: Tally, form: str) -> str:
    """The report of ``tally`` as ``text``, ``json`` or ``markdown``."""
    if form == "json":
        data: dict[str, Any] = {
            "lines": tally.lines,
            "audit_events": tally.audit,
            "skipped": tally.skipped,
            "counted": tally.counted,
            "since": tally.since,
            "until": tally.until,
            "by": tally.by,
        }
        data.update((s.key, tally.rows(s)) for s in SECTIONS)
        return json.dumps(data, indent=2) + "\n"
    out = [_scope_line(tally)]
    empty = True
    for section in SECTIONS:
        rows = tally.rows(section)
        if not rows:
            continue
        empty = False
        headings, cells = _table(rows)
        out.append("")
        if form == "markdown":
            out += [f"## {section.title}", "", *_markdown(headings, cells)]
        else:
            out += [section.title, *_text(headings, cells)]
    if empty:
        out += ["", "no PKCE, social login, MFA, captcha or breach-check events"]
    return "\n".join(out) + "\n"


def _open(name: str) -> IO[bytes]:
    if name == "-":
        return sys.stdin.buffer
    return open(name, "rb")


def run(args: argparse.Namespace) -> int:
    """Stream the input through a :class:`Tally`, then print the report."""
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"hera-middleware report: --since/--until take an ISO 8601 time: {exc}")
        return 2
    tally = Tally(since=since, until=until, by=args.by)
    try:
        stream = _open(args.input)
    except OSError as exc:
        print(f"hera-middleware report: cannot read {args.input}: {exc.strerror}")
        return 1
    try:
        tally.add_lines(stream)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    sys.stdout.write(render(tally, args.format))
    return 0
