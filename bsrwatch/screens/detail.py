"""Resource detail: volumes, peers, peer devices, statistics, sparklines,
UUIDs, other fields, and the options in force (``bsrsetup show RES``)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from bsrwatch.actions import Target
from bsrwatch.severity import Severity
from bsrwatch.store import Store
from bsrwatch.view import ResourceView, build_resource
from bsrwatch.widgets.resource_list import progress_text
from bsrwatch.widgets.text import glyphs, rate, size, sparkline

_SEV_STYLE = {Severity.normal: "green", Severity.warning: "yellow", Severity.alert: "bold red"}
SPARK_W = 40


def _num(v: object) -> str:
    return "-" if v is None else str(v)


def _table(*cols: str) -> Table:
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", expand=False,
              padding=(0, 2, 0, 0))
    for c in cols:
        t.add_column(c, no_wrap=True)
    return t


def _sum_history(store: Store, keys: list[tuple[object, str]]) -> list[float]:
    series = [store.rates.history(k, n) for k, n in keys]
    n = max((len(s) for s in series), default=0)
    out = [0.0] * n
    for s in series:
        for i, v in enumerate(s):
            out[n - len(s) + i] += v
    return out


def render_detail(store: Store, rv: ResourceView, ascii_only: bool, options: str) -> RenderableType:
    g = glyphs(ascii_only)
    st = store.state
    name = rv.name
    head = Text()
    head.append(f"{g.severity[rv.severity]} {name}", style="bold " + _SEV_STYLE[rv.severity])
    head.append(f"   role {rv.role}")
    res = st.resources.get((name,))
    if res is not None and res.suspended not in (None, "no"):
        head.append(f"   suspended {res.suspended}", style="bold red")
    parts: list[RenderableType] = [head]
    for reason in rv.verdict.reasons:
        parts.append(Text(f"  {g.arrow} {reason}", style=_SEV_STYLE[rv.severity]))

    vt = _table("vol", "disk", "size", "read/s", "write/s", "al-writes", "pending")
    devices: list[Text] = []
    for v in rv.volumes:
        dev = st.devices.get((name, str(v.volume)))
        pend = f"{_num(dev.upper_pending)}/{_num(dev.lower_pending)}" if dev else "-"
        vt.add_row(str(v.volume), Text(v.disk, _SEV_STYLE[v.verdict.severity]),
                   size(v.size_kib), rate(v.read_kib_s), rate(v.write_kib_s),
                   _num(dev.al_writes if dev else None), pend)
        devices.append(Text(f"  volume {v.volume}: minor {_num(v.minor)}, backing device "
                            f"{(dev.backing_dev if dev else None) or '-'}", style="dim"))
    parts += [Text("\nVolumes", style="bold underline"), vt, *devices]

    ct = _table("peer", "node", "connection", "peer role", "congestion", "in-flight")
    pt = _table("peer/vol", "replication", "peer disk", "OOS", "sent/s", "recv/s")
    paths: list[Text] = []
    progress: list[Text] = []
    for p in rv.peers:
        for pa in st.paths_of(name, p.peer_node_id):
            paths.append(Text(
                f"  {p.label} path {pa.local.split(':', 1)[-1]} {g.arrow} "
                f"{pa.peer.split(':', 1)[-1]} {'established' if pa.established else 'down'}",
                style="dim"))
        cong = ("congested" if p.congested else "no")
        if p.sndbuf_fill is not None and p.sndbuf_size:
            cong += f", sndbuf {100.0 * p.sndbuf_fill / p.sndbuf_size:.0f}%"
        if p.split_brain:
            cong = "SPLIT-BRAIN " + cong
        ct.add_row(p.label, str(p.peer_node_id),
                   Text(p.connection, "" if p.connection == "Connected" else "bold red"),
                   p.peer_role, cong, size(p.in_flight_kib))
        for v in p.volumes:
            pd = st.peer_devices.get((name, str(p.peer_node_id), str(v.volume)))
            pt.add_row(f"{p.label}/{v.volume}",
                       Text(v.replication, _SEV_STYLE[v.verdict.severity]),
                       Text(v.peer_disk, _SEV_STYLE[v.verdict.severity]),
                       size(v.out_of_sync_kib), rate(v.sent_kib_s), rate(v.received_kib_s))
            if pd is not None:
                progress.append(Text(f"  {p.label}/{v.volume} pending {_num(pd.pending)}, "
                                     f"unacked {_num(pd.unacked)}", style="dim"))
            if v.progress is not None:
                progress.append(Text.assemble(f"  {p.label}/{v.volume} {v.progress.kind} ",
                                              *progress_text(v, 60, g)))
    parts += [Text("\nConnections", style="bold underline"), ct, *paths,
              Text("\nPeer devices", style="bold underline"), pt, *progress]

    dev_keys = [("device", (name, str(v.volume))) for v in rv.volumes]
    pd_keys = [("peer-device", (name, str(p.peer_node_id), str(v.volume)))
               for p in rv.peers for v in p.volumes]
    writes = _sum_history(store, [(k, "written") for k in dev_keys])
    net = _sum_history(store, [(k, n) for k in pd_keys for n in ("sent", "received")])
    syncs = [s for k, s in store.syncs.items() if k[0] == name]
    resync = list(syncs[0].speeds) if syncs else []
    spark = _table("series", "recent", "now")
    for label, series in (("write", writes), ("network", net), ("resync", resync)):
        spark.add_row(label, sparkline(series, SPARK_W, g) or "-",
                      rate(series[-1]) if series else "-")
    parts += [Text("\nThroughput", style="bold underline"), spark]

    uuids = _table("object", "key", "value")
    for v in rv.volumes:
        dev = st.devices.get((name, str(v.volume)))
        for k, val in sorted((dev.extra if dev else {}).items()):
            if "uuid" in k:
                uuids.add_row(f"volume {v.volume}", k, val)
    for obj, flds in sorted(store.side.get(name, {}).items()):
        for k, val in flds.items():
            if k != "name":
                uuids.add_row(obj, k, val)
    if uuids.row_count:
        parts += [Text("\nUUIDs and events", style="bold underline"), uuids]

    extra = _table("object", "key", "value")
    for kind, obj in st.objects():
        if getattr(obj, "name", None) != name:
            continue
        for k, val in sorted(obj.extra.items()):
            if "uuid" not in k:
                extra.add_row(kind.value, k, val[:60])
    if extra.row_count:
        parts += [Text("\nOther fields", style="bold underline"), extra]
    parts += [Text("\nOptions in force", style="bold underline"), Text(options or "-")]
    return Group(*parts)


class DetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace,left", "app.pop_screen", "back"),
        Binding("o", "reload_options", "reload options"),
    ]

    def __init__(self, resource: str, ascii_only: bool) -> None:
        super().__init__()
        self.resource = resource
        self.ascii_only = ascii_only
        self.options = "(loading)"

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-scroll"):
            yield Static(id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.action_reload_options()

    def action_reload_options(self) -> None:
        self.app.load_options(self)  # type: ignore[attr-defined]

    def show(self, store: Store) -> None:
        rv = build_resource(store, self.resource)
        self.query_one("#detail", Static).update(
            render_detail(store, rv, self.ascii_only, self.options))

    def current_target(self) -> Target | None:
        return Target(self.resource)


__all__ = ["DetailScreen", "render_detail"]
