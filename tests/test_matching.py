"""Path templates and the candidate index: which rules a request can fire."""

from __future__ import annotations

import re

import pytest

from hera_middleware import load_rules
from hera_middleware.matching import RuleSet, compile_template
from hera_middleware.rules.model import CompiledRule


def ruleset(*matches: str | list[str]) -> RuleSet:
    """A rule set with one breach_check_passed rule per match, ids r0, r1, ..."""
    rules = load_rules(
        {
            "rules": [
                {"id": f"r{i}", "event": "breach_check_passed", "match": m}
                for i, m in enumerate(matches)
            ]
        }
    )

    def templates_of(rule: CompiledRule) -> list[tuple[frozenset[str] | None, str]]:
        out: list[tuple[frozenset[str] | None, str]] = []
        for text in rule.templates:
            method, _, path = text.partition(" ")
            out.append((None if method == "*" else frozenset(method.split("|")), path))
        return out

    return RuleSet(rules.rules, templates_of)


def ids(rs: RuleSet, method: str, path: str) -> list[tuple[str, dict[str, str]]]:
    found = rs.candidates(method, path)
    return [] if found is None else [(r.id, p) for r, p in found.matches]


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        pytest.param(
            "/login/{provider}/callback",
            "/login/google/callback",
            {"provider": "google"},
            id="brace",
        ),
        pytest.param(
            "/login/<provider>/callback",
            "/login/github/callback",
            {"provider": "github"},
            id="angle",
        ),
        pytest.param("/users/{id:int}", "/users/42", {"id": "42"}, id="int"),
        pytest.param("/users/<int:id>", "/users/42", {"id": "42"}, id="werkzeug-int"),
        pytest.param("/files/{rest:path}", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}, id="path"),
        pytest.param("/img/{name}.png", "/img/logo.png", {"name": "logo"}, id="in-segment"),
        pytest.param("/o/authorize/", "/o/authorize/", {}, id="trailing-slash"),
        pytest.param(
            "/files/{name}.{ext}",
            "/files/a.b.txt",
            {"name": "a.b", "ext": "txt"},
            id="two-in-a-segment-like-starlette",
        ),
        pytest.param("/", "/", {}, id="root"),
    ],
)
def test_templates_match_and_capture_params(
    template: str, path: str, params: dict[str, str]
) -> None:
    """Starlette {name} and Werkzeug <name> templates both work, with converters."""
    assert ids(ruleset(f"GET {template}"), "GET", path) == [("r0", params)]


@pytest.mark.parametrize(
    ("template", "path"),
    [
        pytest.param("/users/{id:int}", "/users/abc", id="int-rejects-text"),
        pytest.param("/o/authorize/", "/o/authorize", id="slash-is-exact"),
        pytest.param("/login/{provider}/callback", "/login//callback", id="empty-segment"),
        pytest.param("/login/{provider}", "/login/a/b", id="one-segment-only"),
    ],
)
def test_templates_do_not_match(template: str, path: str) -> None:
    """Templates are exact about segments and converters."""
    assert ids(ruleset(f"GET {template}"), "GET", path) == []


def test_methods_are_exact_and_star_means_any() -> None:
    """`GET /x` is not tried for POST; `/x` and `* /x` are tried for any method."""
    rs = ruleset("GET /x", "POST|PUT /x", "/x", "* /{p}")
    assert [i for i, _ in ids(rs, "GET", "/x")] == ["r0", "r2", "r3"]
    assert [i for i, _ in ids(rs, "PUT", "/x")] == ["r1", "r2", "r3"]
    assert [i for i, _ in ids(rs, "HEAD", "/x")] == ["r2", "r3"]


def test_candidates_keep_rule_order_across_static_and_templated_rules() -> None:
    """Several rules on one path come back in file order, whatever index found them."""
    rs = ruleset("GET /login/{p}/callback", "GET /login/google/callback", "GET /login/{p}/{q}")
    assert ids(rs, "GET", "/login/google/callback") == [
        ("r0", {"p": "google"}),
        ("r1", {}),
        ("r2", {"p": "google", "q": "callback"}),
    ]


def test_no_candidate_is_none() -> None:
    """A path no rule names is a pure pass-through."""
    rs = ruleset("GET /a", "GET /b/{x}")
    assert rs.candidates("GET", "/c") is None
    assert rs.candidates("GET", "/b/x/y") is None
    assert rs.candidates("POST", "/a") is None


def test_ten_thousand_templates_index_correctly() -> None:
    """Among 10,000 distinct templates, exactly the right one is found."""
    rs = ruleset(
        *[f"POST /t{i}/{{x}}/end" for i in range(5000)], *[f"POST /s{i}" for i in range(5000)]
    )
    assert ids(rs, "POST", "/t4321/abc/end") == [("r4321", {"x": "abc"})]
    assert ids(rs, "POST", "/s4321") == [("r9321", {})]
    assert rs.candidates("POST", "/t4321/abc") is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("x", "the path 'x' must start with '/'", id="relative"),
        pytest.param("/a/{x}/{x}", "the parameter 'x' appears twice in '/a/{x}/{x}'", id="twice"),
        pytest.param("/a/{x", "unbalanced braces in '/a/{x'", id="unbalanced"),
        pytest.param(
            "/x?y=1",
            "the path '/x?y=1' has a query or fragment; test query.NAME in `if:`",
            id="query",
        ),
        pytest.param("/a/../b", "the path '/a/../b' has an empty, '.' or '..' segment", id="dots"),
        pytest.param("//x", "the path '//x' has an empty, '.' or '..' segment", id="empty"),
    ],
)
def test_bad_templates_fail_at_load(template: str, message: str) -> None:
    """Template mistakes are load errors with a message, never a runtime surprise."""
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        compile_template(template)


def test_a_rule_with_overlapping_templates_is_a_candidate_once() -> None:
    """Two templates of one rule matching the same path do not make it fire twice."""
    rs = ruleset(["GET /login/{provider}", "GET /login/google", "GET /{area}/google"])
    assert ids(rs, "GET", "/login/google") == [("r0", {"provider": "google"})]
