"""``hera-middleware explain FILE``: the compiled rule table and the options in effect."""

from __future__ import annotations

import argparse
from typing import Any

from .._flow import flow
from ..errors import HeraConfigError
from ..options import resolve_options
from ..rules.loader import OPTION_DEFAULTS, load_rules
from ..rules.model import CompiledRule, Rules
from ._common import print_problems, shown_origin, shown_path

__all__ = ["explain_rule", "run"]


def _clauses(condition: Any) -> list[str]:
    if isinstance(condition, dict):
        return [f"{k}: {flow(v)}" for k, v in condition.items()]
    if isinstance(condition, list):
        return [
            f"- {flow(item)[1:-1] if isinstance(item, dict) else flow(item)}" for item in condition
        ]
    return [flow(condition)]


def explain_rule(rule: CompiledRule) -> list[str]:
    """The lines describing one rule: a heading, then match/route, if, fields, stop."""
    lines = [f"{rule.id}  {rule.event.name}  ({shown_origin(rule.origin)})"]

    def block(label: str, items: list[str]) -> None:
        for i, item in enumerate(items):
            lines.append(f"  {label if i == 0 else '':<7} {item}")

    if rule.route:
        block("route", list(rule.route))
    else:
        block(
            "match",
            [t if not t.startswith("* ") else t[2:] + "  (any method)" for t in rule.templates],
        )
    if "if" in rule.source:
        block("if", _clauses(rule.source["if"]))
    given = rule.source.get("fields") or {}
    block(
        "fields", [f"{name} <- {flow(given[name])}" for name in rule.event.fields if name in given]
    )
    if rule.stop:
        block("stop", ["true: later rules are not tried when this one fires"])
    return lines


def _options(rules: Rules) -> list[str]:
    options = resolve_options(rules, {})
    rows = []
    for name in OPTION_DEFAULTS:
        value = getattr(options, name)
        origin = options.origins[name]
        if origin not in ("default", "argument") and not origin.startswith("environment"):
            origin = shown_path(origin)
        rows.append((name, str(value), origin))
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    return [f"  {n:<{width}}  {v:<{value_width}}  {o}" for n, v, o in rows]


def run(args: argparse.Namespace) -> int:
    """Print every rule in evaluation order, the declared events and allow-lists, the options."""
    try:
        rules = load_rules(args.file)
        options = _options(rules)
    except HeraConfigError as exc:
        print_problems(exc)
        return 1
    sources = ", ".join(s if s.startswith("preset:") else shown_path(s) for s in rules.sources)
    count = len(rules)
    print(f"{count} rule{'s' if count != 1 else ''} in evaluation order, from {sources}")
    for rule in rules.rules:
        print()
        print("\n".join(explain_rule(rule)))
    if rules.events:
        print("\nevents declared")
        for event in rules.events.values():
            print(f"  {event.name}: {flow(list(event.fields))}")
    if rules.signals:
        print("\nsignals watched (facts signal.<name>, kept arguments signal.<name>.<arg>)")
        for spec in rules.signals.values():
            kept = f"  keep {flow(list(spec.keep))}" if spec.keep else ""
            print(f"  {spec.name}: {spec.path}{kept}")
    if rules.allow:
        print('\nallow-lists (other values are written as "other")')
        for name, values in rules.allow.items():
            print(f"  {name}: {flow(sorted(values))}")
    print("\noptions in effect")
    print("\n".join(options))
    return 0
