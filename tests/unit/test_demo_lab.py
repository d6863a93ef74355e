"""tools/demo_lab.py without guests: its bsr.conf, the headless verdict and
the exec client's refusals."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import demo_lab  # noqa: E402

from bsr.adm.cli import main as bsradm  # noqa: E402
from bsr.config import loads  # noqa: E402

STATUS = ("r0 role:Primary\n  disk:UpToDate\n      size:262100 read:0 written:4096\n"
          "  b role:Secondary\n    peer-disk:Inconsistent\n        received:0 sent:2048\n")


def test_demo_config_names_both_guests_with_their_link_addresses() -> None:
    text = demo_lab.bsr_conf({"a": "/dev/vda", "b": "/dev/vdb"},
                             {"a": "198.18.0.1", "b": "198.18.0.2"})
    res = loads(text).resources["r0"]
    a, b = res.host_for("a"), res.host_for("b")
    assert a is not None and b is not None
    assert (a.node_id, b.node_id) == (0, 1)
    assert "198.18.0.2:7789" in text and "/dev/vdb" in text
    assert res.section("net")["verify-alg"] == "crc32c"  # the demo's `v` key needs it


def test_demo_config_brings_up_both_peers_in_drbd_order(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "bsr.conf"
    conf.write_text(demo_lab.bsr_conf({"a": "/dev/vda", "b": "/dev/vdb"},
                                      {"a": "198.18.0.1", "b": "198.18.0.2"}))
    assert bsradm(["-c", str(conf), "--host", "a", "-d", "up", "r0"]) == 0
    verbs = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert verbs[:3] == ["new-resource", "new-minor", "attach"]
    assert verbs.index("new-peer") < verbs.index("new-path") < verbs.index("connect")


def test_verdict_accepts_a_connected_primary_that_bsrwatch_shows() -> None:
    seen = {"status_a": STATUS, "first": "x r0 Primary", "last": "x r0 Primary UpToDate"}
    assert demo_lab.verdict(seen) == []
    assert demo_lab.counters(STATUS, "sent") == [2048]


@pytest.mark.parametrize("change, problem", [
    (("role:Primary", "role:Secondary"), "a is not Primary"),
    (("  b role:Secondary", "  b connection:Connecting"), "a is not connected to b"),
    (("written:4096", "written:0"), "nothing was written"),
    (("sent:2048", "sent:0"), "nothing was sent to b"),
])
def test_verdict_names_what_went_wrong(change: tuple[str, str], problem: str) -> None:
    seen = {"status_a": STATUS.replace(*change, 1), "first": "r0", "last": " Primary "}
    assert any(p.startswith(problem) for p in demo_lab.verdict(seen))


def test_verdict_requires_bsrwatch_to_list_the_resource() -> None:
    assert demo_lab.verdict({"status_a": STATUS, "first": "", "last": ""}) == [
        "bsrwatch never listed r0"]


def test_exec_without_a_running_demo_says_so(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.delenv(demo_lab.SOCK_ENV, raising=False)
    assert demo_lab.main(["exec", "a", "true"]) == 2
    assert "is 'make demo' running?" in capsys.readouterr().err
    monkeypatch.setenv(demo_lab.SOCK_ENV, str(tmp_path / "gone.sock"))
    assert demo_lab.main(["exec", "b", "true"]) == 2
    assert "cannot reach the demo" in capsys.readouterr().err


class _FakePending:
    def __init__(self, result: object) -> None:
        self.result = result
        self.finished = False

    def done(self) -> bool:
        return self.finished

    def wait(self) -> object:
        return self.result


class _FakeGuest:
    """Runs the exec script on the host instead of a guest (same shell)."""

    alive = True

    def __init__(self) -> None:
        self.killed: list[str] = []
        self.envs: list[dict[str, str]] = []

    def run_async(self, script: str, timeout: float, env: dict[str, str]) -> _FakePending:
        import subprocess
        import threading
        from types import SimpleNamespace

        self.envs.append(env)
        pending = _FakePending(None)

        def work() -> None:
            p = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                               env={"PATH": "/usr/bin:/bin", **env})
            pending.result = SimpleNamespace(rc=p.returncode, stderr=p.stderr)
            pending.finished = True

        threading.Thread(target=work, daemon=True).start()
        return pending

    def run(self, cmd: str, timeout: float) -> None:
        import subprocess
        self.killed.append(cmd)
        subprocess.run(["bash", "-c", cmd])


def test_exec_streams_output_and_returns_the_exit_status(tmp_path: Path, monkeypatch, capsys) -> None:
    guest = _FakeGuest()
    server = demo_lab.ExecServer({"a": guest}, tmp_path, tmp_path / "s.sock")
    server.start()
    monkeypatch.setenv(demo_lab.SOCK_ENV, str(tmp_path / "s.sock"))
    try:
        rc = demo_lab.main(["exec", "a", "bash", "-c",
                            "echo one; sleep 0.5; echo two; echo oops >&2; exit 3"])
    finally:
        server.close()
    out = capsys.readouterr()
    assert rc == 3
    assert out.out == "one\ntwo\n"
    assert out.err == "oops\n"
    assert guest.envs == [{"BSR_HOSTNAME": "a"}]
    assert list(tmp_path.glob("exec-*")) == []  # its files are removed


def test_exec_to_an_unknown_guest_fails_with_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    server = demo_lab.ExecServer({"a": _FakeGuest()}, tmp_path, tmp_path / "s.sock")
    server.start()
    monkeypatch.setenv(demo_lab.SOCK_ENV, str(tmp_path / "s.sock"))
    try:
        assert demo_lab.main(["exec", "b", "true"]) == 2
    finally:
        server.close()
    assert "no running guest 'b'" in capsys.readouterr().err
