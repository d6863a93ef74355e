"""bsrsetup command line: requests sent, exit codes, error texts."""

import io

import pytest

from bsr import abi
from bsr.netlink import BsrError, ModuleNotLoaded, encode_addr
from bsr.setup.cli import main

from test_setup_fakes import FakeNetlink, initial_state


def call(argv, nl=None):
    nl = nl or FakeNetlink()
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, netlink=lambda: nl, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue(), nl


def sent(argv):
    rc, _, err, nl = call(argv)
    assert rc == 0, err
    (req,) = [c for c in nl.calls if c[0] == "request"]
    return req[1], req[2], req[3]


def test_new_resource_with_options():
    cmd, minor, structs = sent(["new-resource", "r0", "0", "--max-io-depth=1000",
                                "--target-only"])
    assert cmd == "NEW_RESOURCE" and minor == abi.MINOR_NONE
    assert structs == {"ctx": {"res_name": "r0"},
                       "res_opts": {"node_id": 0, "max_io_depth": 1000, "target_only": 1}}


def test_new_minor():
    assert sent(["new-minor", "r0", "3", "1"]) == (
        "NEW_MINOR", 3, {"ctx": {"res_name": "r0", "volume": 1},
                         "new_minor_parms": {"minor": 3}})


def test_attach_internal_metadata_and_disk_options():
    cmd, minor, s = sent(["attach", "0", "/dev/vdb", "internal", "internal",
                          "--al-extents=6001", "--on-io-error=detach", "--disk-flushes=no"])
    assert (cmd, minor) == ("ATTACH", 0)
    assert s["disk_conf"] == {"backing_dev": "/dev/vdb", "meta_dev": "/dev/vdb",
                              "meta_dev_idx": -1, "al_extents": 6001, "on_io_error": 1,
                              "disk_flushes": 0}


@pytest.mark.parametrize("meta,want", [(["/dev/vdb", "internal"], ("/dev/vdb", -1)),
                                       (["/dev/vdc", "flexible"], ("/dev/vdc", -2)),
                                       (["/dev/vdc", "3"], ("/dev/vdc", 3))])
def test_attach_meta_locations(meta, want):
    _, _, s = sent(["attach", "1", "/dev/vdb", *meta])
    assert (s["disk_conf"]["meta_dev"], s["disk_conf"]["meta_dev_idx"]) == want


def test_primary_force_and_secondary():
    assert sent(["primary", "r0", "--force"])[2] == {"ctx": {"res_name": "r0"},
                                                     "role_parms": {"force": 1}}
    assert sent(["secondary", "r0"])[:1] == ("SECONDARY",)


def test_new_peer_with_name_and_net_options():
    cmd, _, s = sent(["new-peer", "r0", "1", "--_name=node-b", "--protocol=A",
                      "--shared-secret=s3cret", "--on-congestion=pull-ahead", "--timeout=60",
                      "--sndbuf-size=2M", "--congestion-fill=1G"])
    assert cmd == "NEW_PEER"
    assert s["ctx"] == {"res_name": "r0", "peer_node_id": 1, "conn_name": "node-b"}
    assert s["net_conf"] == {"wire_protocol": 1, "shared_secret": "s3cret", "on_congestion": 1,
                             "timeout": 60, "sndbuf_size": 2 << 20, "cong_fill": 2 << 20}
    assert s["new_peer_parms"] == {"peer_node_id": 1}


def test_new_path_encodes_addresses():
    cmd, _, s = sent(["new-path", "r0", "1", "ipv4:198.18.0.1:7789", "ipv6:[fd00::2]:7789"])
    assert cmd == "NEW_PATH"
    assert s["ctx"]["my_addr"] == encode_addr("ipv4:198.18.0.1:7789")
    assert s["ctx"]["peer_addr"] == encode_addr("ipv6:[fd00::2]:7789")


def test_peer_device_options_rates():
    cmd, _, s = sent(["peer-device-options", "r0", "1", "0", "--resync-rate=40M",
                      "--c-plan-ahead=0"])
    assert cmd == "PEER_DEVICE_OPTS"
    assert s == {"ctx": {"res_name": "r0", "peer_node_id": 1, "volume": 0},
                 "peer_device_conf": {"resync_rate": 40960, "c_plan_ahead": 0}}


def test_set_defaults_sends_every_option():
    _, _, s = sent(["disk-options", "0", "--al-extents=100", "--set-defaults"])
    assert s["disk_conf"]["al_extents"] == 100
    assert s["disk_conf"]["md_flushes"] == 1 and s["disk_conf"]["on_io_error"] == 0
    assert "backing_dev" not in s["disk_conf"]


@pytest.mark.parametrize("argv,cmd,minor", [
    (["del-minor", "4"], "DEL_MINOR", 4), (["detach", "4", "--force"], "DETACH", 4),
    (["invalidate", "4"], "INVALIDATE", 4), (["outdate", "4"], "OUTDATE", 4),
    (["new-current-uuid", "4", "--clear-bitmap"], "NEW_C_UUID", 4),
    (["resize", "4", "--size=1G"], "RESIZE", 4),
    (["connect", "r0", "1", "--discard-my-data"], "CONNECT", abi.MINOR_NONE),
    (["disconnect", "r0", "1"], "DISCONNECT", abi.MINOR_NONE),
    (["verify", "r0", "1", "0"], "START_OV", abi.MINOR_NONE),
    (["invalidate-remote", "r0", "1", "0"], "INVAL_PEER", abi.MINOR_NONE),
    (["pause-sync", "r0", "1", "0"], "PAUSE_SYNC", abi.MINOR_NONE),
    (["resume-sync", "r0", "1", "0"], "RESUME_SYNC", abi.MINOR_NONE),
    (["del-peer", "r0", "1"], "DEL_PEER", abi.MINOR_NONE),
    (["del-resource", "r0"], "DEL_RESOURCE", abi.MINOR_NONE),
    (["down", "r0"], "DOWN", abi.MINOR_NONE),
    (["net-options", "r0", "1", "--ping-timeout=5"], "NET_OPTS", abi.MINOR_NONE),
    (["resource-options", "r0", "--on-no-data-accessible=suspend-io"], "RESOURCE_OPTS",
     abi.MINOR_NONE),
])
def test_command_mapping(argv, cmd, minor):
    got = sent(argv)
    assert got[:2] == (cmd, minor)


def test_resize_size_and_connect_flag_values():
    assert sent(["resize", "4", "--size=1G"])[2]["resize_parms"]["resize_size"] == 1 << 21
    assert sent(["connect", "r0", "1", "--discard-my-data"])[2]["connect_parms"] == \
        {"discard_my_data": 1}


@pytest.mark.parametrize("argv,msg", [
    (["attach", "0", "/dev/vdb", "internal", "internal", "--al-extents=70000"],
     "bsrsetup: --al-extents: 70000 is out of range 67..65534"),
    (["new-resource", "r0", "32"], "NODE_ID 32 is out of range 0..31"),
    (["new-peer", "r0", "1"], "--_name"),
    (["new-path", "r0", "1", "198.18.0.1:7789", "ipv4:198.18.0.2:7789"],
     "expected ipv4:ADDR:PORT"),
    (["net-options", "r0", "1", "--protocol=D"], "--protocol: 'D' is not one of A, B, C"),
    (["net-options", "r0", "1", "--no-such-option=1"], "unrecognized arguments"),
    (["attach", "0", "/dev/vdb", "/dev/vdc", "x"], "META_IDX must be"),
    (["attach", "0", "vdb", "internal", "internal"], "absolute device path"),
    (["frobnicate"], "invalid choice"),
    ([], "missing COMMAND"),
    (["events2", "--interval=0"], "out of range"),
])
def test_usage_errors_exit_20_without_touching_the_kernel(argv, msg):
    rc, _, err, nl = call(argv)
    assert rc == 20
    assert msg in err
    assert not [c for c in nl.calls if c[0] == "request"]


def test_kernel_refusal_exits_1_with_object_and_reason():
    nl = FakeNetlink(fail=BsrError(2, "State change failed: Need access to UpToDate data"))
    rc, _, err, _ = call(["primary", "r0"], nl)
    assert rc == 1
    assert err == "r0: State change failed: (-2) Need access to UpToDate data\n"


def test_kernel_error_without_prefix():
    nl = FakeNetlink(fail=BsrError(16, "device is open"))
    rc, _, err, _ = call(["detach", "3"], nl)
    assert (rc, err) == (1, "minor:3: Failure: (-16) device is open\n")


def test_module_not_loaded_exits_20():
    def missing():
        raise ModuleNotLoaded()
    out, err = io.StringIO(), io.StringIO()
    rc = main(["status"], netlink=missing, stdout=out, stderr=err)
    assert rc == 20 and "Could not connect to 'bsr' generic netlink family" in err.getvalue()


def test_version_with_and_without_module():
    rc, out, _, _ = call(["--version"])
    assert rc == 0 and "bsrsetup" in out and "6.1.0-56-amd64" in out and "ABI 1" in out

    def missing():
        raise ModuleNotLoaded()
    o = io.StringIO()
    assert main(["--version"], netlink=missing, stdout=o, stderr=io.StringIO()) == 0
    assert "module: not loaded" in o.getvalue()


def test_help_exits_0_for_every_command(capsys):
    from bsr.setup.args import SPECS
    for name in [s.name for s in SPECS] + ["status", "show", "events2", "role", "cstate",
                                           "dstate"]:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"], netlink=FakeNetlink)
        assert e.value.code == 0
        assert name in capsys.readouterr().out


def test_role_cstate_dstate():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    assert call(["role", "r0"], nl)[:2] == (0, "Secondary\n")
    assert call(["cstate", "r0", "1"], nl)[:2] == (0, "Connected\n")
    assert call(["dstate", "0"], nl)[:2] == (0, "UpToDate/UpToDate\n")


def test_queries_for_missing_objects_exit_10():
    nl = FakeNetlink({"GET_INITIAL_STATE": [initial_state()]})
    rc, _, err, _ = call(["role", "nope"], nl)
    assert rc == 10 and "nope: No such resource" in err
    assert call(["cstate", "r0", "5"], nl)[0] == 10
    assert call(["dstate", "9"], nl)[0] == 10
    assert call(["status", "nope"], nl)[0] == 10
    assert call(["show", "nope"], FakeNetlink())[0] == 10


def test_query_enoent_from_kernel_exits_10():
    rc, _, err, _ = call(["status", "r9"], FakeNetlink(fail=BsrError(2, "no such resource")))
    assert rc == 10 and err == "r9: No such resource\n"


def test_events2_now_through_main():
    rc, out, _, nl = call(["events2", "--now"],
                          FakeNetlink({"GET_INITIAL_STATE": [initial_state()]}))
    assert rc == 0 and out.splitlines()[-1] == "exists -"
    assert nl.closed


def test_suspend_io_finds_the_resource_of_the_minor():
    from test_setup_fakes import device
    nl = FakeNetlink({"GET_DEVICES": [[device("r0", 0, 0), device("r7", 2, 4)]]})
    rc, _, err, _ = call(["suspend-io", "4"], nl)
    assert rc == 0, err
    req = [c for c in nl.calls if c[0] == "request"][0]
    assert req[1:3] == ("SUSPEND_IO", 4) and req[3]["ctx"] == {"res_name": "r7", "volume": 2}
    rc, _, err, _ = call(["resume-io", "5"], nl)
    assert (rc, err) == (1, "minor:5: Failure: (-19) no such device\n")


def test_kernel_object_prefix_is_replaced_by_our_label():
    nl = FakeNetlink(fail=BsrError(2, "r0: no such resource"))
    assert call(["primary", "r0"], nl)[2] == "r0: Failure: (-2) no such resource\n"
    nl = FakeNetlink(fail=BsrError(19, "minor 3: no such device"))
    assert call(["detach", "3"], nl)[2] == "minor:3: Failure: (-19) no such device\n"


def test_every_option_bsradm_can_pass_is_accepted():
    """The contract with bsradm: Option.cli() of every value bsradm may send parses."""
    from bsr.config import schema
    cases = [
        (["new-resource", "r0", "0"], {**schema.RES_OPTIONS}),
        (["attach", "0", "/dev/vdb", "/dev/vdb", "internal"], schema.DISK_ONLY),
        (["new-peer", "r0", "1", "--_name=b"], schema.NET_OPTIONS),
        (["peer-device-options", "r0", "1", "0"], schema.PEER_DEVICE_OPTIONS),
    ]
    for argv, options in cases:
        args = []
        for opt in options.values():
            values = [opt.default] if opt.default is not None else []
            if opt.kind is schema.Kind.ENUM:
                values = list(opt.choices)
            elif opt.kind is schema.Kind.FLAG:
                values = [True, False]
            elif opt.kind is schema.Kind.INT:
                values += [v for v in (opt.min, opt.max) if v is not None]
            args += [opt.cli(v) for v in values]
        rc, _, err, _ = call(argv + args)
        assert rc == 0, (argv, err)


def test_entry_point_loads_only_the_pyroute2_modules_it_needs():
    import subprocess
    import sys
    code = ("import sys; from bsr.setup_cli import main; main(['--version']); "
            "print('FULL' if hasattr(sys.modules['pyroute2'], 'IPRoute') else 'LIGHT', "
            "'ndb' in str(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.splitlines()[-1] == "LIGHT False", r.stdout + r.stderr
