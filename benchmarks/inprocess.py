"""In-process overhead (ASGI and WSGI) and rule-count scaling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson

import hera_middleware

from . import apps
from ._timing import Batch, Series, interleaved

# Variants that write events flush after at most this many requests: the writer's work is
# part of the cost, and the queue (10,000 lines) never overflows. A loop that never
# releases the GIL gives the writer thread hardly a turn until it waits in flush().
CHUNK = 4000


def _asgi_batch(loop: asyncio.AbstractEventLoop, app: Any, path: str, flush: bool) -> Batch:
    def batch(n: int) -> None:
        if not flush:
            loop.run_until_complete(apps.asgi_loop(app, path, n))
            return
        while n > 0:
            loop.run_until_complete(apps.asgi_loop(app, path, min(n, CHUNK)))
            hera_middleware.flush()
            n -= CHUNK

    return batch


def _wsgi_batch(app: Any, path: str, flush: bool) -> Batch:
    def batch(n: int) -> None:
        if not flush:
            apps.wsgi_loop(app, path, n)
            return
        while n > 0:
            apps.wsgi_loop(app, path, min(n, CHUNK))
            hera_middleware.flush()
            n -= CHUNK

    return batch


def asgi(
    outputs: dict[str, str], rounds: int, seconds: float, progress: Callable[[str], None]
) -> dict[str, Series]:
    loop = asyncio.new_event_loop()
    try:
        variants = {
            name: _asgi_batch(loop, app, path, name.startswith("HeraEvents"))
            for name, (app, path) in apps.asgi_variants(outputs).items()
        }
        return interleaved(variants, rounds=rounds, seconds=seconds, progress=progress)
    finally:
        loop.close()


def wsgi(
    outputs: dict[str, str], rounds: int, seconds: float, progress: Callable[[str], None]
) -> dict[str, Series]:
    variants = {
        name: _wsgi_batch(app, path, name.startswith("HeraEvents"))
        for name, (app, path) in apps.wsgi_variants(outputs).items()
    }
    return interleaved(variants, rounds=rounds, seconds=seconds, progress=progress)


# --- rule-count scaling -----------------------------------------------------------------

MATCH_PATH = "/t7/acme/oauth/token"  # rule 7's template /t7/{realm}/oauth/token
MISS_PATH = "/t7/acme/oauth/revoke"  # walks the same trie branch, then finds nothing
_TOKEN_BODY = orjson.dumps(apps.TOKEN_JSON)
_TOKEN_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_TOKEN_BODY)).encode()),
    ],
}
_TOKEN_END = {"type": "http.response.body", "body": _TOKEN_BODY}


async def raw_token_app(scope: Any, receive: Any, send: Any) -> None:
    """A minimal ASGI token endpoint, so the middleware's own cost dominates."""
    while (await receive()).get("more_body"):
        pass
    await send(_TOKEN_START)
    await send(_TOKEN_END)


def generated_rules(count: int) -> dict[str, Any]:
    """``count`` rules with distinct paths: a third static, two thirds path templates."""
    token_if = {
        "form.code_verifier": "present",
        "response.status": 200,
        "response.json.access_token": "present",
    }
    rules: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            rules.append(
                {
                    "id": f"static-{i}",
                    "event": "pkce_token_exchange",
                    "match": f"POST /s{i}/oauth/token",
                    "if": token_if,
                    "fields": {"client_id": "form.client_id"},
                }
            )
        elif kind == 1:
            rules.append(
                {
                    "id": f"tenant-{i}",
                    "event": "pkce_token_exchange",
                    "match": f"POST /t{i}/{{realm}}/oauth/token",
                    "if": token_if,
                    "fields": {"client_id": "form.client_id"},
                }
            )
        else:
            rules.append(
                {
                    "id": f"mfa-{i}",
                    "event": "mfa_challenge_displayed",
                    "match": f"GET /u/{{user}}/mfa{i}",
                    "if": {"response.status": 200},
                    "fields": {"method": {"value": "totp"}},
                }
            )
    return {"domain": "ciam", "rules": rules}


def scaling(
    counts: list[int], output: str, rounds: int, seconds: float, progress: Callable[[str], None]
) -> dict[str, Series]:
    loop = asyncio.new_event_loop()
    try:
        variants: dict[str, Batch] = {
            "bare, match path": _asgi_batch(loop, raw_token_app, MATCH_PATH, False),
            "bare, miss path": _asgi_batch(loop, raw_token_app, MISS_PATH, False),
        }
        for count in counts:
            progress(f"  loading {count:,} rules")
            app = hera_middleware.HeraEvents(
                raw_token_app, rules=generated_rules(count), output=output
            )
            variants[f"{count} rules, match"] = _asgi_batch(loop, app, MATCH_PATH, True)
            variants[f"{count} rules, miss"] = _asgi_batch(loop, app, MISS_PATH, False)
        return interleaved(variants, rounds=rounds, seconds=seconds, progress=progress)
    finally:
        loop.close()
