"""bsrwatch driven by Textual's Pilot over recorded streams."""

import asyncio
import sys
import time
from dataclasses import replace

import pytest

from bsrwatch.actions import TaskState
from bsrwatch.app import BsrWatchApp
from bsrwatch.screens.confirm import ConfirmScreen
from bsrwatch.screens.detail import DetailScreen
from bsrwatch.screens.tasks import TaskLogScreen
from bsrwatch.settings import Settings
from bsrwatch.sources import CommandSource, FileSource
from bsrwatch.widgets.resource_list import ResourceList

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bsrwatch_helpers import DATA, feed, lines, make_app, notes, screen_text  # noqa: E402

pytestmark = pytest.mark.timeout(60)
SMALL = (80, 24)


async def settle(pilot, app) -> None:
    await pilot.pause(0.05)
    app.refresh_view(force=True)
    await pilot.pause(0.05)


async def test_initial_dump_shows_every_object_with_problems_first():
    app = make_app("initial")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        text = lines(app)
        assert text[0].startswith("✖ logs") and "Outdated" in text[0]
        assert [l.split()[1] for l in text if l[:1] in "●▲✖"] == ["logs", "db", "web"]
        assert any("Connecting" in l and "Unknown" in l for l in text)
        scr = screen_text(app)
        assert "3 resources" in scr and "1 alert" in scr and "initial state: 3 resources" in scr


async def test_waits_for_the_end_of_the_initial_dump():
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        for line in (DATA / "initial.events2").read_text().splitlines()[:-1]:
            app.store.feed_line(line)
        await settle(pilot, app)
        assert lines(app) == [] and "waiting for the initial state" in screen_text(app)
        app.store.feed_line("exists -")
        await settle(pilot, app)
        assert len(lines(app)) > 3


async def test_sync_progress_bar_percent_speed_and_eta():
    app = make_app("sync")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        row = next(l for l in lines(app) if "SyncSource" in l)
        assert "Inconsistent" in row and "50.0%" in row and "MiB/s" in row and "ETA 0:05" in row
        assert "█" in row
        feed(app, "sync_done")
        await settle(pilot, app)
        assert any("Established" in l and "UpToDate" in l for l in lines(app))
        assert lines(app)[0].startswith("● r0")


async def test_disconnect_turns_the_resource_red_and_logs_the_change():
    app = make_app("initial")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        feed(app, "disconnect")
        await settle(pilot, app)
        text = lines(app)
        assert text[0].startswith("✖ ")  # logs and web are both alerts, sorted by name
        web = text.index(next(l for l in text if l.startswith("✖ web")))
        assert "Connecting" in text[web + 1] and "OOS 4.0 MiB" in text[web + 2]
        assert "connection:Connected→NetworkFailure" in screen_text(app)


async def test_split_brain_is_shown_on_the_peer():
    app = make_app("initial", "splitbrain")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        peer = next(l for l in lines(app) if "StandAlone" in l)
        assert "SPLIT-BRAIN" in peer
        assert "split brain detected" in screen_text(app)


async def test_ahead_behind_and_congestion_are_shown():
    app = make_app("initial", "ahead")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        text = lines(app)
        assert any("congested" in l and "in-flight 20.0 MiB" in l and "sndbuf 95%" in l
                   for l in text)
        assert any("Ahead" in l and "Consistent" in l and "OOS 20.0 MiB" in l for l in text)


async def test_source_restart_is_said_on_screen_and_state_rebuilt(tmp_path):
    script = tmp_path / "src.sh"
    flag = tmp_path / "second"
    script.write_text(
        f"if [ -e {flag} ]; then grep -v name:logs {DATA / 'initial.events2'}; sleep 30; "
        f"else touch {flag}; cat {DATA / 'initial.events2'}; sleep 0.3; exit 1; fi\n")
    app = BsrWatchApp(CommandSource(f"sh {script}", backoff=0.3))
    async with app.run_test(size=SMALL) as pilot:
        saw_dead = False
        for _ in range(100):
            await pilot.pause(0.05)
            app.refresh_view(force=True)
            scr = screen_text(app)
            saw_dead |= "source died (exit 1)" in scr and "reconnecting" in scr
            if "state rebuilt" in scr:
                break
        assert saw_dead
        scr = screen_text(app)
        assert "source restarted: state cleared, rebuilding" in scr
        assert "2 resources" in scr and not any("logs" in l for l in lines(app))


async def test_drbd9_stream_renders_and_actions_stay_disabled():
    app = make_app("drbd9", actions_enabled=False, disabled_reason="the source is drbdsetup")
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot, app)
        text = lines(app)
        assert text[0].startswith("▲ r0") and "Inconsistent" in text[0]
        assert any("SyncTarget" in l and "46.2%" in l and "47.5 MiB/s" in l and "ETA 0:46" in l
                   for l in text)
        assert any("PausedSyncT" in l and "paused" not in l.split("PausedSyncT")[0] for l in text)
        assert any(l.startswith("● r1") and "Primary" in l and "Diskless" in l for l in text)
        await pilot.press("p")
        await pilot.pause(0.05)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("actions disabled" in n for n in notes(app))


@pytest.fixture
def fake_bsradm(tmp_path):
    log = tmp_path / "calls"
    tool = tmp_path / "bsradm"
    tool.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\necho \"bsradm: did $1\"\nexit 0\n")
    tool.chmod(0o755)
    return tool, log


async def test_primary_asks_with_the_exact_command_and_runs_it(fake_bsradm):
    tool, log = fake_bsradm
    app = make_app("initial", settings=Settings(command=str(tool)))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "down", "down")  # the db resource line
        await pilot.press("p")
        await pilot.pause(0.05)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.argv == [str(tool), "primary", "db"]
        assert "primary db" in screen_text(app)
        await pilot.press("y")
        for _ in range(50):
            await pilot.pause(0.05)
            if app.runner.tasks and app.runner.tasks[-1].state is not TaskState.running:
                break
        assert log.read_text() == "primary db\n"
        await pilot.press("t")
        await pilot.pause(0.05)
        assert isinstance(app.screen, TaskLogScreen)
        scr = screen_text(app)
        assert "exit 0" in scr and "primary db" in scr and "bsradm: did primary" in scr


async def test_cancel_runs_nothing_and_peer_volume_targets_are_used(fake_bsradm):
    tool, log = fake_bsradm
    app = make_app("initial", settings=Settings(command=str(tool)))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("p", "n")
        await pilot.pause(0.05)
        assert not isinstance(app.screen, ConfirmScreen) and not app.runner.tasks
        await pilot.press("down", "down", "v")  # logs' peer volume
        await pilot.pause(0.05)
        assert app.screen.argv == [str(tool), "verify", "logs:node-b/0"]
        assert "verify logs:node-b/0" in screen_text(app)
        await pilot.press("escape")


async def test_dangerous_actions_need_the_typed_resource_name(fake_bsradm):
    tool, log = fake_bsradm
    app = make_app("initial", settings=Settings(command=str(tool)))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("P")
        await pilot.pause(0.05)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.argv == [str(tool), "primary", "--force", "logs"]
        assert "primary --force logs" in screen_text(app) and "type 'logs'" in screen_text(app)
        await pilot.press("y", "enter")  # not the name: nothing runs
        await pilot.pause(0.05)
        assert isinstance(app.screen, ConfirmScreen) and not app.runner.tasks
        await pilot.press(*"logs", "enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if log.exists():
                break
        assert log.read_text() == "primary --force logs\n"


async def test_expert_mode_skips_the_typed_confirmation(fake_bsradm):
    tool, log = fake_bsradm
    app = make_app("initial", settings=Settings(command=str(tool), expert=True))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "D", "y")
        for _ in range(50):
            await pilot.pause(0.05)
            if log.exists():
                break
        assert log.read_text() == "connect --discard-my-data logs:node-b\n"


async def test_a_hanging_command_times_out_without_freezing_the_ui(tmp_path):
    tool = tmp_path / "bsradm"
    tool.write_text("#!/bin/sh\nsleep 30\n")
    tool.chmod(0o755)
    app = make_app("initial", settings=Settings(command=str(tool), timeout=1.0))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("s", "y")
        await pilot.pause(0.2)
        before = app.redraws
        await pilot.press("down")  # the UI still answers while the command hangs
        feed(app, "disconnect")
        await pilot.pause(0.6)
        assert app.redraws > before
        for _ in range(60):
            await pilot.pause(0.05)
            if app.runner.tasks[-1].state is TaskState.timeout:
                break
        assert app.runner.tasks[-1].state is TaskState.timeout


async def test_filter_and_problems_only():
    app = make_app("initial")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("exclamation_mark")
        await settle(pilot, app)
        assert [l.split()[1] for l in lines(app) if l[:1] in "●▲✖"] == ["logs"]
        await pilot.press("exclamation_mark", "slash", *"we", "enter")
        await settle(pilot, app)
        assert [l.split()[1] for l in lines(app) if l[:1] in "●▲✖"] == ["web"]
        assert "[filter we]" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot, app)
        assert len([l for l in lines(app) if l[:1] in "●▲✖"]) == 3


async def test_detail_screen_shows_statistics_sparklines_and_options(tmp_path):
    show = tmp_path / "show"
    show.write_text("#!/bin/sh\necho \"resource $1 { net { protocol C; } }\"\n")
    show.chmod(0o755)
    app = make_app("sync", settings=Settings(show_command=str(show)))
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot, app)
        await pilot.press("enter")
        for _ in range(40):
            await pilot.pause(0.05)
            app.refresh_view(force=True)
            if "protocol C" in screen_text(app):
                break
        assert isinstance(app.screen, DetailScreen)
        scr = screen_text(app)
        for want in ("Volumes", "Connections", "Peer devices", "Throughput", "al-writes",
                     "8.0 MiB/s", "SyncSource", "198.18.0.1:7789", "resource r0 { net { protocol C; } }"):
            assert want in scr, want
        assert any(c in scr for c in "▁▂▃▄▅▆▇█")
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


async def test_ascii_mode_draws_no_unicode():
    app = make_app("initial", "sync", "splitbrain", settings=Settings(ascii=True))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        text = "\n".join(lines(app))
        assert text.isascii() and "X logs" in text and "[" in text


async def test_redraws_are_throttled_under_an_event_flood():
    app = make_app("initial", settings=Settings(refresh=0.25))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        before, t0 = app.redraws, time.monotonic()
        for i in range(40):
            for _ in range(100):
                app.store.feed_line(f"change device name:web volume:0 minor:0 written:{i}")
            await pilot.pause(0.025)
        drawn, elapsed = app.redraws - before, time.monotonic() - t0
        # 4000 changes: one redraw per refresh tick (0.25 s), not one per event
        assert 1 <= drawn <= elapsed / 0.25 + 1


async def test_garbage_stream_never_crashes(tmp_path):
    junk = tmp_path / "junk.events2"
    junk.write_bytes((DATA / "sync.events2").read_bytes() + bytes(range(256)) * 50 + b"\n"
                     + b"change peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0 "
                       b"replication:SyncTarget out-of-sync:184467440737095516150000 done:1e999\n"
                     + b"change device name:r0 volume:0 minor:0 size:0 disk:Inconsistent\n"
                     + b"x" * 200000 + b"\nchange device name:r0 vol")
    app = BsrWatchApp(FileSource(str(junk)))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        assert any("SyncTarget" in l for l in lines(app))
        assert "end of" in screen_text(app)
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, DetailScreen)


async def test_full_event_log_screen_lists_changes_with_timestamps():
    app = make_app("initial", "disconnect")
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("e")
        await settle(pilot, app)
        scr = screen_text(app)
        assert "Event log" in scr and "06:50:00 web:node-b connection:Connected→NetworkFailure" in scr
        await pilot.press("escape")
        assert app.screen is app.overview


async def test_theme_toggle_is_saved_to_the_settings_file(tmp_path):
    from bsrwatch.settings import load
    path = tmp_path / "bsrwatch.toml"
    app = make_app("initial", settings_path=path)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        assert app.theme == "textual-dark"
        await pilot.press("T")
        await pilot.pause(0.05)
        assert app.theme == "textual-light"
    assert load(path)[0].theme == "light"
