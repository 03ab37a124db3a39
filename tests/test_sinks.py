"""Outputs: what each ``output=`` form becomes and how it writes lines."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import stat
from pathlib import Path

import orjson
import pytest

from hera_middleware import _diagnostics, _stats
from hera_middleware.emit import Emitter
from hera_middleware.sinks import (
    CallableSink,
    FdSink,
    FileSink,
    LoggerSink,
    Sink,
    open_sink,
)

LINE = (
    b'{"type":"audit","event":"breach_check_passed","domain":"ciam",'
    b'"ts":"2026-12-03T11:34:13.123Z"}\n'
)
EVENT = orjson.loads(LINE)
FORMS = (
    '"stdout", "stderr", "file:PATH", "logger:NAME", a callable taking the event dict, '
    "or an object with a write(line: bytes) method"
)


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


class Recorder:
    """A user object that is a complete Sink."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed = False

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def close(self) -> None:
        self.closed = True


class WriteOnly:
    """A user object with a write method and nothing else."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)


@pytest.mark.parametrize(
    ("spec", "kind", "fd", "name"),
    [
        pytest.param("stdout", FdSink, 1, "stdout", id="stdout"),
        pytest.param("stderr", FdSink, 2, "stderr", id="stderr"),
    ],
)
def test_standard_streams_are_descriptors(spec: str, kind: type, fd: int, name: str) -> None:
    """stdout and stderr write to descriptors 1 and 2 directly."""
    sink = open_sink(spec)
    assert type(sink) is kind
    assert (sink.fd, sink.name) == (fd, name)  # type: ignore[attr-defined]


def test_file_spec_is_absolute_and_lazy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """file:PATH is resolved against the working directory; nothing is opened until a write."""
    monkeypatch.chdir(tmp_path)
    sink = open_sink("file:logs/events.jsonl")
    assert isinstance(sink, FileSink)
    assert sink.path == str(tmp_path / "logs" / "events.jsonl")
    assert sink.name == f"file {tmp_path / 'logs' / 'events.jsonl'}"
    assert list(tmp_path.iterdir()) == []


def test_file_sink_appends_with_mode_0644(tmp_path: Path) -> None:
    """The file is created 0644 (before umask), appended to, and reopened after close."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"existing\n")
    os.chmod(path, 0o600)
    fresh = tmp_path / "fresh.jsonl"
    old_umask = os.umask(0)
    try:
        sink = FileSink(str(fresh))
        sink.write(LINE)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    sink.close()
    appending = FileSink(str(path))
    appending.write(LINE)
    appending.close()
    appending.write(LINE)
    appending.close()
    assert path.read_bytes() == b"existing\n" + LINE + LINE
    assert fresh.read_bytes() == LINE


def test_file_sink_open_failure_is_retried(tmp_path: Path) -> None:
    """A file that cannot be opened raises from write (counted by the emitter) and is retried."""
    sink = FileSink(str(tmp_path / "later" / "events.jsonl"))
    with pytest.raises(FileNotFoundError):
        sink.write(LINE)
    (tmp_path / "later").mkdir()
    sink.write(LINE)
    sink.close()
    assert (tmp_path / "later" / "events.jsonl").read_bytes() == LINE


def test_file_output_through_an_emitter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An emitter on file:PATH writes each line, in order."""
    monkeypatch.chdir(tmp_path)
    emitter = Emitter("file:events.jsonl")
    for _ in range(3):
        emitter.put(LINE)
    assert emitter.close()
    assert (tmp_path / "events.jsonl").read_bytes() == LINE * 3


@pytest.mark.parametrize(
    ("spec", "stream"),
    [pytest.param("stdout", "out", id="stdout"), pytest.param("stderr", "err", id="stderr")],
)
def test_standard_stream_output_through_an_emitter(
    spec: str, stream: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Lines reach file descriptor 1 or 2 unchanged."""
    emitter = Emitter(spec)
    emitter.put(LINE)
    assert emitter.close()
    captured = capfd.readouterr()
    assert getattr(captured, stream) == LINE.decode()


def test_descriptor_flags_are_never_changed() -> None:
    """Writing leaves the inherited descriptor's flags (blocking mode included) as they were."""
    r, w = os.pipe()
    try:
        before = fcntl.fcntl(w, fcntl.F_GETFL)
        emitter = Emitter(FdSink(w, "test pipe"))
        emitter.put(LINE)
        assert emitter.close()
        assert fcntl.fcntl(w, fcntl.F_GETFL) == before
        assert os.read(r, 4096) == LINE
    finally:
        os.close(r)
        os.close(w)


def test_fd_sink_completes_a_short_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the kernel takes part of a line, the rest follows; no half line is left."""
    r, w = os.pipe()
    real_write = os.write
    sizes: list[int] = []

    def short_first(fd: int, data: bytes) -> int:
        n = real_write(fd, bytes(data)[:10] if not sizes else data)
        sizes.append(n)
        return n

    monkeypatch.setattr(os, "write", short_first)
    try:
        FdSink(w).write(LINE)
        assert sizes == [10, len(LINE) - 10]
        assert os.read(r, 4096) == LINE
    finally:
        os.close(r)
        os.close(w)


def test_logger_sink(caplog: pytest.LogCaptureFixture) -> None:
    """logger:NAME logs the line without its newline at INFO on that logger."""
    sink = open_sink("logger:hera.events")
    assert isinstance(sink, LoggerSink)
    with caplog.at_level(logging.INFO, logger="hera.events"):
        emitter = Emitter(sink)
        emitter.put(LINE)
        assert emitter.close()
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("hera.events", logging.INFO, LINE[:-1].decode())
    ]


def test_callable_sink_gets_the_event_dict() -> None:
    """A callable output is called with the event parsed back from its line."""
    got: list[dict[str, object]] = []
    sink = open_sink(got.append)
    assert isinstance(sink, CallableSink)
    emitter = Emitter(sink)
    emitter.put(LINE)
    assert emitter.close()
    assert got == [EVENT]


def test_user_sink_object_is_used_as_is() -> None:
    """An object with write and close is the sink itself."""
    recorder = Recorder()
    assert open_sink(recorder) is recorder
    emitter = Emitter(recorder)
    emitter.put(LINE)
    assert emitter.close()
    assert recorder.lines == [LINE]
    assert recorder.closed


def test_write_only_object_is_wrapped() -> None:
    """An object with only write() works as an output too."""
    target = WriteOnly()
    sink = open_sink(target)
    assert isinstance(sink, Sink)
    sink.write(LINE)
    sink.close()
    assert target.lines == [LINE]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(io.BytesIO(), LINE, id="binary"),
        pytest.param(io.StringIO(), LINE.decode(), id="text"),
    ],
)
def test_file_objects_get_bytes_or_text(target: io.IOBase, expected: object) -> None:
    """A binary file object gets bytes, a text one gets str; neither is closed."""
    sink = open_sink(target)
    sink.write(LINE)
    sink.close()
    assert not target.closed
    assert target.getvalue() == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            "stdut", f"output 'stdut' is not valid; use {FORMS} (did you mean 'stdout'?)", id="typo"
        ),
        pytest.param("STDOUT", f"output 'STDOUT' is not valid; use {FORMS}", id="case"),
        pytest.param("", f"output '' is not valid; use {FORMS}", id="empty"),
        pytest.param(
            "syslog:local0", f"output 'syslog:local0' is not valid; use {FORMS}", id="unknown-kind"
        ),
        pytest.param("file:", "output 'file:' names no file; use file:PATH", id="file-no-path"),
        pytest.param(
            "logger:", "output 'logger:' names no logger; use logger:NAME", id="logger-no-name"
        ),
        pytest.param(42, f"output of type int is not valid; use {FORMS}", id="int"),
        pytest.param(None, f"output of type NoneType is not valid; use {FORMS}", id="none"),
    ],
)
def test_bad_specs_raise_value_error(spec: object, message: str) -> None:
    """A bad output names the accepted forms (the engine turns it into a HeraConfigError)."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        open_sink(spec)
