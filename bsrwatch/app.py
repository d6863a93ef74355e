"""The Textual application: wires a source, the store, the screens and actions.

The source runs as a worker and only feeds the store.  A timer (the
refresh interval, never shorter than 0.2 s, so at most five redraws a
second however fast events arrive) rebuilds the view model when the
store changed and hands it to the screen on top.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Input

from bsrwatch.actions import TaskRunner, Task, action_for_key
from bsrwatch.screens.confirm import ConfirmScreen
from bsrwatch.screens.detail import DetailScreen
from bsrwatch.screens.events import EventLogScreen
from bsrwatch.screens.help import HelpScreen
from bsrwatch.screens.overview import OverviewScreen
from bsrwatch.screens.tasks import TaskLogScreen
from bsrwatch.settings import MIN_REFRESH, Settings, save
from bsrwatch.sources import Source
from bsrwatch.store import Store
from bsrwatch.view import ViewCache, build_overview

THEMES = {"dark": "textual-dark", "light": "textual-light"}


def _act(key: str, name: str, show: bool = True) -> Binding:
    return Binding(key, f"act('{key}')", name, show=show)


class BsrWatchApp(App[None]):
    CSS_PATH = "bsrwatch.tcss"
    TITLE = "bsrwatch"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        _act("p", "primary"), _act("s", "secondary"), _act("v", "verify"),
        _act("c", "connect"), _act("d", "disconnect"), _act("a", "adjust", False),
        _act("z", "pause-sync", False), _act("r", "resume-sync", False),
        _act("P", "primary --force", False), _act("i", "invalidate", False),
        _act("I", "invalidate-remote", False), _act("D", "discard-my-data", False),
        Binding("t", "tasks", "tasks"),
        Binding("e", "events", "events", show=False),
        Binding("question_mark", "help", "help", show=False),
        Binding("T", "toggle_theme", "theme", show=False),
        Binding("q", "quit", "quit", show=False),
    ]

    def __init__(self, source: Source, settings: Settings = Settings(), *,
                 settings_path: Path | None = None, actions_enabled: bool = True,
                 disabled_reason: str = "") -> None:
        super().__init__()
        self.source = source
        self.settings = settings.checked()
        self.settings_path = settings_path
        self.actions_enabled = actions_enabled
        self.disabled_reason = disabled_reason
        self.store = Store()
        self.runner = TaskRunner(timeout=self.settings.timeout, on_change=self._task_changed)
        self.redraws = 0
        self._drawn_generation = -1
        self.overview = OverviewScreen(self.settings.ascii)
        self.views = ViewCache()

    # -- life cycle -----------------------------------------------------------

    def on_mount(self) -> None:
        self.theme = THEMES.get(self.settings.theme, "textual-dark")
        if self.settings.ascii:
            self.add_class("ascii")
        self.push_screen(self.overview)
        self.run_worker(self.source.run(self.store), name="source", group="source",
                        exit_on_error=False)
        self.set_interval(max(self.settings.refresh, MIN_REFRESH), self.refresh_view)
        self.refresh_view(force=True)

    def refresh_view(self, force: bool = False) -> None:
        """Redraw what the top screen shows, if anything changed (the throttle)."""
        if not force and self.store.generation == self._drawn_generation:
            return
        try:
            self._redraw()
        except (NoMatches, ScreenStackError):
            return  # the app is shutting down and its screens are going away

    def _redraw(self) -> None:
        self._drawn_generation = self.store.generation
        self.redraws += 1
        ov = self.overview
        if ov.composed and ov.is_attached:
            model = build_overview(self.store, ov.pattern, ov.problems_only, self.views)
            ov.show(model, list(self.store.events), self.store.event_total)
        top = self.screen
        if isinstance(top, DetailScreen):
            top.show(self.store)
        elif isinstance(top, TaskLogScreen):
            top.show(self.runner.tasks)
        elif isinstance(top, EventLogScreen):
            top.show(list(self.store.events))

    # -- screens --------------------------------------------------------------

    def open_detail(self, resource: str) -> None:
        scr = DetailScreen(resource, self.settings.ascii)
        self.push_screen(scr)
        scr.call_after_refresh(scr.show, self.store)

    def load_options(self, scr: DetailScreen) -> None:
        argv = [*shlex.split(self.settings.show_command), scr.resource]

        async def load() -> None:
            task = await self.runner.run(argv, quiet=True)
            out = task.output.strip()
            scr.options = out if task.rc == 0 else f"{task.command}: {task.result}\n{out}"
            if scr.is_mounted:
                scr.show(self.store)
        self.run_worker(load(), group="options")

    def action_tasks(self) -> None:
        if isinstance(self.screen, TaskLogScreen):
            self.pop_screen()
            return
        scr = TaskLogScreen()
        self.push_screen(scr)
        scr.call_after_refresh(scr.show, self.runner.tasks)

    def action_events(self) -> None:
        if isinstance(self.screen, EventLogScreen):
            self.pop_screen()
            return
        scr = EventLogScreen(self.settings.ascii)
        self.push_screen(scr)
        scr.call_after_refresh(scr.show, list(self.store.events))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.settings.command))

    def action_toggle_theme(self) -> None:
        new = "light" if self.settings.theme == "dark" else "dark"
        self.settings = replace(self.settings, theme=new)
        self.theme = THEMES[new]
        if self.settings_path is not None:
            try:
                save(self.settings, self.settings_path)
            except OSError as e:
                self.notify(f"cannot save settings: {e}", severity="warning")

    # -- actions --------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            if isinstance(self.screen, ModalScreen) or isinstance(self.focused, Input):
                return False
        return True

    def action_act(self, key: str) -> None:
        action = action_for_key(key)
        target = getattr(self.screen, "current_target", lambda: None)()
        if action is None or target is None:
            self.notify("select a resource first", severity="warning")
            return
        if not self.actions_enabled:
            self.notify(f"actions disabled: {self.disabled_reason}", severity="warning")
            return
        argv = action.argv(self.settings.command, target)
        typed = target.resource if action.dangerous and not self.settings.expert else None

        def done(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.runner.run(argv), group="tasks")
        self.push_screen(ConfirmScreen(argv, action.help, typed), done)

    def _task_changed(self, task: Task) -> None:
        if task.state.value != "running" and not task.quiet:
            sev = "information" if task.rc == 0 else "error"
            self.notify(f"{task.command}: {task.result}", severity=sev)  # type: ignore[arg-type]
            self.store.log(f"ran {task.command}: {task.result}",
                           "info" if task.rc == 0 else "alert")
        if isinstance(self.screen, TaskLogScreen):
            self.screen.show(self.runner.tasks)
