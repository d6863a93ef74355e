"""Two nodes connect over TCP, report it, survive a cut link, disconnect and
reconnect; the module unloads without leaving sockets or threads."""
from __future__ import annotations

import re

import pytest

from harness.lab import Lab
from repl_lab import (PORT, configure, connect, create_md, disconnect, down, events, kmsg,
                      nodes, state, wait_state)

pytestmark = pytest.mark.vm


def connected_pair(lab: Lab, ko, net_conf=None, family: int = 4):
    a, b = nodes(lab, family)
    for n in (a, b):
        create_md(n)
        configure(n, ko, net_conf)
    return a, b


def test_two_nodes_connect_and_report_connection_paths_and_peer_devices(lab: Lab, bsr_ko) -> None:
    a, b = connected_pair(lab, bsr_ko)
    for n in (a, b):
        snap = wait_state(n, "Connected", 60)
        assert snap["paths"] == [True]
        assert snap["peer_role"] == "Secondary"
        assert snap["agreed_proto"] == 1
        # both just created: nothing to sync, the peer is Inconsistent like us
        assert snap["peer_devices"]["0"] == {"replication": "Established",
                                             "peer_disk": "Inconsistent",
                                             "peer_current_uuid": 4}
    for n in (a, b):
        ev = events(n)
        for pat in (r"change connection name:r0 peer-node-id:%d conn-name:peer connection:Connecting",
                    r"change connection name:r0 peer-node-id:%d conn-name:peer connection:Connected",
                    r"change path name:r0 peer-node-id:%d .*established:yes",
                    r"change peer-device name:r0 peer-node-id:%d .*replication:Established"):
            assert re.search(pat % n.peer_id, ev), (pat, ev)
        assert "uuid compare rule 20: no resync" in kmsg(n)
    ss = a.g.check("ss -tan", timeout=30).stdout
    assert len(re.findall(rf"ESTAB.*{re.escape(b.ip)}:{PORT}\b", ss)) == 2, ss  # data + meta
    status = a.g.check("bsrsetup status --verbose r0", timeout=300).stdout
    assert "connection:Connected" in status and "peer-disk:Inconsistent" in status, status
    for n in (a, b):
        down(n)
