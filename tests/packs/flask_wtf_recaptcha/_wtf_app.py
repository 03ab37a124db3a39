"""Servers for the Flask-WTF reCAPTCHA pack's tests: a fake siteverify, and two real apps.

- :class:`FakeVerify`: Google's ``siteverify`` on 127.0.0.1 in a thread, reached by
  Flask-WTF through its own ``RECAPTCHA_VERIFY_SERVER`` setting. It answers by the
  token's prefix, with Google's error codes, and keeps every token it was asked about.
- :func:`plain_app`: a plain Flask app with FlaskForm + RecaptchaField forms (CSRF on)
  at ``/sign-in``, ``/sign-up`` and ``/forgot``, wired to the pack with
  ``hera_middleware.flask.HeraEvents`` unless told otherwise.
- :func:`security_app`: Flask-Security-Too with a RecaptchaField added to its login and
  registration forms, at its default URLs, as the recording was made.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import Flask, redirect, render_template_string, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.recaptcha import Recaptcha, RecaptchaField
from jinja2 import DictLoader
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from hera_middleware.flask import HeraEvents

PACK = "preset:flask-wtf-recaptcha"
SITE_KEY = "fake-recaptcha-site-key"
SECRET = "fake-recaptcha-secret"
EMAIL, PASSWORD = "ada@example.test", "Correct-Horse-4821!"

#: Token prefix -> what Google's siteverify answers for it.
ANSWERS: dict[str, dict[str, Any]] = {
    "ok-": {"success": True, "challenge_ts": "2026-12-03T12:00:00Z", "hostname": "127.0.0.1"},
    "forged-": {"success": False, "error-codes": ["invalid-input-response"]},
    "expired-": {"success": False, "error-codes": ["timeout-or-duplicate"]},
    "odd-": {"success": False, "error-codes": ["bad-request"]},
}
WRONG_SECRET = {"success": False, "error-codes": ["invalid-input-secret"]}


def discard(event: dict[str, object]) -> None:
    """An output that drops every line: the tests read events through capture_events."""


class FakeVerify:
    """reCAPTCHA's siteverify on 127.0.0.1, answering as Google does."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                token = form.get("response", [""])[0]
                outer.tokens.append(token)
                answer = WRONG_SECRET
                if form.get("secret") == [SECRET]:
                    prefix = next((p for p in ANSWERS if token.startswith(p)), "forged-")
                    answer = ANSWERS[prefix]
                body = json.dumps(answer).encode()
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read what was asked from ``tokens``."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/recaptcha/api/siteverify"
        self._running = ExitStack()
        self._running.enter_context(serving(self.server))

    def close(self) -> None:
        self._running.close()


def recaptcha_config(verify_url: str) -> dict[str, Any]:
    """Flask-WTF's reCAPTCHA settings pointing at the fake siteverify; testing mode off."""
    return {
        "SECRET_KEY": "wtf-pack-tests-secret-key",
        "RECAPTCHA_PUBLIC_KEY": SITE_KEY,
        "RECAPTCHA_PRIVATE_KEY": SECRET,
        "RECAPTCHA_VERIFY_SERVER": verify_url,
        "TESTING": False,
    }


PAGE = """<!doctype html><title>{{ title }}</title>
<form method="post">{{ form.csrf_token }}
{{ form.email(autocomplete="email") }} {{ form.password() }}
{{ form.recaptcha }}
{% for name, errors in form.errors.items() %}{% for error in errors %}
<p class="error" data-field="{{ name }}">{{ error }}</p>{% endfor %}{% endfor %}
<button>Go</button></form>
"""


def plain_app(
    verify_url: str,
    *,
    rules: Any = PACK,
    wired: bool = True,
    captcha_message: str | None = None,
    babel: bool = False,
    **config: Any,
) -> Flask:
    """A plain Flask app with three reCAPTCHA forms: ``/sign-in``, ``/sign-up``, ``/forgot``.

    ``captcha_message`` replaces Flask-WTF's "The response parameter is missing." (the
    validator's ``message``); ``babel`` adds Flask-Babel, choosing German or English
    from ``Accept-Language`` (Flask-WTF then translates WTForms' own messages).
    """
    validators = [Recaptcha(message=captcha_message)] if captcha_message else None

    class CaptchaForm(FlaskForm):
        email = StringField("Email", validators=[DataRequired()])
        password = PasswordField("Password", validators=[DataRequired()])
        recaptcha = RecaptchaField(validators=validators)

    app = Flask("wtf_plain_app")
    app.config.update(recaptcha_config(verify_url), **config)
    if babel:
        from flask_babel import Babel

        Babel(app, locale_selector=lambda: request.accept_languages.best_match(["de", "en"]))

    def form_view(title: str, done: str) -> ResponseReturnValue:
        form = CaptchaForm()
        if form.validate_on_submit():
            if (form.email.data, form.password.data) == (EMAIL, PASSWORD):
                return redirect(done)
            form.password.errors.append("Wrong email or password.")
        return render_template_string(PAGE, title=title, form=form)

    app.add_url_rule(
        "/sign-in", "sign_in", lambda: form_view("Sign in", "/"), methods=["GET", "POST"]
    )
    app.add_url_rule(
        "/sign-up", "sign_up", lambda: form_view("Sign up", "/"), methods=["GET", "POST"]
    )
    app.add_url_rule(
        "/forgot", "forgot", lambda: form_view("Forgot password", "/"), methods=["GET", "POST"]
    )
    app.add_url_rule("/", "home", lambda: "home")
    if wired:
        HeraEvents(app, rules=rules, output=discard)
    return app


#: Flask-Security's login and register pages, with the captcha field rendered (its own
#: templates show only the fields they know); the names are the ones it looks up.
SECURITY_TEMPLATES = {
    f"security/{page}.html": f"""{{% extends "security/base.html" %}}
{{% from "security/_macros.html" import render_field_with_errors, render_field,
   render_field_errors, render_form_errors %}}
{{% block content %}}{{% include "security/_messages.html" %}}
<form action="{{{{ url_for_security('{view}') }}}}" method="post" name="{form}">
{{{{ {form}.hidden_tag() }}}}{{{{ render_form_errors({form}) }}}}
{{% for name in {fields} %}}{{{{ render_field_with_errors({form}[name]) }}}}{{% endfor %}}
{{{{ render_field_with_errors({form}.recaptcha) }}}}
{{{{ render_field_errors({form}.csrf_token) }}}}{{{{ render_field({form}.submit) }}}}
</form>{{% endblock content %}}
"""
    for page, view, form, fields in [
        ("login_user", "login", "login_user_form", ["email", "password"]),
        ("register_user", "register", "register_user_form", ["email", "password"]),
    ]
}


def security_app(verify_url: str, *, rules: Any = PACK, **config: Any) -> Flask:
    """Flask-Security-Too (SQLAlchemy, in-memory SQLite) with reCAPTCHA on login and register."""
    from _wtf_models import Role, User, db
    from flask_security import Security, SQLAlchemyUserDatastore, hash_password
    from flask_security.forms import LoginForm, RegisterFormV2

    class CaptchaLoginForm(LoginForm):
        recaptcha = RecaptchaField()

    class CaptchaRegisterForm(RegisterFormV2):
        recaptcha = RecaptchaField()

    app = Flask("wtf_security_app")
    app.config.update(
        recaptcha_config(verify_url),
        SECURITY_PASSWORD_SALT="wtf-pack-tests-salt",
        SECURITY_PASSWORD_HASH="pbkdf2_sha512",
        SECURITY_REGISTERABLE=True,
        SECURITY_SEND_REGISTER_EMAIL=False,
        SQLALCHEMY_DATABASE_URI="sqlite://",
        # No DNS look-up, and the reserved .test domain of the dummy users is fine.
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False, "test_environment": True},
        **config,
    )
    app.jinja_loader = DictLoader(SECURITY_TEMPLATES)  # type: ignore[assignment]
    db.init_app(app)
    datastore = SQLAlchemyUserDatastore(db, User, Role)
    app.security = Security(
        app, datastore, login_form=CaptchaLoginForm, register_form=CaptchaRegisterForm
    )
    app.add_url_rule("/", "index", lambda: "signed in")
    with app.app_context():
        db.create_all()
        datastore.create_user(email=EMAIL, password=hash_password(PASSWORD))
        db.session.commit()
    HeraEvents(app, rules=rules, output=discard)
    return app


CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the form in a page."""
    match = CSRF.search(html)
    assert match, html
    return match.group(1)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


@contextmanager
def serving(server: BaseServer) -> Iterator[None]:
    """Run ``server`` in a daemon thread for the block; shut it down and close it after."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def wsgiref_server(wsgi_app: Any) -> Iterator[str]:
    """Serve ``wsgi_app`` with wsgiref on 127.0.0.1 in a thread; yield its base URL.

    wsgiref serves one request at a time, closing each response (so emitting its events)
    before it reads the next: a response to a later request means the earlier ones' events
    are out.
    """
    server = make_server("127.0.0.1", 0, wsgi_app, handler_class=_QuietHandler)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_port}"
