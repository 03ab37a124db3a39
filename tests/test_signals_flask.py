"""Framework signals as facts, through the Flask extension and blinker signals.

The app (tests/_signals_flask_app.py) sends real blinker signals from its views;
the rules declare them under ``signals:`` and test ``signal.<name>`` and
``signal.<name>.<argument>``. Events are asserted exactly, ``ts`` by format.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _signals_flask_app as flask_app
import httpx
import pytest
from _signals_common import without_ts
from werkzeug.serving import make_server

import hera_middleware
from hera_middleware import HeraConfigError, Rule, _stats, load_rules
from hera_middleware.adapters._engine import Engine
from hera_middleware.flask import HeraEvents
from hera_middleware.testing import capture_events

RULES = """\
signals:
  logged_in:
    signal: _signals_flask_app.logged_in
    keep: [provider, attempts, ratio, remember, method, scopes]
  elsewhere:
    signal: _signals_flask_app.elsewhere
    keep: [provider]
events:
  login_seen: [provider, attempts, ratio, remember, method, scopes, other, sent]
rules:
  - id: login-seen
    event: login_seen
    match: POST /{view}
    fields:
      provider: [signal.logged_in.provider, signal.elsewhere.provider]
      attempts: signal.logged_in.attempts
      ratio: signal.logged_in.ratio
      remember: signal.logged_in.remember
      method: signal.logged_in.method
      scopes: signal.logged_in.scopes
      other: {if: {signal.elsewhere: present}}
      sent: {if: {signal.logged_in: present}}
"""
NAMES = ("provider", "attempts", "ratio", "remember", "method", "scopes", "other", "sent")
ZERO = dict.fromkeys(set(_stats.COUNTER_NAMES) - {"events_written"}, 0)


def seen(**fields: Any) -> dict[str, Any]:
    """The login_seen event: fields not given are null, `other` and `sent` false."""
    base: dict[str, Any] = dict.fromkeys(NAMES) | {"other": False, "sent": False}
    return {"type": "audit", "event": "login_seen"} | base | fields | {"domain": "ciam"}


def counters(**changed: int) -> dict[str, int]:
    return ZERO | changed


def stats() -> dict[str, int]:
    """The counters but events_written, which the writer thread counts when it gets there."""
    found = dict(hera_middleware.stats())
    del found["events_written"]
    return found


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()


def make_app(rules: str = RULES) -> Any:
    app = flask_app.create_app()
    HeraEvents(app, rules=load_rules(text=rules, filename="hera.yaml"), output=lambda e: None)
    return app


@pytest.fixture
def app() -> Iterator[Any]:
    app = make_app()
    yield app
    app.extensions["hera"].engine.signals.close()


def post(app: Any, path: str) -> bytes:
    response = app.test_client().post(path)
    body: bytes = response.get_data()
    response.close()
    return body


def test_a_signal_sent_by_the_view_is_a_fact_with_its_kept_arguments(app: Any) -> None:
    """signal.logged_in is present and its scalar arguments are kept (a str subclass as str)."""
    with capture_events() as events:
        post(app, "/login")
    assert without_ts(events) == [
        # A float is kept as a fact (conditions compare it); fields carry no floats.
        seen(
            provider="github",
            attempts=2,
            ratio="redacted",
            remember=True,
            method="totp",
            sent=True,
        )
    ]
    # user= is not kept (not named in keep:); scopes= is named but a list: never kept.
    assert stats() == counters(fields_nulled=1, facts_unknown=1)


def test_no_signal_sent_means_absent(app: Any) -> None:
    """A request whose view sends nothing: signal.logged_in is absent, its arguments null."""
    with capture_events() as events:
        post(app, "/quiet")
    assert without_ts(events) == [seen()]
    assert stats() == counters(fields_nulled=6)


def test_the_last_send_gives_the_arguments(app: Any) -> None:
    """Sent twice in one request: the arguments are those of the last send."""
    with capture_events() as events:
        post(app, "/twice")
    assert without_ts(events) == [seen(provider="second", sent=True)]


def test_objects_are_never_kept(app: Any) -> None:
    """A kept name whose value is a list or an object is unknown (null, counted); None is kept."""
    with capture_events() as events:
        post(app, "/objects")
    assert without_ts(events) == [seen(sent=True)]
    assert stats() == counters(fields_nulled=5, facts_unknown=2)


def test_sends_outside_the_request_context_are_ignored(app: Any) -> None:
    """At import, from the test itself, from a thread the view starts: seen nowhere, counted
    nowhere."""
    flask_app.elsewhere.send(None, provider="outside")
    flask_app.logged_in.send(None, provider="outside")
    with capture_events() as events:
        post(app, "/background")
    assert without_ts(events) == [seen()]
    assert stats() == counters(fields_nulled=6)


def test_streamed_sends_count_until_the_rules_ran(app: Any) -> None:
    """A send while the response streams is seen; one after the last chunk (on close) is not."""
    with capture_events() as events:
        body = post(app, "/stream")
    assert body == b"first chunk last chunk"
    assert without_ts(events) == [seen(provider="streamed", sent=True)]


def test_concurrent_threads_never_see_each_others_signals() -> None:
    """Two requests interleaved in a threaded server: only the one that sent it sees it."""
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    runner = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    runner.start()
    flask_app.barrier = threading.Barrier(2)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with capture_events() as events, ThreadPoolExecutor(2) as pool:
            waits = pool.submit(httpx.post, f"{url}/wait", timeout=20)
            sends = pool.submit(httpx.post, f"{url}/send-and-wait", timeout=20)
            assert waits.result().text == "waited"
            assert sends.result().text == "sent"
            # A response reaches the client before the server closes it, and the rules
            # run at close: stop the server and join its request threads first.
            server.shutdown()
            server.server_close()
    finally:
        flask_app.barrier = None
        server.shutdown()
        runner.join(timeout=10)
        server.server_close()
        app.extensions["hera"].engine.signals.close()
    assert sorted(without_ts(events), key=lambda e: e["sent"]) == [
        seen(),
        seen(provider="concurrent", sent=True),
    ]


def test_no_signals_declared_connects_nothing() -> None:
    """Rules without `signals:` connect no receiver and leave the exchange without signals."""
    before = flask_app.receivers(flask_app.logged_in)
    app = flask_app.create_app()
    rules = "rules: [{event: breach_check_passed, match: POST /login}]"
    HeraEvents(app, rules=load_rules(text=rules), output=lambda e: None)
    assert app.extensions["hera"].engine.signals is None
    assert flask_app.receivers(flask_app.logged_in) == before
    with capture_events() as events:
        post(app, "/login")
    assert [e["event"] for e in events] == ["breach_check_passed"]


def test_one_receiver_per_instance_disconnected_when_collected() -> None:
    """Each middleware instance connects once; a collected app leaves no receiver behind, and
    two apps built from one rule file count each send once, in the app that handled it."""
    before = flask_app.receivers(flask_app.logged_in)
    first, second = make_app(), make_app()
    assert flask_app.receivers(flask_app.logged_in) == before + 2
    with capture_events() as events:
        post(first, "/login")
        post(second, "/quiet")
    assert [e["sent"] for e in events] == [True, False]
    del first, second
    gc.collect()
    assert flask_app.receivers(flask_app.logged_in) == before


def test_rules_built_in_python_use_signals() -> None:
    """A mapping that declares the signal, then Rule objects that test it."""
    rules = load_rules(
        [
            {"signals": {"logged_in": "_signals_flask_app.logged_in"}},
            Rule(
                event="mfa_challenge_succeeded",
                match="POST /login",
                when={"signal.logged_in": "present"},
                fields={"method": {"value": "totp"}},
            ),
        ]
    )
    app = flask_app.create_app()
    HeraEvents(app, rules=rules, output=lambda e: None)
    with capture_events() as events:
        post(app, "/login")
        post(app, "/quiet")
    assert [(e["event"], e["method"]) for e in events] == [("mfa_challenge_succeeded", "totp")]
    app.extensions["hera"].engine.signals.close()


def test_rule_objects_testing_an_undeclared_signal_are_refused() -> None:
    """A Rule's signal facts, in `when` and in fields, are checked against the rule set."""
    rule = Rule(
        event="social_login_completed",
        match="GET /callback",
        when={"signal.loged_in": "present"},
        fields={
            "provider": {"value": "x"},
            "first_login": {"if": {"signal.new_account": "present"}},
        },
    )
    line = rule.origin[1]
    with pytest.raises(HeraConfigError) as info:
        load_rules([{"signals": {"logged_in": "_signals_flask_app.logged_in"}}, rule])
    assert [str(p) for p in info.value.problems] == [
        f"{__file__}:{line}:1: undeclared-signal: no signal 'loged_in' is declared; the rules"
        " declare logged_in (hint: did you mean 'signal.logged_in'? or add `loged_in:"
        " <module>.<attribute>` under `signals:`)",
        f"{__file__}:{line}:1: undeclared-signal: no signal 'new_account' is declared; the"
        " rules declare logged_in (hint: add `new_account: <module>.<attribute>` under"
        " `signals:`)",
    ]


def test_signals_declared_by_extended_files_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a preset or a base file declares may be tested; the rest is refused, naming all."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text("signals: {logged_in: _signals_flask_app.logged_in}\n")
    head = (
        "extends: [preset:django-allauth, base.yaml]\nrules:\n"
        "  - {id: r, event: breach_check_passed,"
    )
    rules = load_rules(
        text=head + " match: POST /login, if: {signal.user_signed_up: present,"
        " signal.logged_in: present}}\n",
        filename="hera.yaml",
    )
    assert sorted(rules.signals) == ["logged_in", "social_account_added", "user_signed_up"]
    assert [r.id for r in rules.rules][-1] == "r"
    assert load_errors(head + " match: POST /login, if: {signal.new_account: present}}\n") == [
        "hera.yaml:3:66: undeclared-signal: no signal 'new_account' is declared; the rules"
        " declare logged_in, social_account_added, user_signed_up (hint: add `new_account:"
        " <module>.<attribute>` under `signals:`)"
    ]


def errors(text: str) -> list[str]:
    with pytest.raises(HeraConfigError) as info:
        Engine(load_rules(text=text, filename="hera.yaml"), {}, None)
    return [str(p) for p in info.value.problems]


def load_errors(text: str) -> list[str]:
    with pytest.raises(HeraConfigError) as info:
        load_rules(text=text, filename="hera.yaml")
    return [str(p) for p in info.value.problems]


SIGNAL_RULE = "rules: [{event: breach_check_passed, match: POST /login}]\n"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(
            "_signals_flask_ap.logged_in",
            "hera.yaml:1:14: unknown-signal-module: the signal 'x': there is no module"
            " '_signals_flask_ap' (hint: did you mean '_signals_flask_app'?)",
            id="module-typo",
        ),
        pytest.param(
            "_signals_flask_app.loged_in",
            "hera.yaml:1:14: unknown-signal: the signal 'x': _signals_flask_app has no"
            " attribute 'loged_in' (hint: did you mean 'logged_in'?)",
            id="attribute-typo",
        ),
        pytest.param(
            "_signals_flask_app.not_a_signal",
            "hera.yaml:1:14: not-a-signal: the signal 'x': _signals_flask_app.not_a_signal is"
            " a str, not a signal (hint: name a blinker signal (Flask) or a"
            " django.dispatch.Signal object by its import path)",
            id="not-a-signal",
        ),
        pytest.param(
            "flask.signalz.request_started",
            "hera.yaml:1:14: unknown-signal-module: the signal 'x': flask has no module or"
            " attribute 'signalz' (hint: did you mean 'flask.signals'?)",
            id="submodule-typo",
        ),
        pytest.param(
            "flask.signals.request_startd",
            "hera.yaml:1:14: unknown-signal: the signal 'x': flask.signals has no attribute"
            " 'request_startd' (hint: did you mean 'request_started'?)",
            id="flask-signal-typo",
        ),
    ],
)
def test_an_unresolvable_signal_is_a_located_error(path: str, expected: str) -> None:
    """Resolved when the middleware is built: file:line:col, a code, a did-you-mean."""
    assert errors(f"signals: {{x: {path}}}\n" + SIGNAL_RULE) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "signals:\n  x: {signal: flask.signals.request_started, keep: [provider, email]}\n",
            [
                "hera.yaml:2:63: secret-signal-argument: the argument 'email' of the signal"
                " 'x' is named like an email address: signal arguments that may hold secrets"
                " or personal data are never kept (hint: keep only arguments such as a"
                " provider or a method; test the signal itself with `signal.x: present`)"
            ],
            id="email",
        ),
        pytest.param(
            "signals:\n  x: {signal: flask.signals.request_started, keep: [user, user_id]}\n",
            [
                "hera.yaml:2:53: secret-signal-argument: the argument 'user' of the signal"
                " 'x' is named like a user identifier: signal arguments that may hold"
                " secrets or personal data are never kept (hint: keep only arguments such"
                " as a provider or a method; test the signal itself with `signal.x: present`)",
                "hera.yaml:2:59: secret-signal-argument: the argument 'user_id' of the signal"
                " 'x' is named like a user id: signal arguments that may hold secrets or"
                " personal data are never kept (hint: keep only arguments such as a provider"
                " or a method; test the signal itself with `signal.x: present`)",
            ],
            id="user",
        ),
        pytest.param(
            "signals:\n  x: {path: flask.signals.request_started}\n",
            [
                "hera.yaml:2:6: missing-key: the signal 'x' needs `signal` (its import path)"
                " (hint: for example `signal: allauth.account.signals.user_signed_up`)",
                "hera.yaml:2:7: unknown-key: unknown key 'path' (hint: a signal takes"
                " `signal` and `keep`)",
            ],
            id="no-path",
        ),
        pytest.param(
            "signals:\n  x: request_started\n",
            [
                "hera.yaml:2:6: bad-signal-path: the signal 'x' is an import path"
                " module.attribute (hint: for example `user_signed_up:"
                " allauth.account.signals.user_signed_up`)"
            ],
            id="not-dotted",
        ),
        pytest.param(
            "signals: {logged_in: flask.signals.request_started}\nrules:\n"
            "  - {event: breach_check_passed, match: POST /login,"
            " if: {signal.loged_in: present}}\n",
            [
                "hera.yaml:3:59: undeclared-signal: no signal 'loged_in' is declared; the rules"
                " declare logged_in (hint: did you mean 'signal.logged_in'? or add `loged_in:"
                " <module>.<attribute>` under `signals:`)"
            ],
            id="name-typo",
        ),
        pytest.param(
            "signals: {user_signed_up: allauth.account.signals.user_signed_up}\nrules:\n"
            "  - {event: social_login_completed, match: GET /cb, fields:"
            " {provider: {value: x}, first_login: {if: {signal.new_account: present}}}}\n",
            [
                "hera.yaml:3:103: undeclared-signal: no signal 'new_account' is declared; the"
                " rules declare user_signed_up (hint: add `new_account: <module>.<attribute>`"
                " under `signals:`)"
            ],
            id="undeclared-in-field-condition",
        ),
        pytest.param(
            "signals: {b: flask.signals.request_started, a: flask.signals.request_finished}\n"
            "rules:\n  - {event: breach_check_passed, match: POST /login,"
            " if: {any: [{signal.a: present}, {not: {signal.other: present}}]}}\n",
            [
                "hera.yaml:3:93: undeclared-signal: no signal 'other' is declared; the rules"
                " declare a, b (hint: add `other: <module>.<attribute>` under `signals:`)"
            ],
            id="undeclared-in-nested-condition",
        ),
        pytest.param(
            "rules:\n  - {event: breach_check_passed, match: POST /login,"
            " if: {signal.logged_in: absent}}\n",
            [
                "hera.yaml:2:59: undeclared-signal: no signal 'logged_in' is declared; the rules"
                " declare no signal (hint: add `logged_in: <module>.<attribute>` under"
                " `signals:`)"
            ],
            id="none-declared",
        ),
        pytest.param(
            "signals: {x: {signal: flask.signals.request_started, keep: [provider]}}\nrules:\n"
            "  - {event: social_login_initiated, match: POST /login, fields:"
            " {provider: [signal.y.provider, signal.x.provider]}}\n",
            [
                "hera.yaml:3:77: undeclared-signal: no signal 'y' is declared; the rules"
                " declare x (hint: add `y: <module>.<attribute>` under `signals:`)"
            ],
            id="undeclared-in-field-source",
        ),
        pytest.param(
            "signals: {x: {signal: flask.signals.request_started, keep: [provider]}}\nrules:\n"
            "  - {event: social_login_initiated, match: POST /login, fields:"
            " {provider: signal.x.provder}}\n",
            [
                "hera.yaml:3:76: signal-argument-not-kept: the signal 'x' keeps no argument"
                " 'provder' (hint: did you mean 'provider'?)"
            ],
            id="argument-typo",
        ),
        pytest.param(
            "signals: {x: flask.signals.request_started}\nrules:\n"
            "  - {event: social_login_initiated, match: POST /login, fields:"
            " {provider: signal.x.email}}\n",
            [
                "hera.yaml:3:76: secret-field: signal.x.email is an email address: rules may"
                " test it in `if` (present, absent, length, format) but never copy it into"
                " an event"
            ],
            id="secret-field",
        ),
    ],
)
def test_declaration_mistakes_are_refused_at_load(text: str, expected: list[str]) -> None:
    """Policy refusals and mistakes in `signals:` or in signal facts, each located."""
    assert load_errors(text) == expected
