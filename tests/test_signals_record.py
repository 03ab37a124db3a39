"""hera's own recordings carry the signals the server sent, and replay reads them back.

A Flask app (tests/_signals_flask_app.py) sends a real blinker signal from /login and
none from /quiet; the ``record`` option (``HERA_RECORD``) writes each exchange with
``signals``, and ``replay --expect`` on that file gives back exactly the recorded
events. A record without ``signals`` replays with every signal fact unknown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _signals_flask_app as flask_app
import pytest

from hera_middleware import load_rules
from hera_middleware.cli import main
from hera_middleware.exchange import UNKNOWN
from hera_middleware.flask import HeraEvents
from hera_middleware.record import _signals as recorded_signals
from hera_middleware.replay import Replayer, ReplayError, read_exchanges

RULES = """\
signals:
  logged_in:
    signal: _signals_flask_app.logged_in
    keep: [provider, method, scopes]
events:
  login_seen: [provider, method, scopes, first_login]
  github_login: [method]
rules:
  - id: login-seen
    event: login_seen
    match: POST /{view}
    fields:
      provider: signal.logged_in.provider
      method: signal.logged_in.method
      scopes: signal.logged_in.scopes
      first_login: {if: {signal.logged_in: present}}
  - id: github-login
    event: github_login
    match: POST /{view}
    if: {signal.logged_in.provider: github}
    fields:
      method: signal.logged_in.method
"""
RULES_LOADED = load_rules(text=RULES, filename="hera.yaml")
NO_SIGNALS = """\
events:
  login_seen: [view]
rules:
  - id: login-seen
    event: login_seen
    match: POST /{view}
    fields:
      view: path.view
"""
LOGIN_EVENTS = [
    {
        "event": "login_seen",
        "provider": "github",
        "method": "totp",
        "scopes": None,
        "first_login": True,
    },
    {"event": "github_login", "method": "totp"},
]
QUIET_EVENTS = [
    {"event": "login_seen", "provider": None, "method": None, "scopes": None, "first_login": False}
]


def _discard(event: dict[str, object]) -> None:
    """The live events: read from each record's expected_events (one output, one emitter)."""


def record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: str, *paths: str
) -> list[dict[str, Any]]:
    """POST each path to the Flask app under ``rules``, recorded; the records written."""
    recording = tmp_path / "exchanges.jsonl"
    monkeypatch.setenv("HERA_RECORD", str(recording))
    app = flask_app.create_app()
    HeraEvents(app, rules=load_rules(text=rules, filename="hera.yaml"), output=_discard)
    monkeypatch.delenv("HERA_RECORD")  # the replays below record nothing
    engine = app.extensions["hera"].engine
    try:
        client = app.test_client()
        for path in paths:
            client.post(path).close()
    finally:
        if engine.signals is not None:
            engine.signals.close()
        engine.recorder.close()
    lines = recording.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_a_recording_carries_exactly_the_signals_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal /login sent, with its kept single values; {} for /quiet, which sent none."""
    login, quiet = record(tmp_path, monkeypatch, RULES, "/login", "/quiet")
    # provider and method kept (a str subclass as str); scopes is a list: never kept;
    # user, attempts, ratio, remember are not in keep:.
    assert login["signals"] == {"logged_in": {"provider": "github", "method": "totp"}}
    assert login["expected_events"] == LOGIN_EVENTS
    assert quiet["signals"] == {}
    assert quiet["expected_events"] == QUIET_EVENTS
    assert [r["path"] for r in (login, quiet)] == ["/login", "/quiet"]


def test_recorded_signal_values_are_cleaned_as_the_rest() -> None:
    """E-mail and IP addresses in a kept string are masked; an unkept object is left out."""
    log = {"logged_in": {"provider": "bob@example.com", "ip": "10.1.2.3", "scopes": UNKNOWN}}
    assert recorded_signals(log) == {"logged_in": {"provider": "xxx@xxxxxxx.xxx", "ip": "00.0.0.0"}}


def test_no_signals_key_when_the_rules_declare_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rules without signals: watch nothing, so the record says nothing about signals."""
    (login,) = record(tmp_path, monkeypatch, NO_SIGNALS, "/login")
    assert "signals" not in login
    assert login["expected_events"] == [{"event": "login_seen", "view": "login"}]


def test_replaying_the_recording_gives_back_the_recorded_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """replay --expect on hera's recording: first_login true and false, as live."""
    record(tmp_path, monkeypatch, RULES, "/login", "/quiet")
    (tmp_path / "hera.yaml").write_text(RULES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    argv = ["replay", "hera.yaml", "--exchanges", "exchanges.jsonl", "--expect"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "exchanges.jsonl:1  POST /login -> 200",
        '  event login_seen {"provider":"github","method":"totp","scopes":null,'
        '"first_login":true}  rule login-seen (hera.yaml:9)',
        '  event github_login {"method":"totp"}  rule github-login (hera.yaml:17)',
        "exchanges.jsonl:2  POST /quiet -> 200",
        '  event login_seen {"provider":null,"method":null,"scopes":null,'
        '"first_login":false}  rule login-seen (hera.yaml:9)',
        "2 exchanges, 3 events; 2 with expected events, 0 different",
    ]
    outcomes = list(Replayer(RULES_LOADED).run_all(read_exchanges("exchanges.jsonl")))
    assert [o.events for o in outcomes] == [LOGIN_EVENTS, QUIET_EVENTS]
    assert [o.as_expected() for o in outcomes] == [True, True]
    assert [o.recorded.signals for o in outcomes] == [
        {"logged_in": {"provider": "github", "method": "totp"}},
        {},
    ]


def test_a_record_without_signals_replays_them_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same records without `signals` (a HAR, a hand-written line): null, no condition."""
    records = record(tmp_path, monkeypatch, RULES, "/login", "/quiet")
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "signals"}) + "\n" for r in records),
        encoding="utf-8",
    )
    outcomes = list(Replayer(RULES_LOADED).run_all(read_exchanges(bare)))
    unknown = {"event": "login_seen", "provider": None, "method": None, "scopes": None}
    assert [o.events for o in outcomes] == [[unknown | {"first_login": None}]] * 2
    assert [o.recorded.signals for o in outcomes] == [None, None]
    assert [o.as_expected() for o in outcomes] == [False, False]


def test_hand_written_signals_are_the_facts(tmp_path: Path) -> None:
    """A kept value of any scalar kind, and null, read back as the live log would hold them."""
    line = {
        "method": "POST",
        "path": "/login",
        "status": 200,
        "signals": {"logged_in": {"provider": "github", "method": None, "scopes": 3}},
    }
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    (outcome,) = Replayer(RULES_LOADED).run_all(read_exchanges(path))
    assert outcome.events == [
        {
            "event": "login_seen",
            "provider": "github",
            "method": None,
            "scopes": 3,
            "first_login": True,
        },
        {"event": "github_login", "method": None},
    ]
    assert outcome.exchange is not None
    assert outcome.exchange.signals == {
        "logged_in": {"provider": "github", "method": None, "scopes": 3}
    }


@pytest.mark.parametrize(
    ("signals", "message"),
    [
        pytest.param(
            ["logged_in"],
            "signals is an object (signal name -> kept arguments), not an array",
            id="list",
        ),
        pytest.param(
            {"logged_in": True},
            "signals.logged_in is an object (argument -> value), not a boolean",
            id="not-an-object",
        ),
        pytest.param(
            {"logged_in": {"scopes": ["openid"]}},
            "signals.logged_in.scopes is a string, number, boolean or null, not an array",
            id="not-a-scalar",
        ),
        pytest.param(
            {"logged_in": {"user": {"id": 1}}},
            "signals.logged_in.user is a string, number, boolean or null, not an object",
            id="an-object",
        ),
    ],
)
def test_a_bad_signals_shape_is_located(
    tmp_path: Path, signals: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exchange file whose `signals` is not an object of objects of scalars: file:line."""
    good = {"method": "POST", "path": "/quiet", "status": 200, "signals": {}}
    bad = dict(good, signals=signals)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(ReplayError) as caught:
        list(read_exchanges(path))
    assert str(caught.value) == f"{path}:3:1: bad-exchange: {message}"
    rules = tmp_path / "hera.yaml"
    rules.write_text(RULES, encoding="utf-8")
    assert main(["replay", str(rules), "--exchanges", str(path)]) == 1
    assert capsys.readouterr().out == f"{path}:3:1: bad-exchange: {message}\n"
