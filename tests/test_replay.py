"""hera_middleware.replay: recordings to raw ASGI messages through HeraEvents, and near misses."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from hera_middleware import load_rules
from hera_middleware.replay import (
    Recorded,
    Replayer,
    ReplayError,
    near_misses,
    read_exchanges,
    read_har,
    read_recordings,
)

HERE = Path(__file__).parent
TOOLING = HERE / "fixtures" / "tooling"
REAL = HERE / "fixtures" / "real-servers"
RULE_FILES = {
    "authlib": "authlib.yaml",
    "django-oauth-toolkit": "django-oauth-toolkit.yaml",
    "django-oauth-toolkit-root-path": "django-oauth-toolkit.yaml",
    "flask-security-too": "flask-security-too.yaml",
    "flask-wtf-recaptcha": "flask-wtf-recaptcha.yaml",
    "django-allauth": "django-allauth.yaml",
}


def _exchange(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "method": "POST",
        "path": "/oauth/token",
        "root_path": "",
        "query": {},
        "request_headers": {"content-type": "application/x-www-form-urlencoded"},
        "request_body": {"grant_type": ["authorization_code"], "code_verifier": ["v" * 43]},
        "status": 200,
        "response_headers": {"content-type": "application/json"},
        "response_body": "{}",
    }
    record.update(changes)
    return record


def _write_lines(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _replay_all(rules: Any, recordings: list[Recorded]) -> list[list[tuple[str, dict[str, Any]]]]:
    replayer = Replayer(rules, recordings)
    return [[(f.rule.id, f.event) for f in o.fired] for o in replayer.run_all(recordings)]


@pytest.mark.parametrize("stem", sorted(RULE_FILES))
def test_every_real_server_recording_replays_to_its_expected_events(stem: str) -> None:
    """Each recording of a real auth server gives one of its accepted event lists."""
    recordings = list(read_exchanges(REAL / f"{stem}.jsonl"))
    replayer = Replayer(str(HERE / "rules" / RULE_FILES[stem]), recordings)
    outcomes = list(replayer.run_all(recordings))
    assert len(outcomes) == len(recordings) > 0
    assert [o.recorded.where for o in outcomes if not o.as_expected()] == []


def test_the_tooling_fixtures_cover_every_family_in_both_formats() -> None:
    """The HAR and the exchange file of our own making give every documented event."""
    rules = str(TOOLING / "hera.yaml")
    exchanges = list(read_recordings(TOOLING / "exchanges.jsonl"))
    har = list(read_recordings(TOOLING / "session.har"))
    from_exchanges = {e["event"] for o in Replayer(rules).run_all(exchanges) for e in o.events}
    outcomes = list(Replayer(rules).run_all(har))
    assert all(o.as_expected() for o in outcomes)
    assert len(from_exchanges) == 14
    # The browser never saw the confidential client's token request.
    assert len(har) == len(exchanges) - 1


def test_har_entries_become_what_the_server_saw() -> None:
    """Pseudo-headers and framing headers go, bodies are decoded, the URL is split."""
    entry = json.loads((TOOLING / "session.har").read_text())["log"]["entries"][3]
    recorded = next(iter(read_har(TOOLING / "session.har")))
    assert recorded.where.endswith("session.har:entry 1")
    token = next(r for r in read_har(TOOLING / "session.har") if r.path == "/oauth/token")
    names = [name for name, _ in token.headers]
    assert not [n for n in names if n.startswith(b":")]
    assert names.count(b"content-length") == 1
    assert token.body == entry["request"]["postData"]["text"].encode()
    assert token.response_body == base64.b64decode(entry["response"]["content"]["text"])
    assert token.expected == ((entry["_expected_events"][0],),)
    har = read_har(TOOLING / "session.har")
    authorize = next(r for r in har if r.path == "/oauth/authorize")
    assert authorize.query_string.startswith(b"response_type=code&client_id=web")
    assert (b"host", b"idp.example") in authorize.headers


def test_har_post_params_without_text(tmp_path: Path) -> None:
    """A HAR postData with params only (some browsers) is rebuilt as an urlencoded form."""
    har = {
        "log": {
            "entries": [
                {
                    "request": {
                        "method": "POST",
                        "url": "http://x/register",
                        "headers": [],
                        "postData": {
                            "mimeType": "application/x-www-form-urlencoded",
                            "params": [{"name": "a", "value": "1 2"}],
                        },
                    },
                    "response": {"status": 302, "headers": [], "content": {}},
                }
            ]
        }
    }
    path = tmp_path / "x.har"
    path.write_text(json.dumps(har))
    (recorded,) = read_har(path)
    assert recorded.body == b"a=1+2"
    assert (b"content-type", b"application/x-www-form-urlencoded") in recorded.headers
    assert recorded.expected is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"method": "GET"\n', ":1:17: bad-exchange: invalid JSON: ", id="json"),
        pytest.param("[1]\n", ":1:1: bad-exchange: a record is a JSON object", id="list"),
        pytest.param('\n{"method": "GET"}\n', ":2:1: bad-exchange: missing key 'path'", id="key"),
    ],
)
def test_unreadable_exchange_lines_are_located(tmp_path: Path, text: str, message: str) -> None:
    """A bad line of an exchange file is a ReplayError at its file, line and column."""
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(ReplayError) as caught:
        list(read_exchanges(path))
    assert str(caught.value).startswith(str(path) + message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{", ":1:2: bad-har: invalid JSON: ", id="json"),
        pytest.param("{}", ":1:1: bad-har: a HAR file holds log.entries", id="no-log"),
        pytest.param(
            '{"log": {"entries": [{}]}}', ":1:1: bad-har: entry 1: missing key", id="entry"
        ),
    ],
)
def test_unreadable_har_files_are_located(tmp_path: Path, text: str, message: str) -> None:
    """A file that is no HAR, or an entry without request and response, is a ReplayError."""
    path = tmp_path / "bad.har"
    path.write_text(text)
    with pytest.raises(ReplayError) as caught:
        list(read_har(path))
    assert str(caught.value).startswith(str(path) + message)


def test_route_rules_resolve_from_the_recorded_route_names(tmp_path: Path) -> None:
    """`route:` rules fire for exchanges recorded with that route; unrecorded names load."""
    rules = load_rules(
        text="rules:\n"
        "  - {id: t, event: pkce_token_exchange, route: oauth.token,"
        " if: {response.status: 200}, fields: {client_id: {value: web}}}\n"
        "  - {id: u, event: breach_check_passed, route: never.requested}\n"
    )
    path = _write_lines(
        tmp_path / "x.jsonl",
        _exchange(route="oauth.token"),
        _exchange(route="other", path="/token2"),
    )
    recordings = list(read_exchanges(path))
    assert _replay_all(rules, recordings) == [
        [("t", {"event": "pkce_token_exchange", "client_id": "web"})],
        [],
    ]


async def test_replay_runs_inside_an_event_loop(tmp_path: Path) -> None:
    """`await Replayer.replay(...)` works from async code (the sync run needs no loop)."""
    path = _write_lines(tmp_path / "x.jsonl", _exchange())
    (recorded,) = read_exchanges(path)
    replayer = Replayer(str(TOOLING / "hera.yaml"))
    outcome = await replayer.replay(recorded)
    assert outcome.events == [{"event": "pkce_token_exchange", "client_id": None}]
    assert outcome.as_expected() is None


def test_near_misses_say_why_each_rule_on_the_path_did_not_fire(tmp_path: Path) -> None:
    """Method, stop, and each false condition, with values only where events may carry them."""
    rules = load_rules(
        text="rules:\n"
        "  - {id: get, event: breach_check_passed, match: GET /oauth/token}\n"
        "  - {id: first, event: breach_check_passed, match: POST /oauth/token, stop: true}\n"
        "  - {id: after, event: breach_check_passed, match: POST /oauth/token}\n"
        "  - id: conds\n"
        "    event: breach_check_passed\n"
        "    match: /oauth/{what}\n"
        "    if:\n"
        "      response.status: 400\n"
        "      form.code_verifier: {length: 10}\n"
        "      form.grant_type: refresh_token\n"
        "      response.body: {contains: nope}\n"
        "      any: [{query.a: present}, {query.b: present}]\n"
        "  - {id: elsewhere, event: breach_check_passed, match: POST /login}\n"
    )
    path = _write_lines(tmp_path / "x.jsonl", _exchange())
    replayer = Replayer(rules)
    (outcome,) = replayer.run_all(read_exchanges(path))
    assert [f.rule.id for f in outcome.fired] == ["first"]
    assert [(m.rule.id, m.reasons) for m in near_misses(rules, outcome)] == [
        ("get", ("the method is POST; the rule matches GET",)),
        ("after", ("an earlier rule, first, fired with `stop: true`",)),
        (
            "conds",
            ("an earlier rule, first, fired with `stop: true`",),
        ),
    ]
    quiet = load_rules(text=rules_text_without_stop())
    (outcome,) = Replayer(quiet).run_all(read_exchanges(path))
    assert [(m.rule.id, m.reasons) for m in near_misses(quiet, outcome)] == [
        (
            "conds",
            (
                "response.status: 400, but it is 200",
                "form.code_verifier: {length: 10}, but it is present"
                " (its value is not shown: events may not carry it)",
                "form.grant_type: refresh_token, but it is authorization_code",
                "response.body: {contains: nope}, but it is 2 characters without a match",
                "any: [{query.a: present}, {query.b: present}]: does not hold",
            ),
        ),
    ]


def rules_text_without_stop() -> str:
    return (
        "rules:\n"
        "  - id: conds\n"
        "    event: breach_check_passed\n"
        "    match: /oauth/{what}\n"
        "    if:\n"
        "      response.status: 400\n"
        "      form.code_verifier: {length: 10}\n"
        "      form.grant_type: refresh_token\n"
        "      response.body: {contains: nope}\n"
        "      any: [{query.a: present}, {query.b: present}]\n"
    )


def test_near_misses_redact_what_looks_like_an_email_or_ip(tmp_path: Path) -> None:
    """Values an explanation shows pass the same e-mail and IP masking as events."""
    rules = load_rules(
        text="rules:\n"
        "  - id: who\n"
        "    event: breach_check_passed\n"
        "    match: POST /oauth/token\n"
        "    if:\n"
        "      form.client_id: web\n"
        "      response.json.error: invalid_grant\n"
        "      response.json.hint: {contains: x}\n"
    )
    path = _write_lines(
        tmp_path / "x.jsonl",
        _exchange(
            request_body={"client_id": ["alice@example.com"]},
            status=400,
            response_body=json.dumps(
                {"error": "10.1.2.3", "hint": {"who": ["bob@example.org", "plain text"]}}
            ),
        ),
    )
    (outcome,) = Replayer(rules).run_all(read_exchanges(path))
    assert [m.reasons for m in near_misses(rules, outcome)] == [
        (
            "form.client_id: web, but it is redacted",
            "response.json.error: invalid_grant, but it is redacted",
            "response.json.hint: {contains: x}, but it is {who: [redacted, plain text]}",
        )
    ]
