"""Two guests on a dgram link: TCP works, a cut link stops it, netem shapes it."""
from __future__ import annotations

import re
import time

import pytest

from harness.lab import Lab

pytestmark = pytest.mark.vm

SERVER = "busybox nc -l -p {port} > /tmp/got-{port}"
CLIENT = "echo hello-{port} | busybox nc -w 3 {addr} {port}"


def tcp_roundtrip(lab: Lab, port: int, family: int = 4, timeout: float = 10) -> bool:
    """Send one line from b to a over TCP; True when it arrived."""
    server = lab.a.run_async(SERVER.format(port=port), timeout=timeout + 5)
    time.sleep(0.5)
    addr = Lab.addr(lab.a, family)
    client = lab.b.run(f"timeout {timeout} sh -c {CLIENT.format(port=port, addr=addr)!r}", timeout=timeout + 5)
    if client.rc == 0:
        server.wait()  # else the agent kills the listener at its bound
    got = lab.a.run(f"cat /tmp/got-{port} 2>/dev/null", timeout=10).stdout
    return client.rc == 0 and got == f"hello-{port}\n"


def rtt_ms(lab: Lab) -> float:
    out = lab.b.check(f"busybox ping -c 5 -i 0.2 -W 2 {Lab.addr(lab.a)}", timeout=30).stdout
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    assert m, out
    return float(m.group(1))


def test_link_has_addresses_and_jumbo_mtu(lab: Lab) -> None:
    for g, v4, v6 in ((lab.a, "198.18.0.1/24", "fd00::1/64"), (lab.b, "198.18.0.2/24", "fd00::2/64")):
        nic = g.spec.nic
        assert nic is not None and nic.ifname
        out = g.check(f"ip addr show dev {nic.ifname}").stdout
        assert "mtu 9000" in out and v4 in out and v6 in out


def test_tcp_flows_over_ipv4_and_ipv6(lab: Lab) -> None:
    assert tcp_roundtrip(lab, 7001, family=4)
    assert tcp_roundtrip(lab, 7002, family=6)


def test_cut_link_stops_tcp_and_restore_brings_it_back(lab: Lab) -> None:
    lab.cut_link()
    start = time.monotonic()
    assert not tcp_roundtrip(lab, 7003, timeout=5)
    assert time.monotonic() - start < 30
    lab.restore_link()
    assert tcp_roundtrip(lab, 7004)


def test_netem_delay_raises_round_trip_time(lab: Lab) -> None:
    base = rtt_ms(lab)
    lab.netem(delay_ms=50)
    delayed = rtt_ms(lab)
    lab.clear_netem()
    assert delayed >= base + 90, (base, delayed)  # 50 ms on each guest's egress
    assert rtt_ms(lab) < delayed - 50


def test_host_udp_buffers_raised_for_the_run(lab: Lab) -> None:
    if not getattr(lab, "udp_buffers_raised", False):
        pytest.skip("host sysctl net.core.rmem_* not writable here")
    with open("/proc/sys/net/core/rmem_max") as f:
        assert int(f.read()) >= 8 * 1024 * 1024
