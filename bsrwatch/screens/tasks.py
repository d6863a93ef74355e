"""Task log: every command bsrwatch ran, its exit code and its output."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from bsrwatch.actions import Task, TaskState

_STYLE = {TaskState.running: "yellow", TaskState.ok: "green", TaskState.failed: "bold red",
          TaskState.timeout: "bold red", TaskState.error: "bold red"}


def render_tasks(tasks: list[Task]) -> Group:
    if not tasks:
        return Group(Text("No commands run yet.", style="italic"))
    parts = []
    for t in reversed(tasks):
        line = Text(f"#{t.id} {t.started:%H:%M:%S} ")
        line.append(f"{t.result:<16}", style=_STYLE[t.state])
        line.append(f" {t.seconds:5.1f}s  ")
        line.append(t.command, style="bold")
        parts.append(line)
        for out in t.output.rstrip().splitlines()[-20:]:
            parts.append(Text("    " + out, style="dim"))
    return Group(*parts)


class TaskLogScreen(Screen[None]):
    BINDINGS = [Binding("escape,t,backspace", "app.pop_screen", "back")]

    def compose(self) -> ComposeResult:
        yield Static(Text("Task log: commands run by bsrwatch (newest first)", style="bold"))
        with VerticalScroll():
            yield Static(id="tasks")
        yield Footer(compact=True)

    def show(self, tasks: list[Task]) -> None:
        self.query_one("#tasks", Static).update(render_tasks(tasks))
