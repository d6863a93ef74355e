"""Event log: every state change kept (the last 1000), newest last."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from bsrwatch.store import LogEntry
from bsrwatch.screens.overview import format_log


class EventLogScreen(Screen[None]):
    BINDINGS = [Binding("escape,e,backspace", "app.pop_screen", "back")]

    def __init__(self, ascii_only: bool = False) -> None:
        super().__init__()
        self.ascii_only = ascii_only

    def compose(self) -> ComposeResult:
        yield Static(Text("Event log (newest last)", style="bold"))
        with VerticalScroll(id="events-scroll"):
            yield Static(id="events")
        yield Footer(compact=True)

    def show(self, events: list[LogEntry]) -> None:
        self.query_one("#events", Static).update(
            Text("\n").join(format_log(e, self.ascii_only) for e in events) if events else Text("No events yet."))
        self.query_one("#events-scroll", VerticalScroll).scroll_end(animate=False)
