"""Text building blocks: glyph sets, units, progress bars and sparklines.

Everything has an ASCII form for terminals (or SSH paths) that mangle
Unicode; nothing here divides by zero or trusts its input to be sane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bsrwatch.severity import Severity


@dataclass(frozen=True)
class Glyphs:
    severity: dict[Severity, str]
    branch: str
    last_branch: str
    bar_full: str
    bar_partial: str  # increasing fill, without the empty cell
    bar_empty: str
    bar_left: str
    bar_right: str
    spark: str  # lowest to highest
    arrow: str


UNICODE = Glyphs(
    severity={Severity.normal: "●", Severity.warning: "▲", Severity.alert: "✖"},
    branch="├ ", last_branch="└ ", bar_full="█", bar_partial="▏▎▍▌▋▊▉", bar_empty="░",
    bar_left="▕", bar_right="▏", spark="▁▂▃▄▅▆▇█", arrow="→")
ASCII = Glyphs(
    severity={Severity.normal: "o", Severity.warning: "!", Severity.alert: "X"},
    branch="|-", last_branch="`-", bar_full="#", bar_partial="", bar_empty="-",
    bar_left="[", bar_right="]", spark="_.-~=+*#", arrow="->")


def glyphs(ascii_only: bool) -> Glyphs:
    return ASCII if ascii_only else UNICODE


_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size(kib: float | None) -> str:
    """A KiB amount as a short human size (``1.0 GiB``)."""
    if kib is None:
        return "-"
    v = float(kib)
    for unit in _UNITS:
        if abs(v) < 1024 or unit == _UNITS[-1]:
            return f"{v:.0f} {unit}" if unit == "KiB" else f"{v:.1f} {unit}"
        v /= 1024
    return "-"


def rate(kib_s: float | None) -> str:
    return "-" if kib_s is None else size(kib_s) + "/s"


def duration(seconds: float | None) -> str:
    """``h:mm:ss`` / ``m:ss``; ``-`` when unknown, ``>99h`` when silly."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    if seconds >= 100 * 3600:
        return ">99h"
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def bar(percent: float | None, width: int, g: Glyphs) -> tuple[str, str]:
    """A progress bar as (done part, remaining part), brackets included."""
    inner = max(width - 2, 1)
    p = 0.0 if percent is None or percent != percent else min(max(percent, 0.0), 100.0)
    cells = p / 100.0 * inner
    full = int(cells)
    done = g.bar_full * full
    if full < inner and g.bar_partial:
        frac = int((cells - full) * (len(g.bar_partial) + 1))
        if frac > 0:
            done += g.bar_partial[frac - 1]
    return g.bar_left + done, g.bar_empty * (inner - len(done)) + g.bar_right


def sparkline(values: Sequence[float], width: int, g: Glyphs) -> str:
    """The last ``width`` values scaled to the largest one (zeros stay lowest)."""
    vals = [v if v == v and v > 0 else 0.0 for v in list(values)[-width:]]
    if not vals:
        return ""
    top = max(vals)
    n = len(g.spark) - 1
    if top <= 0:
        return g.spark[0] * len(vals)
    return "".join(g.spark[min(int(v / top * n + 0.5), n)] for v in vals)
