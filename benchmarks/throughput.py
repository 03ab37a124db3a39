"""Output throughput: events/s through the whole emitter path, one or 8 producer threads.

Each event goes the way a rule's event goes after the policy: ``send_event`` builds the
envelope, orjson serializes it, the line is queued, the writer thread writes it with one
``os.write``. The queue runs with ``on_full="block"``, so the figure is what the writer
sustains with nothing dropped. Afterwards every line is read back (the file) or was
read by another process (the pipe) and checked: whole JSON lines, as many as sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from hera_middleware.emit import get_emitter, send_event

_READER = r"""
import sys, orjson
bad = lines = 0
rest = b""
stream = open(sys.argv[1], "rb", buffering=0)
while True:
    chunk = stream.read(1 << 20)
    if not chunk:
        break
    parts = (rest + chunk).split(b"\n")
    rest = parts.pop()
    for line in parts:
        lines += 1
        try:
            if type(orjson.loads(line)) is not dict:
                bad += 1
        except orjson.JSONDecodeError:
            bad += 1
print(lines, bad + (1 if rest else 0))
"""


def _produce(emitter: object, n: int, threads: int) -> float:
    fields = {"client_id": "web-app"}
    per = n // threads
    ready = threading.Barrier(threads + 1)

    def work() -> None:
        ready.wait()
        for _ in range(per):
            send_event("pkce_token_exchange", fields, domain="ciam", emitter=emitter)  # type: ignore[arg-type]

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    if not emitter.flush(60):  # type: ignore[attr-defined]
        raise RuntimeError("the writer did not drain in 60 s")
    return per * threads / (time.perf_counter() - start)


def _check_file(path: Path, expected: int) -> str:
    lines = path.read_bytes().split(b"\n")
    if lines[-1] != b"":
        return "last line torn"
    lines.pop()
    bad = 0
    for line in lines:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
    if len(lines) != expected or bad:
        return f"{len(lines)} lines, {bad} torn (expected {expected})"
    return "ok"


def to_file(workdir: Path, tag: str, n: int, threads: int) -> tuple[float, str]:
    path = workdir / f"throughput-{tag}.jsonl"
    path.unlink(missing_ok=True)
    emitter = get_emitter(f"file:{path}", "block")
    rate = _produce(emitter, n, threads)
    emitter.close()
    check = _check_file(path, n // threads * threads)
    path.unlink()
    return rate, check


def to_pipe(workdir: Path, tag: str, n: int, threads: int) -> tuple[float, str]:
    fifo = workdir / f"throughput-{tag}.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    # The reader is another process, as a log shipper is; it opens the FIFO itself.
    with subprocess.Popen(
        [sys.executable, "-c", _READER, str(fifo)], stdout=subprocess.PIPE
    ) as reader:
        emitter = get_emitter(f"file:{fifo}", "block")
        rate = _produce(emitter, n, threads)
        emitter.close()  # end of file for the reader
        out, _ = reader.communicate(timeout=60)
    fifo.unlink()
    lines, bad = (int(x) for x in out.split())
    expected = n // threads * threads
    check = "ok" if lines == expected and not bad else f"{lines} lines, {bad} torn"
    return rate, check
