"""The Django adapter: HeraEventsMiddleware in a real Django project, its route table,
settings, system check and fail-closed start-up.

The project is ``tests/django_project`` (settings, URLconf, views, ``hera.yaml``).
Requests go through Django's own handlers: the test ``Client`` (WSGI request objects),
``AsyncClient`` (ASGI request objects, async middleware chain) and ``WSGIHandler``
driven with raw environs, so the real middleware chain and URL resolver run. Events
are asserted exactly, ``ts`` by format.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import types
import wsgiref.util
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import django_project
import pytest
from asgiref.sync import iscoroutinefunction
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import URLPattern, include, path, re_path, register_converter
from django.urls.converters import IntConverter
from django.utils.translation import gettext_lazy
from django_project import views

import hera_middleware
from hera_middleware import HeraConfigError, _diagnostics, _stats, load_rules
from hera_middleware.adapters import _django_config, _django_facts, _django_routes
from hera_middleware.adapters import django as adapter
from hera_middleware.adapters._engine import Engine
from hera_middleware.django import HeraEventsMiddleware
from hera_middleware.django.apps import HeraConfig
from hera_middleware.exchange import BodyState
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness")

from _asgi_harness import Output, assert_events, assert_private, dumps, event  # noqa: E402

django_project.setup()

MIDDLEWARE = "hera_middleware.django.HeraEventsMiddleware"
VERIFIER = "verifier-SECRET-abcdefghijklmnopqrstuvwxyz0123456789"
TOKEN = {
    "grant_type": "authorization_code",
    "client_id": "web",
    "code": "code-SECRET-0815",
    "code_verifier": VERIFIER,
    "client_secret": "cs-SECRET-4711",
}
FORM = "application/x-www-form-urlencoded"
BASIC = "Basic " + base64.b64encode(b"basic-client:cs-SECRET-4711").decode()
HEADERS = {"HTTP_COOKIE": "sid=sid-SECRET-cookie", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}


def done(view: str | None, status: int = 200, raised: bool = False) -> dict[str, object]:
    """The ``exchange_done`` event the project's rule file writes for every exchange."""
    return event("exchange_done", view=view, status=status, raised=raised)


FORM_ABSENT = event("form_absent")
OK = event("response_seen", result="ok")


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


@pytest.fixture
def client() -> Client:
    """Django's test client; a view's exception becomes Django's 500 page."""
    return Client(raise_request_exception=False)


def rules_file(tmp_path: Path, text: str) -> str:
    """Write a rule file; return its path."""
    file = tmp_path / "hera.yaml"
    file.write_text(text)
    return str(file)


def environ(method: str, path: str, body: bytes = b"", **extra: Any) -> dict[str, Any]:
    """A raw WSGI environ for ``path`` (with a query after ``?``)."""
    path, _, query = path.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        **extra,
    }
    wsgiref.util.setup_testing_defaults(env)
    return env


def call_wsgi(app: Any, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], Any]:
    """Call a WSGI app; return its status, headers and (unconsumed) response iterable."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda data: None

    result = app(env, start_response)
    return started[0], started[1], result


# -- the route table -------------------------------------------------------------------


def test_route_table_of_the_project() -> None:
    """Every pattern of the project's URLconf becomes its view name's path template."""
    routes = _django_routes.django_routes()
    assert routes.table == {
        "account_login": [(None, "/accounts/login/")],
        "socialaccount_callback": [(None, "/accounts/{provider:slug}/login/callback/")],
        "oauth:token": [(None, "/oauth/token/")],
        "headless:browser:account:login": [(None, "/_allauth/browser/v1/auth/login")],
        "user_detail": [(None, "/users/{pk:int}/")],
        "docs": [(None, "/docs/{rest:path}")],
        "unread": [(None, "/unread/")],
        "json": [(None, "/json/")],
        "async_json": [(None, "/async/")],
        "stream": [(None, "/stream/")],
        "astream": [(None, "/astream/")],
        "file": [(None, "/file/")],
        "boom": [(None, "/boom/")],
        "aboom": [(None, "/aboom/")],
        "missing": [(None, "/missing/")],
        "forbidden": [(None, "/forbidden/")],
        "read_stream": [(None, "/read/")],
        "upload": [(None, "/upload/")],
        "django_project.views.plain": [(None, "/plain/")],
        "django_project.views.Cbv": [(None, "/cbv/")],
        "legacy": [(None, "/legacy/{code:int}/")],
    }
    assert routes.unconvertible == {
        "old": "the regex '^old/(\\w+)/$' has a group other than a named group of digits,"
        " [^/]+, a slug, a uuid or .+",
        "file_edit": "a path parameter must be the whole last segment: '/files/{p:path}/edit'",
    }


@pytest.mark.parametrize(
    ("regex", "endpoint", "template"),
    [
        pytest.param(r"^login/$", True, "login/", id="literal"),
        pytest.param(r"^login/\Z", True, "login/", id="backslash-Z"),
        pytest.param(r"^a\.b\-c/$", True, "a.b-c/", id="escaped-literals"),
        pytest.param(r"^u/(?P<pk>[0-9]+)/$", True, "u/{pk:int}/", id="digits"),
        pytest.param(r"^u/(?P<pk>\d+)/$", True, "u/{pk:int}/", id="backslash-d"),
        pytest.param(r"^p/(?P<name>[^/]+)/$", True, "p/{name:str}/", id="segment"),
        pytest.param(r"^p/(?P<s>[-a-zA-Z0-9_]+)/$", True, "p/{s:slug}/", id="slug"),
        pytest.param(r"^f/(?P<rest>.+)$", True, "f/{rest:path}", id="rest"),
        pytest.param(r"^api/", False, "api/", id="include-prefix"),
        pytest.param(r"^t/(?P<y>[0-9]+)-(?P<m>[0-9]+)/$", True, "t/{y:int}-{m:int}/", id="two"),
    ],
)
def test_simple_regexes_become_templates(regex: str, endpoint: bool, template: str) -> None:
    """A regex of anchored literals and named groups of a known class has a template."""
    assert _django_routes._regex_fragment(regex, endpoint=endpoint) == template


@pytest.mark.parametrize(
    ("regex", "endpoint", "reason"),
    [
        pytest.param(r"login/$", True, "does not start with '^'", id="unanchored-start"),
        pytest.param(r"^login/", True, "does not end with '$'", id="prefix-endpoint"),
        pytest.param(r"^api/$", False, "include() regex '^api/$' ends with '$'", id="include-$"),
        pytest.param(r"^old/(\w+)/$", True, "has a group other than", id="positional-group"),
        pytest.param(r"^(?P<x>a|b)/$", True, "has a group other than", id="alternation"),
        pytest.param(r"^(?P<x>[0-9]+)?/$", True, "has a group other than", id="optional-group"),
        pytest.param(r"^(?:a)/$", True, "has a group other than", id="non-capturing"),
        pytest.param(r"^logins?/$", True, "uses '?'", id="quantifier"),
        pytest.param(r"^(?i)login/$", True, "has a group other than", id="flags"),
        pytest.param(r"^a\d/$", True, "uses '\\\\'", id="class-escape"),
        pytest.param(r"^a\{b/$", True, "literal brace", id="literal-brace"),
    ],
)
def test_other_regexes_have_no_template(regex: str, endpoint: bool, reason: str) -> None:
    """A regex a path template cannot say exactly is refused, with the reason."""
    with pytest.raises(_django_routes._NoTemplate) as info:
        _django_routes._regex_fragment(regex, endpoint=endpoint)
    assert reason in str(info.value)


class FourDigits:
    regex = "[0-9]{4}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class Digits(IntConverter):
    """A custom converter with the built-in int's regex."""


register_converter(FourDigits, "hera_test_yyyy")
register_converter(Digits, "hera_test_digits")


def _view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return HttpResponse("")


class _OddPattern:
    """A pattern class of some third-party router."""

    converters: ClassVar[dict[str, Any]] = {}

    def match(self, path: str) -> None:
        return None

    def check(self) -> list[Any]:
        return []

    def describe(self) -> str:
        return "odd"


def urlconf(*patterns: Any) -> types.ModuleType:
    """A URLconf module holding ``patterns``."""
    module = types.ModuleType("hera_test_urlconf")
    module.urlpatterns = list(patterns)  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    ("patterns", "table", "unconvertible"),
    [
        pytest.param(
            [path("y/<hera_test_digits:n>/", _view, name="n")],
            {"n": [(None, "/y/{n:int}/")]},
            {},
            id="custom-converter-with-a-built-in-regex",
        ),
        pytest.param(
            [path("y/<hera_test_yyyy:year>/", _view, name="year")],
            {},
            {
                "year": "the converter 'hera_test_yyyy' of 'y/<hera_test_yyyy:year>/'"
                " is no built-in (int, str, slug, uuid, path)"
            },
            id="custom-converter",
        ),
        pytest.param(
            [path(gettext_lazy("about/"), _view, name="about")],
            {},
            {"about": "a translated route (gettext_lazy) differs per language"},
            id="translated-route",
        ),
        pytest.param(
            [path("u/<uuid:id>/<str:tab>", _view, name="u"), path("p/", _view, name="u")],
            {"u": [(None, "/u/{id:uuid}/{tab:str}"), (None, "/p/")]},
            {},
            id="one-name-two-patterns",
        ),
        pytest.param(
            [path("u/<int:pk>/", _view, name="u"), re_path(r"^u/(\d+)$", _view, name="u")],
            {},
            {
                "u": "the regex '^u/(\\d+)$' has a group other than a named group of digits,"
                " [^/]+, a slug, a uuid or .+"
            },
            id="half-convertible-name-is-refused-whole",
        ),
        pytest.param(
            [re_path(r"^api/v(?P<version>[0-9]+)/", include([path("me", _view, name="me")]))],
            {"me": [(None, "/api/v{version:int}/me")]},
            {},
            id="regex-include",
        ),
        pytest.param(
            [re_path(r"api/", include([path("me", _view, name="me")]))],
            {},
            {"me": "the regex 'api/' does not start with '^' (it matches anywhere)"},
            id="broken-include-breaks-its-patterns",
        ),
        pytest.param(
            [re_path(gettext_lazy(r"^about/$"), _view, name="about")],
            {},
            {"about": "a translated regex (gettext_lazy) differs per language"},
            id="translated-regex",
        ),
        pytest.param(
            [URLPattern(_OddPattern(), _view, name="odd")],
            {},
            {"odd": "a _OddPattern pattern has no path template"},
            id="foreign-pattern-class",
        ),
        pytest.param(
            [path("a{b}/", _view, name="brace")],
            {},
            {"brace": "the route 'a{b}/' has a literal brace or angle bracket"},
            id="literal-brace",
        ),
    ],
)
def test_route_table_of_urlconfs(
    patterns: list[Any], table: dict[str, Any], unconvertible: dict[str, str]
) -> None:
    """Converters, names and includes map exactly; what has no template says why."""
    routes = _django_routes.django_routes(urlconf(*patterns))  # type: ignore[arg-type]
    assert routes.table == table
    assert routes.unconvertible == unconvertible


@pytest.mark.parametrize(
    ("prefix_default", "templates"),
    [
        pytest.param(True, ["/en/about/", "/de/about/"], id="every-language-prefixed"),
        pytest.param(False, ["/about/", "/de/about/"], id="default-language-bare"),
    ],
)
def test_i18n_patterns_give_one_template_per_language(
    prefix_default: bool, templates: list[str]
) -> None:
    """``i18n_patterns`` routes are listed under each language of settings.LANGUAGES."""
    from django.conf.urls.i18n import i18n_patterns

    patterns = i18n_patterns(
        path("about/", _view, name="about"), prefix_default_language=prefix_default
    )
    routes = _django_routes.django_routes(urlconf(*patterns))  # type: ignore[arg-type]
    assert routes.table == {"about": [(None, t) for t in templates]}


def test_i18n_patterns_without_languages_have_no_template() -> None:
    """With LANGUAGES empty, i18n_patterns routes have no template."""
    from django.conf.urls.i18n import i18n_patterns

    patterns = i18n_patterns(path("about/", _view, name="about"))
    with override_settings(LANGUAGES=[]):
        routes = _django_routes.django_routes(urlconf(*patterns))  # type: ignore[arg-type]
    assert routes.unconvertible == {"about": "settings.LANGUAGES is empty"}


# -- the middleware, sync ----------------------------------------------------------------


SYNC_CASES = [
    pytest.param(
        "POST",
        "/oauth/token/",
        urlencode(TOKEN),
        FORM,
        {},
        [
            event("pkce_token_exchange", client_id="web"),
            event("form_seen", client_id="web"),
            OK,
            done("oauth:token"),
        ],
        id="urlencoded-form-read-by-the-view",
    ),
    pytest.param(
        "POST",
        "/oauth/token/",
        urlencode({k: v for k, v in TOKEN.items() if k != "client_id"}),
        FORM,
        {"HTTP_AUTHORIZATION": BASIC},
        [
            event("pkce_token_exchange", client_id="basic-client"),
            FORM_ABSENT,
            OK,
            done("oauth:token"),
        ],
        id="client-id-from-basic-auth",
    ),
    pytest.param(
        "POST",
        "/unread/",
        urlencode(TOKEN),
        FORM,
        {},
        [done("unread")],
        id="form-not-read-by-the-view-is-unknown",
    ),
    pytest.param(
        "GET", "/unread/", "", None, {}, [FORM_ABSENT, done("unread")], id="no-body-is-absent"
    ),
    pytest.param(
        "POST",
        "/json/",
        '{"kind": "totp"}',
        "application/json",
        {},
        [
            FORM_ABSENT,
            event("json_seen", kind="totp"),
            event("response_seen", result="totp"),
            done("json"),
        ],
        id="json-read-by-the-view",
    ),
    pytest.param(
        "POST",
        "/unread/",
        '{"kind": "totp"}',
        "application/json",
        {},
        [FORM_ABSENT, done("unread")],
        id="json-not-read-is-unknown",
    ),
    pytest.param(
        "POST",
        "/_allauth/browser/v1/auth/login",
        '{"kind": "mfa"}',
        "application/json",
        {},
        [
            event("mfa_challenge_displayed", method="totp"),
            FORM_ABSENT,
            event("json_seen", kind="mfa"),
            event("response_seen", result="mfa_required"),
            done("headless:browser:account:login", 401),
        ],
        id="nested-namespaces",
    ),
    pytest.param(
        "GET",
        "/users/42/",
        "",
        None,
        {},
        [event("user_seen", pk="42"), FORM_ABSENT, OK, done("user_detail")],
        id="path-kwargs",
    ),
    pytest.param(
        "GET",
        "/accounts/github/login/callback/?new=1",
        "",
        None,
        {},
        [
            event("social_login_completed", provider="github", first_login=True),
            FORM_ABSENT,
            done("socialaccount_callback", 302),
        ],
        id="converter-param-first-login",
    ),
    pytest.param(
        "GET",
        "/accounts/gitlab/login/callback/",
        "",
        None,
        {},
        [
            event("social_login_completed", provider="gitlab", first_login=False),
            FORM_ABSENT,
            done("socialaccount_callback", 302),
        ],
        id="converter-param-returning-user",
    ),
    pytest.param(
        "GET", "/nowhere/", "", None, {}, [FORM_ABSENT, done(None, 404)], id="unresolved-path"
    ),
    pytest.param(
        "GET", "/missing/", "", None, {}, [FORM_ABSENT, done("missing", 404)], id="view-404"
    ),
    pytest.param(
        "GET", "/forbidden/", "", None, {}, [FORM_ABSENT, done("forbidden", 403)], id="view-403"
    ),
    pytest.param(
        "POST",
        "/read/",
        urlencode(TOKEN),
        FORM,
        {},
        [OK, done("read_stream")],
        id="body-read-as-a-stream-is-unknown",
    ),
    pytest.param(
        "GET",
        "/plain/",
        "",
        None,
        {},
        [FORM_ABSENT, done("django_project.views.plain")],
        id="unnamed-view",
    ),
    pytest.param(
        "GET",
        "/cbv/",
        "",
        None,
        {},
        [FORM_ABSENT, done("django_project.views.Cbv")],
        id="unnamed-class-based-view",
    ),
    pytest.param("GET", "/legacy/7/", "", None, {}, [FORM_ABSENT, done("legacy")], id="re-path"),
    pytest.param(
        "GET",
        "/boom/",
        "",
        None,
        {},
        [FORM_ABSENT, done("boom", 500, raised=True)],
        id="view-raises",
    ),
]


@pytest.mark.parametrize(("method", "url", "body", "content_type", "extra", "expected"), SYNC_CASES)
def test_middleware_events(
    client: Client,
    method: str,
    url: str,
    body: str,
    content_type: str | None,
    extra: dict[str, str],
    expected: list[dict[str, object]],
) -> None:
    """Each exchange through the project gives exactly the events its facts call for."""
    path_, _, query = url.partition("?")
    kwargs: dict[str, Any] = {"QUERY_STRING": query, **HEADERS, **extra}
    if content_type:
        kwargs["content_type"] = content_type
    with capture_events() as events:
        response = client.generic(method, path_, body, **kwargs)
    assert_events(events, expected)
    assert_private(dumps(events), response.content if not response.streaming else b"")
    assert hera_middleware.stats()["internal_errors"] == 0


def test_multipart_form_read_by_the_view(client: Client) -> None:
    """A multipart form Django parsed while streaming it (no request.body) gives form facts."""
    with capture_events() as events:
        response = client.post("/oauth/token/", TOKEN, **HEADERS)
    assert response.status_code == 200
    assert_events(
        events,
        [
            event("pkce_token_exchange", client_id="web"),
            event("form_seen", client_id="web"),
            OK,
            done("oauth:token"),
        ],
    )


def test_multipart_form_not_read_is_unknown(client: Client) -> None:
    """A multipart form the view never parsed stays unknown."""
    with capture_events() as events:
        client.post("/unread/", TOKEN)
    assert_events(events, [done("unread")])


def test_multipart_form_over_the_cap_is_unknown(client: Client) -> None:
    """A multipart form larger than the cap is unknown: its raw bytes were never copied."""
    with override_settings(HERA_MAX_REQUEST_BODY=64), capture_events() as events:
        client.post("/upload/", {"client_id": "web", "note": "x" * 100})
    assert_events(events, [event("response_seen", result="web"), done("upload")])


def test_request_bodies_cut_at_the_cap(client: Client) -> None:
    """Over HERA_MAX_REQUEST_BODY a form keeps its complete pairs and JSON is unknown."""
    form = urlencode({"client_id": "web", "code_verifier": VERIFIER})
    with override_settings(HERA_MAX_REQUEST_BODY=30), capture_events() as events:
        client.post("/oauth/token/", form, content_type=FORM)
        client.post("/json/", json.dumps({"kind": "totp", "pad": "x" * 40}), "application/json")
    assert_events(
        events,
        [
            event("form_seen", client_id="web"),
            OK,
            done("oauth:token"),
            FORM_ABSENT,
            event("response_seen", result="totp"),
            done("json"),
        ],
    )


def test_response_body_over_the_cap_is_unknown(client: Client) -> None:
    """Over HERA_MAX_RESPONSE_BODY the response JSON is unknown; status and route stay known."""
    with override_settings(HERA_MAX_RESPONSE_BODY=10), capture_events() as events:
        client.post("/oauth/token/", urlencode(TOKEN), content_type=FORM)
    assert_events(events, [event("form_seen", client_id="web"), done("oauth:token")])


def test_view_exception_propagating_is_the_same_object() -> None:
    """With DEBUG_PROPAGATE_EXCEPTIONS the view's exception leaves the middleware unchanged."""
    views.RAISED.clear()
    with (
        override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True),
        capture_events() as events,
        pytest.raises(RuntimeError) as info,
    ):
        Client().get("/boom/")
    assert info.value is views.RAISED[0]
    assert_events(events, [FORM_ABSENT, done("boom", 500, raised=True)])
    assert_private(dumps(events), _diagnostics_text())


def _diagnostics_text() -> str:
    return json.dumps(hera_middleware.stats())


def test_response_headers_are_what_django_sends(client: Client) -> None:
    """Response facts see every header Django sends, each Set-Cookie line included."""
    response = client.post("/accounts/login/", urlencode({"client_id": "web"}), content_type=FORM)
    assert _django_facts.response_headers(response) == [
        (b"Content-Type", b"text/html; charset=utf-8"),
        (b"Location", b"/welcome/"),
        (b"Set-Cookie", b"sessionid=session-SECRET-value; Path=/"),
        (b"Set-Cookie", b"csrftoken=csrf-SECRET-value; Path=/"),
    ]


# -- streaming and file responses -------------------------------------------------------


def test_streaming_response_is_evaluated_after_its_last_chunk(client: Client) -> None:
    """A StreamingHttpResponse passes chunk by chunk; rules run when the last one is out."""
    with capture_events() as events:
        response = client.get("/stream/")
        chunks = iter(response.streaming_content)
        assert next(chunks) == b"first chunk, "
        assert next(chunks) == b"the needle, "
        assert events == []
        assert next(chunks) == b"last chunk"
        assert events == []
        assert list(chunks) == []
    assert_events(events, [FORM_ABSENT, event("body_seen"), done("stream")])


def test_streaming_response_raising_mid_stream(client: Client) -> None:
    """A generator that raises after the first chunk gives raised and 500; the error goes on."""
    with capture_events() as events:
        response = client.get("/stream/?fail=1")
        chunks = iter(response.streaming_content)
        assert next(chunks) == b"first chunk, "
        with pytest.raises(RuntimeError, match="the generator broke"):
            next(chunks)
    assert_events(events, [FORM_ABSENT, done("stream", 500, raised=True)])


def test_streaming_response_abandoned(client: Client) -> None:
    """A response closed before its last chunk keeps its status; its body is unknown."""
    with capture_events() as events:
        response = client.get("/stream/")
        chunks = iter(response.streaming_content)
        next(chunks)
        next(chunks)
        response.close()
    assert_events(events, [FORM_ABSENT, done("stream")])


def test_file_response_is_teed_when_a_rule_needs_its_body() -> None:
    """A FileResponse is read by the server chunk by chunk and copied on the way."""
    with capture_events() as events:
        status, _headers, result = call_wsgi(WSGIHandler(), environ("GET", "/file/"))
        assert events == []
        body = b"".join(result)
        result.close()
    assert status == "200 OK"
    assert body == views.FILE.read_bytes()
    assert_events(events, [FORM_ABSENT, event("body_seen"), done("file")])


STATUS_ONLY = """
events: {exchange_done: [view, status, raised]}
rules:
  - event: exchange_done
    match: "* /{any:path}"
    fields: {view: route, status: response.status, raised: raised}
"""


def test_file_response_keeps_the_file_wrapper_when_no_rule_needs_its_body() -> None:
    """Without body rules a FileResponse still reaches wsgi.file_wrapper (sendfile)."""
    env = environ("GET", "/file/", **{"wsgi.file_wrapper": wsgiref.util.FileWrapper})
    with override_settings(HERA_RULES=load_rules(text=STATUS_ONLY)), capture_events() as events:
        _status, _headers, result = call_wsgi(WSGIHandler(), env)
        assert isinstance(result, wsgiref.util.FileWrapper)
        assert_events(events, [done("file")])
        result.close()


# -- the middleware, async ----------------------------------------------------------------


async def test_async_views_and_the_async_chain() -> None:
    """Under ASGI the middleware runs async: async views, sync views and raising ones."""
    client = AsyncClient(raise_request_exception=False)
    with capture_events() as events:
        await client.post("/async/", '{"kind": "sms"}', "application/json")
        await client.post("/oauth/token/", urlencode(TOKEN), FORM)
        await client.get("/aboom/")
        await client.get("/boom/")
    assert_events(
        events,
        [
            FORM_ABSENT,
            event("json_seen", kind="sms"),
            event("response_seen", result="sms"),
            done("async_json"),
            event("pkce_token_exchange", client_id="web"),
            event("form_seen", client_id="web"),
            OK,
            done("oauth:token"),
            FORM_ABSENT,
            done("aboom", 500, raised=True),
            FORM_ABSENT,
            done("boom", 500, raised=True),
        ],
    )


async def test_async_streaming_response_is_evaluated_after_its_last_chunk() -> None:
    """An async streaming response stays async and is evaluated after its last chunk."""
    client = AsyncClient()
    with capture_events() as events:
        response = await client.get("/astream/")
        assert response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
    assert chunks == [b"first chunk, ", b"the needle, ", b"last chunk"]
    assert_events(events, [FORM_ABSENT, event("body_seen"), done("astream")])


@pytest.mark.parametrize(
    ("get_response", "is_async"),
    [
        pytest.param(lambda request: HttpResponse(), False, id="sync"),
        pytest.param(views.async_json, True, id="async"),
    ],
)
def test_middleware_follows_the_mode_of_the_chain(
    get_response: Callable[[HttpRequest], Any], is_async: bool
) -> None:
    """The middleware is sync and async capable and a coroutine function when the chain is."""
    assert HeraEventsMiddleware.sync_capable
    assert HeraEventsMiddleware.async_capable
    assert iscoroutinefunction(HeraEventsMiddleware(get_response)) is is_async


async def test_async_streaming_response_raising_mid_stream() -> None:
    """An async generator raising after its first chunk gives raised and 500; the error goes on."""
    client = AsyncClient()
    with capture_events() as events:
        response = await client.get("/astream/?fail=1")
        chunks = response.streaming_content.__aiter__()
        assert await chunks.__anext__() == b"first chunk, "
        with pytest.raises(RuntimeError, match="the async generator broke"):
            await chunks.__anext__()
    assert_events(events, [FORM_ABSENT, done("astream", 500, raised=True)])


async def test_async_streaming_response_abandoned() -> None:
    """An async response closed before its last chunk keeps its status; its body is unknown."""
    client = AsyncClient()
    with capture_events() as events:
        response = await client.get("/astream/")
        chunks = response.streaming_content.__aiter__()
        await chunks.__anext__()
        await chunks.__anext__()
        response.close()
    assert_events(events, [FORM_ABSENT, done("astream")])


async def test_async_view_exception_propagating_is_the_same_object() -> None:
    """Under ASGI too, a propagating exception leaves the middleware as the same object."""
    views.RAISED.clear()
    with (
        override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True),
        capture_events() as events,
        pytest.raises(RuntimeError) as info,
    ):
        await AsyncClient().get("/aboom/")
    assert info.value is views.RAISED[0]
    assert_events(events, [FORM_ABSENT, done("aboom", 500, raised=True)])


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        pytest.param(20, [FORM_ABSENT, done("stream")], id="cut-before-the-needle"),
        pytest.param(26, [FORM_ABSENT, event("body_seen"), done("stream")], id="needle-copied"),
    ],
)
def test_streamed_body_cut_at_the_cap(
    client: Client, cap: int, expected: list[dict[str, object]]
) -> None:
    """A streamed body is copied up to the cap; facts come from the copied part."""
    with override_settings(HERA_MAX_RESPONSE_BODY=cap), capture_events() as events:
        response = client.get("/stream/")
        assert b"".join(response.streaming_content) == b"first chunk, the needle, last chunk"
    assert_events(events, expected)


class _Template:
    """The least a SimpleTemplateResponse needs: a template that renders to text."""

    def render(self, context: Any = None, request: Any = None) -> str:
        return "needle"


def test_unrendered_response_body_is_unknown() -> None:
    """A template response nobody rendered keeps its body unknown; nothing renders it."""
    from django.template.response import SimpleTemplateResponse
    from django.test import RequestFactory

    unrendered = SimpleTemplateResponse(_Template())
    middleware = HeraEventsMiddleware(lambda request: unrendered)
    with capture_events() as events:
        response = middleware(RequestFactory().get("/plain/"))
    assert response is unrendered
    assert not response.is_rendered
    assert_events(events, [FORM_ABSENT, done(None)])


def test_internal_error_at_request_start_is_a_pass_through(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while starting the exchange is counted; the request passes straight through."""

    def broken(request: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(adapter, "request_exchange", broken)
    with capture_events() as events:
        response = client.post("/oauth/token/", urlencode(TOKEN), content_type=FORM)
    assert json.loads(response.content)["result"] == "ok"
    assert events == []
    assert hera_middleware.stats()["internal_errors"] == 1


def test_route_middleware_does_nothing_under_wsgi(client: Client) -> None:
    """HeraRouteMiddleware leaves WSGI requests (and their environ) alone."""
    seen: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse("ok")

    from django.test import RequestFactory

    request = RequestFactory().get("/plain/")
    before = dict(request.META)
    response = adapter.HeraRouteMiddleware(view)(request)
    assert response.content == b"ok"
    assert seen == [request]
    assert before == request.META


async def test_route_middleware_without_a_resolved_view() -> None:
    """Under ASGI an unresolved path leaves the scope without a route."""
    with override_settings(MIDDLEWARE=["hera_middleware.django.HeraRouteMiddleware"]):
        from django.core.asgi import get_asgi_application

        app = get_asgi_application()
    scopes: list[dict[str, Any]] = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        await app(scope, receive, send)

    import httpx

    transport = httpx.ASGITransport(app=recording)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/nowhere/")).status_code == 404
        assert (await http.get("/users/5/")).status_code == 200
    assert "route" not in scopes[0]
    assert (scopes[1]["route"].name, scopes[1]["route"].path) == ("user_detail", "users/<int:pk>/")
    assert scopes[1]["path_params"] == {"pk": 5}


def _posted(body: bytes, content_type: str, **meta: Any) -> HttpRequest:
    """A POST request as Django built it, before any view read it."""
    from django.test import RequestFactory

    request = RequestFactory().generic("POST", "/x", body, content_type)
    request.META.update(meta)
    if meta.get("CONTENT_LENGTH") == "":
        del request.META["CONTENT_LENGTH"]
    return request


def _read_body(request: HttpRequest) -> HttpRequest:
    with contextlib.suppress(RequestDataTooBig):  # Django keeps what it read, then refuses
        request.body  # noqa: B018 - the view reads it
    return request


def _cut_body(request: HttpRequest) -> HttpRequest:
    request.__dict__["_body"] = b"client_id=we"  # what a read cut short leaves behind
    return request


def _parsed_post(request: HttpRequest) -> HttpRequest:
    request.POST  # noqa: B018 - the view parses the form
    return request


MULTIPART = (
    b'--B\r\nContent-Disposition: form-data; name="client_id"\r\n\r\nweb\r\n'
    b'--B\r\nContent-Disposition: form-data; name="a\\"b"\r\n\r\nx\r\n--B--\r\n'
)


@pytest.mark.parametrize(
    ("request_", "state", "body"),
    [
        pytest.param(
            lambda: _read_body(_posted(b"client_id=web", FORM)),
            BodyState.COMPLETE,
            b"client_id=web",
            id="read",
        ),
        pytest.param(
            lambda: _posted(b"client_id=web", FORM), BodyState.INCOMPLETE, b"", id="not-read"
        ),
        pytest.param(
            lambda: _cut_body(_posted(b"client_id=web", FORM)),
            BodyState.INCOMPLETE,
            b"",
            id="shorter-than-content-length",
        ),
        pytest.param(
            lambda: _read_body(
                _posted(b"client_id=web", FORM, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
            ),
            BodyState.COMPLETE,
            b"client_id=web",
            id="chunked-within-the-upload-limit",
        ),
        pytest.param(
            lambda: _read_body(
                _posted(b"x" * 50, FORM, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
            ),
            BodyState.INCOMPLETE,
            b"",
            id="chunked-beyond-the-upload-limit",
        ),
        pytest.param(
            lambda: _parsed_post(_posted(MULTIPART, "multipart/form-data; boundary=B")),
            BodyState.INCOMPLETE,
            b"",
            id="multipart-field-name-with-a-quote",
        ),
    ],
)
def test_request_body_as_far_as_the_view_read_it(
    request_: Callable[[], HttpRequest], state: int, body: bytes
) -> None:
    """Body facts come from what Django kept of a read, never from a read of our own."""
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=40):
        request = request_()
        ex = _django_facts.request_exchange(request)
        _django_facts.request_body(ex, request, 65536)
    assert (ex.body_state, bytes(ex.body)) == (state, body)


def test_multipart_needs_a_boundary() -> None:
    """Without a boundary no multipart body can be rebuilt."""
    assert _django_facts._multipart({}, "") is None


def test_header_values_beyond_latin_1() -> None:
    """A header value a test client put in as text beyond latin-1 is taken as UTF-8."""
    from django.test import RequestFactory

    request = RequestFactory().get("/x", QUERY_STRING="q=\u20ac", HTTP_X_NOTE="\u20ac")
    ex = _django_facts.request_exchange(request)
    assert ex.query() == {"q": ["\u20ac"]}
    assert ex.header("x-note") == "\u20ac".encode().decode("latin-1")


def test_check_skips_broken_middleware_entries(tmp_path: Path) -> None:
    """An entry of MIDDLEWARE that does not import is Django's to report; ours is still checked."""
    bad = rules_file(tmp_path, BAD_RULES)
    with override_settings(MIDDLEWARE=["no.such.Middleware", MIDDLEWARE], HERA_RULES=bad):
        assert [m.id for m in _django_config.check_settings()] == ["hera_middleware.E001"]


def test_broken_urlconf_is_left_to_django(tmp_path: Path) -> None:
    """A URLconf that does not import is Django's check to report; the middleware fails closed."""
    rules = rules_file(tmp_path, ROUTE_RULES)
    with override_settings(ROOT_URLCONF="no_such_urlconf", HERA_RULES=rules):
        assert _django_config.check_settings() == []
        with pytest.raises(ImportError):
            WSGIHandler()


# -- settings, precedence, stand-down -----------------------------------------------------


@pytest.mark.parametrize(
    ("file_domain", "setting", "env", "expected", "origin"),
    [
        pytest.param(None, None, None, "ciam", "default", id="default"),
        pytest.param("file", None, None, "file", "FILE", id="rule-file"),
        pytest.param(
            "file",
            "settings",
            None,
            "settings",
            "Django settings HERA_DOMAIN",
            id="settings-over-rule-file",
        ),
        pytest.param(
            "file",
            "settings",
            "env",
            "env",
            "environment HERA_DOMAIN",
            id="environment-over-settings",
        ),
    ],
)
def test_option_precedence(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file_domain: str | None,
    setting: str | None,
    env: str | None,
    expected: str,
    origin: str,
) -> None:
    """Environment beats settings, settings beat the rule file, the rule file the default."""
    head = f"domain: {file_domain}\n" if file_domain else ""
    rules = rules_file(tmp_path, head + STATUS_ONLY)
    monkeypatch.delenv("HERA_DOMAIN", raising=False)
    if env:
        monkeypatch.setenv("HERA_DOMAIN", env)
    with override_settings(HERA_RULES=rules, HERA_DOMAIN=setting), capture_events() as events:
        client.get("/plain/")
        engine = _django_config.build_engine()
    assert_events(events, [done("django_project.views.plain") | {"domain": expected}])
    assert engine.options.origins["domain"] == (rules if origin == "FILE" else origin)


def test_rules_and_output_from_settings_and_environment(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HERA_RULES in the environment beats the setting; HERA_OUTPUT writes the lines."""
    output = Output(tmp_path / "events.jsonl")
    monkeypatch.setenv("HERA_RULES", rules_file(tmp_path, STATUS_ONLY))
    with override_settings(HERA_OUTPUT=output.spec), capture_events() as events:
        client.get("/plain/")
    assert_events(events, [done("django_project.views.plain")])
    assert [json.loads(line) for line in output.lines()] == events


def test_middleware_listed_twice_emits_once(client: Client) -> None:
    """A second instance with the same configuration stands down."""
    with override_settings(MIDDLEWARE=[MIDDLEWARE, MIDDLEWARE]), capture_events() as events:
        client.get("/users/1/")
    assert_events(events, [event("user_seen", pk="1"), FORM_ABSENT, OK, done("user_detail")])


def test_no_rule_for_the_path_is_a_pass_through(client: Client) -> None:
    """A request no rule names is not looked at: the view gets the request untouched."""
    rules = load_rules(text=STATUS_ONLY.replace("/{any:path}", "/x"))
    with override_settings(HERA_RULES=rules), capture_events() as events:
        response = client.post("/unread/", urlencode(TOKEN), content_type=FORM)
    assert response.content == b"fine"
    assert events == []


def test_internal_error_leaves_the_response_alone(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error inside the adapter is counted; the response is the view's, unchanged."""

    def broken(response: Any) -> Any:
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(adapter, "response_headers", broken)
    with capture_events() as events:
        response = client.get("/users/3/")
    assert response.status_code == 200
    assert json.loads(response.content) == {"result": "ok", "pk": 3}
    assert hera_middleware.stats()["internal_errors"] == 1
    # The response body was not copied: its facts are unknown, the others still hold.
    assert_events(events, [event("user_seen", pk="3"), FORM_ABSENT, done("user_detail")])


# -- configuration errors fail closed -----------------------------------------------------


BAD_RULES = """\
rules:
  - event: pkce_authorise
    route: account_login
  - event: pkce_authorize
    route: acount_login
    fields: {client_id: query.client_id}
  - event: pkce_authorize
    route: [old, file_edit]
    fields: {client_id: query.client_id}
"""


ROUTE_RULES = """\
rules:
  - event: pkce_authorize
    route: account_login
    fields: {client_id: query.client_id}
  - event: pkce_authorize
    route: acount_login
    fields: {client_id: query.client_id}
  - event: pkce_authorize
    route: [old, file_edit]
    fields: {client_id: query.client_id}
"""
CONVERT = "write `match: METHOD /path/{param}` for it instead"


def route_lines(file: str) -> list[tuple[str, str]]:
    """The problems of ROUTE_RULES in ``file``, as (line, hint), each at the position the
    engine gives route problems (an empty route table makes it report every name).
    """
    with pytest.raises(HeraConfigError) as info:
        Engine(load_rules(file), {}, ({}, {}))
    at = {p.message.rsplit(" ", 1)[1]: f"{p.file}:{p.line}:{p.col}" for p in info.value.problems}
    return [
        (
            f"{at[repr('acount_login')]}: unknown-route: the app has no route named 'acount_login'",
            "did you mean 'account_login'?",
        ),
        (
            f"{at[repr('old')]}: route-not-convertible: the URL pattern of 'old' has no path"
            " template: the regex '^old/(\\w+)/$' has a group other than a named group of"
            " digits, [^/]+, a slug, a uuid or .+",
            CONVERT,
        ),
        (
            f"{at[repr('file_edit')]}: route-not-convertible: the URL pattern of 'file_edit' has"
            " no path template: a path parameter must be the whole last segment:"
            " '/files/{p:path}/edit'",
            CONVERT,
        ),
    ]


def test_bad_rule_file_stops_the_middleware_from_loading(tmp_path: Path) -> None:
    """Django loading its middleware (server start) raises ImproperlyConfigured with the lines."""
    file = rules_file(tmp_path, ROUTE_RULES)
    with override_settings(HERA_RULES=file), pytest.raises(ImproperlyConfigured) as info:
        WSGIHandler()
    assert str(info.value) == "hera-middleware: invalid configuration:\n" + "\n".join(
        f"{line} (hint: {hint})" for line, hint in route_lines(file)
    )


def test_bad_rule_file_fails_the_system_check(tmp_path: Path) -> None:
    """``manage.py check`` reports every problem as one error, ``file:line:col: code: message``."""
    file = rules_file(tmp_path, ROUTE_RULES)
    with override_settings(HERA_RULES=file):
        messages = _django_config.check_settings()
        with pytest.raises(SystemCheckError) as info:
            call_command("check")
    lines = route_lines(file)
    assert messages == [
        checks.Error(line, hint=hint, id="hera_middleware.E001") for line, hint in lines
    ]
    for line, hint in lines:
        assert f"?: (hera_middleware.E001) {line}\n\tHINT: {hint}" in str(info.value)


def test_rule_file_errors_come_before_route_errors(tmp_path: Path) -> None:
    """A file that does not load reports its load errors; route names are checked once it does."""
    file = rules_file(tmp_path, BAD_RULES)
    with override_settings(HERA_RULES=file):
        assert [(m.msg, m.hint) for m in _django_config.check_settings()] == [
            (
                f"{file}:2:12: unknown-event: unknown event 'pkce_authorise'",
                "did you mean 'pkce_authorize'?",
            )
        ]


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        pytest.param(
            {"HERA_RULES": None},
            "<Django settings>:1:1: missing-rules: HeraEventsMiddleware has no rules",
            id="no-rules",
        ),
        pytest.param(
            {"HERA_ON_FULL": "sometimes"},
            "<Django settings HERA_ON_FULL>:1:1: bad-option: on_full is 'drop' or 'block',"
            " not 'sometimes'",
            id="bad-option-in-settings",
        ),
    ],
)
def test_bad_settings_fail_closed(
    overrides: dict[str, Any], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing rules or a bad option in settings stop start-up and fail the check."""
    monkeypatch.delenv("HERA_RULES", raising=False)
    with override_settings(**overrides):
        with pytest.raises(ImproperlyConfigured) as info:
            WSGIHandler()
        assert [m.msg for m in _django_config.check_settings()] == [line]
    assert str(info.value).splitlines()[1].startswith(line)


def test_check_is_silent_without_the_middleware_or_rules() -> None:
    """Without the middleware in MIDDLEWARE and without HERA_RULES there is nothing to check."""
    with override_settings(MIDDLEWARE=[], HERA_RULES=None):
        assert _django_config.check_settings() == []


def test_check_passes_for_the_project() -> None:
    """The project's own rule file passes the check."""
    assert _django_config.check_settings() == []
    call_command("check", stdout=io.StringIO())


def test_app_config_registers_the_check() -> None:
    """The ``hera_middleware.django`` app is HeraConfig, whose ready() registers the check."""
    from django.apps import apps

    config = apps.get_app_config("hera_middleware")
    assert isinstance(config, HeraConfig)
    assert _django_config.check_settings in checks.registry.registry.get_checks()


def test_public_names() -> None:
    """``hera_middleware.django`` exports the two middlewares and nothing private."""
    import hera_middleware.django as public

    assert public.__all__ == ["HeraEventsMiddleware", "HeraRouteMiddleware"]
    assert public.HeraEventsMiddleware is adapter.HeraEventsMiddleware
    assert public.HeraRouteMiddleware is adapter.HeraRouteMiddleware
