"""Drive bsrwatch headless inside a guest against the real bsr module.

Usage: python bsrwatch_driver.py RESOURCE COMMAND KEY:ROLE [KEY:ROLE ...]

For every step: wait until RESOURCE is listed, press KEY on it, record the
command the confirmation shows, confirm with ``y``, wait for the command to
finish and for the overview (fed by the module's netlink events) to show
ROLE on the resource line.  Prints one JSON object with what it saw.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

from bsrwatch.actions import TaskState
from bsrwatch.app import BsrWatchApp
from bsrwatch.screens.confirm import ConfirmScreen
from bsrwatch.settings import Settings
from bsrwatch.sources import NetlinkSource
from bsrwatch.widgets.resource_list import ResourceList

WAIT_S = 300.0


async def _until(pilot, cond, what: str) -> None:
    end = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        await pilot.pause(0.2)


def _res_line(app: BsrWatchApp, res: str) -> str:
    for line in app.overview.query_one(ResourceList).text_lines():
        if line[2:].split(" ", 1)[0] == res:
            return line
    return ""


async def main(res: str, command: str, steps: list[tuple[str, str]]) -> dict:
    app = BsrWatchApp(NetlinkSource(), Settings(command=command, timeout=240.0))
    seen: dict = {"steps": []}
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: _res_line(app, res), f"{res} listed")
        seen["initial"] = _res_line(app, res)
        for key, role in steps:
            step: dict = {"key": key}
            ResourceList_ = app.overview.query_one(ResourceList)
            ResourceList_.cursor = next(i for i, r in enumerate(ResourceList_.rows)
                                        if r.target.resource == res and r.target.peer is None)
            await pilot.press(key)
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
            step["argv"] = app.screen.argv  # type: ignore[attr-defined]
            n = len(app.runner.tasks)
            await pilot.press("y")
            await _until(pilot, lambda: len(app.runner.tasks) > n and
                         app.runner.tasks[-1].state is not TaskState.running, "command done")
            task = app.runner.tasks[-1]
            step["result"] = {"state": task.state.value, "rc": task.rc, "output": task.output}
            await _until(pilot, lambda: f" {role} " in _res_line(app, res), f"role {role} shown")
            step["line"] = _res_line(app, res)
            step["log"] = [e.text for e in app.store.events][-5:]
            seen["steps"].append(step)
        seen["status"] = app.store.status.text
    return seen


if __name__ == "__main__":
    res, command, *pairs = sys.argv[1:]
    print(json.dumps(asyncio.run(main(res, command, [tuple(p.split(":", 1)) for p in pairs]))))
