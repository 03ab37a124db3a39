"""Interleaved timing: every variant runs once per round, rounds repeat, figures are medians.

Ratios and differences are taken within a round (a variant against its baseline timed
moments before or after it), then summarized over rounds, so drift of the machine
between rounds cancels out.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

Batch = Callable[[int], None]
SETTLE = 0.15


@dataclass
class Series:
    """One variant's per-round figures (µs per operation)."""

    name: str
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def calibrate(batch: Batch, seconds: float, floor: int = 200) -> int:
    """How many operations make a batch last about ``seconds``."""
    n = 50
    while True:
        start = time.perf_counter()
        batch(n)
        took = time.perf_counter() - start
        if took >= seconds / 4 or n >= 5_000_000:
            return max(floor, int(n * seconds / max(took, 1e-9)))
        n *= 4


def interleaved(
    variants: dict[str, Batch], *, rounds: int, seconds: float, progress: Callable[[str], None]
) -> dict[str, Series]:
    """Time every variant once per round (order rotated each round); µs per operation."""
    sizes: dict[str, int] = {}
    for name, batch in variants.items():
        batch(200)  # warm-up: imports, caches, writer threads
        sizes[name] = calibrate(batch, seconds)
    names = list(variants)
    out = {name: Series(name, []) for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            n = sizes[name]
            gc.collect()
            # Let writer threads of the previous variant go back to sleep (they poll for
            # 0.1 s after their last line), so they do not run inside this batch.
            time.sleep(SETTLE)
            start = time.perf_counter_ns()
            variants[name](n)
            took = time.perf_counter_ns() - start
            out[name].values.append(took / 1000 / n)
        progress(f"  round {r + 1}/{rounds}")
    return out


def per_round(a: Series, b: Series, op: Callable[[float, float], float]) -> Series:
    """``op(a, b)`` round by round."""
    return Series(
        f"{a.name} vs {b.name}", [op(x, y) for x, y in zip(a.values, b.values, strict=True)]
    )


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def spread(series: Series, digits: int = 1) -> str:
    """``median (min–max)``."""
    return f"{fmt(series.median, digits)} ({fmt(series.low, digits)}–{fmt(series.high, digits)})"
