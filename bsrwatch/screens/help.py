"""Help: every key, including those the footer has no room for."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from bsrwatch.actions import ACTIONS

NAV_KEYS = [
    ("up/down, j/k", "move the selection"), ("PgUp/PgDn, Home/End", "page, first, last"),
    ("Enter", "resource detail"), ("/", "filter resources (substring or glob)"),
    ("!", "problems only on/off"), ("l", "event log pane on/off"), ("e", "full event log"), ("t", "task log"),
    ("T", "dark/light theme (saved)"), ("?", "this help"), ("Esc", "back / clear filter"),
    ("q", "quit"),
]


def help_table(command: str) -> Table:
    t = Table(box=None, show_header=True, header_style="bold")
    t.add_column("key", no_wrap=True)
    t.add_column("does")
    for k, what in NAV_KEYS:
        t.add_row(k, what)
    for a in ACTIONS:
        mark = " (typed confirmation)" if a.dangerous else ""
        t.add_row(a.key, f"{command} {' '.join(a.args)} <{a.scope.value}>: {a.help}{mark}")
    return t


class HelpScreen(Screen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "back")]

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(help_table(self.command))
        yield Footer(compact=True)
