"""DOT at its documented prefix (``o/``), Django's login view and a readiness probe."""

from __future__ import annotations

from importlib.metadata import version

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def ready(request: HttpRequest) -> HttpResponse:
    """The versions this server runs (the tests check they are the ones asked for)."""
    names = ("django-oauth-toolkit", "oauthlib", "Django")
    text = " ".join(f"{name}=={version(name)}" for name in names)
    return HttpResponse(text, content_type="text/plain")


urlpatterns = [
    path("ready", ready),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
