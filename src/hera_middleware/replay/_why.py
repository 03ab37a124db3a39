"""Why a rule did not fire for a replayed exchange: the near misses of ``replay --explain``.

A near miss is a rule whose path (or route) the request matched but that emitted
nothing: its method differs, an earlier rule said ``stop``, the router chose another
route, or a condition of its ``if:`` was false or unknown. Values of facts are shown
only where an event could carry them; secrets show as present/absent only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import policy
from .._flow import flow
from ..exchange import ABSENT, UNKNOWN, Exchange
from ..matching import RuleSet
from ..rules._yaml import from_python
from ..rules.conditions import compile_condition
from ..rules.facts import Fact, parse_fact
from ..rules.model import CompiledRule, Rules
from ._runner import Outcome

__all__ = ["NearMiss", "near_misses"]

_SHOWN = frozenset({"path", "method"})
_LONGEST = 60


@dataclass(frozen=True)
class NearMiss:
    """A rule that matched the request's path but did not fire, and why not."""

    rule: CompiledRule
    reasons: tuple[str, ...]


def _describe(fact: Fact, value: Any) -> str:
    if value is ABSENT:
        return "absent"
    if value is UNKNOWN:
        return "unknown (the body was not read whole, was cut at the cap, or is compressed)"
    if fact.is_body_text:
        text, whole = value
        return f"{len(text)} characters{'' if whole else ' (cut at the cap)'} without a match"
    if fact.text not in _SHOWN and policy.field_source_problem(fact.text) is not None:
        return "present (its value is not shown: events may not carry it)"
    shown = flow(_masked(value))
    return shown if len(shown) <= _LONGEST else shown[: _LONGEST - 3] + "..."


def _masked(value: Any, depth: int = 0) -> Any:
    """``value`` with every string that looks like an e-mail or IP address redacted, as
    events would have it: explanations are shared as freely as events are."""
    if isinstance(value, str):
        return policy.REDACTED if policy.looks_personal(value) else value
    if depth > 32 and isinstance(value, (dict, list)):
        return "..."
    if isinstance(value, dict):
        return {k: _masked(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, depth + 1) for v in value]
    return value


def _clause_reason(clause: Any, ex: Exchange, file: str, line: int) -> str | None:
    """Why one top-level clause of `if:` is not true, or None when it holds."""
    predicate, _, _ = compile_condition(from_python(clause, file, line), [])
    result = predicate(ex)
    if result is True:
        return None
    if isinstance(clause, dict) and len(clause) == 1:
        key, matcher = next(iter(clause.items()))
        parsed = parse_fact(key) if key not in ("all", "any", "not") else None
        if isinstance(parsed, Fact):
            return f"{key}: {flow(matcher)}, but it is {_describe(parsed, parsed.get(ex))}"
    shown = flow(clause)[1:-1] if isinstance(clause, dict) else flow(clause)
    return f"{shown}: {'unknown' if result is None else 'does not hold'}"


def _clauses(condition: Any) -> list[Any]:
    if isinstance(condition, dict):
        return [{k: v} for k, v in condition.items()]
    if isinstance(condition, list):
        return list(condition)
    return [condition]


def _condition_reasons(rule: CompiledRule, ex: Exchange, params: dict[str, str]) -> list[str]:
    if "if" not in rule.source:
        return []
    file, line, _ = rule.source["_at"]
    ex.template_params = params
    reasons = []
    for clause in _clauses(rule.source["if"]):
        reason = _clause_reason(clause, ex, file, line)
        if reason is not None:
            reasons.append(reason)
    return reasons


def _path_matches(rules: Rules, method: str, path: str) -> list[CompiledRule]:
    def any_method(rule: CompiledRule) -> Sequence[tuple[frozenset[str] | None, str]]:
        return [(None, text.partition(" ")[2]) for text in rule.templates]

    found = RuleSet(rules.rules, any_method).candidates(method, path)
    return [rule for rule, _ in found.matches] if found is not None else []


def _methods(rule: CompiledRule) -> str:
    return "|".join(sorted(rule.methods)) if rule.methods else "any method"


def near_misses(rules: Rules, outcome: Outcome) -> list[NearMiss]:
    """The rules of ``rules`` that matched ``outcome``'s path but did not fire, in rule order."""
    recorded = outcome.recorded
    fired = {id(f.rule) for f in outcome.fired}
    candidates = {
        id(rule): params
        for rule, params in (outcome.candidates.matches if outcome.candidates else ())
    }
    path = recorded.path
    root = recorded.root_path.rstrip("/")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    named = [r for r in rules.rules if recorded.route and recorded.route in r.route]
    by_path = {id(r): r for r in [*_path_matches(rules, recorded.method, path), *named]}
    stopped_by: CompiledRule | None = None
    out: list[NearMiss] = []
    for rule in rules.rules:
        if id(rule) in fired:
            if rule.stop and stopped_by is None:
                stopped_by = rule
            continue
        if id(rule) not in by_path and id(rule) not in candidates:
            continue
        reasons: list[str] = []
        if id(rule) not in candidates:
            if rule.route and recorded.route not in rule.route:
                reasons.append(
                    f"the route is {recorded.route!r}; the rule names {flow(list(rule.route))}"
                )
            else:
                reasons.append(
                    f"the method is {recorded.method}; the rule matches {_methods(rule)}"
                )
        elif stopped_by is not None and stopped_by.index < rule.index:
            reasons.append(f"an earlier rule, {stopped_by.id}, fired with `stop: true`")
        elif (
            rule.route
            and outcome.exchange is not None
            and outcome.exchange.route
            not in (
                None,
                *rule.route,
            )
        ):
            reasons.append(f"the router chose {outcome.exchange.route!r}")
        elif outcome.exchange is not None:
            reasons += _condition_reasons(rule, outcome.exchange, candidates[id(rule)])
        out.append(NearMiss(rule, tuple(reasons) or ("its conditions hold, yet it did not fire",)))
    return out
