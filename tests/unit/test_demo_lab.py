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
