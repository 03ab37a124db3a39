"""A small closed-loop HTTP/1.1 load generator: a fixed number of requests, exact latencies.

``python -m benchmarks.loadgen PORT PATH BODY REQUESTS CONNECTIONS`` sends ``REQUESTS``
POSTs over ``CONNECTIONS`` keep-alive connections to 127.0.0.1 and prints one JSON
object: requests/s over the whole run and the latency percentiles (ms) of every request.
It runs in its own process, so it competes with the server for a core, not for its GIL.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson


def _request(port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: hera-bench\r\n"
        "Accept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _connection(
    port: int, request: bytes, todo: list[int], latencies: list[int], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter_ns
    try:
        while todo:
            todo.pop()
            start = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(clock() - start)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def _percentile(ordered: list[int], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index] / 1e6


async def run(
    port: int, path: str, body: bytes, requests: int, connections: int
) -> dict[str, object]:
    request = _request(port, path, body)
    todo = list(range(requests))
    latencies: list[int] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, request, todo, latencies, statuses) for _ in range(connections))
    )
    took = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": took,
        "rps": len(latencies) / took,
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "statuses": {str(k): v for k, v in statuses.items()},
    }


if __name__ == "__main__":
    port, path, body, requests, connections = sys.argv[1:6]
    result = asyncio.run(run(int(port), path, body.encode(), int(requests), int(connections)))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
