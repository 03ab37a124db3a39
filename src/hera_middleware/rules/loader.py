"""Rule files (and Python rule objects) to validated, compiled rules.

Every problem of every file is collected and raised together as one
:class:`~hera_middleware.errors.HeraConfigError`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import policy
from .._stats import count
from ..catalog import CATALOG, EventType, declare_event, event_name_problem, field_name_problem
from ..errors import HeraConfigError, Problem, did_you_mean
from ..exchange import ABSENT, UNKNOWN, Exchange
from ..matching import compile_template
from ._signals import SignalSpec, read_signals, signal_fact_problem
from ._yaml import Node, caller_location, from_python, parse_yaml
from .conditions import compile_condition
from .facts import Fact, parse_fact
from .model import CompiledRule, FieldGetter, Rule, Rules
from .presets import available_presets, preset_path

__all__ = ["OPTION_DEFAULTS", "load_rules"]

TOP_KEYS = (
    "domain",
    "output",
    "on_full",
    "max_request_body",
    "max_response_body",
    "extends",
    "vars",
    "rules",
    "disable",
    "events",
    "allow",
    "signals",
)
RULE_KEYS = ("id", "event", "match", "route", "if", "fields", "stop")
OPTION_DEFAULTS: dict[str, Any] = {
    "domain": "ciam",
    "output": "stdout",
    "on_full": "drop",
    "max_request_body": 65536,
    "max_response_body": 65536,
}
_METHOD = re.compile(r"\*|[A-Z]+(?:\|[A-Z]+)*")
_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class _Layer:
    rules: list[tuple[str | None, Node]] = field(default_factory=list)
    vars: dict[str, tuple[Any, Node]] = field(default_factory=dict)
    options: dict[str, tuple[Any, str]] = field(default_factory=dict)
    events: dict[str, tuple[tuple[str, ...], Node]] = field(default_factory=dict)
    allow: dict[str, frozenset[str]] = field(default_factory=dict)
    signals: dict[str, SignalSpec] = field(default_factory=dict)
    sources: dict[str, None] = field(default_factory=dict)  # an ordered set of labels
    positions: dict[str, int] = field(default_factory=dict)  # rule id -> index, kept by merge

    def merge(self, top: _Layer) -> None:
        """Put ``top`` over this layer: its rules override by id, its settings win."""
        positions = self.positions
        for rid, node in top.rules:
            if rid is not None and rid in positions:
                self.rules[positions[rid]] = (rid, node)
            else:
                if rid is not None:
                    positions[rid] = len(self.rules)
                self.rules.append((rid, node))
        self.vars.update(top.vars)
        self.options.update(top.options)
        self.events.update(top.events)
        self.allow.update(top.allow)
        self.signals.update(top.signals)
        self.sources.update(top.sources)


class _Loader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.files: dict[str, int] = {}  # the order files were opened in, for reporting

    def error(self, node: Node, code: str, message: str, hint: str | None = None) -> None:
        self.problems.append(node.at(code, message, hint))

    # -- sources ---------------------------------------------------------------

    def source(
        self,
        source: Any,
        stack: tuple[str, ...],
        base: Path,
        where: Node | None,
        inherited: _Layer | None = None,
    ) -> _Layer:
        """Load one source on top of ``inherited`` (what the sources before it gave)."""
        if isinstance(source, Rule):
            file, line = source.origin
            node = from_python({"rules": [source.as_mapping()]}, file, line)
            return self.layer(node, base, f"{file}:{line}", stack, inherited)
        if isinstance(source, Mapping):
            file, line = caller_location()
            node = from_python(source, file, line)
            return self.layer(node, base, f"{file}:{line}", stack, inherited)
        if isinstance(source, (str, os.PathLike)):
            return self.file(os.fspath(source), stack, base, where, inherited)
        if isinstance(source, Sequence) and not isinstance(source, bytes):
            # Each item builds on all before it, as if it extended them.
            layer = inherited if inherited is not None else _Layer()
            for item in source:
                layer = self.source(item, stack, base, where, layer)
            return layer
        raise TypeError(
            "rules= takes a path, 'preset:<name>', a mapping, a Rule, or a list of those; "
            f"got {type(source).__name__}"
        )

    def file(
        self,
        spec: str,
        stack: tuple[str, ...],
        base: Path,
        where: Node | None,
        inherited: _Layer | None = None,
    ) -> _Layer:
        keep = inherited if inherited is not None else _Layer()
        if spec.startswith("preset:"):
            name = spec[len("preset:") :]
            path = preset_path(name)
            if path is None:
                hint = did_you_mean(name, available_presets()) or (
                    "presets are " + ", ".join(available_presets()) if available_presets() else None
                )
                self.locate(where, spec, "unknown-preset", f"there is no preset {name!r}", hint)
                return keep
            label = spec
        else:
            path = Path(os.path.abspath(base / spec))
            label = str(path)
        key = str(path)
        if key in stack:
            chain = " -> ".join([*stack[stack.index(key) :], key])
            self.locate(where, spec, "extends-cycle", f"extends goes round in a circle: {chain}")
            return keep
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            hint = f"paths in rules= are relative to the working directory ({os.getcwd()})"
            if where is not None:
                hint = "paths in extends are relative to the file that names them"
            self.locate(where, spec, "file-not-found", f"no rule file at {path}", hint)
            return keep
        except (OSError, UnicodeDecodeError) as exc:
            self.locate(where, spec, "file-unreadable", f"cannot read {path}: {exc}")
            return keep
        return self.text(text, str(path), label, (*stack, key), path.parent, inherited)

    def locate(
        self, where: Node | None, spec: str, code: str, message: str, hint: str | None = None
    ) -> None:
        if where is not None:
            self.error(where, code, message, hint)
        else:
            file = spec if spec.startswith("preset:") else os.path.abspath(spec)
            self.problems.append(Problem(file, 1, 1, code, message, hint))

    def text(
        self,
        text: str,
        file: str,
        label: str,
        stack: tuple[str, ...],
        base: Path,
        inherited: _Layer | None = None,
    ) -> _Layer:
        self.files.setdefault(file, len(self.files))
        root, problems = parse_yaml(text, file)
        self.problems.extend(problems)
        if root is None:
            if not problems:
                self.problems.append(
                    Problem(
                        file,
                        1,
                        1,
                        "empty-file",
                        "the rule file is empty",
                        "a rule file holds at least `rules:` (or `extends:`)",
                    )
                )
            keep = inherited if inherited is not None else _Layer()
            keep.sources[label] = None
            return keep
        return self.layer(root, base, label, stack, inherited)

    # -- one file's top level -------------------------------------------------

    def layer(
        self,
        root: Node,
        base: Path,
        label: str,
        stack: tuple[str, ...],
        inherited: _Layer | None = None,
    ) -> _Layer:
        if inherited is None:
            inherited = _Layer()
        if not isinstance(root.value, dict):
            self.error(root, "bad-file", "a rule file is a mapping with a `rules:` list")
            inherited.sources[label] = None
            return inherited
        top: dict[str, Node] = root.value
        for key in top:
            if key not in TOP_KEYS:
                hint = did_you_mean(key, TOP_KEYS) or "top-level keys are " + ", ".join(TOP_KEYS)
                self.problems.append(root.key_at(key, "unknown-key", f"unknown key {key!r}", hint))
        if "extends" in top:
            for item in self.str_list(top["extends"], "extends"):
                inherited = self.file(item.value, stack, base, item, inherited)
        own = _Layer(sources={label: None})
        for name in OPTION_DEFAULTS:
            if name in top:
                value = self.option(name, top[name])
                if value is not None:
                    own.options[name] = (value, label)
        if "vars" in top:
            self.read_vars(top["vars"], own)
        if "events" in top:
            self.read_events(top["events"], own)
        if "allow" in top:
            self.read_allow(top["allow"], own)
        if "signals" in top:
            own.signals = read_signals(top["signals"], self.problems)
        if "rules" in top:
            self.read_rules(top["rules"], own)
        if "disable" in top:
            self.disable(top["disable"], inherited, own)
        inherited.merge(own)
        return inherited

    def str_list(self, node: Node, what: str) -> list[Node]:
        items = node.value if isinstance(node.value, list) else [node]
        out = []
        for item in items:
            if isinstance(item.value, str) and item.value:
                out.append(item)
            else:
                self.error(item, "bad-value", f"`{what}` takes strings")
        return out

    def option(self, name: str, node: Node) -> Any:
        value = node.value
        if name == "domain":
            if isinstance(value, str) and _DOMAIN.fullmatch(value):
                return value
            self.error(
                node, "bad-option", "`domain` is a short name of letters, digits, '_', '.', '-'"
            )
        elif name == "output":
            problem = output_problem(value)
            if problem is None:
                return value
            self.error(node, "bad-option", problem)
        elif name == "on_full":
            if value in ("drop", "block"):
                return value
            self.error(
                node,
                "bad-option",
                "`on_full` is `drop` or `block`",
                did_you_mean(str(value), ["drop", "block"]),
            )
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        else:
            self.error(node, "bad-option", f"`{name}` is a number of bytes")
        return None

    def read_vars(self, node: Node, own: _Layer) -> None:
        if not isinstance(node.value, dict):
            self.error(node, "bad-value", "`vars` is a mapping of names to strings")
            return
        for name, value in node.value.items():
            if not _VAR_NAME.fullmatch(name):
                self.problems.append(node.key_at(name, "bad-var", f"{name!r} is no variable name"))
            elif not isinstance(value.value, str):
                self.error(value, "bad-var", f"the variable {name!r} must be a string")
            else:
                own.vars[name] = (value.value, value)

    def read_events(self, node: Node, own: _Layer) -> None:
        if not isinstance(node.value, dict):
            self.error(node, "bad-value", "`events` maps event names to lists of field names")
            return
        for name, fields in node.value.items():
            if name in CATALOG:
                self.problems.append(
                    node.key_at(
                        name,
                        "event-redefined",
                        f"{name!r} is a documented event; its fields are fixed",
                    )
                )
                continue
            problem = event_name_problem(name)
            if problem:
                self.problems.append(node.key_at(name, "bad-event-name", problem))
                continue
            items = fields.value if isinstance(fields.value, list) else None
            if items is None:
                self.error(
                    fields,
                    "bad-value",
                    f"the fields of {name!r} are a list of names",
                    "use [] for an event without fields",
                )
                continue
            names: list[str] = []
            for item in items:
                problem = field_name_problem(item.value)
                if problem is None and isinstance(item.value, str):
                    problem = policy.field_name_problem(item.value)
                if problem:
                    self.error(item, "bad-field-name", problem)
                elif item.value in names:
                    self.error(item, "duplicate-field", f"the field {item.value!r} appears twice")
                else:
                    names.append(item.value)
            own.events[name] = (tuple(names), fields)

    def read_allow(self, node: Node, own: _Layer) -> None:
        if not isinstance(node.value, dict):
            self.error(node, "bad-value", "`allow` maps field names to lists of allowed values")
            return
        for name, values in node.value.items():
            own.allow[name] = frozenset(v.value for v in self.str_list(values, f"allow.{name}"))

    def read_rules(self, node: Node, own: _Layer) -> None:
        if not isinstance(node.value, list):
            self.error(node, "bad-value", "`rules` is a list of rules")
            return
        seen: dict[str, Node] = {}
        for item in node.value:
            rid = item.value.get("id") if isinstance(item.value, dict) else None
            if rid is not None:
                if not isinstance(rid.value, str) or not _ID.fullmatch(rid.value):
                    self.error(rid, "bad-id", "a rule id is letters, digits, '_', '.', ':', '-'")
                    rid = None
                elif rid.value in seen:
                    self.error(
                        rid,
                        "duplicate-id",
                        f"two rules have the id {rid.value!r}",
                        f"the first is at line {seen[rid.value].line}",
                    )
                    rid = None
                else:
                    seen[rid.value] = rid
            own.rules.append((rid.value if rid is not None else None, item))

    def disable(self, node: Node, inherited: _Layer, own: _Layer) -> None:
        known = {rid for rid, _ in inherited.rules if rid is not None}
        drop: set[str] = set()
        for item in self.str_list(node, "disable"):
            if item.value in known:
                drop.add(item.value)
            else:
                hint = did_you_mean(item.value, known)
                if hint is None and any(rid == item.value for rid, _ in own.rules):
                    hint = "this file's own rule: delete it instead"
                self.error(
                    item, "unknown-rule", f"no inherited rule has the id {item.value!r}", hint
                )
        inherited.rules = [(rid, n) for rid, n in inherited.rules if rid not in drop]
        inherited.positions = {rid: i for i, (rid, _) in enumerate(inherited.rules) if rid}

    # -- compiling one rule ---------------------------------------------------

    def compile(self, layer: _Layer) -> Rules:
        events = dict(CATALOG)
        events.update((n, EventType(n, f)) for n, (f, _) in layer.events.items())
        compiled: list[CompiledRule] = []
        for rid, node in layer.rules:
            rule = self.rule(node, rid, layer, events)
            if rule is not None:
                compiled.append(rule)
        compiled = [_with_index(rule, i) for i, rule in enumerate(compiled)]
        # repr, not JSON: rule literals may be integers wider than 64 bits.
        fingerprint = hashlib.sha256(
            repr(
                [[r.id, r.source] for r in compiled]
                + [sorted((k, repr(v)) for k, (v, _) in layer.options.items())]
                + [sorted((s.name, s.path, s.keep) for s in layer.signals.values())]
            ).encode("utf-8", "surrogatepass")
        ).hexdigest()
        return Rules(
            rules=tuple(compiled),
            options=dict(layer.options),
            events={n: events[n] for n in layer.events},
            allow=dict(layer.allow),
            signals=dict(layer.signals),
            sources=tuple(layer.sources),
            fingerprint=fingerprint,
        )

    def rule(
        self, node: Node, rid: str | None, layer: _Layer, events: Mapping[str, EventType]
    ) -> CompiledRule | None:
        if not isinstance(node.value, dict):
            self.error(node, "bad-rule", "a rule is a mapping with `event`, `match` and `if`")
            return None
        before = len(self.problems)
        keys: dict[str, Node] = node.value
        for key in keys:
            if key not in RULE_KEYS:
                hint = did_you_mean(key, RULE_KEYS) or "rule keys are " + ", ".join(RULE_KEYS)
                if key == "when":
                    hint = "in a rule file the key is `if`"
                self.problems.append(
                    node.key_at(key, "unknown-key", f"unknown key {key!r} in a rule", hint)
                )
        event = self.event(node, keys.get("event"), events)
        methods, templates = self.match(node, keys.get("match"), keys.get("route"), layer)
        route = (
            tuple(n.value for n in self.str_list(keys["route"], "route")) if "route" in keys else ()
        )
        condition = None
        request_body = response_body = False
        if "if" in keys:
            condition, request_body, response_body = compile_condition(keys["if"], self.problems)
        fields: list[tuple[str, FieldGetter]] = []
        if event is not None:
            fields, req2, resp2 = self.fields(node, keys.get("fields"), event)
            request_body |= req2
            response_body |= resp2
        elif isinstance(keys.get("fields"), Node) and isinstance(keys["fields"].value, dict):
            for source in keys["fields"].value.values():  # still report bad sources
                self.field_source(source)
        if templates and not route:
            self.check_path_params(keys, templates)
        self.check_signal_facts(keys, layer.signals)
        stop = False
        if "stop" in keys:
            if isinstance(keys["stop"].value, bool):
                stop = keys["stop"].value
            else:
                self.error(keys["stop"], "bad-value", "`stop` is true or false", _YAML12_HINT)
        if len(self.problems) > before or event is None:
            return None
        origin = f"{node.file}:{node.line}"
        return CompiledRule(
            id=rid or f"{os.path.basename(node.file)}:{node.line}",
            origin=origin,
            event=event,
            methods=methods,
            templates=templates,
            route=route,
            condition=condition,
            fields=tuple(fields),
            stop=stop,
            request_body=request_body,
            response_body=response_body,
            source={
                **node.plain(),
                "_at": (node.file, node.line, node.col),
                "_route_at": (
                    (keys["route"].file, keys["route"].line, keys["route"].col)
                    if "route" in keys
                    else (node.file, node.line, node.col)
                ),
            },
        )

    def check_path_params(self, keys: dict[str, Node], templates: tuple[str, ...]) -> None:
        """A `path.NAME` fact must name a parameter of the rule's own templates."""
        names: set[str] = set()
        for text in templates:
            names.update(compile_template(text.partition(" ")[2]).names)
        found = _condition_facts(keys["if"]) if "if" in keys else []
        found += _field_facts(keys["fields"]) if "fields" in keys else []
        for node, fact in found:
            if not fact.startswith("path.") or fact[5:] in names:
                continue
            if isinstance(node.value, str) and policy.field_source_problem(fact):
                continue  # reported already, as a secret
            close = difflib.get_close_matches(fact[5:], sorted(names), n=1)
            if close:
                hint = f"did you mean 'path.{close[0]}'?"
            elif names:
                hint = "the rule's templates have the parameters " + ", ".join(sorted(names))
            else:
                hint = "the rule's templates have no parameters"
            problem = f"{fact} is no parameter of this rule's `match`"
            if isinstance(node.value, dict):
                self.problems.append(node.key_at(fact, "unknown-param", problem, hint))
            else:
                self.error(node, "unknown-param", problem, hint)

    def check_signal_facts(self, keys: dict[str, Node], signals: Mapping[str, SignalSpec]) -> None:
        """A `signal.NAME[.ARG]` fact must name a declared signal and one of its kept arguments."""
        found = _condition_facts(keys["if"]) if "if" in keys else []
        found += _field_facts(keys["fields"]) if "fields" in keys else []
        for node, fact in found:
            if not fact.startswith("signal.") or not isinstance(parse_fact(fact), Fact):
                continue
            problem = signal_fact_problem(fact, signals)
            if problem is None:
                continue
            if isinstance(node.value, str) and policy.field_source_problem(fact):
                continue  # reported already, as a secret
            if isinstance(node.value, dict):
                self.problems.append(node.key_at(fact, *problem))
            else:
                self.error(node, *problem)

    def event(
        self, rule: Node, node: Node | None, events: Mapping[str, EventType]
    ) -> EventType | None:
        if node is None:
            self.error(
                rule, "missing-key", "a rule needs `event`", "for example `event: pkce_authorize`"
            )
            return None
        name = node.value
        if isinstance(name, str) and name in events:
            return events[name]
        hint = did_you_mean(str(name), events)
        if hint is None and isinstance(name, str) and event_name_problem(name) is None:
            hint = f"declare it under `events:` ({name}: [field, ...])"
        self.error(node, "unknown-event", f"unknown event {name!r}", hint)
        return None

    def match(
        self, rule: Node, match: Node | None, route: Node | None, layer: _Layer
    ) -> tuple[frozenset[str] | None, tuple[str, ...]]:
        if match is None and route is None:
            self.error(
                rule,
                "missing-key",
                "a rule needs `match` (METHOD /path) or `route` (a route name)",
                "for example `match: POST /oauth/token`",
            )
            return None, ()
        if match is not None and route is not None:
            self.error(route, "bad-rule", "a rule has `match` or `route`, not both")
            return None, ()
        if match is None:
            return None, ()
        methods: set[str] | None = set()
        templates: list[str] = []
        for item in self.str_list(match, "match"):
            text = item.value.strip()
            method, sep, path = text.partition(" ")
            if not sep:
                method, path = "*", text
            path = path.strip()
            if not _METHOD.fullmatch(method):
                hint = "write it as METHOD /path, for example `GET /login`"
                if _METHOD.fullmatch(method.upper()):
                    hint = f"write the method in capitals: `{method.upper()} {path}`"
                self.error(item, "bad-match", f"{method!r} is no HTTP method", hint)
                continue
            path = self.substitute(item, path, layer)
            if path is None:
                continue
            try:
                compile_template(path)
            except ValueError as exc:
                self.error(item, "bad-template", str(exc))
                continue
            if method == "*":
                methods = None
            elif methods is not None:
                methods.update(method.split("|"))
            templates.append(f"{method} {path}")
        return (frozenset(methods) if methods is not None else None), tuple(templates)

    def substitute(self, item: Node, path: str, layer: _Layer) -> str | None:
        ok = True

        def replace(m: re.Match[str]) -> str:
            nonlocal ok
            name = m.group(1)
            if name in layer.vars:
                return str(layer.vars[name][0])
            ok = False
            self.error(
                item,
                "unknown-var",
                f"no variable {name!r} is defined",
                did_you_mean(name, layer.vars) or f"add it under `vars:` ({name}: /prefix)",
            )
            return ""

        result = _VAR.sub(replace, path)
        return result if ok else None

    def fields(
        self, rule: Node, node: Node | None, event: EventType
    ) -> tuple[list[tuple[str, FieldGetter]], bool, bool]:
        given: dict[str, Node] = {}
        if node is not None:
            if isinstance(node.value, dict):
                given = node.value
            else:
                self.error(node, "bad-value", "`fields` maps field names to facts")
        holder = node if node is not None else rule
        for name in given:
            if name not in event.fields:
                hint = did_you_mean(name, event.fields) or (
                    f"{event.name} has the fields " + ", ".join(event.fields)
                    if event.fields
                    else f"{event.name} has no fields"
                )
                self.problems.append(
                    holder.key_at(
                        name, "unknown-field", f"{event.name} has no field {name!r}", hint
                    )
                )
        out: list[tuple[str, FieldGetter]] = []
        request_body = response_body = False
        for name in event.fields:
            if name not in given:
                self.problems.append(
                    holder.at(
                        "missing-field",
                        f"{event.name} needs the field {name!r}",
                        f"when the exchange cannot tell it, write `{name}: {{value: null}}`",
                    )
                )
                continue
            getter, req, resp = self.field_source(given[name], name)
            request_body |= req
            response_body |= resp
            out.append((name, getter))
        return out, request_body, response_body

    def field_source(self, node: Node, field: str = "") -> tuple[FieldGetter, bool, bool]:
        value = node.value
        if isinstance(value, str):
            fact = self.field_fact(node)
            if fact is None:
                return _null, False, False
            return _fact_getter([fact]), fact.request_body, fact.response_body
        if isinstance(value, list):
            facts: list[Fact | _Literal] = []
            for item in value:
                if isinstance(item.value, dict) and set(item.value) == {"value"}:
                    facts.append(_Literal(self.literal(item.value["value"])))
                elif isinstance(item.value, str):
                    fact = self.field_fact(item)
                    if fact is not None:
                        facts.append(fact)
                else:
                    self.error(item, "bad-field", "a fallback list holds facts and `{value: ...}`")
            return (
                _fact_getter(facts),
                any(getattr(f, "request_body", False) for f in facts),
                any(getattr(f, "response_body", False) for f in facts),
            )
        if isinstance(value, dict) and set(value) == {"value"}:
            literal = self.literal(value["value"])
            if field == "first_login" and literal is not None and not isinstance(literal, bool):
                self.error(
                    value["value"], "bad-value", "first_login is true, false or null", _YAML12_HINT
                )
            return (lambda ex: literal), False, False
        if isinstance(value, dict) and set(value) == {"if"}:
            for where, tested in _condition_facts(value["if"]):
                if tested == "response.body":
                    # A field per pattern would copy a body (and the tokens in it) bit by bit.
                    self.problems.append(
                        where.key_at(
                            tested,
                            "secret-field",
                            "an {if: ...} field may not test response.body: the body can hold"
                            " tokens, and fields must never carry them, not even bit by bit",
                            "test response.body in the rule's `if:` instead",
                        )
                    )
            predicate, req, resp = compile_condition(value["if"], self.problems)

            def test(ex: Exchange) -> bool | None:
                result = predicate(ex)
                if result is None:
                    count("fields_nulled")
                return result

            return test, req, resp
        self.error(
            node,
            "bad-field",
            "a field is a fact, a list of facts, {value: ...} or {if: ...}",
            "for example `client_id: params.client_id`",
        )
        return _null, False, False

    def literal(self, node: Node) -> Any:
        if isinstance(node.value, (dict, list)):
            self.error(node, "bad-value", "`value` takes a string, number, true, false or null")
            return None
        return node.value

    def field_fact(self, node: Node) -> Fact | None:
        parsed = parse_fact(node.value)
        if not isinstance(parsed, Fact):
            message, hint = parsed
            if not (hint or "").startswith("did you mean"):
                hint = f"for a literal write {{value: {node.value}}}"
            self.error(node, "unknown-fact", message, hint)
            return None
        problem = policy.field_source_problem(parsed.text)
        if problem:
            self.error(node, "secret-field", problem)
            return None
        return parsed


_YAML12_HINT = "YAML 1.2 reads only true/false as booleans; yes, no, on, off are strings"


def _condition_facts(node: Node) -> list[tuple[Node, str]]:
    """Every (node, fact) an `if:` condition tests, at any depth."""
    out: list[tuple[Node, str]] = []
    if isinstance(node.value, list):
        for item in node.value:
            out.extend(_condition_facts(item))
    elif isinstance(node.value, dict):
        for key, value in node.value.items():
            if key in ("all", "any", "not"):
                out.extend(_condition_facts(value))
            else:
                out.append((node, key))
    return out


def _field_facts(node: Node) -> list[tuple[Node, str]]:
    """Every (node, fact) a `fields:` mapping reads, `{if:}` conditions included."""
    out: list[tuple[Node, str]] = []
    if not isinstance(node.value, dict):
        return out
    for source in node.value.values():
        items = source.value if isinstance(source.value, list) else [source]
        for item in items:
            if isinstance(item.value, str):
                out.append((item, item.value))
            elif isinstance(item.value, dict) and "if" in item.value:
                out.extend(_condition_facts(item.value["if"]))
    return out


@dataclass(frozen=True)
class _Literal:
    value: Any


def _null(ex: Exchange) -> None:
    return None


def _fact_getter(sources: Sequence[Fact | _Literal]) -> FieldGetter:
    def get(ex: Exchange) -> Any:
        for source in sources:
            if isinstance(source, _Literal):
                return source.value
            value = source.get(ex)
            if value is UNKNOWN:
                count("facts_unknown")
            elif value is not ABSENT:
                return value
        count("fields_nulled")
        return None

    return get


def _with_index(rule: CompiledRule, index: int) -> CompiledRule:
    object.__setattr__(rule, "index", index)
    return rule


def output_problem(value: Any) -> str | None:
    """Say what is wrong with an output spec written in a rule file, or None."""
    if isinstance(value, str) and (
        value in ("stdout", "stderr")
        or (value.startswith("file:") and len(value) > 5)
        or (value.startswith("logger:") and len(value) > 7)
    ):
        return None
    return "`output` is stdout, stderr, file:PATH or logger:NAME"


def load_rules(
    source: Any = None,
    *,
    text: str | None = None,
    filename: str = "<text>",
) -> Rules:
    """Load, merge and validate rules.

    ``source`` is a rule file path (relative to the working directory), a
    ``"preset:<name>"``, a mapping shaped like a rule file, a :class:`Rule`, or a
    list of those merged in order (later ones override earlier ones by ``id``).
    ``text`` is YAML rule-file text instead (``filename`` names it in errors).

    Raises :class:`~hera_middleware.errors.HeraConfigError` listing every problem::

        rules = load_rules("hera.yaml")
        rules = load_rules(["preset:authlib", "overrides.yaml"])
        rules = load_rules(text="rules: [{event: breach_check_passed, match: POST /register}]")
    """
    if isinstance(source, Rules) and text is None:
        return source
    loader = _Loader()
    if text is not None:
        if source is not None:
            raise TypeError("load_rules() takes a source or text=, not both")
        layer = loader.text(text, filename, filename, (), Path.cwd())
    elif source is None:
        raise TypeError("load_rules() needs a source (a path, 'preset:<name>', ...) or text=")
    else:
        layer = loader.source(source, (), Path.cwd(), None)
    rules = loader.compile(layer)
    if loader.problems:
        raise HeraConfigError(_ordered(loader.problems, loader.files))
    for event in rules.events.values():
        declare_event(event.name, event.fields)  # so emit_event() knows them too
    return rules


def _ordered(problems: list[Problem], files: dict[str, int]) -> list[Problem]:
    """Problems by file (in opening order), line and column, without follow-on noise."""
    for p in problems:
        files.setdefault(p.file, len(files))
    # A node YAML already complained about (a forbidden tag) needs no second message.
    yaml_spots = {(p.file, p.line, p.col) for p in problems if p.code.startswith("yaml-")}
    unique = [
        p
        for p in dict.fromkeys(problems)
        if p.code.startswith("yaml-") or (p.file, p.line, p.col) not in yaml_spots
    ]
    return sorted(unique, key=lambda p: (files[p.file], p.line, p.col))
