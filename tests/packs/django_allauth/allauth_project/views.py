"""The landing page, the marker the tests use to find where a step's events end, and
the versions this server runs (the tests check they are the ones asked for)."""

from __future__ import annotations

from importlib.metadata import version

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from hera_middleware import declare_event, emit_event

declare_event("test_step_ended", ["step"])


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<h1>Profile</h1>")


def marker(request: HttpRequest, step: str) -> HttpResponse:
    # Same process, same output queue: this line follows every event of earlier requests.
    emit_event("test_step_ended", step=step)
    return HttpResponse("ok")


def versions(request: HttpRequest) -> HttpResponse:
    names = ("django-allauth", "Django")
    return HttpResponse(" ".join(f"{name}=={version(name)}" for name in names))
