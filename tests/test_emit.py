"""The emission path: envelope, serialization limits, the queue, the writer thread."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest

import hera_middleware
from hera_middleware import _diagnostics, _emitter, _stats, catalog, emit
from hera_middleware.catalog import EventType, declare_event
from hera_middleware.emit import (
    Emitter,
    emit_event,
    format_ts,
    get_emitter,
    send_event,
    set_default_target,
)
from hera_middleware.sinks import FdSink, FileSink
from hera_middleware.testing import capture_events

TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
SRC = str(Path(hera_middleware.__file__).resolve().parents[1])
ZERO = {
    "events_written": 0,
    "events_dropped": 0,
    "fields_nulled": 0,
    "facts_unknown": 0,
    "internal_errors": 0,
}


class ListSink:
    """A sink that keeps every line."""

    name = "test-sink"

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass

    def events(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.lines]


class GatedSink(ListSink):
    """A sink whose writes wait until the gate opens (a blocked stdout)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, line: bytes) -> None:
        self.entered.set()
        self.gate.wait()
        super().write(line)


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()
    yield
    _diagnostics._reset_for_tests()


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a default target or declarations, and leaves no emitters."""
    before = dict(emit._EMITTERS)
    monkeypatch.setattr(emit, "_default_target", None)
    monkeypatch.setattr(catalog, "_declared", MappingProxyType({}))
    yield
    for key, emitter in list(emit._EMITTERS.items()):
        if before.get(key) is not emitter:
            del emit._EMITTERS[key]
            emitter.close(timeout=5.0)


@pytest.fixture
def make_emitter() -> Iterator[Callable[..., Emitter]]:
    """Emitters that are flushed and stopped at teardown."""
    made: list[Emitter] = []

    def make(output: object, **options: object) -> Emitter:
        emitter = Emitter(output, **options)  # type: ignore[arg-type]
        made.append(emitter)
        return emitter

    yield make
    for emitter in made:
        emitter.close(timeout=5.0)


def exactly(message: str) -> str:
    """A pytest.raises match pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


def strip_ts(event: dict[str, object]) -> dict[str, object]:
    assert isinstance(event["ts"], str)
    assert TS.fullmatch(event["ts"])
    return {k: v for k, v in event.items() if k != "ts"}


def line_for(event: str, **fields: object) -> bytes:
    record = {"type": "audit", "event": event, **fields, "domain": "ciam", "ts": "t"}
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        pytest.param(0.0, "1970-01-01T00:00:00.000Z", id="epoch"),
        pytest.param(1796297653.1234, "2026-12-03T11:34:13.123Z", id="truncates-to-ms"),
        pytest.param(1796297653.9995, "2026-12-03T11:34:13.999Z", id="never-rounds-up"),
        pytest.param(951782400.5, "2000-02-29T00:00:00.500Z", id="leap-day"),
    ],
)
def test_format_ts(t: float, expected: str) -> None:
    """Timestamps are RFC 3339 UTC with three decimals and a Z."""
    assert format_ts(t) == expected


def test_format_ts_cache_follows_the_second() -> None:
    """The cached second prefix is replaced when the second changes."""
    assert format_ts(1796297653.001) == "2026-12-03T11:34:13.001Z"
    assert format_ts(1796297654.002) == "2026-12-03T11:34:14.002Z"
    assert format_ts(1796297653.003) == "2026-12-03T11:34:13.003Z"


def test_envelope_and_key_order(make_emitter: Callable[..., Emitter]) -> None:
    """A line is type, event, the fields in the given order, domain, ts, and a newline."""
    sink = ListSink()
    emitter = make_emitter(sink)
    send_event(
        "pkce_failed",
        {"reason": "verifier_mismatch", "client_id": "web"},
        domain="d",
        emitter=emitter,
    )
    assert emitter.flush()
    [line] = sink.lines
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    event = orjson.loads(line)
    assert list(event) == ["type", "event", "reason", "client_id", "domain", "ts"]
    assert strip_ts(event) == {
        "type": "audit",
        "event": "pkce_failed",
        "reason": "verifier_mismatch",
        "client_id": "web",
        "domain": "d",
    }
    prefix = b'{"type":"audit","event":"pkce_failed","reason":"verifier_mismatch",'
    assert line.startswith(prefix + b'"client_id":"web","domain":"d","ts":"')


def test_fields_named_like_envelope_keys_are_ignored(make_emitter: Callable[..., Emitter]) -> None:
    """A field called type, event, domain or ts cannot displace the envelope."""
    sink = ListSink()
    emitter = make_emitter(sink)
    fields = {"a": 1, "type": "x", "domain": "evil", "ts": "0", "event": "other_thing", "b": 2}
    send_event("thing_done", fields, domain="ciam", emitter=emitter)
    assert emitter.flush()
    event = sink.events()[0]
    assert list(event) == ["type", "event", "a", "b", "domain", "ts"]
    assert strip_ts(event) == {
        "type": "audit",
        "event": "thing_done",
        "a": 1,
        "b": 2,
        "domain": "ciam",
    }


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("\ud800", "redacted", id="lone-surrogate"),
        pytest.param("ok\udcffok", "redacted", id="embedded-surrogate"),
        pytest.param(2**64, "redacted", id="int-over-64-bit"),
        pytest.param(-(2**63) - 1, "redacted", id="int-under-64-bit"),
        pytest.param(["fine", "\udc80"], "redacted", id="surrogate-in-list"),
        pytest.param({1, 2}, "redacted", id="unserializable-type"),
        pytest.param(2**64 - 1, 2**64 - 1, id="largest-u64-kept"),
        pytest.param(-(2**63), -(2**63), id="smallest-i64-kept"),
        pytest.param("é✓", "é✓", id="unicode-kept"),
    ],
)
def test_unencodable_values_become_redacted(
    value: object, written: object, make_emitter: Callable[..., Emitter]
) -> None:
    """E15: a value orjson rejects is redacted alone; the line is still written, valid."""
    sink = ListSink()
    emitter = make_emitter(sink)
    send_event("thing_done", {"a": "keep", "bad": value, "z": None}, domain="ciam", emitter=emitter)
    assert emitter.flush()
    assert strip_ts(sink.events()[0]) == {
        "type": "audit",
        "event": "thing_done",
        "a": "keep",
        "bad": written,
        "z": None,
        "domain": "ciam",
    }
    assert emit.stats()["internal_errors"] == 0


def test_non_string_keys_are_left_out(make_emitter: Callable[..., Emitter]) -> None:
    """A field whose name is not a string cannot be a JSON key: it is dropped, not fatal."""
    sink = ListSink()
    emitter = make_emitter(sink)
    send_event("thing_done", {"a": "\ud800", 7: "x", "b": 1}, domain="ciam", emitter=emitter)  # type: ignore[dict-item]
    assert emitter.flush()
    assert strip_ts(sink.events()[0]) == {
        "type": "audit",
        "event": "thing_done",
        "a": "redacted",
        "b": 1,
        "domain": "ciam",
    }


def test_bytes_like_lines_are_written(make_emitter: Callable[..., Emitter]) -> None:
    """A bytearray handed to put() is written like bytes."""
    sink = ListSink()
    emitter = make_emitter(sink)
    emitter.put(bytearray(line_for("thing_done")))  # type: ignore[arg-type]
    assert emitter.flush()
    assert sink.lines == [line_for("thing_done")]


def test_unencodable_domain_is_redacted_too(make_emitter: Callable[..., Emitter]) -> None:
    """Even a bad envelope value gives a valid line."""
    sink = ListSink()
    emitter = make_emitter(sink)
    send_event("thing_done", {}, domain="\udcff", emitter=emitter)
    assert emitter.flush()
    assert strip_ts(sink.events()[0]) == {
        "type": "audit",
        "event": "thing_done",
        "domain": "redacted",
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"a": "x" * 3000, "b": "y" * 2000, "c": "small"},
            {"a": "trimmed", "b": "y" * 2000, "c": "small"},
            id="largest-only",
        ),
        pytest.param(
            {"a": "x" * 2500, "b": "y" * 2600, "c": "z" * 2000},
            {"a": "trimmed", "b": "trimmed", "c": "z" * 2000},
            id="largest-first-until-it-fits",
        ),
        pytest.param(
            {"a": ["x" * 100] * 50, "b": "keep"},
            {"a": "trimmed", "b": "keep"},
            id="large-list",
        ),
        pytest.param(
            {"a": "\u00e9" * 2100, "b": "keep"},
            {"a": "trimmed", "b": "keep"},
            id="counts-utf8-bytes",
        ),
    ],
)
def test_oversized_event_trimmed_field_by_field(
    fields: dict[str, object], expected: dict[str, object], make_emitter: Callable[..., Emitter]
) -> None:
    """E17: a line over 4096 bytes loses its largest values first, until it fits."""
    sink = ListSink()
    emitter = make_emitter(sink)
    send_event("thing_done", fields, domain="ciam", emitter=emitter)
    assert emitter.flush()
    [line] = sink.lines
    assert len(line) <= 4096
    assert strip_ts(orjson.loads(line)) == {
        "type": "audit",
        "event": "thing_done",
        **expected,
        "domain": "ciam",
    }


def test_trim_boundary_is_4096_bytes_with_newline(make_emitter: Callable[..., Emitter]) -> None:
    """A line of exactly 4096 bytes is written whole; one byte more is trimmed."""
    sink = ListSink()
    emitter = make_emitter(sink)
    envelope = (
        len(
            orjson.dumps(
                {
                    "type": "audit",
                    "event": "thing_done",
                    "a": "",
                    "domain": "ciam",
                    "ts": format_ts(0),
                }
            )
        )
        + 1
    )
    send_event("thing_done", {"a": "x" * (4096 - envelope)}, domain="ciam", emitter=emitter)
    send_event("thing_done", {"a": "x" * (4097 - envelope)}, domain="ciam", emitter=emitter)
    assert emitter.flush()
    assert len(sink.lines[0]) == 4096
    assert len(sink.lines[1]) < 4096
    assert orjson.loads(sink.lines[0])["a"] == "x" * (4096 - envelope)
    assert orjson.loads(sink.lines[1])["a"] == "trimmed"


def test_too_many_fields_drops_trailing_fields(make_emitter: Callable[..., Emitter]) -> None:
    """When keys alone exceed the limit, trailing fields go and the envelope stays."""
    sink = ListSink()
    emitter = make_emitter(sink)
    fields = {f"field_{i:04d}": i for i in range(600)}
    send_event("thing_done", fields, domain="ciam", emitter=emitter)
    assert emitter.flush()
    [line] = sink.lines
    assert len(line) <= 4096
    event = orjson.loads(line)
    kept = [k for k in event if k.startswith("field_")]
    assert kept == [f"field_{i:04d}" for i in range(len(kept))]
    assert list(event)[-2:] == ["domain", "ts"]
    assert len(line) + len(b',"field_0000":000') > 4096


def _writes_to_a_pipe(
    monkeypatch: pytest.MonkeyPatch,
    make_emitter: Callable[..., Emitter],
    fill: Callable[[Emitter], None],
) -> tuple[list[bytes], bytes]:
    """The writes an emitter makes to a pipe while ``fill`` queues lines, and what the
    other end read."""
    r, w = os.pipe()
    sink = FdSink(w, "test pipe")
    calls: list[bytes] = []
    real_write = os.write

    def recording_write(fd: int, data: bytes) -> int:
        if fd == sink.out:  # the sink's own duplicate of w
            calls.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)
    reader: list[bytes] = []
    drain = read_all(r, reader)
    try:
        emitter = make_emitter(sink)
        fill(emitter)
        assert emitter.flush()
    finally:
        os.close(w)
        sink.close()  # its duplicate of w: the reader sees the end
    drain.join(10)
    assert not drain.is_alive()
    os.close(r)
    return calls, b"".join(reader)


def test_every_line_is_in_one_write_of_whole_lines(
    monkeypatch: pytest.MonkeyPatch, make_emitter: Callable[..., Emitter]
) -> None:
    """A line is never split across writes; lines queued together share one write of
    at most 4096 bytes, so a pipe still takes each write atomically."""

    def fill(emitter: Emitter) -> None:
        # Queued faster than one write per line: the writer joins them.
        for i in range(2000):
            send_event("thing_done", {"i": i, "pad": "p" * 40}, domain="ciam", emitter=emitter)

    calls, read = _writes_to_a_pipe(monkeypatch, make_emitter, fill)
    assert all(0 < len(c) <= 4096 and c.endswith(b"\n") for c in calls)
    lines = [line for c in calls for line in c.split(b"\n")[:-1]]
    assert [orjson.loads(line)["i"] for line in lines] == list(range(2000))
    assert read == b"".join(calls)
    assert len(calls) < 2000  # joined: the backlog did not cost a write per line


def test_a_4096_byte_line_is_written_alone(
    monkeypatch: pytest.MonkeyPatch, make_emitter: Callable[..., Emitter]
) -> None:
    """Joining never makes a write longer than 4096 bytes: a full-size line goes alone."""
    small = b'{"type":"audit","event":"a_b","domain":"ciam"}\n'
    full = b'{"type":"audit","event":"a_b","pad":"' + b"x" * (4096 - 40) + b'"}\n'
    assert len(full) == 4096

    def fill(emitter: Emitter) -> None:
        # Lines queued before the writer thread starts: one backlog, seen whole.
        emitter._dq.extend([small, full, small, small, small])
        emitter._start()

    calls, read = _writes_to_a_pipe(monkeypatch, make_emitter, fill)
    assert calls == [small, full, small * 3]
    assert read == small + full + small * 3


def read_all(fd: int, into: list[bytes]) -> threading.Thread:
    """Read ``fd`` to EOF in a thread, appending chunks."""

    def run() -> None:
        while chunk := os.read(fd, 65536):
            into.append(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "shared", [pytest.param(True, id="one-emitter"), pytest.param(False, id="emitter-per-thread")]
)
def test_concurrent_lines_never_torn(shared: bool) -> None:
    """E17: 8 threads emitting big events into one pipe give only whole, valid lines."""
    r, w = os.pipe()
    chunks: list[bytes] = []
    reader = read_all(r, chunks)
    emitters = [Emitter(FdSink(w, "test pipe"), on_full="block") for _ in range(1 if shared else 8)]

    def produce(n: int) -> None:
        emitter = emitters[0 if shared else n]
        for i in range(200):
            send_event(
                "thing_done",
                {"thread": n, "i": i, "pad": chr(97 + n) * 3900},
                domain="ciam",
                emitter=emitter,
            )

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for emitter in emitters:
        assert emitter.close()
    os.close(w)
    reader.join()
    os.close(r)
    lines = b"".join(chunks).split(b"\n")
    assert lines.pop() == b""
    events = [orjson.loads(line) for line in lines]
    assert len(events) == 1600
    for n in range(8):
        mine = [e for e in events if e["thread"] == n]
        assert [e["i"] for e in mine] == list(range(200))
        assert all(e["pad"] == chr(97 + n) * 3900 for e in mine)
    assert emit.stats()["events_written"] == 1600


def test_blocked_output_drops_counts_and_reports(
    capsys: pytest.CaptureFixture[str], make_emitter: Callable[..., Emitter]
) -> None:
    """E19: with output blocked, put() returns, drops are counted, and the exact count follows."""
    sink = GatedSink()
    emitter = make_emitter(sink, maxsize=4)
    emitter.put(line_for("first_done"))
    assert sink.entered.wait(5)  # the writer holds the first line; the queue is empty
    for i in range(4):
        emitter.put(line_for("queued_done", i=i))
    for i in range(10):
        emitter.put(line_for("lost_done", i=i))
    assert emit.stats()["events_dropped"] == 10
    assert emit.stats()["events_written"] == 0
    sink.gate.set()
    assert emitter.flush()
    events = sink.events()
    assert [e["event"] for e in events] == ["first_done", "events_dropped"] + ["queued_done"] * 4
    assert strip_ts(events[1]) == {
        "type": "audit",
        "event": "events_dropped",
        "count": 10,
        "domain": "ciam",
    }
    assert list(events[1]) == ["type", "event", "count", "domain", "ts"]
    assert emit.stats() == {**ZERO, "events_written": 5, "events_dropped": 10}
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "hera-middleware: warning: test-sink did not keep up: 10 events were dropped while the "
        "queue of 4 lines was full (on_full 'block' never drops) (1 events written, 10 dropped, "
        "0 fields nulled, 0 facts unknown, 0 internal errors)"
    ]


def test_events_dropped_takes_the_domain_of_the_lost_line(
    make_emitter: Callable[..., Emitter],
) -> None:
    """The loss report carries the domain of the last line it stands for."""
    sink = GatedSink()
    emitter = make_emitter(sink, maxsize=1)
    emitter.put(line_for("first_done"))
    assert sink.entered.wait(5)
    emitter.put(line_for("queued_done"))
    emitter.put(orjson.dumps({"type": "audit", "event": "lost_done", "domain": "shop"}) + b"\n")
    sink.gate.set()
    assert emitter.flush()
    assert strip_ts(sink.events()[1]) == {
        "type": "audit",
        "event": "events_dropped",
        "count": 1,
        "domain": "shop",
    }


def test_drop_mode_recovers_after_the_stall(make_emitter: Callable[..., Emitter]) -> None:
    """Once the writer drains the queue, puts are accepted again."""
    sink = GatedSink()
    emitter = make_emitter(sink, maxsize=2)
    emitter.put(line_for("first_done"))
    assert sink.entered.wait(5)
    for _ in range(5):
        emitter.put(line_for("more_done"))
    sink.gate.set()
    assert emitter.flush()
    emitter.put(line_for("later_done"))
    assert emitter.flush()
    names = [e["event"] for e in sink.events()]
    assert names == ["first_done", "events_dropped", "more_done", "more_done", "later_done"]
    assert sink.events()[1]["count"] == 3


def test_block_mode_loses_nothing(make_emitter: Callable[..., Emitter]) -> None:
    """E19: with on_full='block' a producer waits for room and nothing is ever dropped."""
    sink = GatedSink()
    emitter = make_emitter(sink, on_full="block", maxsize=2)

    def produce() -> None:
        for i in range(300):
            emitter.put(line_for("thing_done", i=i))

    producer = threading.Thread(target=produce)
    producer.start()
    assert sink.entered.wait(5)
    while len(emitter._dq) < 2:  # the producer is now waiting for room
        time.sleep(0.001)
    sink.gate.set()
    producer.join()
    assert emitter.flush()
    assert [e["i"] for e in sink.events()] == list(range(300))
    assert emit.stats() == {**ZERO, "events_written": 300}


class SpyCondition(threading.Condition):
    """A Condition that records each wait's timeout and signals that a wait began."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.timeouts: list[float | None] = []
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        self.waiting.set()
        return super().wait(timeout)


def test_drop_mode_never_waits_on_an_event_loop_thread(
    make_emitter: Callable[..., Emitter],
) -> None:
    """E19: a full queue drops at once on a thread running an event loop; others wait briefly."""
    sink = GatedSink()
    emitter = make_emitter(sink, maxsize=1)
    emitter.put(line_for("first_done"))
    assert sink.entered.wait(5)
    emitter.put(line_for("queued_done"))  # the queue is full now
    spy = emitter._cond = SpyCondition(emitter._lock)

    async def on_the_loop() -> None:
        emitter.put(line_for("loop_done"))

    asyncio.run(on_the_loop())
    assert spy.timeouts == []
    assert (emit.stats()["events_dropped"], emitter._stalled) == (1, False)
    emitter.put(line_for("thread_done"))  # no loop on this thread: one brief wait
    assert len(spy.timeouts) >= 1
    assert all(t is not None and 0 < t <= _emitter.FULL_WAIT for t in spy.timeouts)
    assert emit.stats()["events_dropped"] == 2
    sink.gate.set()
    assert emitter.flush()
    assert [(e["event"], e.get("count")) for e in sink.events()] == [
        ("first_done", None),
        ("events_dropped", 2),
        ("queued_done", None),
    ]


def test_block_mode_waits_on_an_event_loop_thread(make_emitter: Callable[..., Emitter]) -> None:
    """on_full='block' is the opt-in: on an event loop thread too it waits and never drops."""
    sink = GatedSink()
    emitter = make_emitter(sink, on_full="block", maxsize=1)
    emitter.put(line_for("first_done"))
    assert sink.entered.wait(5)
    emitter.put(line_for("queued_done"))
    spy = emitter._cond = SpyCondition(emitter._lock)

    async def on_the_loop() -> None:
        emitter.put(line_for("loop_done"))

    loop_thread = threading.Thread(target=asyncio.run, args=(on_the_loop(),))
    loop_thread.start()
    assert spy.waiting.wait(5)  # the loop's put is waiting for room
    sink.gate.set()
    loop_thread.join(5)
    assert not loop_thread.is_alive()
    assert emitter.flush()
    assert [e["event"] for e in sink.events()] == ["first_done", "queued_done", "loop_done"]
    assert emit.stats() == {**ZERO, "events_written": 3}


TOO_MANY = (
    "too many outputs: this process already has {} (each has its own queue and writer "
    "thread); create the output once and reuse it rather than passing a new callable or "
    "sink object each time"
)


@pytest.fixture
def small_registry(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[object, str], Emitter]:
    """An empty emitter registry with room for two."""
    registry: dict[tuple[object, str], Emitter] = {}
    monkeypatch.setattr(emit, "_EMITTERS", registry)
    monkeypatch.setattr(emit, "MAX_EMITTERS", 2)
    return registry


def test_new_output_per_call_hits_the_cap(
    small_registry: dict[tuple[object, str], Emitter],
) -> None:
    """A new callable per call is refused beyond the cap; known outputs still work."""
    got: list[dict[str, object]] = []
    emit_event("breach_check_passed", output=got.append)
    emit_event("breach_check_passed", output=lambda event: None)
    with pytest.raises(ValueError, match=exactly(TOO_MANY.format(2))):
        emit_event("breach_check_passed", output=lambda event: None)
    with pytest.raises(ValueError, match=exactly(TOO_MANY.format(2))):
        get_emitter(ListSink())
    emit_event("breach_check_passed", output=got.append)  # the same output: no new emitter
    assert len(small_registry) == 2
    assert get_emitter(got.append).flush()
    assert [e["event"] for e in got] == ["breach_check_passed"] * 2


def test_idle_file_emitters_make_room(
    small_registry: dict[tuple[object, str], Emitter], tmp_path: Path
) -> None:
    """At the cap an idle file: emitter is closed to make room; it reopens if used again."""
    old = get_emitter(f"file:{tmp_path}/old.jsonl")
    old.put(line_for("one_done"))
    assert old.flush()
    keep = get_emitter(ListSink())
    new = get_emitter(f"file:{tmp_path}/new.jsonl")
    assert list(small_registry.values()) == [keep, new]
    assert old._thread is None
    assert type(old.sink) is FileSink
    assert old.sink.out == -1  # closed
    old.put(line_for("two_done"))  # whoever still holds it can go on using it
    assert old.close()
    events = [orjson.loads(x)["event"] for x in (tmp_path / "old.jsonl").read_bytes().splitlines()]
    assert events == ["one_done", "two_done"]
    third = get_emitter(ListSink())
    assert list(small_registry.values()) == [keep, third]
    with pytest.raises(ValueError, match=re.escape(TOO_MANY.format(2))):
        get_emitter(f"file:{tmp_path}/more.jsonl")


@pytest.mark.parametrize(
    "why", [pytest.param("busy", id="busy"), pytest.param("default", id="default")]
)
def test_busy_or_default_file_emitters_are_kept(
    why: str,
    small_registry: dict[tuple[object, str], Emitter],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file: emitter with work in hand, or the default target's, is never evicted."""
    keep = get_emitter(ListSink())
    file_emitter = get_emitter(f"file:{tmp_path}/events.jsonl")
    if why == "busy":
        monkeypatch.setattr(file_emitter, "idle", lambda: False)
    else:
        set_default_target("ciam", file_emitter)
    with pytest.raises(ValueError, match=re.escape(TOO_MANY.format(2))):
        get_emitter(ListSink())
    assert list(small_registry.values()) == [keep, file_emitter]


def test_broken_pipe_warns_once_and_counts(
    capsys: pytest.CaptureFixture[str], make_emitter: Callable[..., Emitter]
) -> None:
    """E18: a pipe with no reader gives one warning, counted drops, no traceback, no death."""
    r, w = os.pipe()
    os.close(r)
    try:
        emitter = make_emitter(FdSink(w, "test pipe"))
        for i in range(5):
            emitter.put(line_for("thing_done", i=i))
        assert emitter.flush()
        assert emit.stats() == {**ZERO, "events_dropped": 5}
        assert capsys.readouterr().err.splitlines() == [
            "hera-middleware: warning: cannot write events to test pipe (EPIPE: Broken pipe); "
            "they are dropped and counted until it recovers (0 events written, 1 dropped, "
            "0 fields nulled, 0 facts unknown, 0 internal errors)"
        ]
    finally:
        os.close(w)


def test_closed_descriptor_warns_once_and_counts(
    capsys: pytest.CaptureFixture[str], make_emitter: Callable[..., Emitter]
) -> None:
    """E18: a closed descriptor (EBADF) is one warning and counted drops."""
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    emitter = make_emitter(FdSink(w, "closed fd"))
    for i in range(3):
        emitter.put(line_for("thing_done", i=i))
    assert emitter.flush()
    assert emit.stats()["events_dropped"] == 3
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("hera-middleware: warning: cannot write events to closed fd (EBADF: ")


class FlakySink(ListSink):
    """A sink that fails with an OSError for its first ``failures`` writes."""

    def __init__(self, failures: int, code: int) -> None:
        super().__init__()
        self.failures = failures
        self.code = code

    def write(self, line: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError(self.code, os.strerror(self.code), "/secret/path")
        super().write(line)


def test_output_recovery_writes_the_loss_report(
    capsys: pytest.CaptureFixture[str], make_emitter: Callable[..., Emitter]
) -> None:
    """After ENOSPC clears, the first good write is followed by events_dropped with the count."""
    sink = FlakySink(3, errno.ENOSPC)
    sink.name = "full disk"
    emitter = make_emitter(sink)
    for i in range(5):
        emitter.put(line_for("thing_done", i=i))
    assert emitter.flush()
    events = sink.events()
    assert [(e["event"], e.get("i", e.get("count"))) for e in events] == [
        ("thing_done", 3),
        ("events_dropped", 3),
        ("thing_done", 4),
    ]
    assert emit.stats() == {**ZERO, "events_written": 2, "events_dropped": 3}
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot write events to full disk (ENOSPC: No space left on device)" in err
    assert "/secret/path" not in err


def test_failed_loss_report_is_retried(make_emitter: Callable[..., Emitter]) -> None:
    """If the events_dropped line itself fails, its count waits for the next good write."""
    outcomes = iter([False, True, False, True, True])  # line, line, report, line, report

    class Scripted(ListSink):
        def write(self, line: bytes) -> None:
            if not next(outcomes):
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            super().write(line)

    sink = Scripted()
    emitter = make_emitter(sink)
    for i in range(3):
        emitter.put(line_for("thing_done", i=i))
    assert emitter.flush()
    assert [(e["event"], e.get("i", e.get("count"))) for e in sink.events()] == [
        ("thing_done", 1),
        ("thing_done", 2),
        ("events_dropped", 1),
    ]
    assert emit.stats() == {**ZERO, "events_written": 2, "events_dropped": 1}


def test_sink_that_emits_into_its_own_emitter_never_deadlocks(
    make_emitter: Callable[..., Emitter],
) -> None:
    """From the writer thread a put never waits (even in block mode) and flush returns False."""
    seen: list[object] = []
    emitter: Emitter

    def sink(event: dict[str, object]) -> None:
        seen.append(event["event"])
        if event["event"] == "outer_done":
            emitter.put(line_for("nested_one"))  # room for one
            emitter.put(line_for("nested_two"))  # full: dropped, not waited for
            seen.append(emitter.flush(timeout=5))
            done.set()

    done = threading.Event()
    emitter = make_emitter(sink, on_full="block", maxsize=1)
    emitter.put(line_for("outer_done"))
    assert done.wait(5)
    assert emitter.flush()
    assert seen == ["outer_done", False, "events_dropped", "nested_one"]


def test_sink_exception_is_reported_by_type_only(
    capsys: pytest.CaptureFixture[str], make_emitter: Callable[..., Emitter]
) -> None:
    """A user sink that raises costs the line, not the writer; its message is not printed."""
    calls: list[dict[str, object]] = []

    def sink(event: dict[str, object]) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("token=abc123")

    emitter = make_emitter(sink)
    emitter.put(line_for("one_done"))
    emitter.put(line_for("two_done"))
    assert emitter.flush()
    assert [c["event"] for c in calls] == ["one_done", "two_done", "events_dropped"]
    err = capsys.readouterr().err
    assert "(RuntimeError)" in err
    assert "abc123" not in err


def test_put_survives_a_writer_that_cannot_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """put() never raises: a thread that cannot start is an internal error, retried later."""
    sink = ListSink()
    emitter = Emitter(sink)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        emitter.put(line_for("one_done"))
    assert emit.stats()["internal_errors"] == 1
    assert emitter.flush(timeout=0) is False
    assert "internal error in emitter.start: RuntimeError" in capsys.readouterr().err
    emitter.put(line_for("two_done"))
    assert emitter.close()
    assert [e["event"] for e in sink.events()] == ["one_done", "two_done"]


def test_send_event_failure_is_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An error while sending counts internal_errors and names only the exception type."""

    class Broken:
        def put(self, line: bytes) -> None:
            raise ValueError("code=supersecret")

    send_event("thing_done", {}, domain="ciam", emitter=Broken())  # type: ignore[arg-type]
    assert emit.stats()["internal_errors"] == 1
    err = capsys.readouterr().err
    assert err.startswith("hera-middleware: warning: internal error in send_event: ValueError;")
    assert "supersecret" not in err


def test_warnings_are_rate_limited_per_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One warning per key per minute; the next says how many were suppressed."""
    now = [1000.0]
    monkeypatch.setattr(_diagnostics, "_clock", lambda: now[0])
    _diagnostics.warn("k", "first")
    _diagnostics.warn("k", "second")
    _diagnostics.warn("other", "third")
    now[0] += 61
    _diagnostics.warn("k", "fourth")
    summary = "0 events written, 0 dropped, 0 fields nulled, 0 facts unknown, 0 internal errors"
    assert capsys.readouterr().err.splitlines() == [
        f"hera-middleware: warning: first ({summary})",
        f"hera-middleware: warning: third ({summary})",
        f"hera-middleware: warning: fourth ({summary}; 1 similar warnings suppressed)",
    ]


def test_flush_waits_for_the_writer(make_emitter: Callable[..., Emitter]) -> None:
    """flush() returns True once the lines are written, False when its timeout passes first."""
    sink = GatedSink()
    emitter = make_emitter(sink)
    emitter.put(line_for("thing_done"))
    assert emitter.flush(timeout=0.01) is False
    sink.gate.set()
    assert emitter.flush() is True
    assert len(sink.lines) == 1


def test_flush_of_an_unused_emitter_is_immediate() -> None:
    """An emitter that never got a line has nothing to flush."""
    assert Emitter(ListSink()).flush(timeout=0) is True


def test_close_stops_the_writer_and_a_later_put_restarts_it() -> None:
    """close() flushes and stops the thread; the emitter still works afterwards."""
    sink = ListSink()
    emitter = Emitter(sink)
    emitter.put(line_for("one_done"))
    assert emitter.close()
    assert emitter._thread is None
    emitter.put(line_for("two_done"))
    assert emitter.close()
    assert [e["event"] for e in sink.events()] == ["one_done", "two_done"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"on_full": "wait"}, "on_full 'wait' is not valid; use 'drop' or 'block'", id="on-full"
        ),
        pytest.param({"maxsize": 0}, "maxsize must be at least 1, not 0", id="maxsize"),
    ],
)
def test_emitter_rejects_bad_options(options: dict[str, object], message: str) -> None:
    """Bad emitter options are ValueErrors with a clear message."""
    with pytest.raises(ValueError, match=re.escape(message)):
        Emitter(ListSink(), **options)  # type: ignore[arg-type]


def test_get_emitter_is_one_per_output_and_mode() -> None:
    """get_emitter returns the same emitter for the same (output, on_full)."""
    sink = ListSink()
    assert get_emitter(sink) is get_emitter(sink, "drop")
    assert get_emitter(sink, "block") is not get_emitter(sink)
    assert get_emitter("stderr") is get_emitter("stderr")
    got: list[dict[str, object]] = []
    assert get_emitter(got.append) is get_emitter(got.append)  # equal bound methods

    class Unhashable(ListSink):
        __hash__ = None  # type: ignore[assignment]

    unhashable = Unhashable()
    assert get_emitter(unhashable) is get_emitter(unhashable)
    assert get_emitter(unhashable) is not get_emitter(Unhashable())
    with pytest.raises(ValueError, match="is not valid"):
        get_emitter("stdot")


def test_emit_event_catalog_order_and_nulls() -> None:
    """A catalog event gets its fields in catalog order; a missing one is null and counted."""
    sink = ListSink()
    emit_event("captcha_failed", reason="timeout", output=sink)
    emit_event("social_login_completed", first_login=True, provider="GitHub", output=sink)
    assert get_emitter(sink).flush()
    events = [strip_ts(e) for e in sink.events()]
    assert events == [
        {
            "type": "audit",
            "event": "captcha_failed",
            "flow": None,
            "reason": "timeout",
            "domain": "ciam",
        },
        {
            "type": "audit",
            "event": "social_login_completed",
            "provider": "github",
            "first_login": True,
            "domain": "ciam",
        },
    ]
    assert list(sink.events()[0]) == ["type", "event", "flow", "reason", "domain", "ts"]
    assert emit.stats()["fields_nulled"] == 1


def test_emit_event_declared_event_order_nulls_and_policy() -> None:
    """A declared event gets its declared fields in declared order; values pass the policy."""
    declare_event("password_reset_requested", ["method", "client_id", "attempts", "flow"])
    sink = ListSink()
    emit_event(
        "password_reset_requested",
        attempts=3,
        client_id="alice@example.com",
        method="Email",
        domain="shop",
        output=sink,
    )
    assert get_emitter(sink).flush()
    [event] = sink.events()
    assert list(event) == [
        "type",
        "event",
        "method",
        "client_id",
        "attempts",
        "flow",
        "domain",
        "ts",
    ]
    assert strip_ts(event) == {
        "type": "audit",
        "event": "password_reset_requested",
        "method": "email",
        "client_id": "redacted",
        "attempts": 3,
        "flow": None,
        "domain": "shop",
    }
    assert emit.stats()["fields_nulled"] == 1


UNKNOWN_TAIL = (
    " — declare custom events with hera_middleware.declare_event(name, fields) or under "
    "`events:` in a rule file"
)


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        pytest.param(
            "Login",
            {},
            "event name 'Login' is not of the form <noun>_<verb> (lowercase words joined by "
            "'_', for example 'password_reset_requested')",
            id="bad-name",
        ),
        pytest.param(
            "events_dropped",
            {"count": 1},
            "event name 'events_dropped' is reserved for the library's own loss reports",
            id="reserved-name",
        ),
        pytest.param(
            "pkce_authorise",
            {"client_id": "web"},
            "unknown event 'pkce_authorise' (did you mean 'pkce_authorize'?)" + UNKNOWN_TAIL,
            id="unknown-did-you-mean",
        ),
        pytest.param(
            "thing_done", {}, "unknown event 'thing_done'" + UNKNOWN_TAIL, id="unknown-undeclared"
        ),
        pytest.param(
            "passwrd_reset_requested",
            {},
            "unknown event 'passwrd_reset_requested' (did you mean 'password_reset_requested'?)"
            + UNKNOWN_TAIL,
            id="unknown-near-a-declared-one",
        ),
        pytest.param(
            "pkce_authorize",
            {"clientid": "x"},
            "event 'pkce_authorize' has no field 'clientid' (its fields: client_id); "
            "did you mean 'client_id'?",
            id="catalog-unknown-field",
        ),
        pytest.param(
            "breach_check_passed",
            {"reason": "x"},
            "event 'breach_check_passed' has no field 'reason' (its fields: none)",
            id="catalog-no-fields",
        ),
        pytest.param(
            "password_reset_requested",
            {"email": "a@b.example"},
            "event 'password_reset_requested' has no field 'email' (its fields: flow, channel)",
            id="declared-unknown-field",
        ),
        pytest.param(
            "password_reset_requested",
            {"chanel": "sms"},
            "event 'password_reset_requested' has no field 'chanel' (its fields: flow, "
            "channel); did you mean 'channel'?",
            id="declared-field-typo",
        ),
    ],
)
def test_emit_event_rejects(name: str, fields: dict[str, Any], message: str) -> None:
    """emit_event raises ValueError for an unknown event or field, and emits nothing."""
    declare_event("password_reset_requested", ["flow", "channel"])
    sink = ListSink()
    with pytest.raises(ValueError, match=exactly(message)):
        emit_event(name, output=sink, **fields)
    assert emit.stats() == ZERO
    assert sink.lines == []


def test_declare_event_returns_the_type_and_registers_it() -> None:
    """declare_event returns the EventType; the same declaration again is the same object."""
    first = declare_event("password_reset_requested", ("flow", "channel"))
    assert first == EventType("password_reset_requested", ("flow", "channel"))
    assert first.documented is False
    assert declare_event("password_reset_requested", ["flow", "channel"]) is first
    assert dict(catalog.declared_events()) == {"password_reset_requested": first}
    assert declare_event("account_locked", []) == EventType("account_locked", ())


def test_declaring_again_replaces_the_fields() -> None:
    """The most recent declaration of a name is the one emit_event uses."""
    declare_event("password_reset_requested", ["flow"])
    declare_event("password_reset_requested", ["channel", "flow"])
    with capture_events() as events:
        emit_event("password_reset_requested", flow="password_reset", output=ListSink())
    assert [list(e) for e in events] == [
        ["type", "event", "channel", "flow", "domain", "ts"],
    ]
    with pytest.raises(ValueError, match="has no field 'other'"):
        emit_event("password_reset_requested", other=1, output=ListSink())


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        pytest.param(
            "PasswordReset",
            [],
            "event name 'PasswordReset' is not of the form <noun>_<verb> (lowercase words "
            "joined by '_', for example 'password_reset_requested')",
            id="bad-name",
        ),
        pytest.param(
            "events_dropped",
            ["count"],
            "event name 'events_dropped' is reserved for the library's own loss reports",
            id="reserved-name",
        ),
        pytest.param(
            "pkce_authorize",
            ["client_id"],
            "'pkce_authorize' is a documented event; its fields are fixed",
            id="catalog-event",
        ),
        pytest.param(
            "thing_done",
            "reason",
            "the fields of 'thing_done' are a list of field names, not str",
            id="fields-a-string",
        ),
        pytest.param(
            "thing_done",
            None,
            "the fields of 'thing_done' are a list of field names, not NoneType",
            id="fields-none",
        ),
        pytest.param(
            "thing_done",
            ["Bad"],
            "event 'thing_done': field name 'Bad' must be a lowercase identifier (letters, "
            "digits, '_')",
            id="bad-field-name",
        ),
        pytest.param(
            "thing_done",
            [7],
            "event 'thing_done': field name 7 must be a lowercase identifier (letters, "
            "digits, '_')",
            id="field-not-a-string",
        ),
        pytest.param(
            "thing_done",
            ["domain"],
            "event 'thing_done': field name 'domain' is part of the event envelope",
            id="envelope-field",
        ),
        pytest.param(
            "thing_done",
            ["reason", "password"],
            "event 'thing_done': a field named 'password' would carry a password; events "
            "never carry secrets or personal data",
            id="secret-field",
        ),
        pytest.param(
            "thing_done",
            ["email"],
            "event 'thing_done': a field named 'email' would carry an email address; events "
            "never carry secrets or personal data",
            id="personal-data-field",
        ),
        pytest.param(
            "thing_done",
            ["reason", "reason"],
            "event 'thing_done': the field 'reason' appears twice",
            id="duplicate-field",
        ),
    ],
)
def test_declare_event_rejects(name: str, fields: Any, message: str) -> None:
    """declare_event applies the rule file's checks and registers nothing on failure."""
    with pytest.raises(ValueError, match=exactly(message)):
        declare_event(name, fields)
    assert dict(catalog.declared_events()) == {}


@pytest.mark.parametrize(
    "domain",
    [
        pytest.param("ciam", id="word"),
        pytest.param("shop.eu-1", id="dots-and-dashes"),
        pytest.param("A_b9", id="mixed"),
        pytest.param("d" * 64, id="64-chars"),
    ],
)
def test_emit_event_accepts_short_domains(domain: str) -> None:
    """A domain of letters, digits, '_', '.' and '-' is written as given."""
    with capture_events() as events:
        emit_event("breach_check_passed", domain=domain, output=ListSink())
    assert events[0]["domain"] == domain


@pytest.mark.parametrize(
    "domain",
    [
        pytest.param("", id="empty"),
        pytest.param("two words", id="space"),
        pytest.param("ciam\n", id="newline"),
        pytest.param("a/b", id="slash"),
        pytest.param("d" * 65, id="65-chars"),
        pytest.param("é", id="non-ascii"),
        pytest.param(7, id="int"),
    ],
)
def test_emit_event_rejects_bad_domains(domain: Any) -> None:
    """Any other domain is a ValueError naming the accepted form; nothing is emitted."""
    with pytest.raises(
        ValueError,
        match=exactly(
            f"domain {domain!r} is not valid: use a short name of letters, digits, '_', '.' or "
            "'-' (at most 64 characters, for example 'ciam')"
        ),
    ):
        emit_event("breach_check_passed", domain=domain, output=ListSink())
    assert emit.stats() == ZERO


def test_emit_event_rejects_a_bad_hera_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A HERA_DOMAIN that is not a short name is refused, naming the variable."""
    monkeypatch.setenv("HERA_DOMAIN", "my shop")
    with pytest.raises(
        ValueError,
        match=exactly(
            "HERA_DOMAIN: domain 'my shop' is not valid: use a short name of letters, digits, "
            "'_', '.' or '-' (at most 64 characters, for example 'ciam')"
        ),
    ):
        emit_event("breach_check_passed", output=ListSink())


def test_emit_event_defaults_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without a middleware, domain and output default to HERA_DOMAIN and HERA_OUTPUT."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HERA_DOMAIN", "envdomain")
    monkeypatch.setenv("HERA_OUTPUT", "file:env-events.jsonl")
    emit_event("breach_check_passed")
    assert get_emitter("file:env-events.jsonl").close()
    [event] = [
        json.loads(line) for line in (tmp_path / "env-events.jsonl").read_text().splitlines()
    ]
    assert strip_ts(event) == {
        "type": "audit",
        "event": "breach_check_passed",
        "domain": "envdomain",
    }


def test_emit_event_defaults_to_the_latest_middleware_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After set_default_target, emit_event writes there; explicit arguments still win."""
    monkeypatch.setenv("HERA_DOMAIN", "envdomain")
    monkeypatch.setenv("HERA_OUTPUT", "stderr")
    first, latest, explicit = ListSink(), ListSink(), ListSink()
    set_default_target("first", get_emitter(first))
    set_default_target("shop", get_emitter(latest))
    emit_event("breach_check_passed")
    emit_event("breach_check_passed", domain="other")
    emit_event("breach_check_passed", output=explicit)
    assert emit.flush()
    assert first.lines == []
    assert [e["domain"] for e in latest.events()] == ["shop", "other"]
    assert [e["domain"] for e in explicit.events()] == ["shop"]


def test_set_default_target_rejects_a_bad_domain() -> None:
    """set_default_target validates the domain like emit_event and keeps the old target."""
    sink = ListSink()
    with pytest.raises(ValueError, match=r"^domain 'a b' is not valid: "):
        set_default_target("a b", get_emitter(sink))
    assert emit._default_target is None


def test_stats_count_and_module_flush() -> None:
    """stats() has the five counters; count() adds; flush() covers every emitter."""
    emit.count("facts_unknown", 2)
    emit.count("internal_errors")
    assert emit.stats() == {**ZERO, "facts_unknown": 2, "internal_errors": 1}
    sink = ListSink()
    emit_event("breach_check_passed", output=sink)
    assert emit.flush(timeout=5.0)
    assert len(sink.lines) == 1
    assert emit.stats()["events_written"] == 1


def test_forked_child_gets_its_own_writer(make_emitter: Callable[..., Emitter]) -> None:
    """After fork the child emits through a fresh writer, to the inherited duplicate fd.

    The parent's queue is not copied into the child.
    """
    before = make_emitter(ListSink())
    before.put(line_for("before_fork"))
    assert before.flush()
    parent = os.getpid()
    r, w = os.pipe()
    gating = threading.Event()
    gate = threading.Event()
    entered = threading.Event()

    class ParentGatedFd(FdSink):
        def write(self, line: bytes) -> None:
            if gating.is_set() and os.getpid() == parent:
                entered.set()
                gate.wait()
            super().write(line)

    chunks: list[bytes] = []
    reader = read_all(r, chunks)
    sink = ParentGatedFd(w, "test pipe")
    emitter = make_emitter(sink)
    emitter.put(line_for("parent_zero"))
    assert emitter.flush()
    duplicate = sink.out
    assert duplicate not in (-1, w)
    assert emit.stats()["events_written"] == 2  # the child must not inherit this
    gating.set()
    emitter.put(line_for("parent_one"))
    assert entered.wait(5)
    emitter.put(line_for("parent_two"))  # still queued at fork time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            fresh = emit.stats() == ZERO and not emitter._dq and emitter._thread is None
            emitter.put(line_for("child_one"))
            flushed = emitter.flush(5)
            same_fd = sink.out == duplicate
            code = 0 if flushed and fresh and same_fd and emit.stats()["events_written"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    gate.set()
    assert emitter.close()  # closes the duplicate too, so the reader sees end of file
    os.close(w)
    reader.join()
    os.close(r)
    names = [orjson.loads(line)["event"] for line in b"".join(chunks).splitlines()]
    assert names == ["parent_zero", "child_one", "parent_one", "parent_two"]


def run_python(code: str) -> subprocess.Popen[bytes]:
    """Start ``python -c code`` with this source tree importable and stdio buffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HERA_"))}
    env["PYTHONPATH"] = SRC
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_line_is_readable_while_the_process_runs() -> None:
    """E16: without PYTHONUNBUFFERED the line reaches the pipe at once, not at exit."""
    proc = run_python(
        "import time\n"
        "from hera_middleware.emit import emit_event\n"
        "emit_event('breach_check_passed')\n"
        "time.sleep(60)\n"
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # returns while the child still sleeps
        assert proc.poll() is None
        assert strip_ts(orjson.loads(line)) == {
            "type": "audit",
            "event": "breach_check_passed",
            "domain": "ciam",
        }
    finally:
        proc.kill()
        proc.communicate()


def test_exit_flushes_and_prints_the_summary() -> None:
    """Lines queued when the interpreter exits are written, then a summary goes to stderr."""
    proc = run_python(
        "from hera_middleware.catalog import declare_event\n"
        "from hera_middleware.emit import emit_event\n"
        "declare_event('thing_done', ['i'])\n"
        "for i in range(3000):\n"
        "    emit_event('thing_done', i=i)\n"
        "emit_event('captcha_failed', reason='timeout')\n"
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert [orjson.loads(x).get("i") for x in lines[:-1]] == list(range(3000))
    assert orjson.loads(lines[-1])["event"] == "captcha_failed"
    assert err.decode().splitlines() == [
        "hera-middleware: 3001 events written, 0 dropped, 1 fields nulled, 0 facts unknown, "
        "0 internal errors"
    ]


def test_exit_counts_what_it_could_not_write() -> None:
    """When the exit flush times out, the lines still queued are counted as dropped."""
    proc = run_python(
        "import threading\n"
        "from hera_middleware import _emitter, emit\n"
        "_emitter.EXIT_TIMEOUT = 0.1\n"
        "entered = threading.Event()\n"
        "class Stuck:\n"
        "    def write(self, line):\n"
        "        entered.set(); threading.Event().wait()\n"
        "    def close(self): pass\n"
        "e = emit.Emitter(Stuck())\n"
        'line = b\'{"type":"audit","event":"x_y","domain":"ciam","ts":"t"}\\n\'\n'
        "e.put(line)\n"
        "entered.wait()\n"
        "e.put(line); e.put(line)\n"
    )
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"")
    assert err.decode().splitlines() == [
        "hera-middleware: 0 events written, 2 dropped, 0 fields nulled, 0 facts unknown, "
        "0 internal errors"
    ]


def test_exit_is_not_held_up_by_a_producer_blocked_on_a_stuck_output() -> None:
    """on_full='block' on a stuck output: a blocked thread stops waiting when exit begins.

    The exit flush is bounded, and what could not be written is counted as dropped.
    """
    proc = run_python(
        "import threading, time\n"
        "from hera_middleware import _emitter, emit\n"
        "_emitter.EXIT_TIMEOUT = 0.1\n"
        "entered = threading.Event()\n"
        "class Stuck:\n"
        "    def write(self, line):\n"
        "        entered.set(); threading.Event().wait()\n"
        "    def close(self): pass\n"
        "e = emit.Emitter(Stuck(), on_full='block', maxsize=1)\n"
        'line = b\'{"type":"audit","event":"x_y","domain":"ciam","ts":"t"}\\n\'\n'
        "e.put(line)\n"
        "entered.wait()\n"
        "e.put(line)\n"
        "producer = threading.Thread(target=e.put, args=(line,))\n"  # not a daemon
        "producer.start()\n"
        "while not e._waiting:\n"
        "    time.sleep(0.001)\n"
    )
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"")
    assert err.decode().splitlines() == [
        "hera-middleware: 0 events written, 2 dropped, 0 fields nulled, 0 facts unknown, "
        "0 internal errors"
    ]


def test_summary_when_only_facts_were_unknown() -> None:
    """Any non-zero counter prints the exit summary, even with no event written."""
    proc = run_python("from hera_middleware import emit\nemit.count('facts_unknown', 2)\n")
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"")
    assert err.decode().splitlines() == [
        "hera-middleware: 0 events written, 0 dropped, 0 fields nulled, 2 facts unknown, "
        "0 internal errors"
    ]


def test_broken_stdout_never_kills_the_process() -> None:
    """E18: even with SIGPIPE at its default action, a closed stdout pipe costs only drops."""
    r, w = os.pipe()
    os.close(r)  # nobody will ever read: every write gets EPIPE (and SIGPIPE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HERA_"))}
    env["PYTHONPATH"] = SRC
    code = (
        "import signal\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from hera_middleware.catalog import declare_event\n"
        "from hera_middleware.emit import emit_event, flush\n"
        "declare_event('thing_done', ['i'])\n"
        "for i in range(3):\n"
        "    emit_event('thing_done', i=i)\n"
        "assert flush(5)\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, stdout=w, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(w)
    assert proc.returncode == 0
    assert proc.stderr.decode().splitlines() == [
        "hera-middleware: warning: cannot write events to stdout (EPIPE: Broken pipe); they are "
        "dropped and counted until it recovers (0 events written, 1 dropped, 0 fields nulled, "
        "0 facts unknown, 0 internal errors)",
        "hera-middleware: 0 events written, 3 dropped, 0 fields nulled, 0 facts unknown, "
        "0 internal errors",
    ]


def test_no_summary_when_nothing_was_emitted() -> None:
    """A process that only imports the library prints nothing at exit."""
    proc = run_python("import hera_middleware.emit\n")
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, b"", b"")


def test_sigterm_leaves_nothing_unwritten() -> None:
    """E16: lines stuck behind a full pipe at SIGTERM are all written during shutdown."""
    proc = run_python(
        "import signal, sys, time\n"
        "from hera_middleware.catalog import declare_event\n"
        "from hera_middleware.emit import emit_event\n"
        "declare_event('thing_done', ['i', 'pad'])\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "for i in range(4000):\n"
        "    emit_event('thing_done', i=i, pad='p' * 100)\n"
        "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    assert proc.stderr is not None
    assert proc.stderr.readline() == b"ready\n"  # 4000 lines overflow the pipe: most are queued
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert [orjson.loads(x)["i"] for x in out.splitlines()] == list(range(4000))
    assert err.decode().splitlines() == [
        "hera-middleware: 4000 events written, 0 dropped, 0 fields nulled, 0 facts unknown, "
        "0 internal errors"
    ]
