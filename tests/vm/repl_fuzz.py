"""Hostile client for the bsr replication port (wire format: docs/protocol.md).

Sends malformed frames to a node that listens for its peer, one frame per
TCP connection, and checks that the node closes every such connection.
Frames are aimed at each stage of a connection:

* ``hello``: the first packet of a stream -- random bytes, headers with
  absurd lengths, truncated packets, wrong commands, bad stream types;
* ``handshake``: after a valid data+meta pairing, a bad packet where the
  handshake expects P_FEATURES or the volume packets;
* ``connected``: after a complete handshake, wrong commands, bad sequence
  numbers and garbage on the data or the meta stream;
* ``stranger``: well-formed hellos from an address that is not the peer.

Usable as a library (``Fuzzer(...).run(counts)``, the replication tests run
it inside the guest's repl_agent.py) or as a program::

    python3 repl_fuzz.py --target 198.18.0.2 --source 198.18.0.1 \\
        --my-node 0 --peer-node 1 --frames 10000
"""
from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

MAGIC = 0x42535231
VOL_NONE = 0xFFFF
MAX_PAYLOAD = 64 << 10
JUST_CREATED = 4
(P_HELLO, P_FEATURES, P_AUTH_CHALLENGE, P_AUTH_RESPONSE, P_SIZES, P_UUIDS, P_STATE,
 P_HS_DONE, P_PING, P_PING_ACK, P_DISCONNECT, P_VOL_JOIN, P_VOL_LEAVE) = range(1, 14)
DATA, META = 0, 1


def header(cmd: int, length: int, vol: int = VOL_NONE, seq: int = 1, magic: int = MAGIC) -> bytes:
    return struct.pack("!IHHII", magic, cmd & 0xFFFF, vol & 0xFFFF, length & 0xFFFFFFFF,
                       seq & 0xFFFFFFFF)


def packet(cmd: int, payload: bytes = b"", vol: int = VOL_NONE, seq: int = 1) -> bytes:
    return header(cmd, len(payload), vol, seq) + payload


def hello(stream: int, sender: int, receiver: int, cookie: int) -> bytes:
    return packet(P_HELLO, struct.pack("!B3xIIIQ", stream, sender, receiver, 0, cookie))


def features(sender: int, receiver: int, volumes: int = 1, pmin: int = 2, pmax: int = 2) -> bytes:
    return struct.pack("!IIIIII64s64s", pmin, pmax, 0, sender, receiver, volumes, b"", b"fuzz")


def sizes(sectors: int) -> bytes:
    return struct.pack("!QQQ", sectors, sectors, 0)


def uuids(current: int = JUST_CREATED, disk_state: int = 5) -> bytes:
    return struct.pack("!QQ4QQII", current, 0, 0, 0, 0, 0, 0, 0, disk_state)


@dataclass
class Fuzzer:
    target: str
    port: int
    source: str | None
    my_node: int
    peer_node: int
    seed: int = 1
    stranger: str | None = None  # a local address that is not the peer's
    close_timeout: float = 15.0
    rng: random.Random = field(init=False)
    sent: Counter = field(default_factory=Counter)
    closed: Counter = field(default_factory=Counter)
    not_closed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # ---- sockets ---------------------------------------------------------
    def connect(self, source: str | None = None) -> socket.socket:
        fam = socket.AF_INET6 if ":" in self.target else socket.AF_INET
        last: OSError | None = None
        for _ in range(200):  # the node may be between two attempts
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(self.close_timeout)
            try:
                src = source or self.source
                if src:
                    s.bind((src, 0))
                s.connect((self.target, self.port))
                return s
            except OSError as e:
                s.close()
                last = e
                time.sleep(0.05)
        raise RuntimeError(f"cannot connect to {self.target}:{self.port}: {last}")

    def wait_closed(self, socks: list[socket.socket], what: str) -> None:
        """Every socket must see EOF or a reset from the node."""
        for s in socks:
            ok = False
            try:
                s.settimeout(self.close_timeout)
                while True:
                    if not s.recv(65536):
                        ok = True
                        break
            except ConnectionError:
                ok = True
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                self.not_closed.append(what)
                return
        self.closed[what.split(":")[0]] += 1

    # ---- frames ------------------------------------------------------------
    def bad_first_frame(self) -> tuple[str, bytes]:
        r = self.rng
        choice = r.randrange(8)
        if choice == 0:
            return "random", r.randbytes(r.randrange(1, 300))
        if choice == 1:
            ln = r.choice([MAX_PAYLOAD + 1, 1 << 31, 0xFFFFFFFF, 0x7FFFFFFF, 1 << 20])
            return "absurd-length", header(r.randrange(0, 40), ln) + r.randbytes(r.randrange(64))
        if choice == 2:
            full = hello(r.randrange(2), self.my_node, self.peer_node, r.getrandbits(64))
            return "truncated", full[: r.randrange(1, len(full))]
        if choice == 3:
            cmd = r.choice([P_FEATURES, P_PING, P_PING_ACK, P_SIZES, P_DISCONNECT, 0, 12, 999, 0xFFFF])
            return "wrong-command", packet(cmd, r.randbytes(r.randrange(0, 128)))
        if choice == 4:
            p = struct.pack("!B3xIIIQ", r.randrange(2, 256), self.my_node, self.peer_node, 0, 1)
            return "bad-stream", packet(P_HELLO, p)
        if choice == 5:
            good = hello(DATA, self.my_node, self.peer_node, 7)
            return "bad-magic", struct.pack("!I", r.getrandbits(32) | 1) + good[4:]
        if choice == 6:
            good = bytearray(hello(DATA, self.my_node, self.peer_node, 7))
            good[12:16] = struct.pack("!I", r.choice([0, 2, 0xFFFFFFFF]))
            return "bad-seq", bytes(good)
        return "meta-alone", hello(META, self.my_node, self.peer_node, r.getrandbits(64))

    def bad_handshake_frame(self, seq: int) -> tuple[str, bytes]:
        r = self.rng
        choice = r.randrange(7)
        if choice == 0:
            return "random", r.randbytes(r.randrange(1, 300))
        if choice == 1:
            return "absurd-length", header(P_FEATURES, r.choice([MAX_PAYLOAD + 1, 0xFFFFFFFF]), seq=seq)
        if choice == 2:
            return "short-features", packet(P_FEATURES, r.randbytes(r.randrange(0, 151)), seq=seq)
        if choice == 3:
            return "wrong-seq", packet(P_FEATURES, features(self.my_node, self.peer_node),
                                       seq=seq + r.randrange(1, 1000))
        if choice == 4:
            return "meta-cmd-on-data", packet(P_PING, seq=seq)
        if choice == 5:
            return "volume-on-features", packet(P_FEATURES, features(self.my_node, self.peer_node),
                                                vol=r.randrange(0, 100), seq=seq)
        if seq == 2:
            return "sizes-first", packet(P_SIZES, sizes(1 << 20), vol=0, seq=seq)
        return "uuids-before-sizes", packet(P_UUIDS, uuids(), vol=0, seq=seq)

    # ---- stages ------------------------------------------------------------
    def pair(self) -> tuple[socket.socket, socket.socket]:
        cookie = self.rng.getrandbits(64)
        d = self.connect()
        d.sendall(hello(DATA, self.my_node, self.peer_node, cookie))
        m = self.connect()
        m.sendall(hello(META, self.my_node, self.peer_node, cookie))
        return d, m

    def stage_hello(self) -> None:
        what, frame = self.bad_first_frame()
        s = self.connect()
        try:
            s.sendall(frame)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.sent[f"hello:{what}"] += 1
        self.wait_closed([s], f"hello:{what}")

    def stage_stranger(self) -> None:
        cookie = self.rng.getrandbits(64)
        s = self.connect(self.stranger)
        try:
            s.sendall(hello(DATA, self.my_node, self.peer_node, cookie))
        except OSError:
            pass
        self.sent["stranger:hello"] += 1
        self.wait_closed([s], "stranger:hello")

    def stage_handshake(self) -> None:
        d, m = self.pair()
        seq = 2  # the hello was packet 1 of the data stream
        if self.rng.random() < 0.5:  # a good P_FEATURES first, then the bad one
            d.sendall(packet(P_FEATURES, features(self.my_node, self.peer_node), seq=2))
            seq = 3
        what, frame = self.bad_handshake_frame(seq)
        try:
            d.sendall(frame)
        except OSError:
            pass
        self.sent[f"handshake:{what}"] += 1
        self.wait_closed([d, m], f"handshake:{what}")

    def handshake(self, d: socket.socket, sectors: int) -> None:
        d.sendall(packet(P_FEATURES, features(self.my_node, self.peer_node), seq=2)
                  + packet(P_SIZES, sizes(sectors), vol=0, seq=3)
                  + packet(P_UUIDS, uuids(), vol=0, seq=4)
                  + packet(P_STATE, struct.pack("!II", 2, 0), seq=5)
                  + packet(P_HS_DONE, struct.pack("!I", 1), seq=6))

    def read_exact(self, s: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def node_finished_handshake(self, d: socket.socket) -> bool:
        """Read the node's handshake packets up to its P_HS_DONE."""
        try:
            for _ in range(16):
                _, cmd, _, length, _ = struct.unpack("!IHHII", self.read_exact(d, 16))
                self.read_exact(d, length)
                if cmd == P_HS_DONE:
                    return True
        except OSError:
            pass
        return False

    def stage_connected(self, sectors: int) -> None:
        d, m = self.pair()
        self.handshake(d, sectors)
        if self.node_finished_handshake(d):
            self.sent["reached-connected"] += 1
        r = self.rng
        join = sizes(sectors) + uuids()
        choice = r.randrange(10)
        if choice == 0:
            what, sock, frame = "features-again", d, packet(P_FEATURES, features(0, 1), seq=7)
        elif choice == 6:  # volume 0's disk is known from the handshake
            what, sock, frame = "vol-join-again", d, packet(P_VOL_JOIN, join, vol=0, seq=7)
        elif choice == 7:  # a volume the node does not have: held once, not twice
            what, sock, frame = "vol-join-twice", d, (packet(P_VOL_JOIN, join, vol=7, seq=7)
                                                      + packet(P_VOL_JOIN, join, vol=7, seq=8))
        elif choice == 8:
            what, sock, frame = "vol-join-bad-disk", d, packet(
                P_VOL_JOIN, sizes(sectors) + uuids(disk_state=77), vol=7, seq=7)
        elif choice == 9:
            what, sock, frame = "vol-leave-short", d, packet(P_VOL_LEAVE, b"\0" * 4, vol=0, seq=7)
        elif choice == 1:
            what, sock, frame = "ping-on-data", d, packet(P_PING, seq=7)
        elif choice == 2:
            what, sock, frame = "ack-without-ping", m, packet(P_PING_ACK, seq=2)
        elif choice == 3:
            what, sock, frame = "meta-bad-seq", m, packet(P_PING, seq=r.randrange(3, 1 << 30))
        elif choice == 4:
            what, sock, frame = "data-garbage", d, r.randbytes(r.randrange(16, 400))
        else:
            what, sock, frame = "bad-role", d, packet(P_STATE, struct.pack("!II", 77, 0), seq=7)
        try:
            sock.sendall(frame)
        except OSError:
            pass
        self.sent[f"connected:{what}"] += 1
        self.wait_closed([d, m], f"connected:{what}")

    def run(self, hello_frames: int, handshake_frames: int, connected_frames: int,
            stranger_frames: int, sectors: int) -> dict:
        start = time.monotonic()
        for _ in range(stranger_frames):
            if self.stranger:
                self.stage_stranger()
        for _ in range(hello_frames):
            self.stage_hello()
        for _ in range(handshake_frames):
            self.stage_handshake()
        for _ in range(connected_frames):
            self.stage_connected(sectors)
        reached = self.sent.pop("reached-connected", 0)
        return {"sent": dict(self.sent), "total": sum(self.sent.values()),
                "reached_connected": reached,
                "closed": dict(self.closed), "not_closed": self.not_closed[:20],
                "seconds": round(time.monotonic() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True)
    ap.add_argument("--port", type=int, default=7789)
    ap.add_argument("--source")
    ap.add_argument("--stranger", help="local address that is not the configured peer")
    ap.add_argument("--my-node", type=int, default=0)
    ap.add_argument("--peer-node", type=int, default=1)
    ap.add_argument("--frames", type=int, default=10000, help="frames at the hello stage")
    ap.add_argument("--handshake", type=int, default=200)
    ap.add_argument("--connected", type=int, default=100)
    ap.add_argument("--strangers", type=int, default=50)
    ap.add_argument("--sectors", type=int, default=1 << 20)
    ap.add_argument("--seed", type=int, default=1)
    ns = ap.parse_args()
    fz = Fuzzer(ns.target, ns.port, ns.source, ns.my_node, ns.peer_node, ns.seed, ns.stranger)
    print(json.dumps(fz.run(ns.frames, ns.handshake, ns.connected, ns.strangers, ns.sectors)))


if __name__ == "__main__":
    main()
