"""`hera-middleware replay`: recorded traffic through the rules, with the rule that fired."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hera_middleware.cli import main

ROOT = Path(__file__).resolve().parent.parent
RULES = "tests/fixtures/tooling/hera.yaml"
HAR = "tests/fixtures/tooling/session.har"
EXCHANGES = "tests/fixtures/tooling/exchanges.jsonl"


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _token_exchange(status: int, expected: list[dict[str, Any]], **changes: Any) -> str:
    record: dict[str, Any] = {
        "method": "POST",
        "path": "/oauth/token",
        "root_path": "",
        "query": {},
        "request_headers": {"content-type": "application/x-www-form-urlencoded"},
        "request_body": {
            "grant_type": ["authorization_code"],
            "client_id": ["web"],
            "code_verifier": ["dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"],
        },
        "status": status,
        "response_headers": {"content-type": "application/json"},
        "response_body": json.dumps({"error": "invalid_grant"} if status == 400 else {}),
        "expected_events": expected,
        **changes,
    }
    return json.dumps(record) + "\n"


def test_replay_prints_each_event_with_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """Exchanges that emit are listed with their events and rules; the summary counts all."""
    assert main(["replay", RULES, "--exchanges", EXCHANGES]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        f"{EXCHANGES}:2  GET /oauth/authorize -> 302",
        f'  event pkce_authorize {{"client_id":"web"}}  rule pkce-authorize ({RULES}:5)',
        f"{EXCHANGES}:3  GET /oauth/authorize -> 302",
        '  event pkce_failed {"reason":"challenge_missing","client_id":"legacy"}'
        f"  rule pkce-failed-challenge-missing ({RULES}:15)",
    ]
    assert out[-3:] == [
        f"{EXCHANGES}:18  POST /register -> 302",
        f"  event breach_check_passed  rule breach-passed ({RULES}:127)",
        "18 exchanges, 17 events",
    ]


@pytest.mark.parametrize(
    ("option", "path", "summary"),
    [
        pytest.param("--har", HAR, "17 exchanges, 16 events", id="har"),
        pytest.param("--exchanges", EXCHANGES, "18 exchanges, 17 events", id="exchanges"),
    ],
)
def test_expect_passes_on_the_fixtures_of_every_family(
    option: str, path: str, summary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every family's recorded exchange gives its expected events; exit 0."""
    assert main(["replay", RULES, option, path, "--expect"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    count = summary.split()[0]
    assert last == f"{summary}; {count} with expected events, 0 different"


def test_expect_shows_each_difference_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A difference prints what was expected and what came; exchanges without
    expected_events are not compared."""
    recording = tmp_path / "x.jsonl"
    recording.write_text(
        _token_exchange(200, [{"event": "pkce_token_exchange", "client_id": "web"}])
        + _token_exchange(400, [{"event": "pkce_failed", "reason": "verifier_missing"}])
        + _token_exchange(
            400,
            [],
            http_ambiguous=True,
            also_accepted=[[{"event": "pkce_token_exchange", "client_id": "web"}]],
        )
        + json.dumps({"method": "GET", "path": "/", "status": 200})
        + "\n"
    )
    assert main(["replay", RULES, "--exchanges", str(recording), "--expect"]) == 1
    assert capsys.readouterr().out == (
        f"{recording}:1  POST /oauth/token -> 200\n"
        '  event pkce_token_exchange {"client_id":"web"}'
        f"  rule pkce-token-exchange ({RULES}:26)\n"
        f"{recording}:2  POST /oauth/token -> 400  DIFFERENT\n"
        '  event pkce_failed {"reason":"verifier_mismatch","client_id":"web"}'
        f"  rule pkce-failed-mismatch ({RULES}:35)\n"
        '  expected pkce_failed {"reason":"verifier_missing"}\n'
        '  got      pkce_failed {"reason":"verifier_mismatch","client_id":"web"}\n'
        f"{recording}:3  POST /oauth/token -> 400  DIFFERENT\n"
        '  event pkce_failed {"reason":"verifier_mismatch","client_id":"web"}'
        f"  rule pkce-failed-mismatch ({RULES}:35)\n"
        "  expected no event\n"
        '  or       pkce_token_exchange {"client_id":"web"}\n'
        '  got      pkce_failed {"reason":"verifier_mismatch","client_id":"web"}\n'
        "4 exchanges, 3 events; 3 with expected events, 2 different\n"
    )


def test_explain_says_why_rules_on_the_path_did_not_fire(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Near misses: each false condition with the fact's value, or its method."""
    recording = tmp_path / "x.jsonl"
    recording.write_text(
        _token_exchange(401, [], response_body="{}")
        + json.dumps({"method": "GET", "path": "/mfa", "status": 500})
        + "\n"
    )
    assert main(["replay", RULES, "--exchanges", str(recording), "--explain"]) == 0
    assert capsys.readouterr().out == (
        f"{recording}:1  POST /oauth/token -> 401\n"
        "  missed pkce-token-exchange (pkce_token_exchange)\n"
        "    response.status: 200, but it is 401\n"
        "  missed pkce-failed-mismatch (pkce_failed)\n"
        "    response.status: 400, but it is 401\n"
        "    response.json.error: invalid_grant, but it is absent\n"
        f"{recording}:2  GET /mfa -> 500\n"
        "  missed mfa-displayed (mfa_challenge_displayed)\n"
        "    response.status: 200, but it is 500\n"
        "  missed mfa-succeeded (mfa_challenge_succeeded)\n"
        "    the method is GET; the rule matches POST\n"
        "  missed mfa-failed (mfa_challenge_failed)\n"
        "    the method is GET; the rule matches POST\n"
        "2 exchanges, 0 events\n"
    )


def test_secrets_are_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """No password, code, verifier, token or cookie of the recordings reaches the output."""
    assert main(["replay", RULES, "--har", HAR, "--exchanges", EXCHANGES, "--explain"]) == 0
    out = capsys.readouterr().out
    for secret in (
        "correct horse",
        "dBjftJeZ4CVP",
        "SplxlOBeZQQYbYS6WxSbIA",
        "2YotnFZFEjr1zCsicMWpAA",
        "03AGdBq2",
        "654321",
        "bob@example.com",
        "eyJfZnJlc2gi",
        "s3cr3t",
    ):
        assert secret not in out
    assert "form.g-recaptcha-response: absent, but it is present (its value is not shown" in out


@pytest.mark.parametrize(
    ("argv", "status", "output"),
    [
        pytest.param(
            ["replay", RULES],
            2,
            "hera-middleware replay: give --har EXPORT.har or --exchanges FILE.jsonl\n",
            id="no-recordings",
        ),
        pytest.param(
            ["replay", RULES, "--har", "missing.har"],
            1,
            "hera-middleware replay: cannot read missing.har: No such file or directory\n",
            id="missing",
        ),
        pytest.param(
            ["replay", "preset:nope", "--har", HAR],
            1,
            "preset:nope:1:1: unknown-preset: there is no preset 'nope'"
            " (hint: presets are authlib, django-allauth, django-oauth-toolkit, flask-security-too,"
            " flask-wtf-recaptcha)\n",
            id="bad-rules",
        ),
        pytest.param(
            ["replay", RULES, "--exchanges", RULES],
            1,
            f"{RULES}:1:1: bad-exchange: invalid JSON: Expecting value\n",
            id="bad-recording",
        ),
    ],
)
def test_replay_errors(
    argv: list[str], status: int, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing recordings, unreadable files and bad rules are one line each, and no replay."""
    assert main(argv) == status
    assert capsys.readouterr().out == output
