"""Two guests joined by a point-to-point QEMU dgram link, with fault knobs."""
from __future__ import annotations

import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .guest import CommandFailed, Disk, Guest, GuestSpec, Nic
from .kernel import KernelEnv

RMEM_BYTES = 8 * 1024 * 1024
RMEM_KEYS = ("net/core/rmem_max", "net/core/rmem_default")


def free_udp_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (all held open until chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


class HostUdpBuffers:
    """Raise the host's UDP receive buffers for the run (the dgram link drops
    packets under load otherwise) and put the old values back afterwards."""

    def __init__(self, size: int = RMEM_BYTES, root: Path = Path("/proc/sys")) -> None:
        self.size = size
        self.root = root
        self.saved: dict[str, str] = {}

    def raise_(self) -> bool:
        try:
            for key in RMEM_KEYS:
                path = self.root / key
                old = path.read_text().strip()
                if int(old) < self.size:
                    path.write_text(str(self.size))
                    self.saved[key] = old
        except (OSError, ValueError):
            return False
        return True

    def restore(self) -> None:
        for key, old in self.saved.items():
            try:
                (self.root / key).write_text(old)
            except OSError:
                pass
        self.saved.clear()


@dataclass
class NetemSettings:
    delay_ms: float = 0
    loss_pct: float = 0
    rate: str = ""  # tc rate syntax, e.g. "100mbit"

    def tc_args(self) -> str:
        parts = []
        if self.delay_ms:
            parts.append(f"delay {self.delay_ms:g}ms")
        if self.loss_pct:
            parts.append(f"loss {self.loss_pct:g}%")
        if self.rate:
            parts.append(f"rate {self.rate}")
        return " ".join(parts)


class Lab:
    """Guests ``a`` (198.18.0.1, fd00::1) and ``b`` (198.18.0.2, fd00::2)."""

    def __init__(self, env: KernelEnv, workdir: Path, disks_per_node: int = 1, disk_mb: int = 128,
                 cpus: int = 1, memory: str = "1G") -> None:
        p_a, p_b = free_udp_ports(2)
        self.workdir = workdir
        self.nodes: list[Guest] = []
        for i, (local, remote) in enumerate(((p_a, p_b), (p_b, p_a)), start=1):
            name = "ab"[i - 1]
            disks = [
                Disk(workdir / f"{name}-disk{d}.img", disk_mb, serial=f"bsr{name}{d}")
                for d in range(disks_per_node)
            ]
            nic = Nic(mac=f"52:54:00:b5:00:{i:02x}", local_port=local, remote_port=remote,
                      ipv4=f"198.18.0.{i}/24", ipv6=f"fd00::{i}/64")
            spec = GuestSpec(name=name, workdir=workdir, disks=disks, nic=nic, cpus=cpus,
                             memory=memory, rwdir=workdir / "shared")
            (workdir / "shared").mkdir(parents=True, exist_ok=True)
            self.nodes.append(Guest(spec, env))
        self.netem_settings: NetemSettings | None = None
        self.link_cut = False

    @property
    def a(self) -> Guest:
        return self.nodes[0]

    @property
    def b(self) -> Guest:
        return self.nodes[1]

    @staticmethod
    def addr(guest: Guest, family: int = 4) -> str:
        nic = guest.spec.nic
        assert nic is not None
        return (nic.ipv4 if family == 4 else nic.ipv6).split("/")[0]

    def boot(self) -> "Lab":
        """Boot the nodes that are down, in parallel."""
        down = [g for g in self.nodes if not g.alive]
        errors: list[BaseException] = []

        def boot_one(g: Guest) -> None:
            try:
                g.boot()
            except BaseException as e:  # re-raised below in the caller's thread
                errors.append(e)

        threads = [threading.Thread(target=boot_one, args=(g,)) for g in down]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        self._apply_qdisc()
        return self

    def _apply_qdisc(self) -> None:
        """The link's state as each live node's egress qdisc, both nodes at once."""
        started = []
        for g in self.nodes:
            if not g.alive:
                continue
            nic = g.spec.nic
            assert nic is not None
            if self.link_cut:
                # A total loss qdisc drops every frame (ARP and ND included)
                # while addresses and sockets stay as they are: a partition.
                cmd = f"tc qdisc replace dev {nic.ifname} root netem loss 100%"
            elif self.netem_settings is not None and self.netem_settings.tc_args():
                cmd = f"tc qdisc replace dev {nic.ifname} root netem {self.netem_settings.tc_args()}"
            else:
                cmd = f"tc qdisc del dev {nic.ifname} root 2>/dev/null; true"
            started.append((g, cmd, g.run_async(cmd, timeout=30)))
        for g, cmd, pending in started:
            r = pending.wait()
            if r.rc != 0:
                raise CommandFailed(g.name, cmd, r)

    def cut_link(self) -> None:
        """Drop all traffic between the guests in both directions."""
        self.link_cut = True
        self._apply_qdisc()

    def restore_link(self) -> None:
        self.link_cut = False
        self._apply_qdisc()

    def netem(self, delay_ms: float = 0, loss_pct: float = 0, rate: str = "") -> None:
        """Shape each guest's egress with sch_netem: a delay of D ms adds
        2*D ms to the round-trip time, a loss of P% applies per direction."""
        self.netem_settings = NetemSettings(delay_ms, loss_pct, rate)
        self._apply_qdisc()

    def clear_netem(self) -> None:
        self.netem_settings = None
        self._apply_qdisc()

    def reset(self) -> None:
        """Back to a healthy, unshaped link (used between tests)."""
        self.link_cut = False
        self.netem_settings = None
        self._apply_qdisc()

    def shutdown(self) -> None:
        for g in self.nodes:
            g.shutdown()
