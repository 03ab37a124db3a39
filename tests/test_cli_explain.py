"""`hera-middleware explain`: the rule table after extends/disable, and the options in effect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hera_middleware.cli import main

RULE_FILE = (
    "extends: [preset:authlib]\n"
    "domain: shop\n"
    "vars: {oauth: /auth}\n"
    "disable:\n"
    "  - authlib-pkce-failed-challenge-missing-at-token\n"
    "  - authlib-pkce-failed-method-unsupported\n"
    "  - authlib-pkce-failed-challenge-invalid\n"
    "  - authlib-pkce-failed-challenge-missing\n"
    "  - authlib-pkce-failed-verifier-missing\n"
    "events:\n"
    "  invoice_paid: [plan]\n"
    "allow:\n"
    "  provider: [google, github]\n"
    "rules:\n"
    "  - id: authlib-pkce-token-exchange\n"
    "    event: pkce_token_exchange\n"
    "    match: POST ${oauth}/token\n"
    "    if: {response.status: 200, form.code_verifier: present}\n"
    "    fields: {client_id: [form.client_id, basic_auth.username]}\n"
    "  - event: invoice_paid\n"
    "    match: [POST /reset, /reset/again]\n"
    "    if:\n"
    "      - response.status: 302\n"
    "      - not: {response.location.query.error: present}\n"
    "    fields: {plan: {value: pro}}\n"
    "    stop: true\n"
    "  - event: social_login_completed\n"
    "    match: GET /login/<provider>/callback\n"
    "    fields:\n"
    "      provider: path.provider\n"
    "      first_login: {value: null}\n"
)

EXPECTED = (
    "5 rules in evaluation order, from preset:authlib, hera.yaml\n"
    "\n"
    "authlib-pkce-authorize  pkce_authorize  (preset:authlib:15)\n"
    "  match   GET /auth/authorize\n"
    "          POST /auth/authorize\n"
    "  if      params.code_challenge: present\n"
    "          response.status: 302\n"
    "          response.location.query.code: present\n"
    "  fields  client_id <- params.client_id\n"
    "\n"
    "authlib-pkce-token-exchange  pkce_token_exchange  (hera.yaml:15)\n"
    "  match   POST /auth/token\n"
    "  if      response.status: 200\n"
    "          form.code_verifier: present\n"
    "  fields  client_id <- [form.client_id, basic_auth.username]\n"
    "\n"
    "authlib-pkce-failed-mismatch  pkce_failed  (preset:authlib:88)\n"
    "  match   POST /auth/token\n"
    "  if      form.grant_type: authorization_code\n"
    "          response.status: 400\n"
    "          any: [{response.json.error_description: Code challenge failed.}, {response.json."
    "error_description: \"Invalid 'code_verifier'\"}]\n"
    "  fields  reason <- {value: verifier_mismatch}\n"
    "          client_id <- [form.client_id, basic_auth.username]\n"
    "\n"
    "hera.yaml:20  invoice_paid  (hera.yaml:20)\n"
    "  match   POST /reset\n"
    "          /reset/again  (any method)\n"
    "  if      - response.status: 302\n"
    "          - not: {response.location.query.error: present}\n"
    "  fields  plan <- {value: pro}\n"
    "  stop    true: later rules are not tried when this one fires\n"
    "\n"
    "hera.yaml:27  social_login_completed  (hera.yaml:27)\n"
    "  match   GET /login/<provider>/callback\n"
    "  fields  provider <- path.provider\n"
    "          first_login <- {value: null}\n"
    "\n"
    "events declared\n"
    "  invoice_paid: [plan]\n"
    "\n"
    'allow-lists (other values are written as "other")\n'
    "  provider: [github, google]\n"
    "\n"
    "options in effect\n"
    "  domain             shop    hera.yaml\n"
    "  output             stderr  environment HERA_OUTPUT\n"
    "  on_full            drop    default\n"
    "  max_request_body   65536   default\n"
    "  max_response_body  65536   default\n"
)


@pytest.fixture(autouse=True)
def _no_hera_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HERA_DOMAIN", "HERA_OUTPUT", "HERA_ON_FULL", "HERA_RULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HERA_MAX_REQUEST_BODY", raising=False)
    monkeypatch.delenv("HERA_MAX_RESPONSE_BODY", raising=False)


def test_explain_prints_the_rules_in_effect_and_where_options_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every rule after extends, overrides and disable, with origin, match, if, fields, stop;
    declared events, allow-lists, and each option with its origin (environment included)."""
    (tmp_path / "hera.yaml").write_text(RULE_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HERA_OUTPUT", "stderr")
    assert main(["explain", "hera.yaml"]) == 0
    assert capsys.readouterr().out == EXPECTED


def test_explain_a_preset_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """A preset explains as well; options it does not set come from the defaults."""
    assert main(["explain", "preset:authlib"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 rules in evaluation order, from preset:authlib\n\n")
    assert out.endswith(
        "options in effect\n"
        "  domain             ciam    default\n"
        "  output             stdout  default\n"
        "  on_full            drop    default\n"
        "  max_request_body   65536   default\n"
        "  max_response_body  65536   default\n"
    )


def test_explain_reports_problems_like_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad rule file, or a bad option in the environment, is listed and exits 1."""
    (tmp_path / "hera.yaml").write_text(
        "rules:\n  - {event: breach_check_passed, match: /a, stop: yes}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "hera.yaml"]) == 1
    assert capsys.readouterr().out == (
        "hera.yaml:2:51: bad-value: `stop` is true or false"
        " (hint: YAML 1.2 reads only true/false as booleans; yes, no, on, off are strings)\n"
    )
    monkeypatch.setenv("HERA_ON_FULL", "wait")
    assert main(["explain", "preset:authlib"]) == 1
    assert capsys.readouterr().out == (
        "<environment HERA_ON_FULL>:1:1: bad-option: on_full is 'drop' or 'block', not 'wait'\n"
    )


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`hera-middleware explain FILE | head`: a pipe closed by its reader ends the command
    quietly, with status 1 and nothing on stderr."""
    rules = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app" / "hera.yaml"
    code = "import sys; from hera_middleware.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", code, "explain", str(rules)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line is written
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 1
    assert err == b""
