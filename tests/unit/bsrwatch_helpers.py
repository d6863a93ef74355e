"""Shared helpers for the bsrwatch UI tests (not a test module)."""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path

from bsrwatch.app import BsrWatchApp
from bsrwatch.settings import Settings
from bsrwatch.widgets.resource_list import ResourceList

DATA = Path(__file__).parent / "data" / "bsrwatch"


class ReplaySource:
    """Feeds recorded files, then stays live (like a source that keeps running)."""

    can_act = True

    def __init__(self, *names: str) -> None:
        self.names = names
        self.description = "+".join(names)

    async def run(self, sink) -> None:
        sink.set_status(f"replay {self.description}", ok=True)
        for n in self.names:
            for line in (DATA / f"{n}.events2").read_text().splitlines():
                sink.feed_line(line)
        await asyncio.Event().wait()


def make_app(*names: str, settings: Settings = Settings(), **kw) -> BsrWatchApp:
    return BsrWatchApp(ReplaySource(*names), settings, **kw)


def feed(app: BsrWatchApp, name: str) -> None:
    for line in (DATA / f"{name}.events2").read_text().splitlines():
        app.store.feed_line(line)


def lines(app: BsrWatchApp) -> list[str]:
    return app.overview.query_one(ResourceList).text_lines()


def screen_text(app: BsrWatchApp) -> str:
    """Everything visible on the current screen, as plain text (from the SVG export)."""
    svg = app.export_screenshot()
    texts = re.findall(r">([^<]*)</text>", svg)
    return html.unescape(" ".join(texts)).replace("\xa0", " ")


def notes(app: BsrWatchApp) -> list[str]:
    """Messages of the toasts currently shown."""
    return [n.message for n in app._notifications]
