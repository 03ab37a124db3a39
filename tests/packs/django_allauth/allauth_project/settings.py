"""Settings of the allauth test project, run in a subprocess by the pack's tests.

The environment chooses the database (``ALLAUTH_DB``), the fake OpenID Connect
provider (``ALLAUTH_OIDC_URL``) and one whose port is closed (``ALLAUTH_DEAD_URL``).
``ALLAUTH_HERA=wrapped`` leaves HeraEventsMiddleware out: ``asgi.wrapped`` and
``wsgi.wrapped`` put the generic middleware around the whole application instead.
Events go where ``HERA_OUTPUT`` says.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

#: allauth's (major, minor): the pack's tests also run under the oldest it supports.
ALLAUTH = tuple(int(part) for part in version("django-allauth").split(".")[:2])

SECRET_KEY = "allauth-pack-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "allauth_project.urls"
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "German")]
DATABASES: dict[str, Any] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["ALLAUTH_DB"]}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "allauth.headless",
    "hera_middleware.django",
]
MIDDLEWARE = [
    "hera_middleware.django.HeraEventsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
if os.environ.get("ALLAUTH_HERA") == "wrapped":
    MIDDLEWARE = MIDDLEWARE[1:]
HERA_RULES = "preset:django-allauth"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
LOGIN_REDIRECT_URL = "/profile/"
if ALLAUTH >= (65, 5):
    ACCOUNT_LOGIN_METHODS = {"email"}
    ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
else:  # the same, as spelt before 65.4 (login methods) and 65.5 (signup fields)
    ACCOUNT_AUTHENTICATION_METHOD = "email"
    ACCOUNT_EMAIL_REQUIRED = True
    ACCOUNT_USERNAME_REQUIRED = False
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_RATE_LIMITS = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "APPS": [
            {
                "provider_id": "fakeoidc",
                "name": "Fake OIDC",
                "client_id": "allauth-client-id",
                "secret": "allauth-client-secret",
                "settings": {"server_url": os.environ["ALLAUTH_OIDC_URL"]},
            },
            {
                "provider_id": "deadoidc",
                "name": "Dead OIDC",
                "client_id": "allauth-dead-client-id",
                "secret": "allauth-client-secret",
                "settings": {"server_url": os.environ["ALLAUTH_DEAD_URL"]},
            },
        ]
    }
}
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": "/app/verify-email/{key}",
    "account_reset_password_from_key": "/app/password/reset/{key}",
    "account_signup": "/app/signup",
    "socialaccount_login_error": "/app/social-error",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"level": "ERROR", "handlers": ["console"]}},
}
