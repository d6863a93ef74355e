"""bsrwatch sources, actions and settings (real subprocesses, no VM)."""

import asyncio
import sys
from pathlib import Path

import pytest

from bsrwatch.actions import ACTIONS, Target, TaskRunner, TaskState, action_for_key
from bsrwatch.settings import Settings, dumps, load, save
from bsrwatch.sources import CommandSource, FileSource, LineSplitter
from bsrwatch.store import Store
from bsrwatch.view import build_overview

DATA = Path(__file__).parent / "data" / "bsrwatch"
pytestmark = pytest.mark.timeout(30)


def test_line_splitter_joins_chunks_and_drops_overlong_lines():
    sp = LineSplitter()
    assert sp.feed(b"exists resource na") == []
    assert sp.feed(b"me:r0\nchange") == [b"exists resource name:r0"]
    assert sp.feed(b"x" * 70000) == [] and sp.dropped == 1
    assert sp.feed(b"yyy\nexists -\n") == [b"exists -"]
    assert sp.flush() == []


async def test_file_source_reads_a_recording_and_says_when_it_ends():
    st = Store()
    await FileSource(str(DATA / "initial.events2")).run(st)
    assert st.status.ended and st.status.text.startswith("end of")
    assert build_overview(st).total == 3


async def test_file_source_reports_a_missing_file():
    st = Store()
    await FileSource("/nonexistent/x.events2").run(st)
    assert st.status.ended and not st.status.ok and "No such file" in st.status.text


async def test_command_source_restarts_a_dead_command_and_rebuilds(tmp_path):
    counter = tmp_path / "n"
    counter.write_text("0")
    # first run prints the full dump; later runs print a dump without "logs"
    script = tmp_path / "src.sh"
    script.write_text(
        f"n=$(cat {counter}); echo $((n+1)) > {counter}\n"
        f"if [ $n = 0 ]; then cat {DATA / 'initial.events2'}; "
        f"else grep -v name:logs {DATA / 'initial.events2'}; sleep 30; fi\n"
        "echo 'boom' >&2; exit 3\n")
    st = Store()
    task = asyncio.create_task(CommandSource(f"sh {script}", backoff=0.05).run(st))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if any("state rebuilt" in e.text for e in st.events):
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    texts = [e.text for e in st.events]
    assert any("died (exit 3: boom)" in t for t in texts)
    assert "source restarted: state cleared, rebuilding" in texts
    assert [r.name for r in build_overview(st).resources] == ["db", "web"]
    assert st.status.ok and st.status.text.startswith("live:")


async def test_command_source_that_cannot_start_keeps_retrying():
    st = Store()
    task = asyncio.create_task(CommandSource("/no/such/bsrsetup events2", backoff=0.01).run(st))
    await asyncio.sleep(0.2)
    task.cancel()
    assert not st.status.ok and "could not start" in st.status.text


def test_targets_follow_drbdadm_spelling():
    t = Target("r0", peer="node-b", volume=1)
    assert action_for_key("p").argv("bsradm", t) == ["bsradm", "primary", "r0"]
    assert action_for_key("v").argv("bsradm", t) == ["bsradm", "verify", "r0:node-b/1"]
    assert action_for_key("d").argv("bsradm", t) == ["bsradm", "disconnect", "r0:node-b"]
    assert action_for_key("i").argv("bsradm", t) == ["bsradm", "invalidate", "r0/1"]
    assert action_for_key("D").argv("ssh n1 drbdadm", Target("r0")) == \
        ["ssh", "n1", "drbdadm", "connect", "--discard-my-data", "r0"]
    assert {a.key for a in ACTIONS if a.dangerous} == {"P", "i", "I", "D"}
    assert len({a.key for a in ACTIONS}) == len(ACTIONS)


async def test_task_runner_records_exit_code_output_and_timeout():
    seen = []
    runner = TaskRunner(timeout=0.5, on_change=lambda t: seen.append(t.state))
    ok = await runner.run([sys.executable, "-c", "print('promoted'); raise SystemExit(0)"])
    assert ok.state is TaskState.ok and ok.rc == 0 and "promoted" in ok.output
    bad = await runner.run([sys.executable, "-c", "import sys; print('no'); sys.exit(11)"])
    assert bad.state is TaskState.failed and bad.result == "exit 11"
    slow = await runner.run([sys.executable, "-c", "import time; time.sleep(20)"])
    assert slow.state is TaskState.timeout and slow.seconds < 5
    missing = await runner.run(["/no/such/bsradm", "primary", "r0"])
    assert missing.state is TaskState.error
    assert [t.id for t in runner.tasks] == [1, 2, 3, 4]
    assert seen.count(TaskState.running) == 4


def test_settings_round_trip_and_tolerate_a_broken_file(tmp_path):
    p = tmp_path / "sub" / "bsrwatch.toml"
    assert load(p) == (Settings(), [])
    s = Settings(theme="light", refresh=0.5, expert=True, command='ssh "n 1" bsradm')
    save(s, p)
    assert load(p) == (s, [])
    p.write_text('theme = "light"\nrefresh = 0.01\nexpert = "yes"\nbogus = 1\n')
    got, problems = load(p)
    assert got.theme == "light" and got.refresh == 0.2 and got.expert is False
    assert len(problems) == 2
    p.write_text("not toml [")
    assert load(p)[0] == Settings() and load(p)[1]
    assert "expert = false" in dumps(Settings())


class FakeNetlink:
    """Stands in for bsr.netlink.BsrNetlink: an empty module, no notifications."""

    closed = False

    def subscribe(self) -> None:
        pass

    def dump(self, cmd: str, **kw):
        assert cmd == "GET_INITIAL_STATE"
        return []

    def request(self, cmd: str, **kw):
        raise AssertionError("events2 sends no commands")

    def events(self, timeout=None):
        import time as _t
        _t.sleep(timeout or 0.05)
        return iter(())

    def close(self) -> None:
        FakeNetlink.closed = True


async def test_netlink_source_delivers_the_dump_and_stops_its_thread():
    from bsrwatch.sources import NetlinkSource
    st = Store()
    task = asyncio.create_task(NetlinkSource(connect=FakeNetlink).run(st))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if st.state.initial_done:
            break
    assert st.state.initial_done and st.status.ok and st.status.text == "live: bsr netlink events"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        await asyncio.sleep(0.02)
        if FakeNetlink.closed:
            break
    assert FakeNetlink.closed


async def test_netlink_source_without_the_module_says_so_and_retries():
    from bsr.netlink import ModuleNotLoaded
    from bsrwatch.sources import NetlinkSource
    calls = []

    def connect():
        calls.append(1)
        raise ModuleNotLoaded()
    st = Store()
    task = asyncio.create_task(NetlinkSource(connect=connect, backoff=0.02).run(st))
    await asyncio.sleep(0.3)
    task.cancel()
    assert len(calls) >= 2 and not st.status.ok
    assert "bsr kernel module not loaded" in st.status.text
