"""Views of the test project: each reads (or does not read) what its test needs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views import View

FILE = Path(__file__).resolve().parent / "download.txt"
#: Every exception the raising views raised, so tests can check it is the same object.
RAISED: list[BaseException] = []


def login(request: HttpRequest) -> HttpResponse:
    """A login form: a POST is read through request.POST."""
    if request.method == "POST" and request.POST.get("client_id"):
        response = HttpResponseRedirect("/welcome/")
        response.set_cookie("sessionid", "session-SECRET-value")
        response.set_cookie("csrftoken", "csrf-SECRET-value")
        return response
    return HttpResponse("<form>login</form>", status=200 if request.method == "GET" else 400)


def social_callback(request: HttpRequest, provider: str) -> HttpResponse:
    return HttpResponseRedirect("/welcome/" if request.GET.get("new") else "/home/")


def token(request: HttpRequest) -> HttpResponse:
    """An OAuth token endpoint: reads the form through request.POST."""
    if request.POST.get("code_verifier"):
        return JsonResponse({"result": "ok", "token_type": "Bearer"})
    return JsonResponse({"error": "invalid_request"}, status=400)


def headless_login(request: HttpRequest) -> HttpResponse:
    """A headless (allauth-style) login: reads a JSON body."""
    data = json.loads(request.body or b"{}")
    if data.get("kind") == "mfa":
        return JsonResponse({"result": "mfa_required"}, status=401)
    return JsonResponse({"result": "ok"})


def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return JsonResponse({"result": "ok", "pk": pk})


def docs(request: HttpRequest, rest: str) -> HttpResponse:
    return HttpResponse("docs")


def unread(request: HttpRequest) -> HttpResponse:
    """Answers without touching the request body."""
    return HttpResponse("fine")


def json_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"result": json.loads(request.body)["kind"]})


async def async_json(request: HttpRequest) -> HttpResponse:
    """An async view reading a JSON body."""
    await asyncio.sleep(0)
    return JsonResponse({"result": json.loads(request.body)["kind"]})


def _chunks() -> Iterator[bytes]:
    yield b"first chunk, "
    yield b"the needle, "
    yield b"last chunk"


def stream(request: HttpRequest) -> HttpResponse:
    """Three chunks, from an async iterator under ASGI (as Django wants it there)."""
    if request.GET.get("fail"):
        return StreamingHttpResponse(_failing())
    chunks = _achunks() if hasattr(request, "scope") else _chunks()
    return StreamingHttpResponse(chunks, content_type="text/plain")


def _failing() -> Iterator[bytes]:
    yield b"first chunk, "
    raise RuntimeError("the generator broke")


async def _achunks() -> AsyncIterator[bytes]:
    for chunk in _chunks():
        await asyncio.sleep(0)
        yield chunk


async def _afailing() -> AsyncIterator[bytes]:
    yield b"first chunk, "
    raise RuntimeError("the async generator broke")


def async_stream(request: HttpRequest) -> HttpResponse:
    if request.GET.get("fail"):
        return StreamingHttpResponse(_afailing())
    return StreamingHttpResponse(_achunks(), content_type="text/plain")


def file(request: HttpRequest) -> HttpResponse:
    return FileResponse(FILE.open("rb"), content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    exc = RuntimeError("boom with client_secret=cs-SECRET-4711")
    RAISED.append(exc)
    raise exc


async def async_boom(request: HttpRequest) -> HttpResponse:
    exc = RuntimeError("async boom with client_secret=cs-SECRET-4711")
    RAISED.append(exc)
    raise exc


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("nothing here")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


def read_stream(request: HttpRequest) -> HttpResponse:
    """Reads the body as a stream (request.read()), as some API frameworks do."""
    request.read()
    return JsonResponse({"result": "ok"})


def upload(request: HttpRequest) -> HttpResponse:
    """A multipart form read through request.POST (Django streams it, no request.body)."""
    return JsonResponse({"result": request.POST.get("client_id", "none")})


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain")


class Cbv(View):
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return HttpResponse("cbv")


def legacy(request: HttpRequest, code: str) -> HttpResponse:
    return HttpResponse("legacy")


def old(request: HttpRequest, word: str) -> HttpResponse:
    return HttpResponse("old")


def file_edit(request: HttpRequest, p: str) -> HttpResponse:
    return HttpResponse("edit")
