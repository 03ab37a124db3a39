"""capture_events(): how tests observe events."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import orjson
import pytest

from hera_middleware import _capture, _diagnostics, _stats, emit
from hera_middleware.emit import Emitter, emit_event, get_emitter, send_event
from hera_middleware.testing import capture_events

TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without a default target and leaves no emitters behind."""
    before = dict(emit._EMITTERS)
    monkeypatch.setattr(emit, "_default_target", None)
    yield
    for key, emitter in list(emit._EMITTERS.items()):
        if before.get(key) is not emitter:
            del emit._EMITTERS[key]
            emitter.close(timeout=5.0)


class ListSink:
    """A sink that keeps every line."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass


def test_capture_is_synchronous_and_exact() -> None:
    """The dict is in the list when emit returns, identical to the line serialized."""
    sink = ListSink()
    with capture_events() as events:
        emit_event("pkce_failed", reason="verifier_mismatch", client_id="web", output=sink)
        assert len(events) == 1  # before the writer thread had any chance
    assert get_emitter(sink).flush()
    assert events == [orjson.loads(sink.lines[0])]
    assert list(events[0]) == ["type", "event", "reason", "client_id", "domain", "ts"]
    assert isinstance(events[0]["ts"], str)
    assert TS.fullmatch(events[0]["ts"])


def test_capture_sees_redacted_and_trimmed_values() -> None:
    """What is captured is what was written: redactions and trims included."""
    sink = ListSink()
    emitter = Emitter(sink)
    with capture_events() as events:
        send_event("thing_done", {"a": "\ud800", "b": "x" * 5000}, domain="ciam", emitter=emitter)
    assert emitter.close()
    assert events == [orjson.loads(sink.lines[0])]
    assert (events[0]["a"], events[0]["b"]) == ("redacted", "trimmed")


def test_capture_works_whatever_the_output() -> None:
    """Events are captured for a callable output too, and still delivered to it."""
    got: list[dict[str, object]] = []
    with capture_events() as events:
        emit_event("breach_check_failed", reason="in_hibp", output=got.append)
    assert get_emitter(got.append).flush()
    assert events == got


def test_captures_nest() -> None:
    """An inner event reaches every enclosing capture; an outer one only the outer list."""
    sink = ListSink()
    with capture_events() as outer:
        emit_event("captcha_displayed", flow="login", output=sink)
        with capture_events() as inner:
            emit_event("captcha_succeeded", flow="login", output=sink)
        emit_event("captcha_failed", flow="login", reason="invalid", output=sink)
    assert [e["event"] for e in outer] == [
        "captcha_displayed",
        "captcha_succeeded",
        "captcha_failed",
    ]
    assert [e["event"] for e in inner] == ["captcha_succeeded"]
    assert inner[0] == outer[1]
    assert inner[0] is not outer[1]  # each list owns its dicts


def test_capture_stops_at_the_end_of_the_block() -> None:
    """Nothing is appended after the block, also when the block raised."""
    sink = ListSink()
    with pytest.raises(RuntimeError), capture_events() as events:
        raise RuntimeError("boom")
    emit_event("breach_check_passed", output=sink)
    assert events == []
    assert _capture.listeners == ()


def test_capture_across_threads() -> None:
    """Events sent from 8 threads at once are all captured."""
    sink = ListSink()
    emitter = Emitter(sink)

    def produce(n: int) -> None:
        for i in range(250):
            send_event("thing_done", {"thread": n, "i": i}, domain="ciam", emitter=emitter)

    with capture_events() as events:
        threads = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert emitter.close()
    assert len(events) == 2000
    assert sorted((e["thread"], e["i"]) for e in events) == [
        (n, i) for n in range(8) for i in range(250)
    ]


def test_capture_gets_the_loss_report_when_it_is_written() -> None:
    """An events_dropped line is captured too, from the writer thread."""
    gate = threading.Event()
    entered = threading.Event()

    class Gated(ListSink):
        def write(self, line: bytes) -> None:
            entered.set()
            gate.wait()
            super().write(line)

    emitter = Emitter(Gated(), maxsize=1)
    with capture_events() as events:
        send_event("one_done", {}, domain="shop", emitter=emitter)
        assert entered.wait(5)
        send_event("two_done", {}, domain="shop", emitter=emitter)
        send_event("three_done", {}, domain="shop", emitter=emitter)
        gate.set()
        assert emitter.close()
    assert [e["event"] for e in events] == ["one_done", "two_done", "three_done", "events_dropped"]
    assert {k: v for k, v in events[-1].items() if k != "ts"} == {
        "type": "audit",
        "event": "events_dropped",
        "count": 1,
        "domain": "shop",
    }
