"""Streaming counts of event lines: what ``hera-middleware report`` prints.

Memory grows with the number of distinct (period, client/provider/method/flow, reason)
combinations, never with the number of lines, so gigabytes of logs are fine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

__all__ = ["SECTIONS", "Section", "Tally", "parse_time"]


@dataclass(frozen=True)
class Section:
    """One table of the report: its title, the dimension field, its counted columns."""

    key: str
    title: str
    dimension: str | None
    counts: tuple[str, ...]
    rates: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, numerator, denominator sum)
    reasons: str | None = None  # the count whose failures are split by reason


SECTIONS = (
    Section(
        "pkce",
        "PKCE per client",
        "client_id",
        ("authorize", "exchanges", "failed"),
        (("failure_rate", "failed", ("exchanges", "failed")),),
        "failed",
    ),
    Section(
        "social",
        "Social login per provider",
        "provider",
        ("initiated", "completed", "first_time", "returning", "linked"),
        (
            ("first_time_share", "first_time", ("first_time", "returning")),
            ("completion_rate", "completed", ("initiated",)),
        ),
    ),
    Section(
        "mfa",
        "MFA per method",
        "method",
        ("displayed", "succeeded", "failed"),
        (("failure_rate", "failed", ("succeeded", "failed")),),
    ),
    Section(
        "captcha",
        "Captcha per flow",
        "flow",
        ("displayed", "succeeded", "failed"),
        (("success_rate", "succeeded", ("succeeded", "failed")),),
        "failed",
    ),
    Section(
        "breach",
        "Breach checks",
        None,
        ("passed", "failed"),
        (("fail_rate", "failed", ("passed", "failed")),),
        "failed",
    ),
)

# event -> (section, count)
_EVENTS = {
    "pkce_authorize": ("pkce", "authorize"),
    "pkce_token_exchange": ("pkce", "exchanges"),
    "pkce_failed": ("pkce", "failed"),
    "social_login_initiated": ("social", "initiated"),
    "social_login_completed": ("social", "completed"),
    "social_link_initiated": ("social", "linked"),
    "mfa_challenge_displayed": ("mfa", "displayed"),
    "mfa_challenge_succeeded": ("mfa", "succeeded"),
    "mfa_challenge_failed": ("mfa", "failed"),
    "captcha_displayed": ("captcha", "displayed"),
    "captcha_succeeded": ("captcha", "succeeded"),
    "captcha_failed": ("captcha", "failed"),
    "breach_check_passed": ("breach", "passed"),
    "breach_check_failed": ("breach", "failed"),
}
_BY_KEY = {s.key: s for s in SECTIONS}
_MARK = b'"audit"'


def parse_time(text: str) -> str:
    """A time bound (``2026-12-03``, ``2026-12-03T11:00``, ...Z, +02:00) in event ``ts`` form.

    Naive times are UTC. Raises ValueError for text that is no ISO 8601 time.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Tally:
    """Counts per (period, section, dimension value); feed it lines with :meth:`add_lines`."""

    since: str | None = None
    until: str | None = None
    by: str | None = None
    lines: int = 0
    audit: int = 0
    counted: int = 0
    skipped: int = 0
    counts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)

    def add_lines(self, lines: Iterable[bytes]) -> None:
        """Count each line that is an audit event; skip the rest (and count them)."""
        for line in lines:
            self.lines += 1
            event = _parse(line)
            if event is None:
                self.skipped += 1
                continue
            self.audit += 1
            self.add(event)

    def add(self, event: dict[str, Any]) -> None:
        """Count one audit event dict (one outside --since/--until is read, not counted)."""
        ts = event.get("ts")
        if self.since is not None or self.until is not None or self.by is not None:
            if not isinstance(ts, str) or len(ts) < 13:
                return
            if (self.since is not None and ts < self.since) or (
                self.until is not None and ts >= self.until
            ):
                return
        found = _EVENTS.get(str(event.get("event")))
        if found is None:
            return
        self.counted += 1
        self.domains[str(event.get("domain"))] += 1
        key, column = found
        section = _BY_KEY[key]
        period = _period(str(ts), self.by) if self.by else ""
        value = "all" if section.dimension is None else _dimension(event.get(section.dimension))
        if key == "social" and column == "completed":
            first = event.get("first_login")
            if first is True:
                self.counts[(period, key, value, "first_time")] += 1
            elif first is False:
                self.counts[(period, key, value, "returning")] += 1
        self.counts[(period, key, value, column)] += 1
        if section.reasons == column:
            reason = _dimension(event.get("reason"))
            self.counts[(period, key, value, "reason:" + reason)] += 1

    def rows(self, section: Section) -> list[dict[str, Any]]:
        """One dict per (period, dimension value), sorted: counts, rates, reasons."""
        grouped: dict[tuple[str, str], dict[str, int]] = {}
        for (period, key, value, column), n in self.counts.items():
            if key == section.key:
                grouped.setdefault((period, value), {})[column] = n
        out = []
        for (period, value), got in sorted(grouped.items()):
            row: dict[str, Any] = {}
            if self.by:
                row[self.by] = period
            if section.dimension is not None:
                row[section.dimension] = value
            row.update((name, got.get(name, 0)) for name in section.counts)
            for name, top, below in section.rates:
                total = sum(got.get(b, 0) for b in below)
                row[name] = round(got.get(top, 0) / total, 4) if total else None
            if section.reasons is not None:
                reasons = {c[7:]: n for c, n in got.items() if c.startswith("reason:")}
                row["failures_by_reason"] = dict(
                    sorted(reasons.items(), key=lambda i: (-i[1], i[0]))
                )
            out.append(row)
        return out


def _period(ts: str, by: str) -> str:
    """``2026-12-03`` for a day, ``2026-12-03 11:00`` for an hour."""
    return ts[:10] if by == "day" else f"{ts[:10]} {ts[11:13]}:00"


def _dimension(value: object) -> str:
    if value is None:
        return "(null)"
    return str(value)


def _parse(line: bytes) -> dict[str, Any] | None:
    if _MARK not in line:
        return None
    start = line.find(b"{")
    if start < 0:
        return None
    try:
        event = orjson.loads(line[start:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") != "audit":
        return None
    return event
