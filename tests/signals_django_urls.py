"""A URLconf whose views send django.dispatch signals, for the signal-fact tests."""

from __future__ import annotations

import asyncio
import threading

from allauth.account.signals import user_signed_up
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse
from django.urls import path

#: A project's own signal, sent with scalar and object arguments.
mfa_checked = Signal()
#: Interleaves two requests: one sends, the other must not see it.
barrier: threading.Barrier | None = None
#: The same for async views (set by the test inside its event loop).
events: dict[str, asyncio.Event] = {}


class _User:
    email = "alice@example.com"
    pk = 4711


def callback(request: HttpRequest, provider: str) -> HttpResponse:
    """A first social login: allauth's own user_signed_up signal is sent."""
    if request.GET.get("new") == "1":
        user_signed_up.send(sender=_User, request=request, user=_User())
    response = HttpResponse(status=302)
    response["Location"] = "/welcome/"
    return response


def mfa(request: HttpRequest) -> HttpResponse:
    mfa_checked.send(sender=None, method="recovery_code", user=_User(), attempts=3)
    return HttpResponse("ok")


def wait(request: HttpRequest) -> HttpResponse:
    assert barrier is not None
    barrier.wait(timeout=10)
    barrier.wait(timeout=10)
    return HttpResponse("waited")


def send_and_wait(request: HttpRequest) -> HttpResponse:
    assert barrier is not None
    barrier.wait(timeout=10)
    mfa_checked.send(sender=None, method="totp")
    barrier.wait(timeout=10)
    return HttpResponse("sent")


async def async_wait(request: HttpRequest) -> HttpResponse:
    events["waiting"].set()
    await asyncio.wait_for(events["sent"].wait(), 10)
    return HttpResponse("waited")


async def async_send(request: HttpRequest) -> HttpResponse:
    await asyncio.wait_for(events["waiting"].wait(), 10)
    await mfa_checked.asend(sender=None, method="webauthn")
    events["sent"].set()
    return HttpResponse("sent")


urlpatterns = [
    path("accounts/<slug:provider>/login/callback/", callback, name="socialaccount_callback"),
    path("mfa/", mfa, name="mfa"),
    path("wait/", wait),
    path("send-and-wait/", send_and_wait),
    path("async-wait/", async_wait),
    path("async-send/", async_send),
]
