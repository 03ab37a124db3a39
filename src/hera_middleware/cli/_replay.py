"""``hera-middleware replay FILE --har X | --exchanges X``: what the rules make of traffic."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

from ..errors import HeraConfigError
from ..replay import Outcome, Recorded, Replayer, ReplayError, near_misses, read_exchanges, read_har
from ._common import format_problem, print_problems, shown_origin, shown_path

__all__ = ["format_event", "run"]


def format_event(event: dict[str, Any]) -> str:
    """``pkce_failed {"reason":"verifier_mismatch","client_id":"web"}`` (no fields: the name)."""
    fields = {k: v for k, v in event.items() if k != "event"}
    if not fields:
        return str(event["event"])
    return f"{event['event']} {json.dumps(fields, separators=(',', ':'), ensure_ascii=False)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _where(recorded: Recorded) -> str:
    file, sep, rest = recorded.where.partition(":")
    return f"{shown_path(file)}{sep}{rest}"


def _recordings(args: argparse.Namespace) -> Iterator[Recorded]:
    for path in args.har:
        yield from read_har(path)
    for path in args.exchanges:
        yield from read_exchanges(path)


def _report(outcome: Outcome, rules: Any, args: argparse.Namespace) -> tuple[list[str], bool]:
    """The lines for one exchange (none when there is nothing to say), and a difference."""
    recorded = outcome.recorded
    lines = [
        f"{rule_line}  rule {f.rule.id} ({shown_origin(f.rule.origin)})"
        for f in outcome.fired
        for rule_line in [f"  event {format_event(f.event)}"]
    ]
    different = args.expect and outcome.as_expected() is False
    if different:
        assert recorded.expected is not None
        expected = recorded.expected[0]
        shown = [format_event(e) for e in expected] or ["no event"]
        lines.append("  expected " + "; ".join(shown))
        if len(recorded.expected) > 1:
            others = [
                " + ".join(format_event(e) for e in alt) or "no event"
                for alt in recorded.expected[1:]
            ]
            lines.append("  or       " + "; ".join(others))
        lines.append(
            "  got      " + ("; ".join(format_event(e) for e in outcome.events) or "no event")
        )
    if args.explain:
        for miss in near_misses(rules, outcome):
            lines.append(f"  missed {miss.rule.id} ({miss.rule.event.name})")
            lines += [f"    {reason}" for reason in miss.reasons]
    if lines:
        head = f"{_where(recorded)}  {recorded.method} {recorded.path} -> {recorded.status}"
        lines.insert(0, head + ("  DIFFERENT" if different else ""))
    return lines, bool(different)


def run(args: argparse.Namespace) -> int:
    """Replay every recording in order; print the events, near misses and differences."""
    if not args.har and not args.exchanges:
        print("hera-middleware replay: give --har EXPORT.har or --exchanges FILE.jsonl")
        return 2
    try:
        recordings = list(_recordings(args))
        replayer = Replayer(args.file, recordings)
    except HeraConfigError as exc:
        print_problems(exc)
        return 1
    except ReplayError as exc:
        print(format_problem(exc.problem))
        return 1
    except OSError as exc:
        print(f"hera-middleware replay: cannot read {exc.filename}: {exc.strerror}")
        return 1
    events = differences = checked = 0
    for outcome in replayer.run_all(recordings):
        lines, different = _report(outcome, replayer.rules, args)
        events += len(outcome.fired)
        differences += different
        checked += outcome.recorded.expected is not None
        if lines:
            print("\n".join(lines))
    summary = f"{_plural(len(recordings), 'exchange')}, {_plural(events, 'event')}"
    if args.expect:
        summary += f"; {checked} with expected events, {differences} different"
    print(summary)
    return 1 if differences else 0
