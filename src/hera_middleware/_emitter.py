"""The bounded queue and per-process writer thread behind every output.

The request path only appends a complete line to a deque. A daemon writer thread,
started on first use and again after ``fork`` (so gunicorn ``--preload`` works), writes
each line with one ``os.write`` (lines queued together share one, up to 4096 bytes of
whole lines, which a pipe takes atomically) or hands it to the configured sink. Lost lines are
counted and reported in the stream by an ``events_dropped`` line once output recovers.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import math
import os
import signal
import threading
import time
import weakref
from collections import deque

import orjson

from . import _capture, _stats
from ._diagnostics import count, internal_error, summary, warn, write_stderr
from .catalog import EVENTS_DROPPED
from .sinks import FdSink, FileSink, LineLost, Output, open_sink

__all__ = [
    "DEFAULT_MAXSIZE",
    "EXIT_TIMEOUT",
    "FULL_WAIT",
    "MAX_BATCH",
    "Emitter",
    "chain_sigterm",
    "exit_signalled",
    "flush_after_signal",
    "flush_all",
    "format_ts",
]

#: Lines a queue holds before ``on_full`` applies.
DEFAULT_MAXSIZE = 10_000
#: How long a put on a full queue waits for room before dropping (once per stall).
FULL_WAIT = 0.05
#: Most bytes one ``os.write`` carries: whole lines only, so pipes keep it atomic.
MAX_BATCH = 4096
#: How long the interpreter-exit flush may take, all outputs together.
EXIT_TIMEOUT = 5.0

#: While lines keep coming the writer looks for more every _POLL seconds; after
#: _IDLE_POLLS empty looks (0.1 s) it sleeps until a put wakes it.
_POLL = 0.002
_IDLE_POLLS = 50

_ON_FULL = ("drop", "block")
_OPT = orjson.OPT_APPEND_NEWLINE
_dumps = orjson.dumps
_STOP = object()

# (second, "YYYY-MM-DDTHH:MM:SS"): replaced whole, so threads never see half an update.
_ts_cache: tuple[int, str] = (-1, "")
_MS_SUFFIX = tuple(f".{ms:03d}Z" for ms in range(1000))
# (millisecond, its full text), replaced whole likewise.
_ms_cache: tuple[int, str] = (-1, "")


def format_ts(t: float) -> str:
    """Format a ``time.time()`` value as RFC 3339 UTC with milliseconds (truncated).

    Example: ``format_ts(1796297653.1234) == "2026-12-03T11:34:13.123Z"``.
    """
    global _ts_cache, _ms_cache
    stamp = math.floor(t * 1000)
    last = _ms_cache
    if last[0] == stamp:  # events of one millisecond share one string
        return last[1]
    sec, ms = divmod(stamp, 1000)
    cached = _ts_cache
    if cached[0] != sec:
        cached = _ts_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    text = cached[1] + _MS_SUFFIX[ms]
    _ms_cache = (stamp, text)
    return text


def _block_sigpipe() -> None:
    # EPIPE instead of death if the host set SIGPIPE back to SIG_DFL; this thread only.
    if hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGPIPE"):
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})


def _default_domain() -> str:
    return os.environ.get("HERA_DOMAIN") or "ciam"


def _domain_of(line: bytes | None) -> str:
    try:
        parsed = orjson.loads(line) if line is not None else None
    except orjson.JSONDecodeError:
        parsed = None
    domain = parsed.get("domain") if isinstance(parsed, dict) else None
    return domain if isinstance(domain, str) else _default_domain()


def _reason(exc: BaseException) -> str:
    # errno name and the OS's text only: exception messages may carry paths or data.
    code = exc.errno if isinstance(exc, OSError) else None
    if code:
        return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"
    return type(exc).__name__


class Emitter:
    """A bounded queue of lines and the writer thread that drains it into one output.

    Args:
        output: anything :func:`hera_middleware.sinks.open_sink` accepts.
        on_full: ``"drop"`` waits about 50 ms for room once per stall, then drops and
            counts, and writes an ``events_dropped`` line once output recovers; on a
            thread running an asyncio event loop it never waits, it drops at once (a
            wait there would stall every request of the loop). ``"block"`` waits
            until there is room and never drops, also on an event loop thread: there
            a stuck output backs up the whole loop, which is what opting in means.
            Once the interpreter starts exiting, blocked producers stop waiting and
            the exit flush is bounded by :data:`EXIT_TIMEOUT`.
        maxsize: lines the queue holds.

    Example::

        emitter = Emitter("file:events.jsonl")
        emitter.put(b'{"type":"audit","event":"x_y","domain":"ciam","ts":"..."}\\n')
        emitter.flush()
    """

    def __init__(
        self, output: Output = "stdout", *, on_full: str = "drop", maxsize: int = DEFAULT_MAXSIZE
    ) -> None:
        if on_full not in _ON_FULL:
            raise ValueError(f"on_full {on_full!r} is not valid; use 'drop' or 'block'")
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize!r}")
        self.sink = open_sink(output)
        self.name: str = getattr(self.sink, "name", None) or type(self.sink).__name__
        self.on_full = on_full
        self.maxsize = maxsize
        self._low_water = maxsize // 2  # producers blocked on a full queue wake for a batch
        self._block = on_full == "block"
        self._init_state()
        _ALL.add(self)

    def _init_state(self) -> None:
        # Also run in a forked child: the parent's queued lines are the parent's to write.
        self._dq: deque[object] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer_ident: int | None = None
        self._idle = False  # the writer waits on _wake; producers must set it
        self._stalled = False  # full and waited once: drop at once until half drained
        self._waiting = 0  # producers waiting for room
        self._attention = False  # something for the writer besides writing
        self._healthy = True  # the last write succeeded
        self._pending_dropped = 0  # lost since the last events_dropped line
        self._overflowed = False  # some of those were lost to a full queue
        self._last_lost: bytes | None = None

    def put(self, line: bytes) -> None:
        """Enqueue one complete line; never does I/O, never raises."""
        try:
            if self._thread is None:
                self._start()
            dq = self._dq
            if len(dq) < self.maxsize and not self._stalled:
                dq.append(line)
                if self._idle:
                    self._wake.set()
                return
            self._put_full(line)
        except Exception as exc:
            internal_error("emitter.put", exc)

    def _put_full(self, line: bytes) -> None:
        if threading.get_ident() == self._writer_ident:  # a sink that emits: never self-wait
            self._drop(line, overflow=True)
            return
        if not self._block and asyncio._get_running_loop() is not None:
            self._drop(line, overflow=True)  # never freeze an event loop, not even 50 ms
            return
        if self._block or not self._stalled:
            deadline = None if self._block else time.monotonic() + FULL_WAIT
            with self._cond:
                self._waiting += 1
                self._attention = True
                try:
                    while len(self._dq) >= self.maxsize:
                        if deadline is None:
                            thread = self._thread
                            if _exiting or thread is None or not thread.is_alive():
                                break  # exiting, or no writer to wait for: queue past the bound
                            self._cond.wait(0.1)
                            continue
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            self._stalled = True
                            break
                        self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
        if self._block or (len(self._dq) < self.maxsize and not self._stalled):
            self._dq.append(line)
            if self._idle:
                self._wake.set()
            return
        self._drop(line, overflow=True)

    def _drop(self, line: bytes, *, overflow: bool, lines: int = 1) -> None:
        with self._lock:
            self._pending_dropped += lines
            self._last_lost = line
            self._overflowed = self._overflowed or overflow
            self._attention = True
        count("events_dropped", lines)

    def idle(self) -> bool:
        """True when nothing is queued and nobody waits for room (a hint, not a promise)."""
        return not self._dq and not self._waiting and not self._pending_dropped

    def _start(self) -> None:
        # A thread that cannot start (interpreter shutdown) is retried on the next put.
        try:
            with self._lock:
                if self._thread is None:
                    thread = threading.Thread(
                        target=self._run, name=f"hera-writer ({self.name})", daemon=True
                    )
                    thread.start()
                    self._thread = thread
        except Exception as exc:
            internal_error("emitter.start", exc)

    def _run(self) -> None:
        _block_sigpipe()
        self._writer_ident = threading.get_ident()
        dq, wake, sink = self._dq, self._wake, self.sink
        popleft, write = dq.popleft, sink.write
        # os.write inline for our own descriptor sinks (not subclasses): the hot loop.
        fd_sink = sink if type(sink) is FdSink or type(sink) is FileSink else None
        fd = -1  # fd_sink's descriptor once it has one (a FileSink opens on first write)
        written = 0
        polls = 0  # empty polls in a row since the last line
        while True:
            try:
                item = popleft()
            except IndexError:
                if written:
                    count("events_written", written)
                    written = 0
                if self._attention:
                    self._housekeep()
                if polls < _IDLE_POLLS:
                    # Poll while lines keep coming: a put is then a bare append, with no
                    # wake-up (a futex call and a thread switch) on the request path.
                    polls += 1
                    if wake.wait(_POLL):  # flush() and close() cut the wait short
                        wake.clear()
                    continue
                wake.clear()
                self._idle = True
                if not dq:
                    wake.wait()
                self._idle = False
                polls = 0
                continue
            polls = 0
            try:
                if type(item) is not bytes:
                    if item is _STOP or isinstance(item, threading.Event):
                        if written:
                            count("events_written", written)
                            written = 0
                        if self._attention:
                            self._housekeep()
                        if not isinstance(item, threading.Event):
                            return  # _STOP, from close()
                        item.set()  # a flush marker: every line before it is done
                        continue
                    item = bytes(item)  # type: ignore[call-overload]  # bytearray, memoryview
                lines = 1
                last = item
                try:
                    if fd >= 0:
                        # Whole lines queued behind this one share its write while the
                        # total stays within MAX_BATCH: still atomic, a line never split.
                        if dq and type(dq[0]) is bytes and len(item) + len(dq[0]) <= MAX_BATCH:
                            batch = [item]
                            size = len(item)
                            while dq:
                                head = dq[0]
                                if type(head) is not bytes or size + len(head) > MAX_BATCH:
                                    break
                                batch.append(popleft())
                                size += len(head)
                            item = b"".join(batch)
                            lines = len(batch)
                            last = batch[-1]
                        n = os.write(fd, item)
                        if n != len(item):
                            fd_sink.write_rest(item, n)  # type: ignore[union-attr]
                        written += lines - 1
                    else:
                        write(item)
                        if fd_sink is not None:
                            fd = fd_sink.out
                except BaseException as exc:  # a user sink may raise anything
                    self._failed(exc, last, lines)
                    continue
                written += 1
                if self._attention or written >= 4096:  # keep stats() current under load
                    count("events_written", written)
                    written = 0
                    if self._attention:
                        self._healthy = True
                        self._housekeep()
            except Exception as exc:
                internal_error("writer", exc)

    def _housekeep(self) -> None:
        # Clear first: a producer that changes state afterwards sets it again.
        self._attention = False
        if self._waiting and len(self._dq) <= self._low_water:  # room for a batch, not one
            with self._cond:
                self._cond.notify_all()
        if self._stalled and len(self._dq) <= self.maxsize // 2:
            self._stalled = False
        if self._pending_dropped and self._healthy:
            self._report_drops()
        if self._waiting or self._stalled or self._pending_dropped or not self._healthy:
            self._attention = True

    def _report_drops(self) -> None:
        with self._lock:
            n, self._pending_dropped = self._pending_dropped, 0
            overflowed, self._overflowed = self._overflowed, False
            last = self._last_lost
        if not n:
            return
        record: dict[str, object] = {"type": "audit", "event": EVENTS_DROPPED.name, "count": n}
        record["domain"] = _domain_of(last)
        record["ts"] = format_ts(time.time())
        try:
            self.sink.write(_dumps(record, option=_OPT))
        except BaseException as exc:
            with self._lock:
                self._pending_dropped += n
                self._overflowed = self._overflowed or overflowed
            self._failed(exc, None)
            return
        if _capture.listeners:
            _capture.publish(record)
        if overflowed:
            warn(
                f"full:{self.name}",
                f"{self.name} did not keep up: {n} events were dropped while the queue of "
                f"{self.maxsize} lines was full (on_full 'block' never drops)",
            )

    def _failed(self, exc: BaseException, line: bytes | None, lines: int = 1) -> None:
        self._healthy = False
        self._attention = True
        if line is not None:
            self._drop(line, overflow=False, lines=lines)
        if isinstance(exc, LineLost):  # the sink's own words, free of event data
            warn(f"output:{self.name}", str(exc))
            return
        warn(
            f"output:{self.name}",
            f"cannot write events to {self.name} ({_reason(exc)}); "
            "they are dropped and counted until it recovers",
        )

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every line queued before this call is written (or dropped).

        Returns False when ``timeout`` seconds passed first (None waits for ever).
        """
        try:
            if self._thread is None:
                return not self._dq
            if threading.get_ident() == self._writer_ident:
                return False  # called from a sink: waiting for ourselves would deadlock
            marker = threading.Event()
            self._dq.append(marker)
            self._wake.set()  # idle or polling: look now
            return marker.wait(timeout)
        except Exception as exc:
            internal_error("emitter.flush", exc)
            return False

    def close(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the writer thread and close the sink; a later put starts over.

        Returns False when the queue could not be flushed within ``timeout``.
        """
        flushed = self.flush(timeout)
        thread = self._thread
        if flushed and thread is not None:
            self._dq.append(_STOP)
            self._wake.set()
            thread.join(timeout)
            if not thread.is_alive():
                self._thread = None
                self._writer_ident = None
        if self._thread is None:
            try:
                self.sink.close()
            except Exception as exc:
                internal_error("emitter.close", exc)
        return flushed

    def _abandon(self) -> None:
        # Exit came first: what is still queued will never be written; say so.
        lost = sum(1 for item in list(self._dq) if type(item) is bytes)
        if lost:
            count("events_dropped", lost)


_ALL: weakref.WeakSet[Emitter] = weakref.WeakSet()


def flush_all(timeout: float | None = 5.0) -> bool:
    """Flush every emitter of this process; False if ``timeout`` passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ok = True
    for emitter in list(_ALL):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ok = emitter.flush(left) and ok
    return ok


_exiting = False


def _stop_waiting() -> None:
    # Run when the interpreter starts exiting, before non-daemon threads are joined: a
    # producer blocked on a stuck output (on_full "block") must not hang the exit.
    global _exiting
    _exiting = True


def _at_exit() -> None:
    _stop_waiting()
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT
        for emitter in list(_ALL):
            if not emitter.flush(max(0.0, deadline - time.monotonic())):
                emitter._abandon()
        write_summary()
    except Exception:  # the interpreter is going away; never add a traceback to it
        pass


_summary_written: dict[str, int] | None = None


def write_summary() -> None:
    """The counters as one stderr line, if any counter is not zero.

    Called at lifespan shutdown, when SIGTERM arrives (see :func:`chain_sigterm`) and at
    exit: servers such as uvicorn end with the re-raised SIGTERM, and atexit handlers
    do not run then. Written once per process, and again by a later step only if the
    counters changed since (requests that finished after SIGTERM, say).
    """
    global _summary_written
    counters = _stats.snapshot()
    if counters != _summary_written and any(counters.values()):
        _summary_written = counters
        write_stderr(f"hera-middleware: {summary()}")


#: When SIGTERM first reached :func:`chain_sigterm`'s handler plus EXIT_TIMEOUT.
_signal_deadline: float | None = None


def exit_signalled() -> bool:
    """True once SIGTERM reached the handler of :func:`chain_sigterm` in this process."""
    return _signal_deadline is not None


def flush_after_signal() -> bool:
    """After SIGTERM: flush every output, within what is left of EXIT_TIMEOUT.

    For requests that finish during the server's graceful shutdown: the server may end
    the process (uvicorn re-raises SIGTERM) as soon as the last request is done.
    """
    deadline = _signal_deadline
    if deadline is None:
        return True
    return flush_all(max(0.0, deadline - time.monotonic()))


def _flush_at_signal() -> None:
    try:
        flush_after_signal()
        write_summary()
    except Exception:  # shutting down; never add a traceback to it
        pass


class _ChainedHandler:
    """SIGTERM: flush every output (at most EXIT_TIMEOUT), then the handler it replaced."""

    def __init__(self, previous: object) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: object) -> None:
        global _signal_deadline
        if _signal_deadline is None:
            _signal_deadline = time.monotonic() + EXIT_TIMEOUT
        # In a thread of its own: the main thread, interrupted here, may hold a lock
        # the flush needs (a queue's wake-up event); then the join times out instead.
        try:
            helper = threading.Thread(target=_flush_at_signal, name="hera-flush", daemon=True)
            helper.start()
            helper.join(max(0.0, _signal_deadline - time.monotonic()) + 0.1)
        except Exception:  # no thread at this point of shutdown: hand on at once
            pass
        previous = self.previous
        if previous is signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)  # dies as it would have, now with its events
            return
        previous(signum, frame)  # type: ignore[operator]


def chain_sigterm() -> None:
    """Flush the outputs when SIGTERM arrives, before the handler in place gets it.

    For servers that end a SIGTERM without running atexit: uvicorn restores the
    handler it found (``SIG_DFL``) after its graceful shutdown and raises the signal
    again. Called where the app is built, in the main thread (signal handlers run
    there only); elsewhere, or when SIGTERM is ignored or handled outside Python, it
    does nothing. The handler in place is always called next, unchanged; one installed
    later (a gunicorn worker's) replaces this one, and one that restores what it found
    (uvicorn's) calls it again at the end, after its graceful shutdown.
    """
    sig = getattr(signal, "SIGTERM", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        previous = signal.getsignal(sig)
        if previous is None or previous is signal.SIG_IGN or isinstance(previous, _ChainedHandler):
            return
        signal.signal(sig, _ChainedHandler(previous))
    except (OSError, ValueError, RuntimeError) as exc:
        internal_error("sigterm handler", exc)


def _after_fork_in_child() -> None:
    # The writer threads did not survive the fork: start over, lazily, in the child.
    for emitter in list(_ALL):
        emitter._init_state()


atexit.register(_at_exit)
# Python 3.9+: runs before threading joins non-daemon threads (atexit runs after).
_register_thread_exit = getattr(threading, "_register_atexit", None)
if _register_thread_exit is not None:
    _register_thread_exit(_stop_waiting)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
