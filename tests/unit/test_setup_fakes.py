"""Fabricated kernel messages and an in-memory netlink for bsrsetup tests.

Not tests themselves: the module is named so that it lives next to the tests
that import it.  The fake has the methods of :class:`bsr.netlink.BsrNetlink`
the programs use (request, dump, subscribe, events, close) and records calls.
"""

from __future__ import annotations

from typing import Any, Iterator

from bsr import abi
from bsr.netlink import BsrError, Message, encode_addr

CREATE, CHANGE, DESTROY, EXISTS = (abi.NotifyType.create, abi.NotifyType.change,
                                   abi.NotifyType.destroy, abi.NotifyType.exists)


def _notify(ntype: int, seq: int) -> dict[str, int]:
    return {"type": int(ntype), "seq": seq}


def resource(name: str = "r0", *, ntype: int = EXISTS, seq: int = 0, role=abi.Role.Secondary,
             susp: int = 0, susp_nod: int = 0, wo=abi.WriteOrdering.flush) -> Message:
    return Message("EV_RESOURCE", structs={
        "ctx": {"res_name": name}, "notify": _notify(ntype, seq),
        "res_info": {"role": int(role), "susp": susp, "susp_nod": susp_nod,
                     "write_ordering": int(wo)},
        "res_stats": {"write_ordering": int(wo)}})


def device(name: str = "r0", volume: int = 0, minor: int = 0, *, ntype: int = EXISTS,
           seq: int = 0, disk=abi.DiskState.UpToDate, backing: str = "/dev/vdb",
           **stats: Any) -> Message:
    s = {"capacity": 2097152, "read_sectors": 0, "write_sectors": 0, "al_writes": 0,
         "bm_writes": 0, "upper_pending": 0, "lower_pending": 0, "al_suspended": 0,
         "blocked": 0}
    s.update(stats)
    return Message("EV_DEVICE", minor=minor, structs={
        "ctx": {"res_name": name, "volume": volume}, "notify": _notify(ntype, seq),
        "device_info": {"disk_state": int(disk), "backing_dev": backing, "client": 0,
                        "open_count": 0},
        "device_stats": s})


def connection(name: str = "r0", peer: int = 1, conn_name: str = "node-b", *,
               ntype: int = EXISTS, seq: int = 0, cstate=abi.ConnState.Connected,
               peer_role=abi.Role.Secondary, **stats: Any) -> Message:
    s = {"congested": 0, "ap_in_flight": 0, "rs_in_flight": 0}
    s.update(stats)
    return Message("EV_CONNECTION", structs={
        "ctx": {"res_name": name, "peer_node_id": peer, "conn_name": conn_name},
        "notify": _notify(ntype, seq),
        "conn_info": {"conn_state": int(cstate), "peer_role": int(peer_role)},
        "conn_stats": s})


def peer_device(name: str = "r0", peer: int = 1, volume: int = 0, conn_name: str = "node-b",
                *, ntype: int = EXISTS, seq: int = 0, repl=abi.ReplState.Established,
                peer_disk=abi.DiskState.UpToDate, resync_susp: int = 0,
                **stats: Any) -> Message:
    s = {"received_sectors": 0, "sent_sectors": 0, "out_of_sync": 0, "pending": 0,
         "unacked": 0, "rs_total": 0, "rs_done": 0}
    s.update(stats)
    return Message("EV_PEER_DEVICE", structs={
        "ctx": {"res_name": name, "peer_node_id": peer, "conn_name": conn_name,
                "volume": volume},
        "notify": _notify(ntype, seq),
        "peer_device_info": {"repl_state": int(repl), "peer_disk_state": int(peer_disk),
                             "peer_client": 0, "resync_susp": resync_susp},
        "peer_device_stats": s})


def path(name: str = "r0", peer: int = 1, conn_name: str = "node-b", *, ntype: int = EXISTS,
         seq: int = 0, local: str = "ipv4:198.18.0.1:7789",
         remote: str = "ipv4:198.18.0.2:7789", established: int = 1) -> Message:
    return Message("EV_PATH", structs={
        "ctx": {"res_name": name, "peer_node_id": peer, "conn_name": conn_name,
                "my_addr": encode_addr(local), "peer_addr": encode_addr(remote)},
        "notify": _notify(ntype, seq), "path_info": {"established": established}})


def initial_done(seq: int = 0) -> Message:
    return Message("EV_INITIAL_DONE", structs={"notify": _notify(EXISTS, seq)})


def initial_state(seq: int = 10) -> list[Message]:
    """One resource with one volume and one connected peer, then the end marker."""
    return [resource(seq=seq), device(seq=seq), connection(seq=seq),
            peer_device(seq=seq), path(seq=seq), initial_done(seq)]


class FakeNetlink:
    """In-memory stand-in for BsrNetlink.

    ``dumps[cmd]`` is a list of dump answers, consumed in order (the last one
    repeats); ``batches`` are lists of notifications returned by successive
    ``events()`` calls; when they run out, ``events()`` raises
    KeyboardInterrupt (as if the admin pressed ^C).
    """

    def __init__(self, dumps: dict[str, list[list[Message]]] | None = None,
                 batches: list[list[Message]] | None = None,
                 fail: BsrError | None = None, clock: Any = None, step: float = 0.0) -> None:
        self.dumps = dumps or {}
        self.batches = list(batches or [])
        self.fail = fail
        self.calls: list[tuple[Any, ...]] = []
        self.clock = clock
        self.step = step  # seconds the clock advances after each notification
        self.closed = False

    def subscribe(self) -> None:
        self.calls.append(("subscribe",))

    def request(self, cmd: str, *, minor: int = abi.MINOR_NONE, **structs: Any) -> Message:
        self.calls.append(("request", cmd, minor, structs))
        if self.fail is not None:
            raise self.fail
        if cmd == "GET_VERSION":
            return Message(cmd, structs={"version_info": {
                "version": "0.1.0", "abi_version": 1, "proto_min": 2, "proto_max": 2,
                "build": "6.1.0-56-amd64"}})
        return Message(cmd, minor=minor)

    def dump(self, cmd: str, *, minor: int = abi.MINOR_NONE, **structs: Any) -> list[Message]:
        self.calls.append(("dump", cmd, structs))
        if self.fail is not None:
            raise self.fail
        answers = self.dumps.get(cmd, [[]])
        return list(answers.pop(0) if len(answers) > 1 else answers[0])

    def events(self, timeout: float | None = None) -> Iterator[Message]:
        self.calls.append(("events", timeout))
        if not self.batches:
            raise KeyboardInterrupt
        batch = self.batches.pop(0)
        for m in batch:
            yield m
            if self.clock is not None:
                self.clock.advance(self.step)
        if self.clock is not None:
            self.clock.advance(timeout or 0)

    def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt
