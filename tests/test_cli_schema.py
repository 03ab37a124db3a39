"""`hera-middleware schema`: the shipped JSON Schemas, and what they must accept and refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hera_middleware import emit_event
from hera_middleware.catalog import CATALOG, EVENTS_DROPPED
from hera_middleware.cli import main
from hera_middleware.cli._schema import schema_text
from hera_middleware.rules._yaml import parse_yaml
from hera_middleware.rules.conditions import FORMATS
from hera_middleware.testing import capture_events

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted(
    [
        *ROOT.glob("adapters/*/rules.yaml"),
        *ROOT.glob("examples/*/hera.yaml"),
        *ROOT.glob("tests/rules/*.yaml"),
        *ROOT.glob("tests/fixtures/tooling/*.yaml"),
        ROOT / "docs" / "examples" / "hera.yaml",
        ROOT / "docs" / "examples" / "first-try.yaml",
    ]
)


def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_text(kind))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


RULES = _validator("rules")
EVENTS = _validator("events")


def _errors(validator: jsonschema.protocols.Validator, value: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


@pytest.mark.parametrize("kind", ["rules", "events"])
def test_schema_prints_the_shipped_file(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`schema rules|events` prints the file shipped in the package, byte for byte."""
    assert main(["schema", kind]) == 0
    shipped = ROOT / "src" / "hera_middleware" / "schemas" / f"{kind}.schema.json"
    assert capsys.readouterr().out == shipped.read_text(encoding="utf-8")


def test_every_shipped_rule_file_validates() -> None:
    """Presets, examples and test rule files all validate against the rules schema."""
    assert len(RULE_FILES) >= 11
    for path in RULE_FILES:
        root, problems = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        assert root is not None
        assert not problems
        assert _errors(RULES, root.plain()) == [], path


@pytest.mark.parametrize(
    ("document", "where"),
    [
        pytest.param({"domian": "x", "rules": []}, [], id="unknown-top-key"),
        pytest.param({"rules": [{"match": "GET /a"}]}, ["rules", 0], id="no-event"),
        pytest.param({"rules": [{"event": "pkce_authorize"}]}, ["rules", 0], id="no-match"),
        pytest.param(
            {"rules": [{"event": "breach_check_passed", "match": "get /a"}]},
            ["rules", 0, "match"],
            id="lowercase-method",
        ),
        pytest.param(
            {"rules": [{"event": "breach_check_passed", "match": "/a", "if": {"x.y": 1}}]},
            ["rules", 0, "if"],
            id="unknown-fact",
        ),
        pytest.param(
            {"rules": [{"event": "x_y", "match": "/a", "if": {"form.a": {"startswith": "b"}}}]},
            ["rules", 0, "if"],
            id="unknown-matcher",
        ),
        pytest.param(
            {"rules": [{"event": "x_y", "match": "/a", "fields": {"a": {"valu": 1}}}]},
            ["rules", 0, "fields", "a"],
            id="bad-field",
        ),
        pytest.param({"on_full": "wait"}, ["on_full"], id="bad-on-full"),
        pytest.param({"events": {"pkce_authorize": []}}, ["events"], id="catalog-event-redefined"),
    ],
)
def test_rules_schema_refuses_mistakes(document: dict[str, Any], where: list[Any]) -> None:
    """Editors flag the mistakes the loader refuses, at the key where they are."""
    errors = list(RULES.iter_errors(document))
    assert errors
    assert [list(e.absolute_path) for e in errors] == [where]


def _documented_values() -> dict[str, dict[str, object]]:
    return {
        "pkce_authorize": {"client_id": "web"},
        "pkce_token_exchange": {"client_id": "web"},
        "pkce_failed": {"reason": "verifier_mismatch", "client_id": "web"},
        "social_login_initiated": {"provider": "google"},
        "social_login_completed": {"provider": "google", "first_login": None},
        "social_link_initiated": {"provider": "github"},
        "mfa_challenge_displayed": {"method": "totp"},
        "mfa_challenge_succeeded": {"method": "webauthn"},
        "mfa_challenge_failed": {"method": "sms"},
        "captcha_displayed": {"flow": "login"},
        "captcha_succeeded": {"flow": "registration"},
        "captcha_failed": {"flow": "login", "reason": "timeout"},
        "breach_check_passed": {},
        "breach_check_failed": {"reason": "in_hibp"},
    }


def _discard(event: dict[str, object]) -> None:
    """An output that keeps nothing."""


def test_rules_schema_names_every_format() -> None:
    """`{format: NAME}` in the rules schema takes exactly the formats the matcher knows."""
    found: list[list[str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            fmt = node.get("properties", {}).get("format")
            if isinstance(fmt, dict) and "enum" in fmt:
                found.append(fmt["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(schema_text("rules")))
    assert found == [list(FORMATS)]


def test_events_schema_has_every_catalog_event() -> None:
    """Each catalog event, events_dropped and custom events have their own branch."""
    schema = json.loads(schema_text("events"))
    branches = [ref["$ref"].rsplit("/", 1)[1] for ref in schema["oneOf"]]
    assert branches == [*CATALOG, "events_dropped", "custom"]
    for event in [*CATALOG.values(), EVENTS_DROPPED]:
        properties = schema["$defs"][event.name]["properties"]
        assert list(properties) == ["type", "event", *event.fields, "domain", "ts"]


def test_emitted_events_validate() -> None:
    """What emit_event writes for every catalog event (and a redacted value) validates."""
    with capture_events() as events:
        for name, fields in _documented_values().items():
            emit_event(name, output=_discard, **fields)
        emit_event("pkce_authorize", client_id="alice@example.com", output=_discard)
    assert [e["event"] for e in events][:14] == list(CATALOG)
    assert events[-1]["client_id"] == "redacted"
    for event in events:
        assert _errors(EVENTS, event) == []


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"event": "pkce_authorize"}, id="missing-field"),
        pytest.param({"event": "pkce_authorize", "client_id": "a b"}, id="bad-client-id"),
        pytest.param({"event": "social_login_completed", "provider": "g", "first_login": "yes"}),
        pytest.param({"event": "breach_check_passed", "reason": "x"}, id="extra-field"),
        pytest.param({"event": "pkce_authorize", "client_id": "w", "ts": "2026-12-03"}, id="ts"),
        pytest.param({"event": "thing_done", "nested": {"a": 1}}, id="custom-nested"),
    ],
)
def test_events_schema_refuses_lines_the_library_never_writes(event: dict[str, Any]) -> None:
    """Missing or extra fields, bad shapes and bad timestamps do not validate."""
    line = {"type": "audit", **event}
    line.setdefault("domain", "ciam")
    line.setdefault("ts", "2026-12-03T11:34:13.123Z")
    assert _errors(EVENTS, line) != []


def test_every_event_the_suite_captured_validates(
    suite_captured_events: dict[bytes, dict[str, object]],
) -> None:
    """Every distinct event that any test of the suite captured validates (runs last)."""
    assert suite_captured_events  # this test runs after the others (see conftest.py)
    bad = {key: _errors(EVENTS, event) for key, event in suite_captured_events.items()}
    assert {k: v for k, v in bad.items() if v} == {}
