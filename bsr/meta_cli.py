"""bsrmeta: create, inspect and repair bsr metadata (drbdmeta-compatible grammar)."""
from __future__ import annotations

import os
import secrets
import shutil
import stat
import struct
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TextIO

from bsr.abi import MdFlag
from bsr import meta as M

EXIT_OK = 0
EXIT_REFUSED = 10
EXIT_USAGE = 20

USAGE = """\
usage: bsrmeta [--force] [--node-id=N] MINOR v1 LOWER_DEV
               {internal | META_DEV flexible | META_DEV IDX} COMMAND [ARGS]

Create and inspect the on-disk metadata (superblock, activity log, bitmap)
of a bsr device.  MINOR is the device minor (or /dev/bsrN); v1 is the
metadata format.  The metadata lives at the end of LOWER_DEV ("internal"),
at the start of META_DEV ("flexible"), or in the IDX-th 128 MiB slot of
META_DEV (IDX >= 0).

commands:
  create-md [--max-peers=N] [--al-extents=N] [--peer-node-ids=A,B]
                 write new metadata: Inconsistent, current UUID 0x4
                 ("just created"), empty activity log and bitmap.  Refuses
                 to overwrite existing metadata, a filesystem, a partition
                 table or any other signature unless --force.  --node-id
                 sets this node's id.
  dump-md        print all metadata as text (stable, versioned format)
  restore-md FILE
                 write metadata back from dump-md output
  show-gi        explain the generation identifiers (UUIDs) and flags
  get-gi         print CURRENT:BITMAP:HIST1:HIST2:flags; --node-id=N picks
                 the peer whose bitmap UUID is shown
  wipe-md        destroy the metadata (asks unless --force)
  dstate         print the disk state the metadata implies
  apply-al       replay the activity log into the bitmap (offline)

options:
  --force        skip safety checks and confirmations
  --node-id=N    create-md: this node's id; get-gi/show-gi: the peer
  -h, --help     show this help

exit status: 0 success, 10 refused (no/invalid metadata, too small, would
overwrite data, device in use), 20 usage error.
"""


class UsageError(Exception):
    pass


@dataclass
class Args:
    minor: int
    lower: str
    layout: M.Layout
    meta_dev: str
    meta_idx: int
    command: str
    cmd_args: list[str]
    force: bool = False
    opts: dict[str, str] = field(default_factory=dict)


_OPTS = {"--node-id", "--max-peers", "--al-extents", "--peer-node-ids"}


def parse_args(argv: list[str]) -> Args:
    pos: list[str] = []
    opts: dict[str, str] = {}
    force = False
    it = iter(argv)
    for a in it:
        if a in ("-h", "--help"):
            raise UsageError("")
        if a == "--force":
            force = True
        elif a.startswith("--"):
            name, eq, val = a.partition("=")
            if name not in _OPTS:
                raise UsageError(f"unknown option {name}")
            if not eq:
                val = next(it, None)
                if val is None:
                    raise UsageError(f"{name} needs a value")
            opts[name[2:]] = val
        else:
            pos.append(a)
    if len(pos) < 5:
        raise UsageError("too few arguments")
    minor_s, fmt, lower = pos[0], pos[1], pos[2]
    minor_s = minor_s.removeprefix("/dev/bsr")
    if not minor_s.isdigit():
        raise UsageError(f"bad minor '{pos[0]}'")
    if fmt != "v1":
        raise UsageError(f"unknown metadata format '{fmt}' (only v1)")
    if pos[3] == "internal":
        layout, meta_dev, idx, rest = M.Layout.INTERNAL, lower, -1, pos[4:]
    else:
        if len(pos) < 6:
            raise UsageError("external metadata needs META_DEV and flexible|IDX")
        meta_dev, where, rest = pos[3], pos[4], pos[5:]
        if where in ("flexible", "flex-external", "flex"):
            layout, idx = M.Layout.FLEXIBLE, -2
        elif where.isdigit() and int(where) <= 255:
            layout, idx = M.Layout.INDEXED, int(where)
        else:
            raise UsageError(f"bad meta index '{where}' (flexible or 0..255)")
    if not rest:
        raise UsageError("no command given")
    return Args(int(minor_s), lower, layout, meta_dev, idx, rest[0], rest[1:], force, opts)


def _int_opt(a: Args, name: str, default: int) -> int:
    v = a.opts.get(name)
    if v is None:
        return default
    try:
        return int(v, 0)
    except ValueError:
        raise UsageError(f"--{name} needs a number, not '{v}'") from None


def _is_blockdev(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def _open(path: str, write: bool) -> M.Device:
    """Writers open block devices O_EXCL: fails (EBUSY) while bsr.ko holds them."""
    return M.Device(path, write=write, exclusive=write and _is_blockdev(path))


@dataclass
class Ctx:
    args: Args
    out: TextIO
    err: TextIO
    ask: Callable[[str], str]


def _geometry(a: Args, meta: M.Device, backing_size: int) -> M.Geometry:
    return M.geometry(a.layout, backing_size, meta.size, max(a.meta_idx, 0))


@contextmanager
def _devices(a: Args, write: bool) -> Iterator[tuple[M.Device, M.Geometry]]:
    """The meta device (and the lower device for external metadata), open
    for the duration of the block and closed after it, whatever happens."""
    opened: list[M.Device] = []
    try:
        meta = _open(a.meta_dev, write)
        opened.append(meta)
        if a.layout is M.Layout.INTERNAL:
            backing_size = meta.size
        else:
            lower = _open(a.lower, False)
            opened.append(lower)
            backing_size = lower.size
        yield meta, _geometry(a, meta, backing_size)
    finally:
        for d in opened:
            d.close()


@contextmanager
def _load(a: Args, write: bool) -> Iterator[M.Metadata]:
    with _devices(a, write) as (meta, geo):
        yield M.read_metadata(meta, geo)


# -- signatures create-md refuses to overwrite ------------------------------

def _signatures(dev: M.Device) -> list[str]:
    found = []
    head = dev.read(0, min(dev.size, 128 << 10))

    def at(off: int, magic: bytes) -> bool:
        return head[off:off + len(magic)] == magic

    if at(0x438, b"\x53\xef"):
        found.append("ext2/3/4 filesystem")
    if at(0, b"XFSB"):
        found.append("xfs filesystem")
    if at(0x10040, b"_BHRfS_M"):
        found.append("btrfs filesystem")
    if at(4086, b"SWAPSPACE2") or at(4086, b"SWAP-SPACE"):
        found.append("swap space")
    if at(512, b"LABELONE") and at(536, b"LVM2 001"):
        found.append("LVM2 physical volume")
    if at(512, b"EFI PART"):
        found.append("GPT partition table")
    elif at(510, b"\x55\xaa") and any(head[446 + 16 * i + 4] for i in range(4)):
        found.append("MBR partition table")
    if dev.size >= 4096:
        tail = dev.read(dev.size // 4096 * 4096 - 4096, 4096)
        for off in range(0, 128, 4):
            if struct.unpack_from(">I", tail, off)[0] in range(0x83740267, 0x83740270):
                found.append("DRBD metadata")
                break
    if not found and shutil.which("blkid"):
        r = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", dev.path],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 0 and r.stdout.strip():
            found.append(f"{r.stdout.strip()} signature (blkid)")
    return found


# -- commands ----------------------------------------------------------------

def cmd_create_md(c: Ctx) -> int:
    a = c.args
    max_peers = _int_opt(a, "max-peers", 1)
    al_extents = _int_opt(a, "al-extents", M.AL_EXTENTS_DEFAULT)
    node_id = _int_opt(a, "node-id", 0)
    if not 0 <= node_id <= 31:
        raise UsageError("--node-id must be 0..31")
    peer_ids = []
    if a.opts.get("peer-node-ids"):
        try:
            peer_ids = [int(x) for x in a.opts["peer-node-ids"].split(",")]
        except ValueError:
            raise UsageError("--peer-node-ids needs a comma list of numbers") from None
        if len(peer_ids) > max_peers or len(set(peer_ids)) != len(peer_ids) or \
                any(not 0 <= p <= 31 or p == node_id for p in peer_ids):
            raise UsageError("--peer-node-ids: at most max-peers distinct ids 0..31, not our own")
    with _devices(a, True) as (meta, geo):
        sb = M.plan(geo, max_peers, al_extents, node_id)
        if not a.force:
            if M.has_bsr_metadata(meta, geo):
                raise M.MetaError(f"{meta.path} already holds bsr metadata; "
                                  f"use --force to overwrite it (wipe-md first is safer)")
            sigs = _signatures(meta)
            if sigs:
                raise M.MetaError(f"{meta.path} holds data ({', '.join(sigs)}); create-md "
                                  f"would destroy it (use --force to overwrite)")
        sb.device_uuid = secrets.randbits(64)
        for i, pid in enumerate(peer_ids):
            sb.peers[i].node_id = pid
        print("initializing activity log", file=c.out)
        print(f"initializing bitmap ({sb.max_peers * sb.bm_slot_bytes // 1024} KB) to all zero",
              file=c.out)
        print("Writing meta data...", file=c.out)
        M.create(meta, geo, sb)
        print("New bsr meta data block successfully created.", file=c.out)
    return EXIT_OK


def cmd_dump_md(c: Ctx) -> int:
    with _load(c.args, False) as md:
        bitmaps = [md.read_bitmap(i) for i in range(md.sb.max_peers)]
        if not md.sb.flags & MdFlag.AL_CLEAN:
            print("# the activity log is not clean: run apply-al to see its extents in the "
                  "bitmap", file=c.out)
        for line in M.render(c.args.layout, md.sb, bitmaps):
            print(line, file=c.out)
    return EXIT_OK


def cmd_restore_md(c: Ctx) -> int:
    a = c.args
    if len(a.cmd_args) != 1:
        raise UsageError("restore-md needs exactly one FILE (- for stdin)")
    path = a.cmd_args[0]
    try:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as e:
        raise M.MetaError(f"cannot read {path}: {e.strerror}") from None
    with f:
        dump = M.parse(f)
    if dump.layout != a.layout.value:
        raise M.MetaError(f"dump is for {dump.layout} metadata, not {a.layout.value}")
    with _devices(a, True) as (meta, geo):
        M.check_layout(dump.sb, geo, meta.path)
        md = M.Metadata(dump.sb, geo, meta)
        meta.zero(md.al_offset_abs(), dump.sb.al_blocks * M.BLOCK)
        for i, bm in enumerate(dump.bitmaps):
            md.write_bitmap(i, bm)
        meta.sync()
        md.write_sb()
        meta.sync()
        print("Successfully restored meta data", file=c.out)
    return EXIT_OK


def _peer_slot(c: Ctx, sb: M.Superblock) -> int:
    nid = c.args.opts.get("node-id")
    if nid is None:
        for i, p in enumerate(sb.peers):
            if p.node_id != M.UNASSIGNED:
                return i
        return 0
    want = _int_opt(c.args, "node-id", 0)
    for i, p in enumerate(sb.peers):
        if p.node_id == want:
            return i
    raise M.MetaError(f"no bitmap slot for peer node-id {want}")


_FLAG_ORDER = (MdFlag.CONSISTENT, MdFlag.WAS_UP_TO_DATE, MdFlag.PRIMARY_IND,
               MdFlag.CRASHED_PRIMARY, MdFlag.AL_CLEAN, MdFlag.AL_DISABLED,
               MdFlag.CLEAN_SHUTDOWN)


def gi_line(sb: M.Superblock, slot: int) -> str:
    bm_uuid = sb.peers[slot].bitmap_uuid if slot < len(sb.peers) else 0
    flags = ":".join("1" if sb.flags & f else "0" for f in _FLAG_ORDER)
    return (f"{sb.current_uuid:016X}:{bm_uuid:016X}:{sb.history_uuids[0]:016X}:"
            f"{sb.history_uuids[1]:016X}:{flags}")


def cmd_get_gi(c: Ctx) -> int:
    with _load(c.args, False) as md:
        print(gi_line(md.sb, _peer_slot(c, md.sb)), file=c.out)
    return EXIT_OK


_FLAG_HELP = {
    MdFlag.CONSISTENT: "data consistent (a resync is not in progress or was finished)",
    MdFlag.WAS_UP_TO_DATE: "data was UpToDate when last seen (not Outdated)",
    MdFlag.PRIMARY_IND: "node was Primary when the metadata was last written",
    MdFlag.CRASHED_PRIMARY: "node crashed while Primary",
    MdFlag.AL_CLEAN: "activity log clean (nothing to replay)",
    MdFlag.AL_DISABLED: "activity log updates were off (al-updates no)",
    MdFlag.CLEAN_SHUTDOWN: "device was detached cleanly",
}


def cmd_show_gi(c: Ctx) -> int:
    with _load(c.args, False) as md:
        sb = md.sb
        slot = _peer_slot(c, sb)
        o = c.out
        print(gi_line(sb, slot), file=o)
        print("", file=o)
        cur = sb.current_uuid
        note = ("just created, never used" if cur == M.UUID_JUST_CREATED else
                "generated while Primary" if cur & 1 else "generated while Secondary")
        print(f"current UUID    {cur:016X}  data generation of this disk ({note})", file=o)
        peer = sb.peers[slot]
        who = "unassigned" if peer.node_id == M.UNASSIGNED else f"node-id {peer.node_id}"
        print(f"bitmap UUID     {peer.bitmap_uuid:016X}  generation the bitmap of slot {slot} "
              f"({who}) counts from; 0 = no changes tracked", file=o)
        for i, h in enumerate(sb.history_uuids):
            print(f"history UUID {i + 1}  {h:016X}  {'younger' if i == 0 else 'older'} "
                  f"generations, kept to recognise a common ancestor", file=o)
        print(f"device UUID     {sb.device_uuid:016X}  identity of this metadata", file=o)
        print("", file=o)
        for f in _FLAG_ORDER:
            print(f"  {'1' if sb.flags & f else '0'}  {f.name:<16} {_FLAG_HELP[f]}", file=o)
        print("", file=o)
        print(f"disk state implied: {M.disk_state(sb.flags)}", file=o)
    return EXIT_OK


def cmd_dstate(c: Ctx) -> int:
    with _load(c.args, False) as md:
        print(M.disk_state(md.sb.flags), file=c.out)
    return EXIT_OK


def cmd_wipe_md(c: Ctx) -> int:
    with _devices(c.args, True) as (meta, geo):
        if not M.has_bsr_metadata(meta, geo):
            raise M.MetaError(f"no bsr metadata found on {meta.path}; nothing to wipe")
        if not c.args.force:
            answer = c.ask("Do you really want to wipe out the bsr meta data?\n"
                           "[need to type 'yes' to confirm] ")
            if answer.strip() != "yes":
                print("Operation canceled.", file=c.err)
                return EXIT_REFUSED
        print("Wiping meta data...", file=c.out)
        meta.write(geo.sb_offset, b"\0" * M.BLOCK)
        meta.sync()
    return EXIT_OK


def cmd_apply_al(c: Ctx) -> int:
    with _load(c.args, True) as md:
        if md.sb.flags & MdFlag.AL_CLEAN and not c.args.force:
            print("activity log is clean, nothing to apply", file=c.out)
            return EXIT_OK
        n = M.apply_al(md)
        print(f"applied {n} activity log extents to the bitmap", file=c.out)
    return EXIT_OK


COMMANDS: dict[str, Callable[[Ctx], int]] = {
    "create-md": cmd_create_md,
    "dump-md": cmd_dump_md,
    "restore-md": cmd_restore_md,
    "show-gi": cmd_show_gi,
    "get-gi": cmd_get_gi,
    "wipe-md": cmd_wipe_md,
    "dstate": cmd_dstate,
    "apply-al": cmd_apply_al,
}
_TAKES_ARGS = {"restore-md"}


def _ask(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline()


def run(argv: list[str], out: TextIO | None = None, err: TextIO | None = None,
        ask: Callable[[str], str] = _ask) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = parse_args(argv)
        fn = COMMANDS.get(args.command)
        if fn is None:
            raise UsageError(f"unknown command '{args.command}'")
        if args.cmd_args and args.command not in _TAKES_ARGS:
            raise UsageError(f"{args.command} takes no arguments")
        return fn(Ctx(args, out, err, ask))
    except UsageError as e:
        if str(e):
            print(f"bsrmeta: {e}", file=err)
            print("(bsrmeta --help for usage)", file=err)
        else:
            print(USAGE, end="", file=out)
            return EXIT_OK
        return EXIT_USAGE
    except M.MetaError as e:
        print(f"bsrmeta: {e}", file=err)
        return EXIT_REFUSED


def main() -> None:
    try:
        rc = run(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        rc = EXIT_OK
    sys.exit(rc)


if __name__ == "__main__":
    main()
