"""Rule files and rule objects: loading, merging, and every error message exactly."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from hera_middleware import HeraConfigError, Rule, load_rules
from hera_middleware.rules._yaml import parse_yaml


def errors_of(text: str, filename: str = "hera.yaml") -> list[str]:
    """The error lines load_rules reports for a rule-file text."""
    with pytest.raises(HeraConfigError) as info:
        load_rules(text=textwrap.dedent(text), filename=filename)
    return str(info.value).splitlines()


def test_all_errors_of_a_file_are_reported_together_in_file_order() -> None:
    """Every problem of a file comes back at once, each as file:line:col: code: message."""
    text = """\
        domain: ciam
        outptu: stdout
        vars: {oauth: /oauth}
        rules:
          - id: a
            event: pkce_authorise
            match: GET ${oath}/authorize
          - id: b
            event: pkce_failed
            match: post /oauth/token
            if:
              response.stauts: 400
              form.code_verifier: hunter2
              query.x: {regx: "a"}
            fields:
              client_id: form.password
              reason: verifier_mismatch
          - event: social_login_completed
            match: GET /login/{provider/callback
            feilds: {}
          - event: mfa_challenge_failed
            match: POST /mfa
            if: {response.body: {regex: "(a)\\\\1"}}
            fields: {method: {value: totp}}
            stop: yes
        disable: [nothing]
    """
    assert errors_of(text) == [
        "hera.yaml:2:1: unknown-key: unknown key 'outptu' (hint: did you mean 'output'?)",
        "hera.yaml:6:12: unknown-event: unknown event 'pkce_authorise'"
        " (hint: did you mean 'pkce_authorize'?)",
        "hera.yaml:7:12: unknown-var: no variable 'oath' is defined (hint: did you mean 'oauth'?)",
        "hera.yaml:10:12: bad-match: 'post' is no HTTP method"
        " (hint: write the method in capitals: `POST /oauth/token`)",
        "hera.yaml:12:7: unknown-fact: 'response.stauts' is no fact"
        " (hint: did you mean 'response.status'?)",
        "hera.yaml:13:27: secret-compared: form.code_verifier is a PKCE code verifier: rules may"
        " test it only with present, absent, length or format, never compare it to a value"
        " with `equals`",
        "hera.yaml:14:17: unknown-matcher: unknown matcher 'regx' (hint: did you mean 'regex'?)",
        "hera.yaml:16:18: secret-field: form.password is a password: rules may test it in `if`"
        " (present, absent, length, format) but never copy it into an event",
        "hera.yaml:17:15: unknown-fact: 'verifier_mismatch' is no fact"
        " (hint: for a literal write {value: verifier_mismatch})",
        "hera.yaml:18:5: missing-field: social_login_completed needs the field 'provider'"
        " (hint: when the exchange cannot tell it, write `provider: {value: null}`)",
        "hera.yaml:18:5: missing-field: social_login_completed needs the field 'first_login'"
        " (hint: when the exchange cannot tell it, write `first_login: {value: null}`)",
        "hera.yaml:19:12: bad-template: unbalanced braces in '/login/{provider/callback'",
        "hera.yaml:20:5: unknown-key: unknown key 'feilds' in a rule"
        " (hint: did you mean 'fields'?)",
        "hera.yaml:23:33: bad-regex: the regex '(a)\\\\1' cannot run in linear time or is invalid:"
        " invalid escape sequence: \\1"
        " (hint: backreferences and lookaround are not supported (RE2 syntax))",
        "hera.yaml:25:11: bad-value: `stop` is true or false"
        " (hint: YAML 1.2 reads only true/false as booleans; yes, no, on, off are strings)",
        "hera.yaml:26:11: unknown-rule: no inherited rule has the id 'nothing'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "rules:\n  - match: GET /x\n",
            "hera.yaml:2:5: missing-key: a rule needs `event`"
            " (hint: for example `event: pkce_authorize`)",
            id="missing-event",
        ),
        pytest.param(
            "rules:\n  - event: breach_check_passed\n",
            "hera.yaml:2:5: missing-key: a rule needs `match` (METHOD /path) or `route`"
            " (a route name) (hint: for example `match: POST /oauth/token`)",
            id="missing-match",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r, route: reg}\n",
            "hera.yaml:2:57: bad-rule: a rule has `match` or `route`, not both",
            id="match-and-route",
        ),
        pytest.param(
            "rules:\n  - {event: password_reset_requested, match: POST /r}\n",
            "hera.yaml:2:13: unknown-event: unknown event 'password_reset_requested'"
            " (hint: declare it under `events:` (password_reset_requested: [field, ...]))",
            id="undeclared-custom-event",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r, when: {}}\n",
            "hera.yaml:2:50: unknown-key: unknown key 'when' in a rule"
            " (hint: in a rule file the key is `if`)",
            id="when-is-python-only",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_failed, match: POST /r,"
            " fields: {reason: {value: in_hibp}, why: {value: x}}}\n",
            "hera.yaml:2:85: unknown-field: breach_check_failed has no field 'why'"
            " (hint: breach_check_failed has the fields reason)",
            id="unknown-field",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r, if: {query.x: {value: 1}}}\n",
            "hera.yaml:2:65: unknown-matcher: unknown matcher 'value'"
            " (hint: `{value: ...}` is for fields; in `if:` write the value itself)",
            id="value-in-condition",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r,"
            " if: {form.otp: {format: totpp}}}\n",
            "hera.yaml:2:74: unknown-format: unknown format 'totpp' (hint: did you mean 'totp'?)",
            id="unknown-format",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r,"
            " if: {query.x: {length: -1}}}\n",
            "hera.yaml:2:73: bad-matcher: `length` takes a whole number or {min: N, max: N}",
            id="bad-length",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r,"
            " if: {response.body: verified}}\n",
            "hera.yaml:2:70: bad-matcher: response.body takes {contains: ...} or {regex: ...}",
            id="body-equals",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: 'GET /a/{x:path}/b'}\n",
            "hera.yaml:2:41: bad-template: a path parameter must be the whole last segment:"
            " '/a/{x:path}/b'",
            id="path-converter-not-last",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: 'GET /a/{x:hex}'}\n",
            "hera.yaml:2:41: bad-template: unknown converter 'hex' in '/a/{x:hex}'; converters"
            " are float, int, path, slug, str, string, uuid",
            id="unknown-converter",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: GET a/b}\n",
            "hera.yaml:2:41: bad-template: the path 'a/b' must start with '/'",
            id="relative-path",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r, if: {cookies.sid: x}}\n",
            "hera.yaml:2:68: secret-compared: cookies.sid is a session identifier in a cookie:"
            " rules may test it only with present or absent, never compare it to a value with"
            " `equals`",
            id="cookie-compared",
        ),
        pytest.param(
            "rules:\n  - {event: social_login_initiated, match: POST /r,"
            " fields: {provider: cookies.provider}}\n",
            "hera.yaml:2:72: secret-field: cookies.provider is a cookie: rules may test it in `if`"
            " (present, absent) but never copy it into an event",
            id="cookie-extracted",
        ),
        pytest.param(
            "rules:\n  - {id: x, event: breach_check_passed, match: POST /r}\n"
            "  - {id: x, event: breach_check_passed, match: POST /s}\n",
            "hera.yaml:3:10: duplicate-id: two rules have the id 'x'"
            " (hint: the first is at line 2)",
            id="duplicate-id",
        ),
        pytest.param(
            "events: {bit_seen: [b]}\nrules:\n  - {event: bit_seen, match: GET /r,"
            " fields: {b: {if: {response.body: {regex: x}}}}}\n",
            "hera.yaml:3:56: secret-field: an {if: ...} field may not test response.body: the"
            " body can hold tokens, and fields must never carry them, not even bit by bit"
            " (hint: test response.body in the rule's `if:` instead)",
            id="if-field-on-body",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /r,"
            " if: {query.x: {regex: 'a{2000}'}}}\n",
            "hera.yaml:2:72: bad-regex: the regex 'a{2000}' cannot run in linear time or is"
            " invalid: invalid repetition size: {2000}",
            id="regex-repetition",
        ),
        pytest.param(
            "events: {pkce_authorize: [client_id]}\n",
            "hera.yaml:1:10: event-redefined: 'pkce_authorize' is a documented event;"
            " its fields are fixed",
            id="catalog-event-redefined",
        ),
        pytest.param(
            "events: {PasswordReset: []}\n",
            "hera.yaml:1:10: bad-event-name: event name 'PasswordReset' is not of the form"
            " <noun>_<verb> (lowercase words joined by '_', for example"
            " 'password_reset_requested')",
            id="bad-custom-event-name",
        ),
        pytest.param(
            "events: {thing_done: [domain]}\n",
            "hera.yaml:1:23: bad-field-name: field name 'domain' is part of the event envelope",
            id="envelope-field",
        ),
        pytest.param(
            "on_full: wait\n",
            "hera.yaml:1:10: bad-option: `on_full` is `drop` or `block`",
            id="bad-on-full",
        ),
        pytest.param(
            "output: syslog\n",
            "hera.yaml:1:9: bad-option: `output` is stdout, stderr, file:PATH or logger:NAME",
            id="bad-output",
        ),
        pytest.param(
            "max_request_body: lots\n",
            "hera.yaml:1:19: bad-option: `max_request_body` is a number of bytes",
            id="bad-cap",
        ),
        pytest.param(
            "rules: [\n",
            "hera.yaml:2:1: yaml-syntax: while parsing a flow node expected the node content,"
            " but found '<stream end>'",
            id="yaml-syntax",
        ),
        pytest.param(
            "rules: !!python/object:os.system x\n",
            "hera.yaml:1:8: yaml-tag: the tag 'tag:yaml.org,2002:python/object:os.system'"
            " is not allowed in rule files",
            id="yaml-python-tag",
        ),
        pytest.param(
            "domain: a\ndomain: b\n",
            "hera.yaml:2:1: duplicate-key: the key 'domain' appears twice",
            id="yaml-duplicate-key",
        ),
        pytest.param(
            "- event: x\n",
            "hera.yaml:1:1: bad-file: a rule file is a mapping with a `rules:` list",
            id="not-a-mapping",
        ),
        pytest.param(
            "extends: [preset:nosuchpack]\n",
            "hera.yaml:1:11: unknown-preset: there is no preset 'nosuchpack'"
            " (hint: presets are authlib, django-allauth, django-oauth-toolkit, flask-security-too,"
            " flask-wtf-recaptcha)",
            id="unknown-preset",
        ),
    ],
)
def test_error_messages(text: str, expected: str) -> None:
    """Each kind of mistake gets its exact located message and hint."""
    assert errors_of(text) == [expected]


def test_yaml_12_booleans_keep_yes_no_on_as_strings() -> None:
    """Only true/false are booleans: yes, no, on, off stay strings, as YAML 1.2 says."""
    root, problems = parse_yaml("a: yes\nb: no\nc: on\nd: off\ne: true\nf: False\n", "f.yaml")
    assert problems == []
    assert root is not None
    assert root.plain() == {"a": "yes", "b": "no", "c": "on", "d": "off", "e": True, "f": False}


def test_yaml_plain_scalars_resolve_by_the_12_core_schema() -> None:
    """Ints, floats and nulls follow the core schema; a `match:` value stays a string."""
    root, _ = parse_yaml("a: 0o17\nb: 0x1F\nc: 1.5\nd: ~\ne:\nmatch: GET /x\ng: '302'\n", "f")
    assert root is not None
    assert root.plain() == {
        "a": 15,
        "b": 31,
        "c": 1.5,
        "d": None,
        "e": None,
        "match": "GET /x",
        "g": "302",
    }


def test_yaml_string_values_match_as_strings() -> None:
    """A rule testing `query.prompt: no` matches the literal string 'no', not false."""
    rules = load_rules(
        text="rules:\n  - {event: breach_check_passed, match: GET /r, if: {query.prompt: no}}\n"
    )
    assert rules.rules[0].source["if"] == {"query.prompt": "no"}


def test_yaml_alias_expansion_is_bounded(tmp_path: Path) -> None:
    """A billion-laughs file is refused instead of exhausting memory."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    assert errors_of("\n".join(lines) + "\n") == [
        "hera.yaml:1:1: yaml-size: more than 100000 nodes"
    ]


def test_load_rules_from_a_path_resolves_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path is read from the working directory; errors show it absolute."""
    (tmp_path / "hera.yaml").write_text("rules:\n  - {event: nope_event, match: GET /x}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HeraConfigError) as info:
        load_rules("hera.yaml")
    assert str(info.value) == (
        f"{tmp_path / 'hera.yaml'}:2:13: unknown-event: unknown event 'nope_event'"
        " (hint: declare it under `events:` (nope_event: [field, ...]))"
    )


def test_missing_rule_file_names_the_absolute_path_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing file is one clear error, not a traceback."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HeraConfigError) as info:
        load_rules("missing.yaml")
    assert str(info.value) == (
        f"{tmp_path / 'missing.yaml'}:1:1: file-not-found: no rule file at"
        f" {tmp_path / 'missing.yaml'} (hint: paths in rules= are relative to the working"
        f" directory ({tmp_path}))"
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_extends_merges_overrides_by_id_and_disables(tmp_path: Path) -> None:
    """A file's rules replace inherited ones by id in place; disable drops them; vars win."""
    write(
        tmp_path / "base.yaml",
        """\
        domain: base
        vars: {prefix: /base}
        rules:
          - {id: one, event: breach_check_passed, match: "POST ${prefix}/one"}
          - {id: two, event: breach_check_passed, match: "POST ${prefix}/two"}
          - {id: three, event: breach_check_passed, match: "POST ${prefix}/three"}
    """,
    )
    top = write(
        tmp_path / "top.yaml",
        """\
        extends: [base.yaml]
        vars: {prefix: /top}
        rules:
          - id: two
            event: breach_check_failed
            match: POST ${prefix}/2
            fields: {reason: {value: in_hibp}}
          - {id: four, event: breach_check_passed, match: POST /four}
        disable: [three]
    """,
    )
    rules = load_rules(top)
    assert [(r.id, r.event.name, r.templates) for r in rules] == [
        ("one", "breach_check_passed", ("POST /top/one",)),
        ("two", "breach_check_failed", ("POST /top/2",)),
        ("four", "breach_check_passed", ("POST /four",)),
    ]
    assert rules.options["domain"] == ("base", str(tmp_path / "base.yaml"))


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    """Two files extending each other are refused with the chain."""
    a = write(tmp_path / "a.yaml", "extends: [b.yaml]\n")
    write(tmp_path / "b.yaml", "extends: [a.yaml]\n")
    with pytest.raises(HeraConfigError) as info:
        load_rules(a)
    assert str(info.value) == (
        f"{tmp_path / 'b.yaml'}:1:11: extends-cycle: extends goes round in a circle:"
        f" {tmp_path / 'a.yaml'} -> {tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}"
    )


def test_errors_of_several_files_come_together(tmp_path: Path) -> None:
    """Problems in an extended file and in the extending file are reported at once."""
    write(tmp_path / "base.yaml", "rules:\n  - {event: nope_one, match: GET /a}\n")
    top = write(
        tmp_path / "top.yaml",
        "extends: [base.yaml]\nrules:\n  - {event: nope_two, match: GET /b}\n",
    )
    with pytest.raises(HeraConfigError) as info:
        load_rules(top)
    assert [(os.path.basename(p.file), p.line, p.code) for p in info.value.problems] == [
        ("top.yaml", 3, "unknown-event"),
        ("base.yaml", 2, "unknown-event"),
    ]


def test_a_list_of_sources_merges_in_order(tmp_path: Path) -> None:
    """rules=[a, b] is like b extending a: later sources override by id."""
    a = write(
        tmp_path / "a.yaml", "rules:\n  - {id: r, event: breach_check_passed, match: POST /a}\n"
    )
    b = write(
        tmp_path / "b.yaml", "rules:\n  - {id: r, event: breach_check_passed, match: POST /b}\n"
    )
    rules = load_rules([str(a), b])
    assert [r.templates for r in rules] == [("POST /b",)]


def test_a_mapping_source_is_a_rule_file_in_python() -> None:
    """A dict shaped like a rule file loads the same way."""
    rules = load_rules(
        {
            "domain": "shop",
            "rules": [
                {
                    "event": "breach_check_passed",
                    "match": "POST /register",
                    "if": {"response.status": 302},
                },
            ],
        }
    )
    assert rules.options["domain"][0] == "shop"
    assert rules.rules[0].templates == ("POST /register",)


def test_rule_objects_report_errors_at_the_line_that_built_them() -> None:
    """A Rule's problems point at the Python file and line where it was made."""
    rule = Rule(event="pkce_authorize", match="GET /authorize", fields={"client": "query.x"})
    line = rule.origin[1]
    with pytest.raises(HeraConfigError) as info:
        load_rules([rule])
    assert rule.origin[0] == __file__
    assert [str(p) for p in info.value.problems] == [
        f"{__file__}:{line}:1: unknown-field: pkce_authorize has no field 'client'"
        " (hint: did you mean 'client_id'?)",
        f"{__file__}:{line}:1: missing-field: pkce_authorize needs the field 'client_id'"
        " (hint: when the exchange cannot tell it, write `client_id: {value: null}`)",
    ]


def test_rule_objects_compile_like_yaml() -> None:
    """Rule(when=...) is YAML's `if:`; the compiled rule is the same."""
    rule = Rule(
        id="auth",
        event="pkce_authorize",
        match=["GET /authorize", "POST /authorize"],
        when={"query.code_challenge": "present", "response.status": 302},
        fields={"client_id": "params.client_id"},
    )
    compiled = load_rules(rule).rules[0]
    assert compiled.id == "auth"
    assert compiled.methods == frozenset({"GET", "POST"})
    assert compiled.templates == ("GET /authorize", "POST /authorize")


def test_custom_events_declare_their_fields_in_order() -> None:
    """`events:` adds an event with its fields; rules then emit it."""
    rules = load_rules(
        text=textwrap.dedent("""\
        events: {password_reset_requested: [flow, channel]}
        rules:
          - event: password_reset_requested
            match: POST /reset
            fields: {channel: {value: email}, flow: {value: password_reset}}
    """)
    )
    assert rules.events["password_reset_requested"].fields == ("flow", "channel")
    assert [name for name, _ in rules.rules[0].fields] == ["flow", "channel"]


def test_rules_needing_bodies_are_marked() -> None:
    """Rules say whether they need the request or response body, so others skip the copy."""
    rules = load_rules(
        text=textwrap.dedent("""\
        rules:
          - {event: breach_check_passed, match: POST /a, if: {query.x: present}}
          - {event: breach_check_passed, match: POST /b, if: {form.x: present}}
          - {event: breach_check_passed, match: POST /c, if: {response.json.ok: true}}
          - event: pkce_token_exchange
            match: POST /d
            fields: {client_id: [json.client_id, query.client_id]}
    """)
    )
    assert [(r.request_body, r.response_body) for r in rules] == [
        (False, False),
        (True, False),
        (False, True),
        (True, False),
    ]


POSITIONS = [
    "query.{}",
    "form.{}",
    "params.{}",
    "json.{}",
    "json.outer.{}",
    "headers.{}",
    "cookies.{}",
    "path.{}",
    "response.json.{}",
    "response.location.query.{}",
]


@pytest.mark.parametrize("position", POSITIONS)
def test_every_forbidden_key_is_refused_as_a_field_in_every_position(position: str) -> None:
    """The loader refuses each key of the policy table wherever a rule tries to extract it."""
    from hera_middleware.policy import FORBIDDEN_KEYS

    keys = sorted(
        {
            entry.pattern.strip("_")
            for entry in FORBIDDEN_KEYS
            if entry.how in ("exact", "contains", "word")
        }
    )
    rules = [
        {
            "event": "pkce_authorize",
            "match": "GET /a",
            "fields": {"client_id": position.format(key)},
        }
        for key in keys
    ]
    with pytest.raises(HeraConfigError) as info:
        load_rules({"rules": rules})
    assert [p.code for p in info.value.problems] == ["secret-field"] * len(keys)
