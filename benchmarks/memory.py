"""RSS before and after N requests through a matching rule, in a fresh process.

Run by the suite as ``python -m benchmarks.memory N WARMUP``; prints one JSON object.
"""

from __future__ import annotations

import asyncio
import gc
import sys

import orjson

import hera_middleware

from . import apps


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(n: int, warmup: int) -> dict[str, int]:
    app = hera_middleware.HeraEvents(
        apps.starlette_app(), rules=apps.EXAMPLE_RULES, output="file:/dev/null"
    )
    loop = asyncio.new_event_loop()
    for _ in range(0, warmup, 5_000):
        loop.run_until_complete(apps.asgi_loop(app, apps.TOKEN_PATH, 5_000))
        hera_middleware.flush()
    gc.collect()
    before = rss_kib()
    # flush() every 5,000 requests: this loop never releases the GIL, so without it the
    # writer thread would hardly get a turn and the full queue would drop events.
    chunk = 5_000
    done = 0
    peak = before
    while done < n:
        step = min(chunk, n - done)
        loop.run_until_complete(apps.asgi_loop(app, apps.TOKEN_PATH, step))
        hera_middleware.flush()
        done += step
        if done % 100_000 == 0:
            peak = max(peak, rss_kib())
    hera_middleware.flush()
    gc.collect()
    after = rss_kib()
    stats = hera_middleware.stats()
    return {
        "requests": n,
        "warmup": warmup,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_peak_kib": peak,
        "events_written": stats["events_written"],
        "events_dropped": stats["events_dropped"],
        "internal_errors": stats["internal_errors"],
    }


if __name__ == "__main__":
    result = main(int(sys.argv[1]), int(sys.argv[2]))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
