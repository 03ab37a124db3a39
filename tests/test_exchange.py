"""Exchange's lazily built tables: request and response headers, and form values that
are decoded only when a rule reads them."""

from __future__ import annotations

import pytest

from hera_middleware.exchange import ABSENT, UNKNOWN, BodyState, Encoded, Exchange, copy_capped
from hera_middleware.rules.facts import parse_fact


def _form_exchange(body: bytes) -> Exchange:
    ex = Exchange(
        "POST",
        "/token",
        b"",
        [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"9")],
    )
    ex.body_state = BodyState.COMPLETE
    ex.body += body
    return ex


def _fact(text: str) -> object:
    fact = parse_fact(text)
    assert not isinstance(fact, str), fact
    return fact


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param([(b"accept", b"text/html"), (b"x-a", b"1")], "text/html", id="lower-case"),
        pytest.param([(b"Accept", b"text/html")], "text/html", id="mixed-case"),
        pytest.param(
            [(b"accept", b"text/html"), (b"ACCEPT", b"application/json")],
            "text/html, application/json",
            id="repeated-any-case",
        ),
        pytest.param([(b"accept", b"a"), (b"accept", b"b"), (b"accept", b"c")], "a, b, c"),
        pytest.param([(b"x-a", b"1")], ABSENT, id="absent"),
    ],
)
def test_request_and_response_header_tables(
    headers: list[tuple[bytes, bytes]], expected: object
) -> None:
    ex = Exchange("GET", "/", b"", headers)
    ex.response_headers = list(headers)
    assert ex.header("accept") == expected
    assert ex.response_header("accept") == expected


def test_header_values_are_latin_1_text() -> None:
    ex = Exchange("GET", "/", b"", [(b"x-name", "café".encode("latin-1"))])
    assert ex.header("x-name") == "café"
    assert ex.header("x-nämé") is ABSENT


def test_form_values_are_decoded_when_read() -> None:
    ex = _form_exchange(b"redirect_uri=https%3A%2F%2Fa.test%2Fcb&name=J+Doe&plain=x&k%5F1=v")
    form = ex.form()
    assert isinstance(form, dict)
    raw = form["redirect_uri"][0]
    assert type(raw) is Encoded
    assert raw == "https%3A%2F%2Fa.test%2Fcb"
    assert form["plain"] == ["x"]
    assert type(form["plain"][0]) is str
    assert "k_1" in form  # keys are decoded at once
    get = _fact("form.redirect_uri").get  # type: ignore[attr-defined]
    assert get(ex) == "https://a.test/cb"
    assert type(form["redirect_uri"][0]) is str  # decoded once, kept
    assert _fact("form.name").get(ex) == "J Doe"  # type: ignore[attr-defined]
    assert _fact("params.name").get(ex) == "J Doe"  # type: ignore[attr-defined]


def test_query_and_location_values_are_decoded_when_read() -> None:
    ex = Exchange("GET", "/cb", b"next=%2Fhome&x=1&x=2")
    assert _fact("query.next").get(ex) == "/home"  # type: ignore[attr-defined]
    assert _fact("query.x").get(ex) is UNKNOWN  # type: ignore[attr-defined]
    ex.status = 302
    ex.response_headers = [(b"location", b"https://c.test/cb?error=access%5Fdenied&s=a+b")]
    assert _fact("response.location.query.error").get(ex) == "access_denied"  # type: ignore[attr-defined]
    assert _fact("response.location.query.s").get(ex) == "a b"  # type: ignore[attr-defined]


def test_copy_capped_keeps_at_most_the_cap() -> None:
    copy = bytearray()
    assert copy_capped(copy, b"abc", 5) is True
    assert copy_capped(copy, b"de", 5) is True
    assert copy == b"abcde"
    assert copy_capped(copy, b"f", 5) is False  # full: cut
    assert copy_capped(copy, b"g", -1) is False  # the adapters' mark once cut
    assert copy == b"abcde"
    part = bytearray(b"ab")
    assert copy_capped(part, b"cdef", 4) is False
    assert part == b"abcd"
