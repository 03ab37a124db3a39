"""`hera-middleware report`: analytics from event lines, streamed, as text, Markdown or JSON."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hera_middleware.cli import main
from hera_middleware.cli._tally import Tally, parse_time

# Audit events of every family, a custom event, events_dropped, and lines to skip: an
# access log line, a Kubernetes-prefixed event, a cut line, a non-audit object.
EVENTS = (
    '{"type":"audit","event":"pkce_authorize","client_id":"web","domain":"ciam","ts":"2026-12-0'
    '3T10:15:00.000Z"}\n'
    '{"type":"audit","event":"pkce_authorize","client_id":"web","domain":"ciam","ts":"2026-12-0'
    '3T10:16:00.000Z"}\n'
    '{"type":"audit","event":"pkce_token_exchange","client_id":"web","domain":"ciam","ts":"2026'
    '-12-03T10:16:01.000Z"}\n'
    '{"type":"audit","event":"pkce_failed","reason":"verifier_mismatch","client_id":"web","doma'
    'in":"ciam","ts":"2026-12-03T11:02:00.000Z"}\n'
    '{"type":"audit","event":"pkce_failed","reason":"challenge_missing","client_id":"legacy","d'
    'omain":"ciam","ts":"2026-12-03T11:03:00.000Z"}\n'
    '{"type":"audit","event":"pkce_failed","reason":"challenge_missing","client_id":"legacy","d'
    'omain":"ciam","ts":"2026-12-03T11:04:00.000Z"}\n'
    '{"type":"audit","event":"social_login_initiated","provider":"github","domain":"ciam","ts":'
    '"2026-12-03T10:20:00.000Z"}\n'
    '{"type":"audit","event":"social_login_initiated","provider":"github","domain":"ciam","ts":'
    '"2026-12-03T10:21:00.000Z"}\n'
    '{"type":"audit","event":"social_login_completed","provider":"github","first_login":true,"d'
    'omain":"ciam","ts":"2026-12-03T10:21:30.000Z"}\n'
    '{"type":"audit","event":"social_login_completed","provider":"google","first_login":null,"d'
    'omain":"ciam","ts":"2026-12-03T11:21:30.000Z"}\n'
    '{"type":"audit","event":"social_link_initiated","provider":"google","domain":"ciam","ts":"'
    '2026-12-03T11:22:00.000Z"}\n'
    '{"type":"audit","event":"mfa_challenge_displayed","method":"totp","domain":"ciam","ts":"20'
    '26-12-03T10:30:00.000Z"}\n'
    '{"type":"audit","event":"mfa_challenge_failed","method":"totp","domain":"ciam","ts":"2026-'
    '12-03T10:30:20.000Z"}\n'
    '{"type":"audit","event":"mfa_challenge_succeeded","method":"totp","domain":"ciam","ts":"20'
    '26-12-03T10:30:40.000Z"}\n'
    '{"type":"audit","event":"mfa_challenge_succeeded","method":"webauthn","domain":"ciam","ts"'
    ':"2026-12-03T11:31:00.000Z"}\n'
    '{"type":"audit","event":"captcha_displayed","flow":"login","domain":"ciam","ts":"2026-12-0'
    '3T10:40:00.000Z"}\n'
    '{"type":"audit","event":"captcha_failed","flow":"login","reason":"timeout","domain":"ciam"'
    ',"ts":"2026-12-03T10:40:10.000Z"}\n'
    '{"type":"audit","event":"captcha_succeeded","flow":"login","domain":"ciam","ts":"2026-12-0'
    '3T10:40:30.000Z"}\n'
    '{"type":"audit","event":"breach_check_failed","reason":"in_hibp","domain":"ciam","ts":"202'
    '6-12-03T10:50:00.000Z"}\n'
    '{"type":"audit","event":"breach_check_passed","domain":"ciam","ts":"2026-12-03T10:51:00.00'
    '0Z"}\n'
    '{"type":"audit","event":"breach_check_passed","domain":"ciam","ts":"2026-12-03T11:51:00.00'
    '0Z"}\n'
    '{"type":"audit","event":"events_dropped","count":3,"domain":"ciam","ts":"2026-12-03T11:52:'
    '00.000Z"}\n'
    '{"type":"audit","event":"invoice_paid","plan":"pro","domain":"ciam","ts":"2026-12-03T11:53'
    ':00.000Z"}\n'
    'INFO:     127.0.0.1:51000 - "GET /mfa HTTP/1.1" 200 OK\n'
    '2026-12-03T11:54:00Z stdout F {"type":"audit","event":"mfa_challenge_failed","method":"tot'
    'p","domain":"ciam","ts":"2026-12-03T11:54:00.000Z"}\n'
    '{"type":"audit","event":"pkce_authorize","client_id":"web"\n'
    '{"type":"access","event":"pkce_authorize"}\n'
)

TEXT = (
    "27 lines read: 24 audit events, 3 other lines skipped\n"
    "\n"
    "PKCE per client\n"
    "client  authorize  exchanges  failed  failure rate  failures by reason\n"
    "legacy          0          0       2        100.0%  challenge_missing 2\n"
    "web             2          1       1         50.0%  verifier_mismatch 1\n"
    "\n"
    "Social login per provider\n"
    "provider  initiated  completed  first time  returning  linked  first-time share  completio"
    "n rate\n"
    "github            2          1           1          0       0            100.0%           "
    " 50.0%\n"
    "google            0          1           0          0       1                 -           "
    "     -\n"
    "\n"
    "MFA per method\n"
    "method    displayed  succeeded  failed  failure rate\n"
    "totp              1          1       2         66.7%\n"
    "webauthn          0          1       0          0.0%\n"
    "\n"
    "Captcha per flow\n"
    "flow   displayed  succeeded  failed  success rate  failures by reason\n"
    "login          1          1       1         50.0%  timeout 1\n"
    "\n"
    "Breach checks\n"
    "passed  failed  fail rate  failures by reason\n"
    "     2       1      33.3%  in_hibp 1\n"
)

MARKDOWN_BY_HOUR = (
    "27 lines read: 24 audit events, 3 other lines skipped; 8 counted (since 2026-12-03T11:00:0"
    "0.000Z, until 2026-12-03T12:00:00.000Z)\n"
    "\n"
    "## PKCE per client\n"
    "\n"
    "| hour | client | authorize | exchanges | failed | failure rate | failures by reason |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | --- |\n"
    "| 2026-12-03 11:00 | legacy | 0 | 0 | 2 | 100.0% | challenge_missing 2 |\n"
    "| 2026-12-03 11:00 | web | 0 | 0 | 1 | 100.0% | verifier_mismatch 1 |\n"
    "\n"
    "## Social login per provider\n"
    "\n"
    "| hour | provider | initiated | completed | first time | returning | linked | first-time s"
    "hare | completion rate |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    "| 2026-12-03 11:00 | google | 0 | 1 | 0 | 0 | 1 | - | - |\n"
    "\n"
    "## MFA per method\n"
    "\n"
    "| hour | method | displayed | succeeded | failed | failure rate |\n"
    "| --- | --- | ---: | ---: | ---: | ---: |\n"
    "| 2026-12-03 11:00 | totp | 0 | 0 | 1 | 100.0% |\n"
    "| 2026-12-03 11:00 | webauthn | 0 | 1 | 0 | 0.0% |\n"
    "\n"
    "## Breach checks\n"
    "\n"
    "| hour | passed | failed | fail rate | failures by reason |\n"
    "| --- | ---: | ---: | ---: | --- |\n"
    "| 2026-12-03 11:00 | 1 | 0 | 0.0% | - |\n"
)

JSON_BY_DAY = {
    "lines": 27,
    "audit_events": 24,
    "skipped": 3,
    "counted": 22,
    "since": None,
    "until": None,
    "by": "day",
    "pkce": [
        {
            "day": "2026-12-03",
            "client_id": "legacy",
            "authorize": 0,
            "exchanges": 0,
            "failed": 2,
            "failure_rate": 1.0,
            "failures_by_reason": {"challenge_missing": 2},
        },
        {
            "day": "2026-12-03",
            "client_id": "web",
            "authorize": 2,
            "exchanges": 1,
            "failed": 1,
            "failure_rate": 0.5,
            "failures_by_reason": {"verifier_mismatch": 1},
        },
    ],
    "social": [
        {
            "day": "2026-12-03",
            "provider": "github",
            "initiated": 2,
            "completed": 1,
            "first_time": 1,
            "returning": 0,
            "linked": 0,
            "first_time_share": 1.0,
            "completion_rate": 0.5,
        },
        {
            "day": "2026-12-03",
            "provider": "google",
            "initiated": 0,
            "completed": 1,
            "first_time": 0,
            "returning": 0,
            "linked": 1,
            "first_time_share": None,
            "completion_rate": None,
        },
    ],
    "mfa": [
        {
            "day": "2026-12-03",
            "method": "totp",
            "displayed": 1,
            "succeeded": 1,
            "failed": 2,
            "failure_rate": 0.6667,
        },
        {
            "day": "2026-12-03",
            "method": "webauthn",
            "displayed": 0,
            "succeeded": 1,
            "failed": 0,
            "failure_rate": 0.0,
        },
    ],
    "captcha": [
        {
            "day": "2026-12-03",
            "flow": "login",
            "displayed": 1,
            "succeeded": 1,
            "failed": 1,
            "success_rate": 0.5,
            "failures_by_reason": {"timeout": 1},
        }
    ],
    "breach": [
        {
            "day": "2026-12-03",
            "passed": 2,
            "failed": 1,
            "fail_rate": 0.3333,
            "failures_by_reason": {"in_hibp": 1},
        }
    ],
}


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text(EVENTS)
    return path


def test_text_report_has_a_table_per_family(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PKCE per client, social per provider, MFA per method, captcha per flow, breach checks."""
    assert main(["report", str(events_file)]) == 0
    assert capsys.readouterr().out == TEXT


def test_markdown_by_hour_within_since_and_until(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since is inclusive, --until exclusive, offsets are read; one row per hour."""
    argv = ["report", str(events_file), "--by", "hour", "--format", "markdown"]
    argv += ["--since", "2026-12-03T11:00", "--until", "2026-12-03T12:00:00+00:00"]
    assert main(argv) == 0
    assert capsys.readouterr().out == MARKDOWN_BY_HOUR


def test_json_by_day(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON report holds the same rows, rates as fractions (null when undefined)."""
    assert main(["report", str(events_file), "--by", "day", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == JSON_BY_DAY


@pytest.mark.parametrize("argv", [["report"], ["report", "-"]], ids=["no-file", "dash"])
def test_stdin_is_read_without_a_file_or_with_dash(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`... | hera-middleware report` and `report -` read standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(EVENTS.encode())))
    assert main(argv) == 0
    assert capsys.readouterr().out == TEXT


def test_no_counted_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Input without any family's events says so."""
    empty = tmp_path / "empty.log"
    empty.write_text("hello\n")
    assert main(["report", str(empty)]) == 0
    assert capsys.readouterr().out == (
        "1 lines read: 0 audit events, 1 other lines skipped\n"
        "\n"
        "no PKCE, social login, MFA, captcha or breach-check events\n"
    )


@pytest.mark.parametrize(
    ("argv", "status", "output"),
    [
        pytest.param(
            ["report", "missing.jsonl"],
            1,
            "hera-middleware report: cannot read missing.jsonl: No such file or directory\n",
            id="missing",
        ),
        pytest.param(
            ["report", "--since", "yesterday"],
            2,
            "hera-middleware report: --since/--until take an ISO 8601 time:"
            " Invalid isoformat string: 'yesterday'\n",
            id="bad-time",
        ),
    ],
)
def test_report_errors(
    argv: list[str], status: int, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file or a bad time bound is one line and a non-zero exit."""
    assert main(argv) == status
    assert capsys.readouterr().out == output


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        pytest.param("2026-12-03", "2026-12-03T00:00:00.000Z", id="date"),
        pytest.param("2026-12-03T11:30Z", "2026-12-03T11:30:00.000Z", id="z"),
        pytest.param("2026-12-03T13:30:00.5+02:00", "2026-12-03T11:30:00.500Z", id="offset"),
    ],
)
def test_time_bounds_are_compared_as_utc_timestamps(text: str, bound: str) -> None:
    """Bounds are turned into the events' own ts form, so comparing strings compares times."""
    assert parse_time(text) == bound


def test_memory_does_not_grow_with_the_number_of_lines() -> None:
    """300,000 lines of a few clients keep a few counters: nothing per line is kept."""

    def lines() -> Iterator[bytes]:
        for i in range(300_000):
            yield (
                b'{"type":"audit","event":"pkce_failed","reason":"verifier_mismatch",'
                b'"client_id":"c%d","domain":"ciam","ts":"2026-12-03T11:00:00.000Z"}' % (i % 3)
            )

    tally = Tally(by="day")
    tally.add_lines(lines())
    assert (tally.lines, tally.counted) == (300_000, 300_000)
    assert len(tally.counts) == 6
