"""Matchers and conditions: every matcher, combinators, and three-state facts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hera_middleware import stats
from hera_middleware.errors import Problem
from hera_middleware.exchange import BodyState, Exchange
from hera_middleware.rules._yaml import from_python
from hera_middleware.rules.conditions import compile_condition

FORM = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"10")]


def exchange(
    *,
    query: bytes = b"",
    form: bytes | None = None,
    body_state: int = BodyState.COMPLETE,
    status: int | None = 200,
    response_json: Any = None,
    response_text: str | None = None,
    response_headers: list[tuple[bytes, bytes]] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Exchange:
    """A finished exchange built by hand."""
    ex = Exchange("POST", "/token", query, list(headers or []) + (FORM if form is not None else []))
    if form is not None:
        ex.body += form
        ex.body_state = body_state
    ex.status = status
    ex.response_headers = list(response_headers or [])
    if response_json is not None:
        ex.response_headers.append((b"content-type", b"application/json"))
        ex.response_body += json.dumps(response_json).encode()
        ex.response_state = BodyState.COMPLETE
    if response_text is not None:
        ex.response_headers.append((b"content-type", b"text/html"))
        ex.response_body += response_text.encode()
        ex.response_state = BodyState.COMPLETE
    return ex


def check(condition: Any, ex: Exchange) -> bool | None:
    """Compile a condition as a rule file would hold it and run it on an exchange."""
    problems: list[Problem] = []
    predicate, _, _ = compile_condition(from_python(condition, "test", 1), problems)
    assert problems == []
    return predicate(ex)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param({"query.client_id": "web"}, True, id="equals"),
        pytest.param({"query.client_id": "app"}, False, id="equals-no"),
        pytest.param({"query.client_id": ["app", "web"]}, True, id="list-any-of"),
        pytest.param({"query.client_id": {"equals": "web"}}, True, id="equals-explicit"),
        pytest.param({"query.client_id": "present"}, True, id="present"),
        pytest.param({"query.nope": "present"}, False, id="present-no"),
        pytest.param({"query.nope": "absent"}, True, id="absent"),
        pytest.param({"query.client_id": "absent"}, False, id="absent-no"),
        pytest.param({"query.client_id": {"prefix": "we"}}, True, id="prefix"),
        pytest.param({"query.client_id": {"suffix": "eb"}}, True, id="suffix"),
        pytest.param({"query.client_id": {"contains": "e"}}, True, id="contains"),
        pytest.param({"query.client_id": {"contains": "x"}}, False, id="contains-no"),
        pytest.param({"query.client_id": {"regex": "^w[a-z]+$"}}, True, id="regex"),
        pytest.param({"query.client_id": {"length": 3}}, True, id="length"),
        pytest.param({"query.client_id": {"length": {"min": 4}}}, False, id="length-min"),
        pytest.param(
            {"query.client_id": {"length": {"min": 1, "max": 3}}}, True, id="length-range"
        ),
        pytest.param({"query.code": {"format": "totp"}}, True, id="format-totp"),
        pytest.param({"query.client_id": {"format": "totp"}}, False, id="format-no"),
        pytest.param({"query.code": {"format": "digits_grouped"}}, True, id="format-grouped"),
        pytest.param(
            {"query.client_id": {"format": "digits_grouped"}}, False, id="format-grouped-no"
        ),
        pytest.param({"query.client_id": {"not": "app"}}, True, id="not-matcher"),
        pytest.param({"query.client_id": {"prefix": "w", "suffix": "b"}}, True, id="two-matchers"),
        pytest.param({"query.client_id": {"prefix": "w", "suffix": "x"}}, False, id="two-no"),
        pytest.param({"not": {"query.client_id": "app"}}, True, id="not-condition"),
        pytest.param(
            {"any": [{"query.a": "present"}, {"query.client_id": "web"}]}, True, id="any-list"
        ),
        pytest.param(
            {"any": {"query.a": "present", "query.b": "present"}}, False, id="any-mapping"
        ),
        pytest.param(
            {"all": [{"query.client_id": "web"}, {"response.status": 200}]}, True, id="all-list"
        ),
        pytest.param(
            {"query.client_id": "web", "response.status": 302}, False, id="mapping-is-all"
        ),
        pytest.param({"response.status": "2xx"}, True, id="status-class"),
        pytest.param({"response.status": ["4xx", 200]}, True, id="status-list"),
        pytest.param({"response.status": "200"}, True, id="status-as-string"),
        pytest.param({"query.max_age": 0}, True, id="number-against-string-value"),
        pytest.param({"method": "POST", "path": "/token"}, True, id="method-and-path"),
    ],
)
def test_matchers(condition: Any, expected: bool) -> None:
    """Each matcher gives the documented answer on a known fact."""
    ex = exchange(query=b"client_id=web&code=123456&max_age=0")
    assert check(condition, ex) is expected


def test_booleans_never_equal_numbers() -> None:
    """`true` matches the JSON true only, never 1 (Python's True == 1 is not ours)."""
    assert check({"response.json.ok": True}, exchange(response_json={"ok": 1})) is False
    assert check({"response.json.ok": True}, exchange(response_json={"ok": True})) is True
    assert check({"response.json.n": 1}, exchange(response_json={"n": True})) is False


def test_json_facts_walk_dotted_keys_and_list_indexes() -> None:
    """response.json.a.0.b walks objects and lists."""
    ex = exchange(response_json={"errors": [{"code": "invalid"}], "error": "invalid_grant"})
    assert check({"response.json.errors.0.code": "invalid"}, ex) is True
    assert check({"response.json.errors.1.code": "absent"}, ex) is True
    assert check({"response.json.error": "invalid_grant"}, ex) is True


def test_body_text_contains_and_regex() -> None:
    """response.body takes contains and regex."""
    ex = exchange(response_text="<p class=error>Invalid code</p>")
    assert check({"response.body": {"contains": "Invalid code"}}, ex) is True
    assert check({"response.body": {"regex": "class=error>[A-Z]"}}, ex) is True
    assert check({"response.body": {"contains": "Welcome"}}, ex) is False


def test_a_truncated_body_finds_what_was_copied_and_is_unknown_otherwise() -> None:
    """A body cut at the cap still matches text it holds; text it lacks is unknown."""
    ex = exchange(response_text="<p>Invalid code</p>")
    ex.response_state = BodyState.TRUNCATED
    assert check({"response.body": {"contains": "Invalid"}}, ex) is True
    assert check({"response.body": {"contains": "Welcome"}}, ex) is None


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param({"form.code_verifier": "present"}, id="present"),
        pytest.param({"form.code_verifier": "absent"}, id="absent-included"),
        pytest.param({"form.code_verifier": {"length": 43}}, id="length"),
        pytest.param({"not": {"form.code_verifier": "present"}}, id="not-stays-unknown"),
    ],
)
def test_every_matcher_on_an_unknown_fact_is_unknown(condition: Any) -> None:
    """A body the app never finished reading makes form facts unknown, not absent."""
    before = stats()["facts_unknown"]
    ex = exchange(form=b"code_verifier=abc", body_state=BodyState.INCOMPLETE)
    assert check(condition, ex) is None
    assert stats()["facts_unknown"] == before + 1


def test_unknown_or_true_is_true_and_unknown_and_false_is_false() -> None:
    """Kleene logic: a known answer decides where it can."""
    ex = exchange(query=b"a=1", form=b"x=1", body_state=BodyState.INCOMPLETE)
    assert check({"any": [{"form.x": "present"}, {"query.a": "1"}]}, ex) is True
    assert check({"form.x": "present", "query.a": "2"}, ex) is False
    assert check({"any": [{"form.x": "present"}, {"query.a": "2"}]}, ex) is None


def test_a_form_cut_at_the_cap_drops_its_last_pair_and_keys_it_lacks_are_unknown() -> None:
    """Pairs before the cut are known; the partial last pair and later keys are unknown."""
    ex = exchange(form=b"client_id=web&grant_type=authorization_co", body_state=BodyState.TRUNCATED)
    assert check({"form.client_id": "web"}, ex) is True
    assert check({"form.grant_type": "present"}, ex) is None
    assert check({"form.late": "absent"}, ex) is None


def test_a_non_form_body_makes_form_facts_absent() -> None:
    """A JSON request has no form: form facts are absent (known), json facts present."""
    ex = Exchange(
        "POST",
        "/t",
        b"",
        [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"12")],
    )
    ex.body += b'{"user": {"name": "x"}}'
    ex.body_state = BodyState.COMPLETE
    assert check({"form.client_id": "absent"}, ex) is True
    assert check({"json.user.name": "present"}, ex) is True


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(b"application/x-www-form-urlencoded; charset=UTF-8", id="charset"),
        pytest.param(b"APPLICATION/X-WWW-FORM-URLENCODED", id="upper"),
        pytest.param(b"Application/x-www-form-urlencoded ;charset=utf-8", id="mixed"),
    ],
)
def test_form_content_types_with_parameters_and_case_are_forms(content_type: bytes) -> None:
    """E06: the media type is compared case-insensitively, parameters ignored."""
    ex = Exchange("POST", "/t", b"", [(b"content-type", content_type), (b"content-length", b"9")])
    ex.body += b"client_id=web"
    ex.body_state = BodyState.COMPLETE
    assert check({"form.client_id": "web"}, ex) is True


def test_invalid_json_is_unknown() -> None:
    """A JSON body that does not parse is unknown, never an exception."""
    ex = Exchange(
        "POST", "/t", b"", [(b"content-type", b"application/json"), (b"content-length", b"3")]
    )
    ex.body += b"{x:"
    ex.body_state = BodyState.COMPLETE
    assert check({"json.a": "absent"}, ex) is None


def test_compressed_response_body_is_unknown() -> None:
    """E08: a gzip body is not decoded; body facts are unknown."""
    ex = exchange(
        response_json={"error": "invalid_grant"}, response_headers=[(b"content-encoding", b"gzip")]
    )
    assert check({"response.json.error": "invalid_grant"}, ex) is None
    assert check({"response.status": 200}, ex) is True


def test_a_raised_exchange_has_unknown_body_facts() -> None:
    """When the app raised, response body facts are unknown and raised is true."""
    ex = exchange(response_json={"error": "x"})
    ex.raised = True
    ex.status = 500
    assert check({"raised": True, "response.status": 500}, ex) is True
    assert check({"response.json.error": "absent"}, ex) is None


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        pytest.param(b"Basic d2ViOnNlY3JldA==", "web", id="plain"),
        pytest.param(b"basic bXklMjBhcHA6cyUzQWVjcmV0", "my app", id="url-encoded"),
        pytest.param(b"Basic !!!notbase64", None, id="malformed"),
        pytest.param(b"Basic bm9jb2xvbg==", None, id="no-colon"),
        pytest.param(b"Bearer abc", None, id="bearer"),
    ],
)
def test_basic_auth_username_is_the_url_decoded_client_id(
    authorization: bytes, expected: str | None
) -> None:
    """E21: RFC 6749 2.3.1 client ids decode; malformed headers are absent, never errors."""
    ex = exchange(headers=[(b"authorization", authorization)])
    if expected is None:
        assert check({"basic_auth.username": "absent"}, ex) is True
    else:
        assert check({"basic_auth.username": expected}, ex) is True


def test_location_facts_are_app_relative() -> None:
    """response.location.path drops root_path like the request path does."""
    ex = exchange(
        status=302,
        response_headers=[(b"location", b"https://idp.test/idp/welcome?code=abc&error=x")],
    )
    ex.root_path = "/idp"
    assert check({"response.location.path": "/welcome"}, ex) is True
    assert check({"response.location.query.code": "present"}, ex) is True
    assert check({"response.location.query.error": "x"}, ex) is True


def test_cookies_are_tested_by_presence() -> None:
    """cookies.NAME is present or absent; the value is never read."""
    ex = exchange(headers=[(b"cookie", b"session=abc; theme=dark")])
    assert check({"cookies.session": "present", "cookies.other": "absent"}, ex) is True


def test_headers_are_case_insensitive_and_repeated_ones_join() -> None:
    """headers.X-Name matches any case; repeated headers are joined with ', '."""
    ex = exchange(headers=[(b"X-Client", b"a"), (b"x-client", b"b")])
    assert check({"headers.x-client": "a, b"}, ex) is True
    assert check({"headers.X-CLIENT": {"prefix": "a"}}, ex) is True


def test_regexes_stay_linear_on_catastrophic_patterns() -> None:
    """E23: a nested quantifier on a long value finishes (RE2), and simply does not match."""
    ex = exchange(query=b"x=" + b"a" * 100_000 + b"!")
    assert check({"query.x": {"regex": "^(a+)+$"}}, ex) is False


MULTIPART = (
    b'--XyZ\r\nContent-Disposition: form-data; name="code"\r\n\r\n123456\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nfile data\r\n"
    b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nline1\r\nline2\r\n'
    b"--XyZ--\r\n"
)


def multipart(body: bytes, state: int) -> Exchange:
    ex = Exchange(
        "POST",
        "/mfa",
        b"",
        [
            (b"content-type", b'multipart/form-data; boundary="XyZ"'),
            (b"content-length", str(len(MULTIPART)).encode()),
        ],
    )
    ex.body += body
    ex.body_state = state
    return ex


def test_multipart_text_fields_are_form_facts_and_file_parts_are_skipped() -> None:
    """A multipart form posts fields like an urlencoded one; file contents are never read."""
    ex = multipart(MULTIPART, BodyState.COMPLETE)
    assert check({"form.code": {"format": "totp"}, "form.note": "line1\r\nline2"}, ex) is True
    assert check({"form.f": "absent"}, ex) is True


def test_a_multipart_body_cut_at_the_cap_loses_its_partial_part() -> None:
    """Complete parts before the cut are known; the rest is unknown."""
    ex = multipart(MULTIPART[:80], BodyState.TRUNCATED)
    assert check({"form.code": {"length": 6}}, ex) is True
    assert check({"form.note": "absent"}, ex) is None


def test_a_key_sent_twice_is_unknown() -> None:
    """Servers disagree on which of two values counts, so neither is taken as the fact."""
    ex = exchange(query=b"client_id=victim&client_id=attacker")
    assert check({"query.client_id": "present"}, ex) is None
    assert check({"query.client_id": "victim"}, ex) is None


def test_json_that_python_servers_accept_is_read_like_they_read_it() -> None:
    """NaN and Infinity, which orjson refuses but json.loads accepts, cannot hide a body."""
    ex = Exchange(
        "POST", "/t", b"", [(b"content-type", b"application/json"), (b"content-length", b"30")]
    )
    ex.body += b'{"code": "123456", "x": NaN}'
    ex.body_state = BodyState.COMPLETE
    assert check({"json.code": {"format": "totp"}}, ex) is True


@pytest.mark.parametrize(
    ("http_version", "method", "has_body"),
    [
        pytest.param("1.1", "POST", False, id="http1-no-length-no-body"),
        pytest.param("2", "POST", True, id="http2-frames-bodies-without-length"),
        pytest.param("2", "GET", False, id="http2-get"),
        pytest.param("3", "PATCH", True, id="http3"),
    ],
)
def test_bodies_without_content_length(http_version: str, method: str, has_body: bool) -> None:
    """HTTP/2 and 3 send bodies without Content-Length; HTTP/1 without one has none."""
    ex = Exchange(
        method,
        "/t",
        b"",
        [(b"content-type", b"application/x-www-form-urlencoded")],
        http_version=http_version,
    )
    assert ex.request_has_body() is has_body
