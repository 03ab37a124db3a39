"""Framework signals as facts: resolve the declared signals, connect, record per request.

Each middleware instance whose rules declare signals connects one receiver per
signal (``weak=False``: signals keep it alive, and it holds nothing but a context
variable of its own, so the middleware can still be collected; when it is, its
receivers are disconnected). The adapter sets that context variable to the
exchange's log while the app's code runs for a request that has candidate rules, so
a send in that request's own context (its thread, its task, or a thread that copied
its context, as asgiref does for Django's sync views) is recorded, and any other
send (at import, in a background thread, in another request, or after the rules
were evaluated) finds nothing to record into.
"""

from __future__ import annotations

import contextvars
import difflib
import importlib
import pkgutil
import sys
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .._diagnostics import internal_error
from ..errors import HeraConfigError, Problem, did_you_mean
from ..exchange import UNKNOWN, Exchange
from ..rules._signals import SignalSpec

__all__ = ["SignalLog", "SignalWatch", "is_offline", "offline", "resolve_signals", "seal"]

# Replay runs recorded traffic: a recording cannot say whether a signal was sent, so
# none is resolved and every signal fact is unknown.
_OFFLINE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hera_middleware_signals_offline", default=False
)
_KINDS = "a blinker signal (Flask) or a django.dispatch.Signal"


@contextmanager
def offline() -> Iterator[None]:
    """Middleware built inside resolves and connects no signal; signal facts are unknown."""
    token = _OFFLINE.set(True)
    try:
        yield
    finally:
        _OFFLINE.reset(token)


def is_offline() -> bool:
    """True inside :func:`offline`."""
    return _OFFLINE.get()


class SignalLog(dict):  # type: ignore[type-arg]
    """One request's sent signals: name -> kept arguments of the last send."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        super().__init__()
        self.open = True


def _is_signal(obj: Any) -> bool:
    blinker = sys.modules.get("blinker")
    if blinker is not None and isinstance(obj, blinker.Signal):
        return True
    dispatch = sys.modules.get("django.dispatch")
    return dispatch is not None and isinstance(obj, dispatch.Signal)


def _names_in(owner: Any) -> list[str]:
    names = [n for n in dir(owner) if not n.startswith("_")]
    for info in pkgutil.iter_modules(getattr(owner, "__path__", None) or []):
        names.append(info.name)
    return names


def _problem(spec: SignalSpec, code: str, message: str, hint: str | None = None) -> Problem:
    file, line, col = spec.at
    return Problem(file, line, col, code, message, hint)


def _import(spec: SignalSpec) -> tuple[Any, Problem | None]:
    """The object at ``spec.path``, or a problem saying where the path stops."""
    parts = spec.path.split(".")
    owner: Any = None
    done = 0
    for i in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:i])
        try:
            owner = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if module == missing or module.startswith(missing + "."):
                continue  # no such module: try the package above it
            return None, _failed(spec, module, exc)
        except Exception as exc:  # the module's own code failed: no traceback, say what
            return None, _failed(spec, module, exc)
        done = i
        break
    if owner is None:
        top = [m.name for m in pkgutil.iter_modules()]
        return None, _problem(
            spec,
            "unknown-signal-module",
            f"the signal {spec.name!r}: there is no module {parts[0]!r}",
            did_you_mean(parts[0], top) or "is the package installed in this environment?",
        )
    for i in range(done, len(parts)):
        part = parts[i]
        if not hasattr(owner, part):
            where = ".".join(parts[:i])
            if i < len(parts) - 1:
                code, what = "unknown-signal-module", f"{where} has no module or attribute {part!r}"
                close = difflib.get_close_matches(part, _names_in(owner), n=1)
                hint = f"did you mean '{where}.{close[0]}'?" if close else None
            else:
                code, what = "unknown-signal", f"{where} has no attribute {part!r}"
                signals = [n for n in dir(owner) if _is_signal(getattr(owner, n, None))]
                hint = did_you_mean(part, signals)
                if hint is None and signals:
                    hint = f"the signals of {where} are " + ", ".join(sorted(signals))
            return None, _problem(spec, code, f"the signal {spec.name!r}: {what}", hint)
        owner = getattr(owner, part)
    return owner, None


def _failed(spec: SignalSpec, module: str, exc: BaseException) -> Problem:
    hint = None
    if type(exc).__name__ in ("ImproperlyConfigured", "AppRegistryNotReady"):
        hint = "the module needs Django configured: run this where the server's settings load"
    return _problem(
        spec,
        "signal-import-failed",
        f"the signal {spec.name!r}: importing {module} failed: {type(exc).__name__}: {exc}",
        hint,
    )


def resolve_signals(signals: Mapping[str, SignalSpec]) -> dict[str, Any]:
    """Import every declared signal; raise HeraConfigError listing each one that fails."""
    found: dict[str, Any] = {}
    problems: list[Problem] = []
    for spec in signals.values():
        obj, problem = _import(spec)
        if problem is None and not _is_signal(obj):
            problem = _problem(
                spec,
                "not-a-signal",
                f"the signal {spec.name!r}: {spec.path} is a {type(obj).__name__}, not a signal",
                f"name {_KINDS} object by its import path",
            )
        if problem is not None:
            problems.append(problem)
        else:
            found[spec.name] = obj
    if problems:
        raise HeraConfigError(problems)
    return found


def _kept(value: Any) -> Any:
    # Only single values are kept; objects (users, requests, models) never are.
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    # The real type, not isinstance(): a proxy (a mock, Django's SimpleLazyObject,
    # werkzeug's LocalProxy) claims its target's __class__ and is no single value.
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, int):
        return int.__int__(value)
    if issubclass(kind, float):
        return float.__float__(value)
    return UNKNOWN


class _Receiver:
    """Records one signal's sends into the log of the request in whose context it runs."""

    __slots__ = ("keep", "log", "name")

    def __init__(self, log: contextvars.ContextVar[SignalLog], name: str, keep: tuple[str, ...]):
        self.log = log
        self.name = name
        self.keep = keep

    def __call__(self, *sender: Any, **kwargs: Any) -> None:
        log = self.log.get(None)
        if log is None or not log.open:
            return
        try:
            kept = {k: _kept(kwargs[k]) for k in self.keep if k in kwargs}
        except Exception as exc:  # never raise into the sender
            internal_error(f"signal {self.name}", exc)
            kept = {k: UNKNOWN for k in self.keep if k in kwargs}  # sent all the same
        log[self.name] = kept


def _disconnect(connected: list[tuple[Any, _Receiver]]) -> None:
    for signal, receiver in connected:
        try:
            signal.disconnect(receiver)
        except Exception as exc:
            internal_error("signal disconnect", exc)


class SignalWatch:
    """The signals one middleware instance watches, and its per-request context variable."""

    def __init__(self, owner: object, signals: Mapping[str, SignalSpec]) -> None:
        self.log: contextvars.ContextVar[SignalLog] = contextvars.ContextVar(
            f"hera_middleware_signals_{id(self):x}"
        )
        self.connected: list[tuple[Any, _Receiver]] = []
        if _OFFLINE.get():
            return
        for name, signal in resolve_signals(signals).items():
            receiver = _Receiver(self.log, name, signals[name].keep)
            signal.connect(receiver, weak=False)
            self.connected.append((signal, receiver))
        finalizer = weakref.finalize(owner, _disconnect, self.connected)
        finalizer.atexit = False

    def enter(self, ex: Exchange) -> contextvars.Token[SignalLog]:
        """Record this context's sends into ``ex.signals`` until :meth:`leave`."""
        log = ex.signals
        if log is None:
            log = ex.signals = SignalLog()
        return self.log.set(log)  # type: ignore[arg-type]

    def leave(self, token: contextvars.Token[SignalLog]) -> None:
        self.log.reset(token)

    def close(self) -> None:
        """Disconnect every receiver now (the finalizer does it when the owner is collected)."""
        _disconnect(self.connected)
        self.connected.clear()


def seal(ex: Exchange) -> None:
    """The rules are evaluated now: later sends in this request's context are not recorded."""
    log = ex.signals
    if isinstance(log, SignalLog):
        log.open = False
