"""bsrwatch on the two lab guests (issue #7), and the demo's headless run
(first, before this module's lab boots: the demo boots its own guests).

bsrwatch runs headless (Textual's run_test) in the test process and sees
guest a the way ``make demo`` shows it: its events come from ``bsrsetup
events2`` running in a, its actions run bsradm in a, both through the
demo's exec channel (tools/demo_lab.py).  The module is the real one.
"""
from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from harness import Guest
from harness.lab import Lab

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import demo_lab  # noqa: E402

from bsrwatch.actions import TaskState  # noqa: E402
from bsrwatch.app import BsrWatchApp  # noqa: E402
from bsrwatch.screens.confirm import ConfirmScreen  # noqa: E402
from bsrwatch.settings import Settings  # noqa: E402
from bsrwatch.sources import CommandSource  # noqa: E402
from bsrwatch.widgets.resource_list import ResourceList  # noqa: E402

pytestmark = pytest.mark.vm

T = 900
EVENTS = shlex.join(["bsrsetup", "events2", "--statistics", "--timestamps", "--interval=1"])


def adm(g: Guest, args: str) -> str:
    return g.check(f"bsradm {args}", timeout=T, env={"BSR_HOSTNAME": g.name}).stdout


def bring_up(lab: Lab, ko: Path, resync_rate: str = "20M") -> None:
    """r0 on both guests with the demo's bsr.conf; waits for Connected."""
    conf = demo_lab.bsr_conf({g.name: g.spec.disks[0].device for g in lab.nodes},
                             {g.name: Lab.addr(g) for g in lab.nodes})
    conf = conf.replace("resync-rate 20M;", f"resync-rate {resync_rate};")
    for g in lab.nodes:
        g.insmod(ko)
        g.check(f"printf %s {shlex.quote(conf)} > /etc/bsr.conf")
    pending = [g.run_async(f"bsradm create-md --force r0 && bsradm up r0", timeout=T,
                           env={"BSR_HOSTNAME": g.name}) for g in lab.nodes]
    for p in pending:
        r = p.wait()
        assert r.rc == 0, r
    deadline = time.monotonic() + 240
    while adm(lab.a, "cstate r0").strip() != "Connected":
        assert time.monotonic() < deadline, "a and b did not connect"
        time.sleep(1)


@pytest.fixture
def on_a(lab: Lab, tmp_path_factory: pytest.TempPathFactory,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """The demo's exec channel to the lab; every test ends with r0 down."""
    sock = tmp_path_factory.mktemp("exec") / "exec.sock"
    server = demo_lab.ExecServer({g.name: g for g in lab.nodes}, lab.a.spec.rwdir, sock)
    server.start()
    monkeypatch.setenv(demo_lab.SOCK_ENV, str(sock))
    yield lab
    server.close()
    for g in lab.nodes:
        if g.alive:
            g.run("bsradm down r0", timeout=T, env={"BSR_HOSTNAME": g.name})


def exec_on_a(*argv: str) -> list[str]:
    return [sys.executable, str(REPO / "tools" / "demo_lab.py"), "exec", "a", *argv]


def watch_a(script: Callable[[Any, BsrWatchApp], Any]) -> Any:
    """Run ``script(pilot, app)`` against a headless bsrwatch showing a."""
    app = BsrWatchApp(CommandSource(shlex.join(exec_on_a()) + " " + EVENTS),
                      Settings(command=shlex.join(exec_on_a("bsradm")), timeout=T))

    async def main() -> Any:
        async with app.run_test(size=(120, 30)) as pilot:
            return await script(pilot, app)

    return asyncio.run(main())


def lines(app: BsrWatchApp) -> list[str]:
    return app.overview.query_one(ResourceList).text_lines()


def res_line(app: BsrWatchApp) -> str:
    return next((ln for ln in lines(app) if ln[2:].split(" ", 1)[0] == "r0"), "")


async def until(pilot: Any, cond: Callable[[], Any], what: str, seconds: float = 300) -> None:
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"bsrwatch: {what} not seen within {seconds:g}s")
        await pilot.pause(0.25)


async def press_and_confirm(pilot: Any, app: BsrWatchApp, key: str, row: Callable[[Any], bool]) -> Any:
    rl = app.overview.query_one(ResourceList)
    rl.cursor = next(i for i, r in enumerate(rl.rows) if row(r.target))
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", 30)
    argv = list(app.screen.argv)  # type: ignore[attr-defined]
    n = len(app.runner.tasks)
    await pilot.press("y")
    await until(pilot, lambda: len(app.runner.tasks) > n and
                app.runner.tasks[-1].state is not TaskState.running, f"'{key}' finished", T)
    return argv, app.runner.tasks[-1]


def test_demo_check_runs_the_whole_flow_and_leaves_nothing_behind(kernel_env, bsr_ko: Path) -> None:
    before = set(Path("/tmp").glob("bsr-demo-*"))
    r = subprocess.run([str(REPO / "tools" / "demo.sh"), "--check", "20"], capture_output=True,
                       text=True, timeout=1800, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("{")))
    assert report["ok"] and report["problems"] == [], report
    assert " Primary " in report["last"], report
    assert "demo: lab shut down" in r.stdout
    assert set(Path("/tmp").glob("bsr-demo-*")) == before, "demo left its work directory"
    assert not demo_lab.qemu_left(Path("/tmp/bsr-demo-")), "demo left QEMU running"


def test_p_in_bsrwatch_makes_a_primary_through_bsradm_in_the_guest(on_a: Lab, bsr_ko: Path) -> None:
    bring_up(on_a, bsr_ko)
    adm(on_a.a, "primary --force r0")  # a's data UpToDate, so a plain primary works
    adm(on_a.a, "secondary r0")

    async def script(pilot: Any, app: BsrWatchApp) -> dict[str, Any]:
        await until(pilot, lambda: " Secondary " in res_line(app), "r0 Secondary")
        argv, task = await press_and_confirm(
            pilot, app, "p", lambda t: t.resource == "r0" and t.peer is None)
        await until(pilot, lambda: " Primary " in res_line(app), "r0 Primary")
        return {"argv": argv, "rc": task.rc, "output": task.output, "lines": lines(app)}

    seen = watch_a(script)
    assert seen["argv"][-3:] == ["bsradm", "primary", "r0"], seen
    assert seen["rc"] == 0, seen
    assert any(re.match(r"\s+\S*\s*b\s+Connected\s+Secondary", ln) for ln in seen["lines"]), seen
    assert on_a.a.check("bsrsetup role r0", timeout=T).stdout.strip() == "Primary"


def test_resync_progress_bar_shows_during_the_initial_sync(on_a: Lab, bsr_ko: Path) -> None:
    bring_up(on_a, bsr_ko, resync_rate="2M")  # 128 MiB at 2 MiB/s: a minute to look

    async def script(pilot: Any, app: BsrWatchApp) -> dict[str, Any]:
        await until(pilot, lambda: res_line(app), "r0 listed")
        proc = await asyncio.create_subprocess_exec(
            *exec_on_a("bsradm", "primary", "--force", "r0"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out
        seen: dict[str, Any] = {"bar": ""}

        def bar() -> str:
            for ln in lines(app):
                # (StartingSyncS shows an empty bar first: wait for the sync itself)
                if "vol 0" in ln and "SyncSource" in ln and "%" in ln and "ETA" in ln:
                    seen["bar"] = ln
            return seen["bar"]

        end = time.monotonic() + 120
        while not bar() and time.monotonic() < end:
            await pilot.pause(0.25)
        seen["lines"] = lines(app)
        return seen

    seen = watch_a(script)
    if not seen["bar"]:
        status = on_a.a.check("bsrsetup status --verbose r0", timeout=T).stdout
        pytest.fail(f"no resync progress bar in bsrwatch after primary --force: {seen['lines']}\n"
                    f"bsrsetup status --verbose r0:\n{status}")
    assert re.search(r"SyncSource .* \d+\.\d% .*ETA", seen["bar"]), seen["bar"]


def test_v_in_bsrwatch_starts_a_verify_that_shows_progress(on_a: Lab, bsr_ko: Path) -> None:
    bring_up(on_a, bsr_ko)
    # skip the initial sync: both sides declare their (zeroed) data identical
    adm(on_a.a, "new-current-uuid --clear-bitmap r0")
    deadline = time.monotonic() + 120
    while "peer-disk:UpToDate" not in adm(on_a.a, "status r0"):
        assert time.monotonic() < deadline, \
            f"new-current-uuid --clear-bitmap did not make b UpToDate:\n{adm(on_a.a, 'status r0')}"
        time.sleep(2)

    async def script(pilot: Any, app: BsrWatchApp) -> dict[str, Any]:
        await until(pilot, lambda: any("vol 0" in ln for ln in lines(app)), "peer volume listed")
        argv, task = await press_and_confirm(
            pilot, app, "v", lambda t: t.resource == "r0" and t.volume is not None
            and t.peer is not None)
        seen: dict[str, Any] = {"argv": argv, "rc": task.rc, "output": task.output, "bar": ""}
        if task.rc == 0:
            end = time.monotonic() + 120
            while time.monotonic() < end and not seen["bar"]:
                seen["bar"] = next((ln for ln in lines(app) if "Verify" in ln and "%" in ln), "")
                await pilot.pause(0.25)
        seen["lines"] = lines(app)
        return seen

    seen = watch_a(script)
    assert seen["argv"][-3:-1] == ["bsradm", "verify"], seen
    assert seen["rc"] == 0, seen
    assert seen["bar"], f"verify started but bsrwatch showed no progress: {seen['lines']}"
