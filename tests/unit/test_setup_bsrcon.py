"""bsrcon: module info and parameters (a fake /sys/module/bsr/parameters)."""

import io

from bsr.con_cli import main
from bsr.netlink import ModuleNotLoaded

from test_setup_fakes import FakeNetlink


def run(argv, params, nl=FakeNetlink):
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, netlink=nl, params=params, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def params_dir(tmp_path):
    d = tmp_path / "parameters"
    d.mkdir()
    (d / "minor_count").write_text("32\n")
    (d / "usermode_helper").write_text("/sbin/bsradm\n")
    return d


def test_info_lists_version_and_module_stats(tmp_path):
    rc, out, _ = run(["info"], tmp_path)
    assert rc == 0
    assert "version: 0.1.0\n" in out and "build: 6.1.0-56-amd64\n" in out
    assert "notifications-dropped: 0\n" in out


def test_get_all_and_one(tmp_path):
    d = params_dir(tmp_path)
    assert run(["get-param"], d)[:2] == (0, "minor_count=32\nusermode_helper=/sbin/bsradm\n")
    assert run(["get-param", "minor_count"], d)[:2] == (0, "32\n")


def test_unknown_parameter_exits_10_and_lists_known(tmp_path):
    rc, _, err = run(["get-param", "nope"], params_dir(tmp_path))
    assert rc == 10 and "unknown parameter 'nope' (known: minor_count, usermode_helper)" in err

def test_parameter_names_cannot_leave_the_directory(tmp_path):
    d = params_dir(tmp_path)
    (tmp_path / "x").write_text("0\n")
    assert run(["set-param", "../x", "1"], d)[0] == 10
    assert (tmp_path / "x").read_text() == "0\n"


def test_set_param_writes(tmp_path):
    d = params_dir(tmp_path)
    assert run(["set-param", "minor_count", "64"], d)[0] == 0
    assert (d / "minor_count").read_text() == "64\n"


def test_module_not_loaded(tmp_path):
    rc, _, err = run(["get-param"], tmp_path / "missing")
    assert rc == 20 and "not loaded" in err

    def missing():
        raise ModuleNotLoaded()
    assert run(["info"], tmp_path, missing)[0] == 20
    rc, out, _ = run(["--version"], tmp_path, missing)
    assert rc == 0 and "bsr module: not loaded" in out


def test_usage_errors_exit_20(tmp_path):
    assert run([], tmp_path)[0] == 20
    assert run(["set-param", "x"], tmp_path)[0] == 20
    assert run(["frob"], tmp_path)[0] == 20
