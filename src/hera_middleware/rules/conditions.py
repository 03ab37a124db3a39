"""Compile ``if:`` conditions and matchers into three-state predicates.

A predicate returns True, False or None (unknown). A matcher on an unknown fact is
unknown, ``not`` keeps it unknown, and a rule fires only on True, so every matcher on
an unknown fact counts as false — ``absent`` included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import re2

from .. import policy
from .._stats import count
from ..errors import Problem, did_you_mean
from ..exchange import ABSENT, UNKNOWN, Exchange
from ._yaml import Node
from .facts import Fact, parse_fact

__all__ = ["FORMATS", "MATCHERS", "Predicate", "compile_condition"]

Predicate = Callable[[Exchange], "bool | None"]
Matcher = Callable[[Any], "bool | None"]

MATCHERS = ("equals", "prefix", "suffix", "contains", "regex", "length", "format", "not")

#: Documented value formats for ``{format: NAME}``; safe to test on secrets.
FORMATS: dict[str, re.Pattern[str]] = {
    "totp": re.compile(r"[0-9]{6,8}"),
    "digits": re.compile(r"[0-9]+"),
    # Digits as people type a code an app shows in groups: 123 456, 123-456.
    "digits_grouped": re.compile(r"[0-9]+(?:[ -][0-9]+)*"),
    "uuid": re.compile(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    ),
    "jwt": re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    "base64url": re.compile(r"[A-Za-z0-9_-]+=*"),
    "pkce_verifier": re.compile(r"[A-Za-z0-9._~-]{43,128}"),
    "pkce_challenge_s256": re.compile(r"[A-Za-z0-9_-]{43}"),
}

_STATUS_CLASS = re.compile(r"[1-5]xx")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _equals(value: Any, literal: Any) -> bool:
    if isinstance(literal, bool) or isinstance(value, bool):
        return isinstance(literal, bool) and isinstance(value, bool) and literal is value
    if isinstance(literal, str) and isinstance(value, int) and _STATUS_CLASS.fullmatch(literal):
        return value // 100 == int(literal[0])
    if isinstance(value, str) and isinstance(literal, (int, float)):
        return value == str(literal)
    if isinstance(value, (int, float)) and isinstance(literal, str):
        return str(value) == literal
    return bool(value == literal)


def _equals_matcher(literal: Any) -> Matcher:
    # A value of the literal's own type compares directly; anything else takes _equals.
    if type(literal) is int:

        def equals_int(v: Any) -> bool:
            if type(v) is int:
                return bool(v == literal)
            return v is not ABSENT and _equals(v, literal)

        return equals_int
    if type(literal) is str and not _STATUS_CLASS.fullmatch(literal):

        def equals_str(v: Any) -> bool:
            if type(v) is str:
                return bool(v == literal)
            return v is not ABSENT and _equals(v, literal)

        return equals_str
    return lambda v: v is not ABSENT and _equals(v, literal)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value if value.isascii() else _valid_utf8(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _valid_utf8(text: str) -> str:
    """The text RE2 can take: lone surrogates (undecodable bytes) become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


class _Compiler:
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.request_body = False
        self.response_body = False

    def error(self, node: Node, code: str, message: str, hint: str | None = None) -> None:
        self.problems.append(node.at(code, message, hint))

    # -- conditions across facts ---------------------------------------------

    def condition(self, node: Node) -> Predicate:
        if isinstance(node.value, list):
            return _all([self.condition(item) for item in node.value])
        if not isinstance(node.value, dict):
            self.error(
                node,
                "bad-condition",
                "a condition is a mapping of facts to matchers",
                "for example `if: {response.status: 302}`",
            )
            return _never
        parts: list[Predicate] = []
        for key, value in node.value.items():
            if key == "all":
                parts.append(self.condition(value))
            elif key == "any":
                parts.append(self.any_of(value))
            elif key == "not":
                parts.append(_negate(self.condition(value)))
            else:
                parts.append(self.fact_test(node, key, value))
        return _all(parts)

    def any_of(self, node: Node) -> Predicate:
        if isinstance(node.value, list):
            return _any([self.condition(item) for item in node.value])
        if isinstance(node.value, dict):
            return _any(
                [
                    self.condition(
                        Node(
                            {k: v},
                            node.file,
                            v.line,
                            v.col,
                            {k: node.key_pos.get(k, (v.line, v.col))},
                        )
                    )
                    for k, v in node.value.items()
                ]
            )
        self.error(node, "bad-condition", "`any:` takes a list of conditions")
        return _never

    def fact_test(self, parent: Node, key: str, value: Node) -> Predicate:
        parsed = parse_fact(key)
        if not isinstance(parsed, Fact):
            message, hint = parsed
            self.problems.append(parent.key_at(key, "unknown-fact", message, hint))
            return _never
        fact = parsed
        self.request_body |= fact.request_body
        self.response_body |= fact.response_body
        matcher = self.matcher(value, fact)
        get = fact.get
        # The commonest tests without a matcher call: they run for every candidate rule.
        if value.value == "present":

            def present(ex: Exchange) -> bool | None:
                got = get(ex)
                if got is UNKNOWN:
                    count("facts_unknown")
                    return None
                return got is not ABSENT

            return present

        def test(ex: Exchange) -> bool | None:
            got = get(ex)
            if got is UNKNOWN:
                count("facts_unknown")
                return None
            return matcher(got)

        return test

    # -- matchers on one fact ------------------------------------------------

    def matcher(self, node: Node, fact: Fact) -> Matcher:
        value = node.value
        if isinstance(value, list):
            self.check_secret(node, fact, "any_of")
            options = [self.matcher(item, fact) for item in value]
            if not options:
                self.error(node, "bad-matcher", "an empty list matches nothing")
            return lambda v: _any_value(options, v)
        if isinstance(value, dict):
            return self.mapping_matcher(node, fact)
        if value == "present":
            self.check_secret(node, fact, "present")
            return lambda v: v is not ABSENT
        if value == "absent":
            self.check_secret(node, fact, "absent")
            return lambda v: v is ABSENT
        self.check_secret(node, fact, "equals")
        return self.equals(node, fact, value)

    def equals(self, node: Node, fact: Fact, literal: Any) -> Matcher:
        if fact.is_body_text:
            self.error(node, "bad-matcher", "response.body takes {contains: ...} or {regex: ...}")
        if isinstance(literal, (dict, list)):
            self.error(node, "bad-matcher", "`equals` takes a scalar")
        elif fact.family == "raised" and not isinstance(literal, bool):
            self.error(
                node,
                "bad-matcher",
                "raised is true or false",
                "YAML 1.2 reads only true/false as booleans; yes, no, on, off are strings",
            )
        elif fact.family == "response.status":
            literal = self.status(node, literal)
        return _equals_matcher(literal)

    def status(self, node: Node, literal: Any) -> Any:
        """A status literal: 100-599 (number or digits) or a class like 4xx."""
        if isinstance(literal, str) and _STATUS_CLASS.fullmatch(literal.lower()):
            return literal.lower()
        if isinstance(literal, str) and literal.isdigit():
            literal = int(literal)
        if isinstance(literal, int) and not isinstance(literal, bool) and 100 <= literal <= 599:
            return literal
        self.error(
            node,
            "bad-matcher",
            f"{literal!r} is no HTTP status",
            "write a code from 100 to 599, a list of them, or a class such as 4xx",
        )
        return literal

    def check_secret(self, node: Node, fact: Fact, matcher: str) -> None:
        problem = policy.condition_problem(fact.text, matcher)
        if problem:
            self.error(node, "secret-compared", problem)

    def mapping_matcher(self, node: Node, fact: Fact) -> Matcher:
        parts: list[Matcher] = []
        for key, arg in node.value.items():
            if key not in MATCHERS:
                hint = did_you_mean(key, MATCHERS) or "matchers are " + ", ".join(MATCHERS)
                if key == "value":
                    hint = "`{value: ...}` is for fields; in `if:` write the value itself"
                self.problems.append(
                    node.key_at(key, "unknown-matcher", f"unknown matcher {key!r}", hint)
                )
                continue
            if key == "not":
                parts.append(_negate_value(self.matcher(arg, fact)))
                continue
            self.check_secret(arg, fact, key)
            parts.append(self.one(key, arg, fact))
        return lambda v: _all_value(parts, v)

    def one(self, key: str, arg: Node, fact: Fact) -> Matcher:
        a = arg.value
        if key == "equals":
            return self.equals(arg, fact, a)
        if fact.is_body_text and key not in ("contains", "regex"):
            self.error(arg, "bad-matcher", "response.body takes {contains: ...} or {regex: ...}")
            return _never_value
        if key in ("prefix", "suffix", "contains"):
            if not isinstance(a, str) or not a:
                self.error(arg, "bad-matcher", f"`{key}` takes a non-empty string")
                return _never_value
            if fact.is_body_text:
                return lambda v: _body_search(v, lambda t: a in t)
            op = {"prefix": str.startswith, "suffix": str.endswith, "contains": str.__contains__}[
                key
            ]
            return lambda v: (t := _text(v)) is not None and op(t, a)
        if key == "regex":
            return self.regex(arg, fact)
        if key == "length":
            return self.length(arg)
        # format
        pattern = FORMATS.get(a) if isinstance(a, str) else None
        if pattern is None:
            hint = (did_you_mean(a, FORMATS) if isinstance(a, str) else None) or (
                "formats are " + ", ".join(FORMATS)
            )
            self.error(arg, "unknown-format", f"unknown format {a!r}", hint)
            return _never_value
        return lambda v: (t := _text(v)) is not None and pattern.fullmatch(t) is not None

    def regex(self, arg: Node, fact: Fact) -> Matcher:
        if not isinstance(arg.value, str):
            self.error(arg, "bad-regex", "`regex` takes a string")
            return _never_value
        try:
            compiled = re2.compile(arg.value, _RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
            text = str(reason)
            hint = None
            if "escape" in text or "perl operator" in text:
                hint = "backreferences and lookaround are not supported (RE2 syntax)"
            self.error(
                arg,
                "bad-regex",
                f"the regex {arg.value!r} cannot run in linear time or is invalid: {text}",
                hint,
            )
            return _never_value
        search = compiled.search
        if fact.is_body_text:
            return lambda v: _body_search(v, lambda t: search(t) is not None)
        return lambda v: (t := _text(v)) is not None and search(t) is not None

    def length(self, arg: Node) -> Matcher:
        a = arg.value
        low: int | None
        high: int | None
        if isinstance(a, int) and not isinstance(a, bool) and a >= 0:
            low = high = a
        elif (
            isinstance(a, dict)
            and a
            and set(a) <= {"min", "max"}
            and all(
                isinstance(x.value, int) and not isinstance(x.value, bool) and x.value >= 0
                for x in a.values()
            )
        ):
            low = a["min"].value if "min" in a else None
            high = a["max"].value if "max" in a else None
            if low is not None and high is not None and low > high:
                self.error(arg, "bad-matcher", f"`length` has min {low} above max {high}")
                return _never_value
        else:
            self.error(arg, "bad-matcher", "`length` takes a whole number or {min: N, max: N}")
            return _never_value

        def test(v: Any) -> bool:
            if not isinstance(v, (str, list, dict)):
                return False
            n = len(v)
            return (low is None or n >= low) and (high is None or n <= high)

        return test


def _body_search(value: Any, found: Callable[[str], bool]) -> bool | None:
    if value is ABSENT:
        return False
    text, whole = value
    if found(_valid_utf8(text)):
        return True
    return False if whole else None


def _never(ex: Exchange) -> bool:
    return False


def _never_value(v: Any) -> bool:
    return False


def _not(result: bool | None) -> bool | None:
    return None if result is None else not result


def _negate(inner: Predicate) -> Predicate:
    return lambda ex: _not(inner(ex))


def _negate_value(inner: Matcher) -> Matcher:
    return lambda v: _not(inner(v))


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def test(ex: Exchange) -> bool | None:
        unknown = False
        for part in parts:
            r = part(ex)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True

    return test


def _any(parts: list[Predicate]) -> Predicate:
    def test(ex: Exchange) -> bool | None:
        unknown = False
        for part in parts:
            r = part(ex)
            if r is True:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    return test


def _all_value(parts: list[Matcher], v: Any) -> bool | None:
    unknown = False
    for part in parts:
        r = part(v)
        if r is False:
            return False
        if r is None:
            unknown = True
    return None if unknown else True


def _any_value(parts: list[Matcher], v: Any) -> bool | None:
    unknown = False
    for part in parts:
        r = part(v)
        if r is True:
            return True
        if r is None:
            unknown = True
    return None if unknown else False


def compile_condition(node: Node, problems: list[Problem]) -> tuple[Predicate, bool, bool]:
    """Compile an ``if:`` node; return the predicate and whether it needs each body."""
    compiler = _Compiler(problems)
    predicate = compiler.condition(node)
    return predicate, compiler.request_body, compiler.response_body
