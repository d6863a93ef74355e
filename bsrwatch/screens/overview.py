"""Overview: status line, every resource, the event log pane, the key footer."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from bsrwatch.actions import Target
from bsrwatch.severity import Severity
from bsrwatch.store import LogEntry
from bsrwatch.view import Overview
from bsrwatch.widgets.resource_list import DISK_W, STATE_W, ResourceList, name_width

_LOG_STYLE = {"info": "", "warning": "yellow", "alert": "bold red"}


def status_text(ov: Overview, pattern: str, problems_only: bool) -> Text:
    t = Text("bsrwatch ", style="bold")
    if not ov.ready:
        t.append("waiting for the initial state ", style="italic")
    else:
        t.append(f"{ov.total} resources ")
        for sev, style in ((Severity.alert, "bold red"), (Severity.warning, "yellow")):
            if ov.counts.get(sev):
                t.append(f"{ov.counts[sev]} {sev.name} ", style=style)
    if problems_only:
        t.append("[problems only] ", style="reverse")
    if pattern:
        t.append(f"[filter {pattern}] ", style="reverse")
    t.append("| ", style="dim")
    t.append(ov.status_text, style="" if ov.status_ok else "bold red")
    return t


def format_log(e: LogEntry, ascii_only: bool = False) -> Text:
    text = e.text.replace("→", "->") if ascii_only else e.text
    return Text(f"{e.when:%H:%M:%S} {text}", style=_LOG_STYLE.get(e.level, ""))


class OverviewScreen(Screen[None]):
    BINDINGS = [
        # first, so that an 80-column footer always shows them
        Binding("question_mark", "app.help", "help"),
        Binding("q", "app.quit", "quit"),
        Binding("slash", "filter", "filter"),
        Binding("exclamation_mark", "problems", "problems"),
        Binding("l", "toggle_log", "log", show=False),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self, ascii_only: bool) -> None:
        super().__init__()
        self.ascii_only = ascii_only
        self.pattern = ""
        self.problems_only = False
        self._shown_events = 0
        self.last: Overview | None = None
        self.composed = False  # set once the widgets exist

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="heading")
        yield ResourceList(ascii_only=self.ascii_only, id="resources")
        box = Input(placeholder="filter: substring or glob, Enter to apply, Esc to clear",
                    id="filter")
        box.cursor_blink = False  # no redraw traffic over SSH
        yield box
        with Vertical(id="logpane"):
            yield Static(id="eventlog")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.composed = True
        self.query_one("#filter", Input).display = False
        self.query_one(ResourceList).focus()

    def show(self, ov: Overview, events: list[LogEntry], total_events: int) -> None:
        self.last = ov
        lst = self.query_one(ResourceList)
        name_w = name_width(ov)
        self.query_one("#heading", Static).update(Text(
            f"  {'RESOURCE / PEER / VOLUME':<{name_w}} {'ROLE/STATE':<{STATE_W}} "
            f"{'DISK/PEER':<{DISK_W}} DETAIL", style="bold"))
        self.query_one("#status", Static).update(status_text(ov, self.pattern, self.problems_only))
        lst.show(ov)
        if total_events != self._shown_events:
            self._shown_events = total_events
            log = self.query_one("#eventlog", Static)
            rows = max(log.size.height, 6)
            log.update(Text("\n").join(format_log(e, self.ascii_only) for e in events[-rows:]))

    def current_target(self) -> Target | None:
        return self.query_one(ResourceList).current_target()

    # -- keys ---------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.pattern
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.pattern = event.value.strip()
        event.input.display = False
        self.query_one(ResourceList).focus()
        self.app.refresh_view(force=True)  # type: ignore[attr-defined]

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = False
        self.pattern = ""
        self.query_one(ResourceList).focus()
        self.app.refresh_view(force=True)  # type: ignore[attr-defined]

    def action_problems(self) -> None:
        self.problems_only = not self.problems_only
        self.app.refresh_view(force=True)  # type: ignore[attr-defined]

    def action_toggle_log(self) -> None:
        pane = self.query_one("#logpane")
        pane.display = not pane.display

    def on_resource_list_opened(self, msg: ResourceList.Opened) -> None:
        self.app.open_detail(msg.target.resource)  # type: ignore[attr-defined]
