"""The overview list: one line per resource, volume, peer and peer volume.

A line-API widget (like Textual's Log): only the visible lines are drawn,
so thousands of resources cost nothing per frame beyond building the line
texts once per refresh.  Lines are (text, style-class) runs; the classes
are component classes styled in bsrwatch.tcss, so themes apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from bsrwatch.actions import Target
from bsrwatch.severity import Severity
from bsrwatch.view import Overview, PeerView, PeerVolumeView, ResourceView
from bsrwatch.widgets.text import Glyphs, bar, duration, glyphs, rate, size

Run = tuple[str, str]  # text, component class ("" = plain)

_SEV_CLASS = {Severity.normal: "rl--good", Severity.warning: "rl--warn",
              Severity.alert: "rl--bad"}
STATE_W = 11
DISK_W = 13


@dataclass
class Row:
    target: Target
    runs: list[Run]


def _cell(text: str, width: int) -> str:
    return text[:width].ljust(width)


def progress_text(pv: PeerVolumeView, avail: int, g: Glyphs) -> list[Run]:
    p = pv.progress
    if p is None:
        oos = pv.out_of_sync_kib
        return [(f"OOS {size(oos)}", "rl--warn")] if oos else []
    label = p.kind + (" paused" if p.paused else "")
    pct = "  ?  %" if p.percent is None else f"{p.percent:5.1f}%"
    tail = f" {pct} {rate(p.speed_kib_s)} ETA {duration(p.eta_s)}"
    width = max(6, min(22, avail - len(tail)))
    if avail - len(tail) < 6:  # too narrow for a bar: numbers only
        return [(f"{label}{tail}", "rl--warn")]
    done, todo = bar(p.percent, width, g)
    return [(done, "rl--bar-done"), (todo, "rl--bar-todo"), (tail, "rl--warn" if p.paused else "")]


def _peer_detail(pv: PeerView) -> list[Run]:
    bits: list[Run] = []
    if pv.split_brain:
        bits.append(("SPLIT-BRAIN ", "rl--bad"))
    if pv.congested:
        bits.append(("congested ", "rl--warn"))
    if pv.in_flight_kib:
        bits.append((f"in-flight {size(pv.in_flight_kib)} ", ""))
    if pv.sndbuf_fill is not None and pv.sndbuf_size:
        pct = 100.0 * pv.sndbuf_fill / pv.sndbuf_size
        bits.append((f"sndbuf {pct:.0f}% ", "rl--warn" if pct >= 80 else ""))
    return bits


class RowCache:
    """Rows of each resource view, reused while the view object is unchanged."""

    def __init__(self) -> None:
        self.layout: tuple[int, int, bool] | None = None
        self.rows: dict[str, tuple[ResourceView, list[Row]]] = {}

    def rows_of(self, r: ResourceView, name_w: int, avail: int, g: Glyphs,
                layout: tuple[int, int, bool]) -> list[Row]:
        if layout != self.layout:
            self.rows.clear()
            self.layout = layout
        hit = self.rows.get(r.name)
        if hit is not None and hit[0] is r:
            return hit[1]
        rows = _resource_rows(r, name_w, avail, g)
        self.rows[r.name] = (r, rows)
        return rows


def name_width(ov: Overview) -> int:
    """Width of the first column: the longest name, within 14..28."""
    return min(max([len(r.name) for r in ov.resources] + [12]) + 2, 28)


def build_rows(ov: Overview, width: int, ascii_only: bool,
               cache: RowCache | None = None) -> list[Row]:
    g = glyphs(ascii_only)
    name_w = name_width(ov)
    used = 2 + name_w + 1 + STATE_W + 1 + DISK_W + 1
    avail = max(width - used, 0)
    rows: list[Row] = []
    layout = (name_w, avail, ascii_only)
    for r in ov.resources:
        if cache is not None:
            rows.extend(cache.rows_of(r, name_w, avail, g, layout))
        else:
            rows.extend(_resource_rows(r, name_w, avail, g))
    return rows


def _resource_rows(r: ResourceView, name_w: int, avail: int, g: Glyphs) -> list[Row]:
    sev = _SEV_CLASS[r.severity]
    disk, dsev = ("-", Severity.normal)
    if len(r.volumes) == 1:
        disk, dsev = r.volumes[0].disk, r.volumes[0].verdict.severity
    elif r.volumes:
        worst = max(r.volumes, key=lambda v: v.verdict.severity)
        disk, dsev = f"{len(r.volumes)} volumes", worst.verdict.severity
    detail = ""
    if len(r.volumes) == 1 and r.volumes[0].size_kib is not None:
        detail = size(r.volumes[0].size_kib)
        if r.volumes[0].write_kib_s:
            detail += f"  w {rate(r.volumes[0].write_kib_s)}"
    role_cls = "rl--role-primary" if r.role == "Primary" else (
        "rl--bad" if r.role == "Unknown" else "")
    rows = [Row(Target(r.name), [
        (g.severity[r.severity] + " ", sev), (_cell(r.name, name_w), "rl--name"), (" ", ""),
        (_cell(r.role, STATE_W), role_cls), (" ", ""),
        (_cell(disk, DISK_W), _SEV_CLASS[dsev]), (" ", ""), (detail, "rl--dim")])]
    if len(r.volumes) > 1:
        for i, v in enumerate(r.volumes):
            br = g.last_branch if i == len(r.volumes) - 1 and not r.peers else g.branch
            rows.append(Row(Target(r.name, volume=v.volume), [
                ("  ", ""), (_cell(f"{br}vol {v.volume}", name_w), "rl--dim"), (" ", ""),
                (_cell(f"minor {v.minor}" if v.minor is not None else "", STATE_W), "rl--dim"),
                (" ", ""), (_cell(v.disk, DISK_W), _SEV_CLASS[v.verdict.severity]), (" ", ""),
                (size(v.size_kib), "rl--dim")]))
    for i, p in enumerate(r.peers):
        last = i == len(r.peers) - 1
        rows.append(Row(Target(r.name, peer=p.label), [
            ("  ", ""), (_cell((g.last_branch if last else g.branch) + p.label, name_w), ""),
            (" ", ""), (_cell(p.connection, STATE_W), _SEV_CLASS[p.verdict.severity
                                                                  if p.connection != "Connected"
                                                                  or p.split_brain
                                                                  else Severity.normal]),
            (" ", ""), (_cell(p.peer_role, DISK_W),
                        "rl--role-primary" if p.peer_role == "Primary" else ""),
            (" ", ""), *_peer_detail(p)]))
        pad = "  " if last else (g.branch[0] + " ")
        for v in p.volumes:
            rows.append(Row(Target(r.name, peer=p.label, volume=v.volume), [
                ("  ", ""), (_cell(f"{pad}vol {v.volume}", name_w), "rl--dim"), (" ", ""),
                (_cell(v.replication, STATE_W), _SEV_CLASS[v.verdict.severity]), (" ", ""),
                (_cell(v.peer_disk, DISK_W), _SEV_CLASS[v.verdict.severity]), (" ", ""),
                *progress_text(v, avail, g)]))
    return rows


class ResourceList(ScrollView, can_focus=True):
    """Keyboard-driven list of everything in the overview."""

    COMPONENT_CLASSES = {
        "rl--good", "rl--warn", "rl--bad", "rl--name", "rl--dim", "rl--role-primary",
        "rl--bar-done", "rl--bar-todo", "rl--cursor",
    }
    BINDINGS = [
        Binding("up,k", "move(-1)", "up", show=False),
        Binding("down,j", "move(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown,space", "page(1)", "page down", show=False),
        Binding("home,g", "jump(0)", "first", show=False),
        Binding("end,G", "jump(-1)", "last", show=False),
        Binding("enter", "open", "detail", show=False),
    ]

    class Opened(Message):
        def __init__(self, target: Target) -> None:
            super().__init__()
            self.target = target

    def __init__(self, *, ascii_only: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ascii_only = ascii_only
        self.rows: list[Row] = []
        self.cursor = 0
        self._overview: Overview | None = None
        self._styles: dict[str, Style] = {}
        self._row_cache = RowCache()

    # -- data ---------------------------------------------------------------

    def show(self, ov: Overview) -> None:
        self._overview = ov
        self._rebuild()

    def _rebuild(self) -> None:
        if self._overview is None:
            return
        keep = self.current_target()
        self.rows = build_rows(self._overview, self.scrollable_content_region.width or 80,
                               self.ascii_only, self._row_cache)
        if keep is not None:
            idx = next((i for i, r in enumerate(self.rows) if r.target == keep), None)
            if idx is None:
                idx = next((i for i, r in enumerate(self.rows)
                            if r.target.resource == keep.resource), self.cursor)
            self.cursor = idx
        self.cursor = min(self.cursor, max(len(self.rows) - 1, 0))
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.rows))
        self._styles.clear()
        self.refresh()

    def on_resize(self) -> None:
        self._rebuild()

    def current_target(self) -> Target | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].target
        return None

    def text_lines(self) -> list[str]:
        """The rows as plain text (tests and the benchmark read this)."""
        return ["".join(t for t, _ in r.runs).rstrip() for r in self.rows]

    # -- keys ---------------------------------------------------------------

    def _set_cursor(self, idx: int) -> None:
        if not self.rows:
            return
        self.cursor = min(max(idx, 0), len(self.rows) - 1)
        self.scroll_to_region(Region(0, self.cursor, 1, 1), animate=False, immediate=True,
                              force=True)
        self.refresh()

    def action_move(self, step: int) -> None:
        self._set_cursor(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._set_cursor(self.cursor + step * max(self.scrollable_content_region.height - 1, 1))

    def action_jump(self, where: int) -> None:
        self._set_cursor(0 if where == 0 else len(self.rows) - 1)

    def action_open(self) -> None:
        t = self.current_target()
        if t is not None:
            self.post_message(self.Opened(t))

    # -- drawing ------------------------------------------------------------

    def _style(self, cls: str) -> Style:
        st = self._styles.get(cls)
        if st is None:
            st = self.get_component_rich_style(cls) if cls else Style()
            self._styles[cls] = st
        return st

    def notify_style_update(self) -> None:
        self._styles.clear()
        super().notify_style_update()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        idx = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if idx >= len(self.rows):
            return Strip.blank(width, base)
        segs = [Segment(t, base + self._style(c)) for t, c in self.rows[idx].runs if t]
        strip = Strip(segs).crop_extend(scroll_x, scroll_x + width, base)
        if idx == self.cursor and self.has_focus:
            strip = strip.apply_style(self._style("rl--cursor"))
        elif idx == self.cursor:
            strip = strip.apply_style(Style(underline=True))
        return strip
