"""Rates and resync progress derived from successive statistics samples.

Time comes from the event timestamps when the stream has them (so a
recorded stream gives the same numbers however fast it is replayed), else
from the wall clock at arrival.  Nothing here ever divides by zero: a rate
needs two samples at different times, a percentage needs a non-zero total.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Hashable

from bsr.model import counter_delta

HISTORY = 60  # sparkline points kept per series


@dataclass
class _Counter:
    t: float
    value: int
    rate: float | None = None
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))


class RateTracker:
    """Per-second growth of monotonic counters, keyed by (object, counter)."""

    def __init__(self) -> None:
        self._c: dict[tuple[Hashable, str], _Counter] = {}

    def observe(self, obj: Hashable, name: str, value: int, t: float) -> None:
        key = (obj, name)
        c = self._c.get(key)
        if c is None:
            self._c[key] = _Counter(t, value)
            return
        dt = t - c.t
        if dt <= 0:
            if value < c.value:  # reset at the same instant: restart the baseline
                c.value = value
            return
        delta = counter_delta(c.value, value)
        c.rate = (delta or 0) / dt
        c.history.append(c.rate)
        c.t, c.value = t, value

    def rate(self, obj: Hashable, name: str) -> float | None:
        c = self._c.get((obj, name))
        return c.rate if c else None

    def history(self, obj: Hashable, name: str) -> list[float]:
        c = self._c.get((obj, name))
        return list(c.history) if c else []

    def forget(self, obj: Hashable) -> None:
        for k in [k for k in self._c if k[0] == obj]:
            del self._c[k]

    def clear(self) -> None:
        self._c.clear()


@dataclass
class SyncTrack:
    """Out-of-sync amount of one peer device over a resync or verify."""

    start_kib: int = 0  # largest OOS seen since the sync started
    window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=32))
    speeds: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    WINDOW_S = 10.0

    def observe(self, oos_kib: int, t: float) -> None:
        self.start_kib = max(self.start_kib, oos_kib)
        if self.window and t <= self.window[-1][0]:
            self.window[-1] = (self.window[-1][0], oos_kib)
            return
        self.window.append((t, oos_kib))
        while len(self.window) > 2 and t - self.window[0][0] > self.WINDOW_S:
            self.window.popleft()
        speed = self.speed_kib_s()
        if speed is not None:
            self.speeds.append(speed)

    def speed_kib_s(self) -> float | None:
        """KiB/s synced over the recent window (None without two samples)."""
        if len(self.window) < 2:
            return None
        (t0, v0), (t1, v1) = self.window[0], self.window[-1]
        dt = t1 - t0
        if dt <= 0:
            return None
        return max(v0 - v1, 0) / dt

    def percent(self, oos_kib: int | None) -> float | None:
        if oos_kib is None or self.start_kib <= 0:
            return None
        return clamp_pct(100.0 * (self.start_kib - oos_kib) / self.start_kib)


def clamp_pct(p: float) -> float:
    if p != p:  # NaN
        return 0.0
    return min(max(p, 0.0), 100.0)


def eta_seconds(remaining_kib: int | None, speed_kib_s: float | None) -> float | None:
    if remaining_kib is None or not speed_kib_s or speed_kib_s <= 0:
        return None
    return remaining_kib / speed_kib_s
