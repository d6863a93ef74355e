"""The bsr generic-netlink ABI, defined once.

This module is the single source of truth for the interface between bsr.ko
and userland.  ``tools/gen_abi.py`` turns it into the kernel headers
``kmod/include/uapi/linux/bsr_genl.h`` (numbers, enums, limits) and
``kmod/bsr_nl_gen.h`` (structs, netlink policies, parse/put helpers); a unit
test regenerates both and fails if the committed files differ.  The Python
side (``bsr.netlink``) builds its pyroute2 message classes from the same
tables, and the configuration schema takes defaults and ranges from here.

Conventions
-----------
* Every top-level attribute is a nested "struct" (NLA_F_NESTED set).
* Sizes on the wire are in 512-byte sectors unless a field name says
  otherwise (``*_kib``, ``*_bytes``); times carry their unit in the name
  or the ``unit`` column (``ds`` = tenths of a second, like DRBD).
* Statistics are 64-bit counters that only ever grow while the object
  lives; reading them never resets anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterator

FAMILY_NAME = "bsr"
FAMILY_VERSION = 1
MCAST_GROUP_EVENTS = "events"
# Bumped whenever an attribute or command changes meaning.
ABI_VERSION = 1
# Replication protocol versions this module understands.
PROTO_VERSION_MIN = 2
PROTO_VERSION_MAX = 2

MINOR_NONE = 0xFFFFFFFF  # header minor when a context names the target
MAX_MINORS = 1 << 20
MAX_VOLUMES = 65535
MAX_PEERS = 31
NAME_LEN = 64  # resource and connection names, including the NUL
PATH_LEN = 128  # device paths, including the NUL
ADDR_LEN = 28  # sizeof(struct sockaddr_in6), the largest address we carry
UUID_HISTORY = 4
LAT_BUCKETS = 24  # log2 buckets of microseconds: [0,2) [2,4) ... [2^23, inf)

# Metadata index values for disk_conf.meta_dev_idx (as DRBD uses them).
MD_INDEX_INTERNAL = -1
MD_INDEX_FLEX_EXT = -2


# --------------------------------------------------------------------------
# Enumerations (values are ABI; names are the spellings users grep for)
# --------------------------------------------------------------------------

class Role(enum.IntEnum):
    Unknown = 0
    Primary = 1
    Secondary = 2


class DiskState(enum.IntEnum):
    Diskless = 0
    Attaching = 1
    Detaching = 2
    Failed = 3
    Negotiating = 4
    Inconsistent = 5
    Outdated = 6
    DUnknown = 7
    Consistent = 8
    UpToDate = 9


class ConnState(enum.IntEnum):
    StandAlone = 0
    Disconnecting = 1
    Unconnected = 2
    Timeout = 3
    BrokenPipe = 4
    NetworkFailure = 5
    ProtocolError = 6
    TearDown = 7
    Connecting = 8
    Connected = 9


class ReplState(enum.IntEnum):
    Off = 0
    Established = 1
    StartingSyncS = 2
    StartingSyncT = 3
    WFBitMapS = 4
    WFBitMapT = 5
    WFSyncUUID = 6
    SyncSource = 7
    SyncTarget = 8
    VerifyS = 9
    VerifyT = 10
    PausedSyncS = 11
    PausedSyncT = 12
    Ahead = 13
    Behind = 14


class NotifyType(enum.IntEnum):
    exists = 0
    create = 1
    change = 2
    destroy = 3
    call = 4
    response = 5


NOTIFY_CONTINUES = 0x8000  # or-ed into notify.type: more "exists" follow


class WireProtocol(enum.IntEnum):
    A = 1
    B = 2
    C = 3


class OnIoError(enum.IntEnum):
    passthrough = 0
    detach = 1


class OnCongestion(enum.IntEnum):
    block = 0
    pull_ahead = 1
    disconnect = 2


class AfterSB(enum.IntEnum):
    disconnect = 0
    discard_younger_primary = 1
    discard_older_primary = 2
    discard_zero_changes = 3
    discard_least_changes = 4
    discard_local = 5
    discard_remote = 6
    consensus = 7
    discard_secondary = 8
    call_pri_lost_after_sb = 9
    violently = 10


class WriteOrdering(enum.IntEnum):
    none = 0
    drain = 1
    flush = 2


class MdFlag(enum.IntFlag):
    """Flags of the on-disk superblock, also reported in device_info.md_flags."""
    CONSISTENT = 1 << 0
    WAS_UP_TO_DATE = 1 << 1
    PRIMARY_IND = 1 << 2
    CRASHED_PRIMARY = 1 << 3
    AL_CLEAN = 1 << 4
    AL_DISABLED = 1 << 5
    CLEAN_SHUTDOWN = 1 << 6


class SuspReason(enum.IntFlag):
    """resync-suspended reasons, peer_device_info.resync_susp."""
    user = 1 << 0
    peer = 1 << 1
    dependency = 1 << 2


# --------------------------------------------------------------------------
# Attribute structs
# --------------------------------------------------------------------------

REQUIRED = 1 << 0  # must be present when the struct is given
SENSITIVE = 1 << 1  # never broadcast, never dumped (shared secrets)
INVARIANT = 1 << 2  # set at creation only; changing it later is refused


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # u8 | u32 | s32 | u64 | str | bin | enum:<EnumName>
    default: int | str | None = None
    min: int | None = None
    max: int | None = None
    flags: int = 0
    maxlen: int = 0  # str/bin: bytes including NUL for str
    unit: str = ""  # for config values: sectors, KiB/s, ds, s, bytes, count
    doc: str = ""
    keyword: str = ""  # config/CLI spelling when it is not name with dashes

    @property
    def key(self) -> str:
        """How admins spell the option in bsr.conf and on the command line."""
        return self.keyword or self.name.replace("_", "-")

    @property
    def nla_type(self) -> str:
        if self.type.startswith("enum:"):
            return "u32"
        if self.type == "flag":
            return "u8"
        return self.type

    @property
    def enum(self) -> type[enum.IntEnum] | None:
        if self.type.startswith("enum:"):
            return ENUMS[self.type[5:]]
        return None


@dataclass(frozen=True)
class Struct:
    name: str  # C identifier, e.g. net_conf
    attr: str  # top-level attribute constant suffix, e.g. NET_CONF
    fields: tuple[Field, ...]
    config: bool = False  # user-settable options with defaults
    doc: str = ""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _s(name: str, attr: str, *fields: Field, config: bool = False, doc: str = "") -> Struct:
    return Struct(name, attr, tuple(fields), config, doc)


F = Field
KIB = "KiB/s"

CTX = _s(
    "ctx", "CTX",
    F("res_name", "str", maxlen=NAME_LEN, doc="resource name"),
    F("volume", "u32", max=MAX_VOLUMES - 1, doc="volume number"),
    F("peer_node_id", "u32", max=MAX_PEERS, doc="peer node id"),
    F("conn_name", "str", maxlen=NAME_LEN, doc="connection (peer) name"),
    F("my_addr", "bin", maxlen=ADDR_LEN, doc="local sockaddr of a path"),
    F("peer_addr", "bin", maxlen=ADDR_LEN, doc="peer sockaddr of a path"),
    doc="names the object a command or notification is about",
)

REPLY = _s(
    "reply", "REPLY",
    F("info_text", "str", maxlen=256, doc="human readable result or reason"),
    doc="sent with every answer to a mutating command",
)

NOTIFY = _s(
    "notify", "NOTIFY",
    F("type", "u32", doc="NotifyType, or-ed with NOTIFY_CONTINUES"),
    F("seq", "u32", doc="global notification sequence number"),
)

VERSION_INFO = _s(
    "version_info", "VERSION_INFO",
    F("version", "str", maxlen=32, doc="module version"),
    F("abi_version", "u32"),
    F("proto_min", "u32"),
    F("proto_max", "u32"),
    F("build", "str", maxlen=64, doc="kernel release the module was built for"),
)

MODULE_STATS = _s(
    "module_stats", "MODULE_STATS",
    F("requests_allocated", "u64", doc="live request objects"),
    F("peer_requests_allocated", "u64", doc="live peer request objects"),
    F("pages_allocated", "u64", doc="pages held for replication buffers"),
    F("notifications_sent", "u64"),
    F("notifications_dropped", "u64", doc="events that could not be allocated"),
)

RES_OPTS = _s(
    "res_opts", "RES_OPTS",
    F("node_id", "u32", default=0, min=0, max=MAX_PEERS, flags=INVARIANT, unit="count",
      doc="this node's id in the resource"),
    F("cpu_mask", "str", default="", maxlen=64, doc="cpumask for the resource's threads"),
    F("on_no_data_accessible", "u32", default=0, min=0, max=1, doc="0 io-error, 1 suspend-io"),
    F("max_io_depth", "u32", default=8000, min=4, max=4194304, unit="count",
      doc="upper bound on in-flight application requests"),
    F("persist_role", "flag", default=0, doc="keep the role across restarts (BSR)"),
    F("target_only", "flag", default=0, doc="this node may never become Primary (BSR)"),
    config=True,
)

DISK_CONF = _s(
    "disk_conf", "DISK_CONF",
    F("backing_dev", "str", flags=REQUIRED | INVARIANT, maxlen=PATH_LEN),
    F("meta_dev", "str", flags=REQUIRED | INVARIANT, maxlen=PATH_LEN),
    F("meta_dev_idx", "s32", default=MD_INDEX_INTERNAL, min=-2, max=255, flags=INVARIANT),
    F("disk_size", "u64", default=0, min=0, max=1 << 40, unit="sectors", keyword="size",
      doc="0 = use the whole backing device"),
    F("on_io_error", "enum:OnIoError", default=OnIoError.passthrough),
    F("al_extents", "u32", default=6001, min=67, max=65534, unit="count"),
    F("al_updates", "flag", default=1),
    F("disk_flushes", "flag", default=1),
    F("md_flushes", "flag", default=1),
    F("disk_barrier", "flag", default=0),
    F("disk_drain", "flag", default=1),
    F("disk_timeout", "u32", default=0, min=0, max=6000, unit="ds"),
    F("resync_after", "s32", default=-1, min=-1, max=MAX_MINORS - 1),
    F("discard_zeroes_if_aligned", "flag", default=1),
    F("rs_discard_granularity", "u32", default=0, min=0, max=1 << 20, unit="bytes"),
    config=True,
)

NET_CONF = _s(
    "net_conf", "NET_CONF",
    F("shared_secret", "str", default="", maxlen=64, flags=SENSITIVE),
    F("cram_hmac_alg", "str", default="", maxlen=64),
    F("integrity_alg", "str", default="", maxlen=64, keyword="data-integrity-alg"),
    F("verify_alg", "str", default="", maxlen=64),
    F("csums_alg", "str", default="", maxlen=64),
    F("wire_protocol", "enum:WireProtocol", default=WireProtocol.C, keyword="protocol"),
    F("connect_int", "u32", default=10, min=1, max=120, unit="s"),
    F("timeout", "u32", default=60, min=1, max=600, unit="ds"),
    F("ping_int", "u32", default=10, min=1, max=120, unit="s"),
    F("ping_timeo", "u32", default=5, min=1, max=300, unit="ds", keyword="ping-timeout"),
    F("sndbuf_size", "u32", default=0, min=0, max=1 << 30, unit="bytes", doc="0 = auto"),
    F("rcvbuf_size", "u32", default=0, min=0, max=1 << 30, unit="bytes", doc="0 = auto"),
    F("ko_count", "u32", default=7, min=0, max=200, unit="count"),
    F("max_buffers", "u32", default=2048, min=32, max=131072, unit="count"),
    F("max_epoch_size", "u32", default=2048, min=1, max=20000, unit="count"),
    F("after_sb_0p", "enum:AfterSB", default=AfterSB.disconnect, keyword="after-sb-0pri"),
    F("after_sb_1p", "enum:AfterSB", default=AfterSB.disconnect, keyword="after-sb-1pri"),
    F("after_sb_2p", "enum:AfterSB", default=AfterSB.disconnect, keyword="after-sb-2pri"),
    F("on_congestion", "enum:OnCongestion", default=OnCongestion.block),
    F("cong_fill", "u32", default=0, min=0, max=(10 << 30) >> 9, unit="sectors",
      keyword="congestion-fill", doc="0 disables"),
    F("cong_extents", "u32", default=5400, min=67, max=65534, unit="count",
      keyword="congestion-extents"),
    F("cong_highwater", "u32", default=20000, min=0, max=1000000, unit="count",
      keyword="congestion-highwater", doc="in-flight requests; 0 disables"),
    F("tcp_cork", "flag", default=1,
      doc="a batch of writes or acks shares TCP segments (TCP_CORK)"),
    F("use_rle", "flag", default=1),
    F("discard_my_data", "flag", default=0),
    F("csums_after_crash_only", "flag", default=0),
    config=True,
)

PEER_DEVICE_CONF = _s(
    "peer_device_conf", "PEER_DEVICE_CONF",
    F("resync_rate", "u32", default=250, min=1, max=4194304, unit=KIB),
    F("c_plan_ahead", "u32", default=20, min=0, max=300, unit="ds"),
    F("c_delay_target", "u32", default=10, min=1, max=100, unit="ds"),
    F("c_fill_target", "u32", default=100, min=0, max=1 << 20, unit="sectors"),
    F("c_max_rate", "u32", default=102400, min=250, max=4194304, unit=KIB),
    F("c_min_rate", "u32", default=250, min=0, max=4194304, unit=KIB),
    F("bitmap", "flag", default=1),
    config=True,
)

RES_INFO = _s(
    "res_info", "RES_INFO",
    F("role", "enum:Role"),
    F("susp", "flag", doc="I/O suspended by the user"),
    F("susp_nod", "flag", doc="I/O suspended: no data accessible"),
    F("write_ordering", "enum:WriteOrdering"),
)

RES_STATS = _s(
    "res_stats", "RES_STATS",
    F("write_ordering", "u32"),
)

DEVICE_INFO = _s(
    "device_info", "DEVICE_INFO",
    F("disk_state", "enum:DiskState"),
    F("backing_dev", "str", maxlen=PATH_LEN),
    F("meta_dev", "str", maxlen=PATH_LEN),
    F("meta_dev_idx", "s32"),
    F("client", "flag", doc="intentionally diskless"),
    F("open_count", "u32"),
    F("open_rw", "flag", doc="opened for writing"),
    F("current_uuid", "u64"),
    F("device_uuid", "u64"),
    F("history_uuids", "bin", maxlen=8 * UUID_HISTORY, doc="u64 array"),
    F("md_flags", "u32", doc="MdFlag bits"),
    F("node_id", "u32"),
    F("max_peers", "u32"),
    F("al_extents", "u32"),
    F("unclean_attach", "flag", doc="last attach found an unclean shutdown"),
    F("al_replayed", "u32", doc="extents replayed from the AL at the last attach"),
)

DEVICE_STATS = _s(
    "device_stats", "DEVICE_STATS",
    F("capacity", "u64", doc="usable size, sectors"),
    F("read_sectors", "u64"),
    F("write_sectors", "u64"),
    F("read_ios", "u64"),
    F("write_ios", "u64"),
    F("flush_ios", "u64"),
    F("discard_ios", "u64"),
    F("al_writes", "u64"),
    F("bm_writes", "u64"),
    F("al_hits", "u64"),
    F("al_misses", "u64"),
    F("al_starving", "u64", doc="writes that waited for a free AL slot"),
    F("al_used", "u32", doc="extents active now"),
    F("upper_pending", "u32"),
    F("lower_pending", "u32"),
    F("al_suspended", "flag"),
    F("blocked", "flag"),
    F("local_lat_ns", "u64", doc="sum of backing-disk completion times"),
    F("master_lat_ns", "u64", doc="sum of upper-layer completion times"),
    F("completed_ios", "u64", doc="requests whose latencies are in the sums"),
    F("local_lat_hist", "bin", maxlen=8 * LAT_BUCKETS, doc="u64[LAT_BUCKETS] of local latencies"),
    F("master_lat_hist", "bin", maxlen=8 * LAT_BUCKETS, doc="u64[LAT_BUCKETS] of master latencies"),
    F("io_errors", "u64"),
    F("out_of_sync", "u64", doc="sectors marked out of sync towards any peer"),
)

CONN_INFO = _s(
    "conn_info", "CONN_INFO",
    F("conn_state", "enum:ConnState"),
    F("peer_role", "enum:Role"),
    F("agreed_proto", "u32"),
)

CONN_STATS = _s(
    "conn_stats", "CONN_STATS",
    F("congested", "flag"),
    F("ap_in_flight", "u64", doc="application data in flight, sectors"),
    F("rs_in_flight", "u64", doc="resync data in flight, sectors"),
    F("sent_bytes", "u64"),
    F("recv_bytes", "u64"),
    F("sndbuf_fill", "u64", doc="bytes queued in the send buffer"),
    F("sndbuf_size", "u64"),
    F("pings", "u64"),
    F("reconnects", "u64"),
    F("barriers", "u64", doc="P_BARRIER packets sent: epochs closed"),
)

PEER_DEVICE_INFO = _s(
    "peer_device_info", "PEER_DEVICE_INFO",
    F("repl_state", "enum:ReplState"),
    F("peer_disk_state", "enum:DiskState"),
    F("peer_client", "flag"),
    F("resync_susp", "u32", doc="SuspReason bits"),
    F("bitmap_uuid", "u64"),
    F("peer_current_uuid", "u64"),
)

PEER_DEVICE_STATS = _s(
    "peer_device_stats", "PEER_DEVICE_STATS",
    F("received_sectors", "u64"),
    F("sent_sectors", "u64"),
    F("repl_sent_sectors", "u64", doc="sent as replication"),
    F("rs_sent_sectors", "u64", doc="sent as resync"),
    F("out_of_sync", "u64", doc="sectors out of sync with this peer"),
    F("pending", "u32"),
    F("unacked", "u32"),
    F("rs_total", "u64", doc="sectors to sync in the current/last resync or verify"),
    F("rs_done", "u64", doc="sectors done of rs_total"),
    F("rs_paused_ms", "u64"),
    F("rs_same_csum", "u64", doc="sectors skipped because checksums matched"),
    F("ov_mismatch", "u64", doc="sectors found different by the last verify"),
    F("net_lat_ns", "u64", doc="sum of send-to-ack times"),
    F("acked_ios", "u64"),
)

PATH_INFO = _s(
    "path_info", "PATH_INFO",
    F("established", "flag"),
)

# Command parameter structs
NEW_MINOR_PARMS = _s(
    "new_minor_parms", "NEW_MINOR_PARMS",
    F("minor", "u32", flags=REQUIRED, max=MAX_MINORS - 1),
)
ROLE_PARMS = _s("role_parms", "ROLE_PARMS", F("force", "flag"))
NEW_C_UUID_PARMS = _s("new_c_uuid_parms", "NEW_C_UUID_PARMS", F("clear_bm", "flag"))
DETACH_PARMS = _s("detach_parms", "DETACH_PARMS", F("force", "flag"))
CONNECT_PARMS = _s("connect_parms", "CONNECT_PARMS", F("discard_my_data", "flag"))
DISCONNECT_PARMS = _s("disconnect_parms", "DISCONNECT_PARMS", F("force", "flag"))
RESIZE_PARMS = _s(
    "resize_parms", "RESIZE_PARMS",
    F("resize_size", "u64", unit="sectors"),
    F("resize_force", "flag"),
)
START_OV_PARMS = _s(
    "start_ov_parms", "START_OV_PARMS",
    F("ov_start_sector", "u64"),
    F("ov_stop_sector", "u64"),
)
NEW_PEER_PARMS = _s(
    "new_peer_parms", "NEW_PEER_PARMS",
    F("peer_node_id", "u32", flags=REQUIRED, max=MAX_PEERS),
)

# EV_HELPER: a handler event ("call helper ... helper:split-brain"); bsr runs
# no program itself, event consumers act on it.
HELPER_INFO = _s(
    "helper_info", "HELPER_INFO",
    F("helper_name", "str", maxlen=32),
    F("helper_status", "u32", doc="exit status (response events)"),
)

STRUCTS: tuple[Struct, ...] = (
    CTX, REPLY, NOTIFY, VERSION_INFO, MODULE_STATS,
    RES_OPTS, DISK_CONF, NET_CONF, PEER_DEVICE_CONF,
    RES_INFO, RES_STATS, DEVICE_INFO, DEVICE_STATS, CONN_INFO, CONN_STATS,
    PEER_DEVICE_INFO, PEER_DEVICE_STATS, PATH_INFO,
    NEW_MINOR_PARMS, ROLE_PARMS, NEW_C_UUID_PARMS, DETACH_PARMS,
    CONNECT_PARMS, DISCONNECT_PARMS, RESIZE_PARMS, START_OV_PARMS,
    NEW_PEER_PARMS, HELPER_INFO,
)


def top_attr_ids() -> dict[str, int]:
    """Top-level attribute numbers: BSR_A_<ATTR> -> id (0 is unused)."""
    return {s.attr: i + 1 for i, s in enumerate(STRUCTS)}


def field_ids(s: Struct) -> Iterator[tuple[Field, int]]:
    """Attribute numbers inside a struct start at 1, in declaration order."""
    for i, f in enumerate(s.fields):
        yield f, i + 1


ENUMS: dict[str, type[enum.IntEnum]] = {
    e.__name__: e for e in (
        Role, DiskState, ConnState, ReplState, NotifyType, WireProtocol,
        OnIoError, OnCongestion, AfterSB, WriteOrdering,
    )
}


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    name: str
    mutating: bool = True
    dump: bool = False
    attrs: tuple[str, ...] = ()  # accepted top-level attributes (by Struct.attr)
    doc: str = ""


C = Command
_ALL_CTX = ("CTX",)

COMMANDS: tuple[Command, ...] = (
    C("GET_VERSION", mutating=False, doc="version_info + module_stats"),
    C("NEW_RESOURCE", attrs=_ALL_CTX + ("RES_OPTS",)),
    C("DEL_RESOURCE", attrs=_ALL_CTX),
    C("RESOURCE_OPTS", attrs=_ALL_CTX + ("RES_OPTS",)),
    C("NEW_MINOR", attrs=_ALL_CTX + ("NEW_MINOR_PARMS",)),
    C("DEL_MINOR", attrs=_ALL_CTX),
    C("ATTACH", attrs=_ALL_CTX + ("DISK_CONF",)),
    C("DETACH", attrs=_ALL_CTX + ("DETACH_PARMS",)),
    C("DISK_OPTS", attrs=_ALL_CTX + ("DISK_CONF",)),
    C("RESIZE", attrs=_ALL_CTX + ("RESIZE_PARMS",)),
    C("PRIMARY", attrs=_ALL_CTX + ("ROLE_PARMS",)),
    C("SECONDARY", attrs=_ALL_CTX + ("ROLE_PARMS",)),
    C("NEW_C_UUID", attrs=_ALL_CTX + ("NEW_C_UUID_PARMS",)),
    C("NEW_PEER", attrs=_ALL_CTX + ("NET_CONF", "NEW_PEER_PARMS")),
    C("DEL_PEER", attrs=_ALL_CTX),
    C("NEW_PATH", attrs=_ALL_CTX),
    C("DEL_PATH", attrs=_ALL_CTX),
    C("CONNECT", attrs=_ALL_CTX + ("CONNECT_PARMS",)),
    C("DISCONNECT", attrs=_ALL_CTX + ("DISCONNECT_PARMS",)),
    C("NET_OPTS", attrs=_ALL_CTX + ("NET_CONF",)),
    C("PEER_DEVICE_OPTS", attrs=_ALL_CTX + ("PEER_DEVICE_CONF",)),
    C("START_OV", attrs=_ALL_CTX + ("START_OV_PARMS",)),
    C("STOP_OV", attrs=_ALL_CTX),
    C("INVALIDATE", attrs=_ALL_CTX),
    C("INVAL_PEER", attrs=_ALL_CTX),
    C("PAUSE_SYNC", attrs=_ALL_CTX),
    C("RESUME_SYNC", attrs=_ALL_CTX),
    C("SUSPEND_IO", attrs=_ALL_CTX),
    C("RESUME_IO", attrs=_ALL_CTX),
    C("OUTDATE", attrs=_ALL_CTX),
    C("DOWN", attrs=_ALL_CTX),
    C("FORGET_PEER", attrs=_ALL_CTX),
    C("GET_RESOURCES", mutating=False, dump=True, attrs=_ALL_CTX),
    C("GET_DEVICES", mutating=False, dump=True, attrs=_ALL_CTX),
    C("GET_CONNECTIONS", mutating=False, dump=True, attrs=_ALL_CTX),
    C("GET_PEER_DEVICES", mutating=False, dump=True, attrs=_ALL_CTX),
    C("GET_PATHS", mutating=False, dump=True, attrs=_ALL_CTX),
    C("GET_INITIAL_STATE", mutating=False, dump=True, attrs=_ALL_CTX,
      doc="every object as an EV_* message of type exists, then EV_INITIAL_DONE"),
    C("GET_CONFIG", mutating=False, dump=True, attrs=_ALL_CTX,
      doc="options in force: one message per resource/device/connection/peer device"),
    # notifications (kernel -> events group); never accepted from userland
    C("EV_RESOURCE", mutating=False),
    C("EV_DEVICE", mutating=False),
    C("EV_CONNECTION", mutating=False),
    C("EV_PEER_DEVICE", mutating=False),
    C("EV_PATH", mutating=False),
    C("EV_INITIAL_DONE", mutating=False),
    C("EV_HELPER", mutating=False),
)


def command_ids() -> dict[str, int]:
    """BSR_CMD_<NAME> -> number (0 is unused)."""
    return {c.name: i + 1 for i, c in enumerate(COMMANDS)}


def struct_by_attr(attr: str) -> Struct:
    for s in STRUCTS:
        if s.attr == attr:
            return s
    raise KeyError(attr)


def struct_by_name(name: str) -> Struct:
    for s in STRUCTS:
        if s.name == name:
            return s
    raise KeyError(name)
