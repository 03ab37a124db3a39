"""Outputs: what each ``output=`` form becomes and how it writes lines."""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from hera_middleware import _diagnostics, _stats, emit
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
def _fresh_counters() -> Iterator[None]:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()
    yield
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
    """stdout and stderr are descriptors 1 and 2, duplicated only when first written."""
    sink = open_sink(spec)
    assert type(sink) is kind
    assert (sink.fd, sink.out, sink.name) == (fd, -1, name)  # type: ignore[attr-defined]


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


def test_lines_go_to_a_duplicate_not_to_a_reused_number() -> None:
    """The app closing the descriptor and the number being reused does not redirect events."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    sink = FdSink(w1, "test pipe")
    try:
        sink.write(LINE)
        duplicate = sink.out
        assert duplicate not in (-1, w1)
        os.close(w1)  # the app closes "stdout" ...
        os.dup2(w2, w1)  # ... and the number goes to something else (a client socket)
        sink.write(LINE)
        assert sink.out == duplicate
        os.close(w1)
        os.close(w2)
        assert os.read(r2, 4096) == b""  # nothing for the newcomer
        assert os.read(r1, 4096) == LINE + LINE
    finally:
        sink.close()
        os.close(r1)
        os.close(r2)


def test_only_the_duplicate_is_close_on_exec() -> None:
    """Our duplicate is not inherited by child processes; the original keeps its flags."""
    r, w = os.pipe()
    os.set_inheritable(w, True)  # as an inherited stdout is
    before = (fcntl.fcntl(w, fcntl.F_GETFD), fcntl.fcntl(w, fcntl.F_GETFL))
    sink = FdSink(w, "test pipe")
    try:
        sink.write(LINE)
        assert fcntl.fcntl(sink.out, fcntl.F_GETFD) & fcntl.FD_CLOEXEC == fcntl.FD_CLOEXEC
        assert os.get_inheritable(sink.out) is False
        assert (fcntl.fcntl(w, fcntl.F_GETFD), fcntl.fcntl(w, fcntl.F_GETFL)) == before
        assert os.get_inheritable(w) is True
    finally:
        sink.close()
        os.close(r)
        os.close(w)


def test_close_releases_the_duplicate_only() -> None:
    """close() closes our duplicate and leaves the original open; a later write dups again."""
    r, w = os.pipe()
    sink = FdSink(w, "test pipe")
    try:
        sink.write(LINE)
        duplicate = sink.out
        sink.close()
        assert sink.out == -1
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(duplicate)
        os.fstat(w)  # still open
        sink.write(LINE)
        assert os.read(r, 4096) == LINE + LINE
    finally:
        sink.close()
        os.close(r)
        os.close(w)


def test_a_descriptor_closed_before_the_first_write_is_never_duplicated_later() -> None:
    """If the first dup fails, the number is not tried again: it may belong to a socket by then."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.close(w1)
    sink = FdSink(w1, "closed fd")
    try:
        with pytest.raises(OSError, match="Bad file descriptor") as first:
            sink.write(LINE)
        assert first.value.errno == errno.EBADF
        os.dup2(w2, w1)  # the number is reused
        with pytest.raises(OSError, match="Bad file descriptor") as second:
            sink.write(LINE)
        assert second.value.errno == errno.EBADF
        assert sink.out == -1
        os.close(w1)
        os.close(w2)
        assert os.read(r2, 4096) == b""
    finally:
        os.close(r1)
        os.close(r2)


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
    sink = FdSink(w)
    try:
        sink.write(LINE)
        assert sizes == [10, len(LINE) - 10]
        assert os.read(r, 4096) == LINE
    finally:
        sink.close()
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


LOST = (
    "hera-middleware: warning: logger 'hera.lost' has no handler for INFO records; events "
    "written there are lost ({} events written, {} dropped, 0 fields nulled, 0 facts unknown, "
    "0 internal errors)"
)


@pytest.fixture
def cut_off() -> Iterator[Callable[[], logging.Logger]]:
    """Make 'hera.lost' a logger at INFO that does not reach the root logger's handlers.

    Call it in the test itself: pytest attaches its capture handler to loggers that do
    not propagate when the test starts.
    """
    logger = logging.getLogger("hera.lost")

    def cut() -> logging.Logger:
        logger.propagate = False
        logger.setLevel(logging.INFO)
        return logger

    yield cut
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


class ListHandler(logging.Handler):
    """A handler that keeps every message."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param("no-handler", id="no-handler"),
        pytest.param("level-warning", id="logger-level-warning"),
        pytest.param("handler-warning", id="handler-level-warning"),
    ],
)
def test_logger_that_drops_info_counts_and_warns_once(
    setup: str, cut_off: Callable[[], logging.Logger], capsys: pytest.CaptureFixture[str]
) -> None:
    """Events on a logger that would drop INFO records are counted as dropped, with one warning."""
    lost_logger = cut_off()
    if setup == "level-warning":
        lost_logger.addHandler(ListHandler())
        lost_logger.setLevel(logging.WARNING)
    elif setup == "handler-warning":
        lost_logger.addHandler(ListHandler(logging.WARNING))
    emitter = Emitter("logger:hera.lost")
    for _ in range(3):
        emitter.put(LINE)
    assert emitter.flush()
    assert emit.stats()["events_written"] == 0
    assert emit.stats()["events_dropped"] == 3
    assert capsys.readouterr().err.splitlines() == [LOST.format(0, 1)]
    assert emitter.close()


def test_logger_loss_is_reported_once_a_handler_appears(
    cut_off: Callable[[], logging.Logger], capsys: pytest.CaptureFixture[str]
) -> None:
    """When the logger gets a handler, the next event is logged, then the events_dropped line."""
    lost_logger = cut_off()
    emitter = Emitter("logger:hera.lost")
    emitter.put(LINE)
    emitter.put(LINE)
    assert emitter.flush()
    handler = ListHandler()
    lost_logger.addHandler(handler)
    emitter.put(LINE)
    assert emitter.close()
    assert handler.messages[0] == LINE[:-1].decode()
    assert [orjson.loads(m)["event"] for m in handler.messages] == [
        "breach_check_passed",
        "events_dropped",
    ]
    assert orjson.loads(handler.messages[1])["count"] == 2
    assert emit.stats()["events_written"] == 1
    assert emit.stats()["events_dropped"] == 2
    assert capsys.readouterr().err.splitlines() == [LOST.format(0, 1)]


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
