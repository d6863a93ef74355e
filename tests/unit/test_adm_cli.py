"""bsradm's command line: dry runs, exit codes, running the low-level tools."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bsr.adm.cli import main

DATA = Path(__file__).parent / "data" / "configs"
TREE = str(DATA / "tree" / "bsr.conf")

FAKE = """\
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "show":
    sys.stdout.write(open(os.environ["FAKE_SHOW"]).read())
if sys.argv[1] == os.environ.get("FAKE_FAIL"):
    sys.stderr.write("r0: State change failed: (-2) Need access to UpToDate data\\n")
    sys.exit(1)
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """bsrsetup/bsrmeta replaced by a script that logs its arguments."""
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    log = tmp_path / "calls.log"
    log.write_text("")
    show = tmp_path / "show.json"
    show.write_text("[]")
    monkeypatch.setenv("BSRSETUP", f"{sys.executable} {script}")
    monkeypatch.setenv("BSRMETA", f"{sys.executable} {script}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_SHOW", str(show))
    monkeypatch.setenv("BSR_HOSTNAME", "alpha")
    monkeypatch.setenv("BSR_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def _calls(fake: Path) -> list[str]:
    return (fake / "calls.log").read_text().splitlines()


def test_dry_run_up_prints_the_exact_low_level_sequence(capsys) -> None:
    assert main(["-c", TREE, "--host", "alpha", "-d", "up", "r0"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "bsrsetup new-resource r0 0 --persist-role=yes",
        "bsrsetup new-minor r0 0 0",
        "bsrsetup attach 0 /dev/vdb /dev/vdb internal",
        "bsrsetup new-peer r0 1 --_name=beta --protocol=C --sndbuf-size=1073741824 "
        "--on-congestion=pull-ahead --congestion-fill=2097152 --congestion-highwater=20000",
        "bsrsetup new-path r0 1 ipv4:198.18.0.1:7789 ipv4:198.18.0.2:7789",
        "bsrsetup peer-device-options r0 1 0 --resync-rate=40960 --c-plan-ahead=0 "
        "--c-min-rate=40960",
        "bsrsetup connect r0 1",
    ]


def test_options_may_follow_the_command(capsys) -> None:
    assert main(["up", "r0", "-d", "-c", TREE, "--host", "beta"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "bsrsetup new-resource r0 1 --persist-role=yes --target-only=yes"
    assert out[4] == "bsrsetup new-path r0 0 ipv4:198.18.0.2:7789 ipv4:198.18.0.1:7789"


def test_dry_run_create_md_and_external_meta(capsys) -> None:
    assert main(["-c", TREE, "--host", "alpha", "-d", "create-md", "r0", "r1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "bsrmeta --node-id=0 0 v1 /dev/vdb internal create-md --max-peers=1",
        "bsrmeta --node-id=0 10 v1 /dev/vdc /dev/vdd flexible create-md --max-peers=1 "
        "--al-extents=6001",
        "bsrmeta --node-id=0 11 v1 /dev/vde /dev/vdd 1 create-md --max-peers=1 "
        "--al-extents=6001",
    ]


def test_volume_commands_accept_res_slash_volume(capsys) -> None:
    assert main(["-c", TREE, "--host", "alpha", "-d", "detach", "--force", "r1/1"]) == 0
    assert capsys.readouterr().out == "bsrsetup detach 11 --force\n"
    assert main(["-c", TREE, "--host", "alpha", "-d", "verify", "r1"]) == 0
    assert capsys.readouterr().out == "bsrsetup verify r1 1 0\nbsrsetup verify r1 1 1\n"


def test_peer_commands_accept_res_colon_peer_like_drbdadm_9(capsys) -> None:
    assert main(["-c", TREE, "--host", "alpha", "-d", "verify", "r1:beta/1"]) == 0
    assert capsys.readouterr().out == "bsrsetup verify r1 1 1\n"
    assert main(["-c", TREE, "--host", "alpha", "-d", "pause-sync", "r1:beta"]) == 0
    assert capsys.readouterr().out == "bsrsetup pause-sync r1 1 0\nbsrsetup pause-sync r1 1 1\n"
    assert main(["-c", TREE, "--host", "alpha", "-d", "verify", "r1:nobody/0"]) == 10
    assert "'nobody' is not a peer of 'r1'" in capsys.readouterr().err


def test_all_means_this_hosts_resources(capsys) -> None:
    assert main(["-c", TREE, "--host", "beta", "-d", "down", "all"]) == 0
    assert capsys.readouterr().out == "bsrsetup down r0\nbsrsetup down r1\n"
    assert main(["-c", TREE, "--host", "beta", "-d", "down", "--svc-auto-up", "all"]) == 0
    assert capsys.readouterr().out == "bsrsetup down r1\n"


def test_sh_commands_print_devices(capsys) -> None:
    main(["-c", TREE, "--host", "alpha", "sh-dev", "r1"])
    main(["-c", TREE, "--host", "alpha", "sh-md-dev", "r0", "r1/1"])
    main(["-c", TREE, "--host", "alpha", "sh-resources"])
    assert capsys.readouterr().out == "/dev/bsr10\n/dev/bsr11\n/dev/vdb\n/dev/vdd\nr0 r1\n"


def test_dump_of_one_resource_is_stable(capsys, tmp_path: Path) -> None:
    assert main(["-c", TREE, "dump", "r1"]) == 0
    first = capsys.readouterr().out
    (tmp_path / "dumped.conf").write_text(first)
    assert main(["-c", str(tmp_path / "dumped.conf"), "dump"]) == 0
    assert capsys.readouterr().out == first


@pytest.mark.parametrize("argv,code,message", [
    (["-c", TREE, "up", "r9"], 10, "'r9' is not defined"),
    (["-c", TREE, "--host", "gamma", "up", "r0"], 10, "has no 'on gamma' section"),
    (["-c", str(DATA / "bad" / "bad_unit.conf"), "dump"], 10, "bad_unit.conf:3:24:"),
    (["-c", TREE, "frobnicate"], 20, "invalid choice"),
    (["-c", TREE, "up"], 20, "the following arguments are required"),
    (["-c", TREE, "up", "all", "r0"], 20, "'all' cannot be combined"),
])
def test_exit_codes(argv, code, message, capsys) -> None:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == code
    assert message in capsys.readouterr().err


def test_help_exits_zero_and_documents_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "10  configuration error" in out and "adjust" in out


def test_up_runs_tools_in_order_and_stops_at_first_failure(fake: Path, monkeypatch, capfd):
    monkeypatch.setenv("FAKE_FAIL", "attach")
    assert main(["-c", TREE, "up", "r0"]) == 1
    assert [c.split()[0] for c in _calls(fake)] == ["new-resource", "new-minor", "attach"]
    err = capfd.readouterr().err
    assert "Need access to UpToDate data" in err
    assert "'bsrsetup attach 0 /dev/vdb /dev/vdb internal' failed (exit code 1)" in err
    assert "'bsradm down r0' removes what was created" in err


def test_status_passes_its_flags_to_bsrsetup(fake: Path) -> None:
    assert main(["-c", TREE, "status", "--verbose", "--statistics", "--json", "r0"]) == 0
    assert main(["-c", TREE, "status"]) == 0
    assert _calls(fake) == ["status r0 --verbose --statistics --json", "status all"]


def test_adjust_twice_is_a_no_op_the_second_time(fake: Path, capsys) -> None:
    (fake / "show.json").write_text((DATA / "show" / "r0_alpha_up.json").read_text())
    assert main(["-c", TREE, "-d", "adjust", "r0"]) == 0
    assert capsys.readouterr().out == ""
    assert _calls(fake) == ["show --json all"]


def test_adjust_of_a_stopped_resource_brings_it_up(fake: Path, capsys) -> None:
    assert main(["-c", TREE, "-d", "adjust", "r0"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        "bsrsetup new-resource r0 0 --persist-role=yes"


def test_persist_role_is_recorded_and_applied(fake: Path) -> None:
    assert main(["-c", TREE, "primary", "r0"]) == 0
    assert (fake / "state" / "persist-role" / "r0").read_text() == "Primary\n"
    assert main(["-c", TREE, "apply-persist-role", "all"]) == 0
    assert main(["-c", TREE, "secondary", "r0"]) == 0
    assert main(["-c", TREE, "apply-persist-role", "all"]) == 0
    assert _calls(fake) == ["primary r0", "primary r0", "secondary r0"]


def test_sh_udev_names_resource_and_volume(capsys) -> None:
    assert main(["-c", TREE, "--host", "alpha", "sh-udev", "minor-11"]) == 0
    assert "RESOURCE=r1\nVOLUME=1\nDEVICE=bsr11\n" in capsys.readouterr().out
