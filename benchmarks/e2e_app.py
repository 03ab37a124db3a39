"""The FastAPI example for the end-to-end run, with or without the middleware.

``uvicorn benchmarks.e2e_app:app`` serves ``examples/fastapi_app/app.py`` as it is,
except that

- with ``HERA_BENCH_MIDDLEWARE=0`` the example's ``HeraEvents`` is taken out of its
  middleware list before the first request (FastAPI builds the stack then), and
- its store of authorization codes hands out a fresh, unused code with an S256
  challenge for any code named ``bench-...``, so that every token request of the load
  generator is a successful PKCE exchange (the rule ``pkce-token-exchange`` writes one
  event per request) without running a login and consent flow per request.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app" / "app.py"
_spec = importlib.util.spec_from_file_location("hera_bench_example_app", _EXAMPLE)
if _spec is None or _spec.loader is None:
    raise ImportError(f"cannot load {_EXAMPLE}")
example = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = example  # dataclasses look their module up
_spec.loader.exec_module(example)

CLIENT_ID = "demo-spa"
REDIRECT_URI = "https://spa.example.test/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
BODY = (
    f"grant_type=authorization_code&code=bench-1&client_id={CLIENT_ID}"
    "&redirect_uri=https%3A%2F%2Fspa.example.test%2Fcallback"
    f"&code_verifier={VERIFIER}"
)


class _BenchCodes(dict):  # type: ignore[type-arg]
    """Every ``bench-`` code is a fresh grant for the public demo client."""

    challenge = example.s256_challenge(VERIFIER)

    def get(self, key: Any, default: Any = None) -> Any:
        if isinstance(key, str) and key.startswith("bench-"):
            return example.AuthCode(
                client_id=CLIENT_ID,
                redirect_uri=REDIRECT_URI,
                challenge=self.challenge,
                method="S256",
                username=example.DEMO_USER,
                scope="openid",
                expires_at=time.monotonic() + 60,
            )
        return super().get(key, default)


app = example.create_app(example.Settings.from_env())
app.state.store.codes = _BenchCodes()
# The endpoints reach the store through their closure: the same object as app.state.store.
if os.environ.get("HERA_BENCH_MIDDLEWARE", "1") == "0":
    app.user_middleware = [m for m in app.user_middleware if m.cls is not example.HeraEvents]
