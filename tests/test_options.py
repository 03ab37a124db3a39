"""Option precedence: arguments > HERA_* environment > framework config > rule file > default."""

from __future__ import annotations

import pytest

from hera_middleware import HeraConfigError, load_rules
from hera_middleware.options import resolve_options

RULES = load_rules(text="domain: from-file\nmax_request_body: 100\n", filename="hera.yaml")


def test_defaults_apply_when_nothing_is_set() -> None:
    """With no layer setting an option, the documented default is used."""
    options = resolve_options(load_rules(text="rules: []\n"), {}, environ={})
    assert (options.domain, options.output, options.on_full) == ("ciam", "stdout", "drop")
    assert (options.max_request_body, options.max_response_body) == (65536, 65536)
    assert set(options.origins.values()) == {"default"}


def test_each_layer_overrides_the_ones_below() -> None:
    """Argument beats environment beats framework config beats the rule file."""
    layers = {
        "given": {"domain": "arg"},
        "environ": {"HERA_DOMAIN": "env"},
        "framework": {"HERA_DOMAIN": "flask"},
    }
    assert (
        resolve_options(
            RULES, layers["given"], layers["framework"], "Flask config", environ=layers["environ"]
        ).domain
        == "arg"
    )
    assert (
        resolve_options(
            RULES, {}, layers["framework"], "Flask config", environ=layers["environ"]
        ).domain
        == "env"
    )
    options = resolve_options(RULES, {}, layers["framework"], "Flask config", environ={})
    assert (options.domain, options.origins["domain"]) == ("flask", "Flask config HERA_DOMAIN")
    options = resolve_options(RULES, {}, None, environ={})
    assert (options.domain, options.origins["domain"]) == ("from-file", "hera.yaml")


def test_environment_numbers_are_parsed() -> None:
    """HERA_MAX_REQUEST_BODY=1024 is the number 1024."""
    options = resolve_options(RULES, {}, environ={"HERA_MAX_REQUEST_BODY": "1024"})
    assert options.max_request_body == 1024
    assert options.origins["max_request_body"] == "environment HERA_MAX_REQUEST_BODY"


def test_a_bad_environment_value_is_a_config_error() -> None:
    """A wrong HERA_ON_FULL names where it came from."""
    with pytest.raises(HeraConfigError) as info:
        resolve_options(RULES, {}, environ={"HERA_ON_FULL": "wait"})
    assert str(info.value) == (
        "<environment HERA_ON_FULL>:1:1: bad-option: on_full is 'drop' or 'block', not 'wait'"
    )


def test_a_callable_output_is_accepted_as_an_argument() -> None:
    """output= may be a Python callable."""

    def sink(event: dict[str, object]) -> None:
        return None

    assert resolve_options(RULES, {"output": sink}, environ={}).output is sink
