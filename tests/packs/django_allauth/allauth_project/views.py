"""The landing page, and the marker the tests use to find where a step's events end."""

from __future__ import annotations

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
