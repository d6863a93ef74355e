"""Confirmation of an action: the exact command, and for dangerous ones a
typed confirmation (the resource name) unless bsrwatch runs in expert mode."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("escape,n", "answer(False)", "cancel"),
        Binding("y,enter", "answer(True)", "run"),
    ]

    def __init__(self, argv: list[str], help_text: str, typed: str | None) -> None:
        super().__init__()
        self.argv = argv
        self.help_text = help_text
        self.typed = typed  # text the user must type, None for a plain y/n

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(Text("Run this command?", style="bold"))
            yield Static(Text(shlex.join(self.argv), style="bold reverse"), id="confirm-cmd")
            yield Static(Text(self.help_text, style="italic"))
            if self.typed is not None:
                yield Static(Text(f"Dangerous: type {self.typed!r} and press Enter "
                                  "(Esc cancels)", style="bold red"))
                box = Input(id="confirm-input")
                box.cursor_blink = False  # no redraw traffic over SSH
                yield box
            else:
                yield Static(Text("y / Enter: run     n / Esc: cancel"))

    def on_mount(self) -> None:
        if self.typed is not None:
            self.query_one(Input).focus()

    def action_answer(self, yes: bool) -> None:
        if self.typed is not None and yes:
            return  # typed confirmations go through the input
        self.dismiss(yes)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self.typed:
            self.dismiss(True)
        else:
            event.input.value = ""
            self.notify(f"type {self.typed!r} exactly, or Esc to cancel", severity="warning")
