"""bsr on-disk metadata: superblock, activity log and bitmap (format 1).

This is the userland implementation of the format documented in
``docs/metadata.md``; the kernel side lives in ``kmod/bsr_meta*.c``.  Nothing
here needs the kernel: everything works on block devices and plain files.

All integers are little-endian.  Every value read from disk goes through
:func:`Superblock.decode` and :func:`check_layout` before it is used, and any
problem raises :class:`MetaError` with a one-line reason.
"""
from __future__ import annotations

import enum
import errno
import os
import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator, TextIO

from bsr.abi import MAX_PEERS, MD_INDEX_FLEX_EXT, MD_INDEX_INTERNAL, UUID_HISTORY, MdFlag

MAGIC = 0x4D525342  # bytes "BSRM" on disk
FORMAT_VERSION = 1
BLOCK = 4096  # superblock, AL transaction and bitmap block size
SECTOR = 512
BM_GRANULARITY = 4096  # bytes of data per bitmap bit
AL_EXTENT_SHIFT = 22  # 4 MiB activity-log extents
AL_EXTENT_BYTES = 1 << AL_EXTENT_SHIFT
BITS_PER_EXTENT = AL_EXTENT_BYTES // BM_GRANULARITY
INDEXED_SLOT_BYTES = 128 << 20  # meta_idx >= 0: fixed 128 MiB slots
UUID_JUST_CREATED = 0x0000000000000004
UNASSIGNED = 0xFFFFFFFF
MIN_DATA_BYTES = 1 << 20
AL_EXTENTS_DEFAULT = 6001
AL_EXTENTS_MIN = 67
AL_EXTENTS_MAX = 65534
AL_BLOCKS_MIN = 8

# Activity-log transaction block.
AL_MAGIC = 0x4C415342  # bytes "BSAL" on disk
AL_HDR = struct.Struct("<IIQIIII")  # magic crc tr_number n_updates ctx_start ctx_count al_extents
AL_MAX_UPDATES = 64
AL_UPDATES_OFF = 0x20
AL_CTX_OFF = AL_UPDATES_OFF + AL_MAX_UPDATES * 8
AL_CTX_PER_TR = (BLOCK - AL_CTX_OFF) // 4  # 888 slots of context per transaction
AL_EMPTY = 0xFFFFFFFF

# Superblock: fixed header, then one 32-byte record per peer slot.
SB_HDR = struct.Struct("<IIII Q Q Q 4Q I I I I q I I I i q Q Q")
SB_PEERS_OFF = 0x100
SB_PEER = struct.Struct("<IIQ16x")
assert SB_HDR.size <= SB_PEERS_OFF
assert SB_PEERS_OFF + MAX_PEERS * SB_PEER.size <= BLOCK


class PeerFlag(enum.IntFlag):
    """Per-peer-slot flags (superblock peer records)."""
    CONNECTED = 1 << 0  # the peer was connected when the slot was last written
    OUTDATED = 1 << 1  # the peer's disk is known to be Outdated
    FULL_SYNC = 1 << 2  # a full resync towards this peer is pending
    DEVICE_SEEN = 1 << 3  # the peer has been connected at least once


class MetaError(Exception):
    """Metadata missing, damaged, foreign or not fitting the device."""


class Layout(enum.Enum):
    INTERNAL = "internal"
    FLEXIBLE = "flexible"
    INDEXED = "index"


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) as used by iSCSI/ext4: init and final xor ~0."""
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc_table() -> list[int]:
    poly = 0x82F63B78
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c)
    return out


_CRC_TABLE = _crc_table()


def _roundup(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def bm_slot_bytes_for(data_bytes: int) -> int:
    """Bytes of one bitmap slot covering data_bytes, rounded to whole blocks."""
    bits = (data_bytes + BM_GRANULARITY - 1) // BM_GRANULARITY
    return max(BLOCK, _roundup((bits + 7) // 8, BLOCK))


def al_blocks_for(al_extents: int) -> int:
    """Ring size holding the full LRU context plus one torn transaction."""
    return max(AL_BLOCKS_MIN, -(-al_extents // AL_CTX_PER_TR) + 1)


def al_capacity(al_blocks: int) -> int:
    """Largest al-extents a ring of al_blocks transactions supports."""
    return min(AL_EXTENTS_MAX, (al_blocks - 1) * AL_CTX_PER_TR)


@dataclass
class PeerSlot:
    node_id: int = UNASSIGNED
    flags: int = 0
    bitmap_uuid: int = 0


@dataclass
class Superblock:
    """The 4 KiB superblock; offsets are bytes relative to its own start."""
    data_sectors: int
    max_peers: int
    al_extents: int
    al_blocks: int
    al_offset: int
    bm_offset: int
    bm_slot_bytes: int
    meta_idx: int
    md_size_bytes: int
    node_id: int = 0
    current_uuid: int = UUID_JUST_CREATED
    device_uuid: int = 0
    history_uuids: list[int] = field(default_factory=lambda: [0] * UUID_HISTORY)
    flags: int = int(MdFlag.AL_CLEAN)
    peers: list[PeerSlot] = field(default_factory=list)
    version: int = FORMAT_VERSION
    bm_block_size: int = BM_GRANULARITY
    al_extent_shift: int = AL_EXTENT_SHIFT

    def encode(self) -> bytes:
        buf = bytearray(BLOCK)
        SB_HDR.pack_into(
            buf, 0, MAGIC, self.version, 0, BLOCK, self.data_sectors,
            self.current_uuid, self.device_uuid, *self.history_uuids,
            self.flags, self.node_id, self.max_peers, self.bm_block_size,
            self.al_offset, self.al_blocks, self.al_extents, self.al_extent_shift,
            self.meta_idx, self.bm_offset, self.bm_slot_bytes, self.md_size_bytes)
        for i in range(MAX_PEERS):
            p = self.peers[i] if i < len(self.peers) else PeerSlot()
            SB_PEER.pack_into(buf, SB_PEERS_OFF + i * SB_PEER.size, p.node_id, p.flags, p.bitmap_uuid)
        struct.pack_into("<I", buf, 8, crc32c(bytes(buf)))
        return bytes(buf)

    @classmethod
    def decode(cls, raw: bytes, where: str = "device") -> "Superblock":
        """Parse and check one superblock on its own (no device geometry)."""
        if len(raw) != BLOCK:
            raise MetaError(f"superblock of {where} is {len(raw)} bytes, expected {BLOCK}")
        v = SB_HDR.unpack_from(raw, 0)
        magic, version, crc, sb_size, data_sectors = v[0:5]
        if magic != MAGIC:
            raise MetaError(f"no bsr metadata found on {where} (bad magic 0x{magic:08x})")
        if version != FORMAT_VERSION:
            raise MetaError(f"unsupported bsr metadata version {version} on {where}")
        zeroed = raw[:8] + b"\0\0\0\0" + raw[12:]
        if crc32c(zeroed) != crc:
            raise MetaError(f"metadata checksum mismatch on {where}")
        if sb_size != BLOCK:
            raise MetaError(f"bad superblock size {sb_size} on {where}")
        cur, dev = v[5], v[6]
        hist = list(v[7:11])
        (flags, node_id, max_peers, bm_block, al_offset, al_blocks, al_extents,
         al_shift, meta_idx, bm_offset, bm_slot_bytes, md_size) = v[11:23]
        peers = []
        for i in range(MAX_PEERS):
            pid, pflags, puuid = SB_PEER.unpack_from(raw, SB_PEERS_OFF + i * SB_PEER.size)
            if i >= max_peers:
                continue
            if pid != UNASSIGNED and pid > MAX_PEERS:
                raise MetaError(f"peer slot {i} has invalid node id {pid} on {where}")
            peers.append(PeerSlot(pid, pflags, puuid))
        sb = cls(data_sectors=data_sectors, max_peers=max_peers, al_extents=al_extents,
                 al_blocks=al_blocks, al_offset=al_offset, bm_offset=bm_offset,
                 bm_slot_bytes=bm_slot_bytes, meta_idx=meta_idx, md_size_bytes=md_size,
                 node_id=node_id, current_uuid=cur, device_uuid=dev, history_uuids=hist,
                 flags=flags, peers=peers, version=version, bm_block_size=bm_block,
                 al_extent_shift=al_shift)
        sb.check_fields(where)
        return sb

    def check_fields(self, where: str = "device") -> None:
        """Range checks that do not depend on the device size."""
        def bad(msg: str) -> MetaError:
            return MetaError(f"{msg} on {where}")
        if not 1 <= self.max_peers <= MAX_PEERS:
            raise bad(f"invalid max-peers {self.max_peers}")
        if self.node_id > MAX_PEERS:
            raise bad(f"invalid node-id {self.node_id}")
        if self.bm_block_size != BM_GRANULARITY or self.al_extent_shift != AL_EXTENT_SHIFT:
            raise bad("unsupported bitmap granularity or AL extent size")
        if self.meta_idx < MD_INDEX_FLEX_EXT or self.meta_idx > 255:
            raise bad(f"invalid meta index {self.meta_idx}")
        if not AL_BLOCKS_MIN <= self.al_blocks <= al_blocks_for(AL_EXTENTS_MAX):
            raise bad(f"invalid activity log size {self.al_blocks} blocks")
        if not AL_EXTENTS_MIN <= self.al_extents <= al_capacity(self.al_blocks):
            raise bad(f"invalid al-extents {self.al_extents}")
        if self.data_sectors * SECTOR < MIN_DATA_BYTES or self.data_sectors % (BLOCK // SECTOR):
            raise bad(f"invalid data size {self.data_sectors} sectors")
        if self.bm_slot_bytes % BLOCK or self.bm_slot_bytes < bm_slot_bytes_for(self.data_sectors * SECTOR):
            raise bad("bitmap too small for the data size")
        if self.al_offset % BLOCK or self.bm_offset % BLOCK:
            raise bad("misaligned activity log or bitmap offset")
        al_bytes = self.al_blocks * BLOCK
        bm_bytes = self.max_peers * self.bm_slot_bytes
        if self.meta_idx == MD_INDEX_INTERNAL:
            ok = (self.al_offset == -al_bytes and self.bm_offset == self.al_offset - bm_bytes)
        else:
            ok = (self.al_offset == BLOCK and self.bm_offset == BLOCK + al_bytes)
        if not ok:
            raise bad("activity log/bitmap offsets inconsistent with their sizes")
        if self.md_size_bytes != BLOCK + al_bytes + bm_bytes:
            raise bad("metadata size inconsistent with its areas")

    @property
    def data_bytes(self) -> int:
        return self.data_sectors * SECTOR

    @property
    def data_blocks(self) -> int:
        return self.data_bytes // BM_GRANULARITY


@dataclass(frozen=True)
class Geometry:
    """Where the metadata lives: devices, and the superblock's byte offset."""
    layout: Layout
    meta_idx: int
    backing_bytes: int
    meta_bytes: int
    sb_offset: int

    def area(self, sb: Superblock) -> tuple[int, int]:
        """Absolute [start, end) of the whole metadata area on the meta device."""
        if self.layout is Layout.INTERNAL:
            return self.sb_offset + sb.bm_offset, self.sb_offset + BLOCK
        return self.sb_offset, self.sb_offset + sb.md_size_bytes


def geometry(layout: Layout, backing_bytes: int, meta_bytes: int, meta_idx: int = 0) -> Geometry:
    if layout is Layout.INTERNAL:
        end = backing_bytes // BLOCK * BLOCK
        if end < BLOCK:
            raise MetaError(f"device too small for its metadata ({backing_bytes} bytes)")
        return Geometry(layout, MD_INDEX_INTERNAL, backing_bytes, backing_bytes, end - BLOCK)
    if layout is Layout.FLEXIBLE:
        return Geometry(layout, MD_INDEX_FLEX_EXT, backing_bytes, meta_bytes, 0)
    if not 0 <= meta_idx <= 255:
        raise MetaError(f"invalid meta index {meta_idx}")
    return Geometry(layout, meta_idx, backing_bytes, meta_bytes, meta_idx * INDEXED_SLOT_BYTES)


def plan(geo: Geometry, max_peers: int, al_extents: int, node_id: int = 0) -> Superblock:
    """The superblock create-md writes for this geometry (raises if too small)."""
    if not 1 <= max_peers <= MAX_PEERS:
        raise MetaError(f"max-peers must be 1..{MAX_PEERS}, not {max_peers}")
    if not AL_EXTENTS_MIN <= al_extents <= AL_EXTENTS_MAX:
        raise MetaError(f"al-extents must be {AL_EXTENTS_MIN}..{AL_EXTENTS_MAX}, not {al_extents}")
    al_blocks = al_blocks_for(al_extents)
    al_bytes = al_blocks * BLOCK
    if geo.layout is Layout.INTERNAL:
        room = geo.sb_offset - al_bytes
        slot = bm_slot_bytes_for(max(room, 0))
        data = (room - max_peers * slot) // BLOCK * BLOCK
        al_off, bm_off = -al_bytes, -al_bytes - max_peers * slot
        need = MIN_DATA_BYTES + BLOCK + al_bytes + max_peers * bm_slot_bytes_for(MIN_DATA_BYTES)
        if data < MIN_DATA_BYTES:
            raise MetaError(f"device too small for its metadata: {geo.backing_bytes} bytes, "
                            f"need at least {need} bytes for max-peers {max_peers}")
    else:
        data = geo.backing_bytes // BLOCK * BLOCK
        limit = geo.meta_bytes - geo.sb_offset
        if geo.layout is Layout.INDEXED:
            limit = min(limit, INDEXED_SLOT_BYTES)
            room = INDEXED_SLOT_BYTES - BLOCK - al_bytes
            data = min(data, (room // max_peers // BLOCK) * BLOCK * 8 * BM_GRANULARITY)
        if data < MIN_DATA_BYTES:
            raise MetaError(f"backing device too small: {geo.backing_bytes} bytes, "
                            f"need at least {MIN_DATA_BYTES}")
        slot = bm_slot_bytes_for(data)
        al_off, bm_off = BLOCK, BLOCK + al_bytes
        need = BLOCK + al_bytes + max_peers * slot
        if need > limit:
            raise MetaError(f"meta device too small for its metadata: {max(limit, 0)} bytes "
                            f"available, need {need} bytes")
    return Superblock(
        data_sectors=data // SECTOR, max_peers=max_peers, al_extents=al_extents,
        al_blocks=al_blocks, al_offset=al_off, bm_offset=bm_off, bm_slot_bytes=slot,
        meta_idx=geo.meta_idx, md_size_bytes=BLOCK + al_bytes + max_peers * slot,
        node_id=node_id, peers=[PeerSlot() for _ in range(max_peers)])


def check_layout(sb: Superblock, geo: Geometry, where: str = "device") -> None:
    """Checks that need the device sizes: every area must lie inside them."""
    if sb.meta_idx != geo.meta_idx:
        raise MetaError(f"metadata on {where} was created for meta index {sb.meta_idx}, "
                        f"not {geo.meta_idx}")
    start, end = geo.area(sb)
    if start < 0 or end > geo.meta_bytes:
        raise MetaError(f"device too small for its metadata ({where}: {geo.meta_bytes} bytes, "
                        f"metadata needs [{start}, {end}))")
    if geo.layout is Layout.INTERNAL:
        if sb.data_bytes > start:
            raise MetaError(f"data area overlaps the metadata on {where}")
    elif sb.data_bytes > geo.backing_bytes:
        raise MetaError(f"backing device too small: {geo.backing_bytes} bytes, "
                        f"metadata says {sb.data_bytes}")
    if geo.layout is Layout.INDEXED and sb.md_size_bytes > INDEXED_SLOT_BYTES:
        raise MetaError(f"metadata larger than a 128 MiB index slot on {where}")


# --------------------------------------------------------------------------
# Activity log
# --------------------------------------------------------------------------

@dataclass
class AlTransaction:
    tr_number: int
    al_extents: int
    updates: list[tuple[int, int]] = field(default_factory=list)  # (slot, extent)
    ctx_start: int = 0
    context: list[int] = field(default_factory=list)  # extents of slots ctx_start...

    def encode(self) -> bytes:
        if len(self.updates) > AL_MAX_UPDATES or len(self.context) > AL_CTX_PER_TR:
            raise ValueError("too many AL updates or context entries")
        buf = bytearray(BLOCK)
        AL_HDR.pack_into(buf, 0, AL_MAGIC, 0, self.tr_number, len(self.updates),
                         self.ctx_start, len(self.context), self.al_extents)
        for i, (slot, ext) in enumerate(self.updates):
            struct.pack_into("<II", buf, AL_UPDATES_OFF + 8 * i, slot, ext)
        struct.pack_into(f"<{len(self.context)}I", buf, AL_CTX_OFF, *self.context)
        struct.pack_into("<I", buf, 4, crc32c(bytes(buf)))
        return bytes(buf)

    @classmethod
    def decode(cls, raw: bytes) -> "AlTransaction | None":
        """A valid transaction, or None for an empty/torn/garbage block."""
        if len(raw) != BLOCK:
            return None
        magic, crc, trn, n_up, cstart, ccount, al_ext = AL_HDR.unpack_from(raw, 0)
        if magic != AL_MAGIC or crc32c(raw[:4] + b"\0\0\0\0" + raw[8:]) != crc:
            return None
        if (n_up > AL_MAX_UPDATES or ccount > AL_CTX_PER_TR or
                not 1 <= al_ext <= AL_EXTENTS_MAX or cstart >= al_ext):
            return None
        ups = [struct.unpack_from("<II", raw, AL_UPDATES_OFF + 8 * i) for i in range(n_up)]
        if any(s >= al_ext for s, _ in ups):
            return None
        ctx = list(struct.unpack_from(f"<{ccount}I", raw, AL_CTX_OFF))
        return cls(trn, al_ext, [tuple(u) for u in ups], cstart, ctx)


def al_replay(blocks: Iterable[bytes]) -> tuple[set[int], int]:
    """Active extents recorded in an AL ring, and the newest tr_number (0 if none).

    Walks back from the newest valid transaction through consecutive numbers
    (same al_extents) until every LRU slot is defined: within a transaction
    the updates win over the context, a newer transaction over an older one.
    """
    trs = {t.tr_number: t for t in (AlTransaction.decode(b) for b in blocks) if t}
    if not trs:
        return set(), 0
    last = max(trs)
    al_ext = trs[last].al_extents
    slots: dict[int, int] = {}
    n = last
    while n in trs and trs[n].al_extents == al_ext and len(slots) < al_ext:
        t = trs[n]
        for s, ext in reversed(t.updates):
            slots.setdefault(s, ext)
        for i, ext in enumerate(t.context):
            slots.setdefault((t.ctx_start + i) % al_ext, ext)
        n -= 1
    return {e for e in slots.values() if e != AL_EMPTY}, last


# --------------------------------------------------------------------------
# Bitmap
# --------------------------------------------------------------------------

def bitmap_runs(bm: bytes, nbits: int) -> Iterator[tuple[int, int]]:
    """Runs [first, last] of set bits (bit i = byte i//8, bit i%8)."""
    start = None
    pos = 0
    nbytes = (nbits + 7) // 8
    while pos < nbytes:
        byte = bm[pos]
        if (byte == 0 and start is None) or (byte == 0xFF and start is not None):
            pos += 1
            continue
        for bit in range(8):
            i = pos * 8 + bit
            if i >= nbits:
                break
            if byte >> bit & 1:
                if start is None:
                    start = i
            elif start is not None:
                yield start, i - 1
                start = None
        pos += 1
    if start is not None:
        yield start, nbits - 1


def bitmap_from_runs(runs: Iterable[tuple[int, int]], nbytes: int) -> bytearray:
    bm = bytearray(nbytes)
    for first, last in runs:
        set_bits(bm, first, last)
    return bm


def set_bits(bm: bytearray, first: int, last: int) -> None:
    """Set bits first..last inclusive."""
    i = first
    while i <= last and i % 8:
        bm[i // 8] |= 1 << (i % 8)
        i += 1
    whole = (last + 1 - i) // 8
    if whole > 0:
        bm[i // 8:i // 8 + whole] = b"\xff" * whole
        i += whole * 8
    while i <= last:
        bm[i // 8] |= 1 << (i % 8)
        i += 1


def count_bits(bm: bytes) -> int:
    return int.from_bytes(bm, "little").bit_count()


# --------------------------------------------------------------------------
# Device access
# --------------------------------------------------------------------------

class Device:
    """A block device or image file, opened for reading (and maybe writing)."""

    def __init__(self, path: str, write: bool = False, exclusive: bool = False) -> None:
        self.path = path
        flags = os.O_RDWR if write else os.O_RDONLY
        if exclusive:
            flags |= os.O_EXCL
        try:
            self.fd = os.open(path, flags | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise MetaError(f"{path} is in use (attached by bsr or held by another "
                                f"program); detach it first") from None
            raise MetaError(f"cannot open {path}: {e.strerror}") from None
        self.size = os.lseek(self.fd, 0, os.SEEK_END)

    def read(self, off: int, n: int) -> bytes:
        if off < 0 or off + n > self.size:
            raise MetaError(f"read beyond the end of {self.path}")
        data = os.pread(self.fd, n, off)
        if len(data) != n:
            raise MetaError(f"short read from {self.path}")
        return data

    def write(self, off: int, data: bytes) -> None:
        if off < 0 or off + len(data) > self.size:
            raise MetaError(f"write beyond the end of {self.path}")
        done = os.pwrite(self.fd, data, off)
        if done != len(data):
            raise MetaError(f"short write to {self.path}")

    def zero(self, off: int, n: int) -> None:
        chunk = b"\0" * (1 << 20)
        end = off + n
        while off < end:
            step = min(len(chunk), end - off)
            self.write(off, chunk[:step])
            off += step

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Metadata:
    """Superblock plus where it lives; bitmaps and AL are read on demand."""
    sb: Superblock
    geo: Geometry
    meta: Device

    def al_offset_abs(self) -> int:
        return self.geo.sb_offset + self.sb.al_offset

    def bm_offset_abs(self, slot: int) -> int:
        return self.geo.sb_offset + self.sb.bm_offset + slot * self.sb.bm_slot_bytes

    def read_al(self) -> list[bytes]:
        raw = self.meta.read(self.al_offset_abs(), self.sb.al_blocks * BLOCK)
        return [raw[i:i + BLOCK] for i in range(0, len(raw), BLOCK)]

    def read_bitmap(self, slot: int) -> bytes:
        return self.meta.read(self.bm_offset_abs(slot), self.sb.bm_slot_bytes)

    def write_bitmap(self, slot: int, bm: bytes) -> None:
        if len(bm) != self.sb.bm_slot_bytes:
            raise ValueError("bitmap slot size mismatch")
        self.meta.write(self.bm_offset_abs(slot), bm)

    def write_sb(self) -> None:
        self.meta.write(self.geo.sb_offset, self.sb.encode())


def read_metadata(meta: Device, geo: Geometry) -> Metadata:
    where = meta.path
    if geo.sb_offset + BLOCK > meta.size:
        raise MetaError(f"device too small for its metadata ({where}: {meta.size} bytes)")
    sb = Superblock.decode(meta.read(geo.sb_offset, BLOCK), where)
    check_layout(sb, geo, where)
    return Metadata(sb, geo, meta)


def has_bsr_metadata(meta: Device, geo: Geometry) -> bool:
    if geo.sb_offset + BLOCK > meta.size:
        return False
    return struct.unpack("<I", meta.read(geo.sb_offset, 4))[0] == MAGIC


def create(meta: Device, geo: Geometry, sb: Superblock) -> None:
    """Zero AL and bitmap, then write the superblock last, then sync."""
    start, end = geo.area(sb)
    if geo.layout is Layout.INTERNAL:
        meta.zero(start, end - BLOCK - start)
    else:
        meta.zero(start + BLOCK, end - start - BLOCK)
    meta.sync()
    meta.write(geo.sb_offset, sb.encode())
    meta.sync()


def extent_blocks(ext: int, data_blocks: int) -> tuple[int, int] | None:
    first = ext * BITS_PER_EXTENT
    if first >= data_blocks:
        return None
    return first, min(first + BITS_PER_EXTENT, data_blocks) - 1


def apply_al(md: Metadata) -> int:
    """Mark every extent the AL holds out of sync in every slot; set AL_CLEAN."""
    active, _ = al_replay(md.read_al())
    for slot in range(md.sb.max_peers):
        bm = bytearray(md.read_bitmap(slot))
        for ext in active:
            rng = extent_blocks(ext, md.sb.data_blocks)
            if rng:
                set_bits(bm, *rng)
        md.write_bitmap(slot, bytes(bm))
    md.meta.sync()
    md.sb.flags |= MdFlag.AL_CLEAN
    md.write_sb()
    md.meta.sync()
    return len(active)


def disk_state(flags: int) -> str:
    """The disk state the metadata flags imply (as drbdmeta's dstate)."""
    if not flags & MdFlag.CONSISTENT:
        return "Inconsistent"
    if flags & MdFlag.WAS_UP_TO_DATE:
        return "UpToDate"
    return "Outdated"


# --------------------------------------------------------------------------
# Text form: dump-md output, restore-md input (see docs/metadata.md)
# --------------------------------------------------------------------------
DUMP_VERSION = 1

_INT_KEYS = (
    "format-version", "data-sectors", "node-id", "max-peers", "al-extents", "al-blocks",
    "al-offset", "bm-offset", "bm-slot-bytes", "md-size-bytes", "bm-granularity",
    "al-extent-shift",
)
_SB_ATTR = {
    "format-version": "version", "data-sectors": "data_sectors", "node-id": "node_id",
    "max-peers": "max_peers", "al-extents": "al_extents", "al-blocks": "al_blocks",
    "al-offset": "al_offset", "bm-offset": "bm_offset", "bm-slot-bytes": "bm_slot_bytes",
    "md-size-bytes": "md_size_bytes", "bm-granularity": "bm_block_size",
    "al-extent-shift": "al_extent_shift",
}


@dataclass
class Dump:
    layout: str  # internal | flexible | index
    sb: Superblock
    bitmaps: list[bytes] = field(default_factory=list)


def flag_names(flags: int) -> str:
    names = [f.name for f in MdFlag if flags & f]
    return ",".join(n for n in names if n) or "-"


def render(layout: Layout, sb: Superblock, bitmaps: list[bytes]) -> Iterator[str]:
    yield f"# bsr metadata dump; restore with bsrmeta ... restore-md FILE"
    yield f"bsr-dump-version {DUMP_VERSION}"
    yield f"layout {layout.value}"
    yield f"meta-index {sb.meta_idx}"
    for key in _INT_KEYS:
        yield f"{key} {getattr(sb, _SB_ATTR[key])}"
    yield f"flags 0x{sb.flags:08x} # {flag_names(sb.flags)}"
    yield f"current-uuid 0x{sb.current_uuid:016X}"
    yield f"device-uuid 0x{sb.device_uuid:016X}"
    yield "history-uuids " + " ".join(f"0x{u:016X}" for u in sb.history_uuids)
    for i, p in enumerate(sb.peers):
        nid = "unassigned" if p.node_id == UNASSIGNED else str(p.node_id)
        yield f"peer {i} node-id {nid} flags 0x{p.flags:08x} bitmap-uuid 0x{p.bitmap_uuid:016X}"
    nbits = sb.data_blocks
    for i, bm in enumerate(bitmaps):
        yield f"bitmap {i} set-blocks {count_bits(bm)}"
        for first, last in bitmap_runs(bm, nbits):
            yield f"bitmap {i} run {first}-{last}" if last != first else f"bitmap {i} run {first}"
    yield "end"


class _Line:
    def __init__(self, no: int, words: list[str]) -> None:
        self.no = no
        self.words = words

    def err(self, msg: str) -> MetaError:
        return MetaError(f"line {self.no}: {msg}")

    def int(self, idx: int) -> int:
        try:
            return int(self.words[idx], 0)
        except (IndexError, ValueError):
            raise self.err(f"expected a number after '{self.words[0]}'") from None


def _lines(f: TextIO) -> Iterator[_Line]:
    for no, raw in enumerate(f, 1):
        words = raw.split("#", 1)[0].split()
        if words:
            yield _Line(no, words)


def parse(f: TextIO) -> Dump:
    """Parse dump-md output; raises MetaError naming the offending line."""
    vals: dict[str, int] = {}
    layout = ""
    flags = current = device = None
    history: list[int] | None = None
    peers: dict[int, PeerSlot] = {}
    runs: dict[int, list[tuple[int, int]]] = {}
    counts: dict[int, int] = {}
    seen_end = False
    version_seen = False
    for ln in _lines(f):
        key = ln.words[0]
        if seen_end:
            raise ln.err("text after 'end'")
        if not version_seen:
            if key != "bsr-dump-version" or ln.int(1) != DUMP_VERSION:
                raise ln.err(f"not a bsr metadata dump (need 'bsr-dump-version {DUMP_VERSION}' first)")
            version_seen = True
            continue
        if key == "end":
            seen_end = True
        elif key == "layout":
            if len(ln.words) != 2 or ln.words[1] not in {x.value for x in Layout}:
                raise ln.err("layout must be internal, flexible or index")
            layout = ln.words[1]
        elif key in _INT_KEYS or key == "meta-index":
            if len(ln.words) != 2:
                raise ln.err(f"'{key}' takes one value")
            vals[key] = ln.int(1)
        elif key == "flags":
            flags = ln.int(1)
        elif key in ("current-uuid", "device-uuid"):
            if len(ln.words) != 2:
                raise ln.err(f"'{key}' takes one value")
            if key == "current-uuid":
                current = ln.int(1)
            else:
                device = ln.int(1)
        elif key == "history-uuids":
            if len(ln.words) != 1 + UUID_HISTORY:
                raise ln.err(f"history-uuids takes {UUID_HISTORY} values")
            history = [ln.int(i) for i in range(1, 1 + UUID_HISTORY)]
        elif key == "peer":
            peers[ln.int(1)] = _parse_peer(ln)
        elif key == "bitmap":
            _parse_bitmap(ln, runs, counts)
        else:
            raise ln.err(f"unknown keyword '{key}'")
    if not version_seen:
        raise MetaError("line 1: empty input, not a bsr metadata dump")
    if not seen_end:
        raise MetaError("input ends before 'end' (truncated dump?)")
    missing = [k for k in (*_INT_KEYS, "meta-index") if k not in vals]
    if not layout or flags is None or current is None or device is None or history is None:
        missing.append("layout/flags/uuids")
    if missing:
        raise MetaError(f"dump lacks: {', '.join(missing)}")
    for v in (*vals.values(), flags, current, device, *history):
        if v < -(1 << 63) or v >= 1 << 64:
            raise MetaError("a value in the dump is out of range")
    sb = Superblock(
        data_sectors=vals["data-sectors"], max_peers=vals["max-peers"],
        al_extents=vals["al-extents"], al_blocks=vals["al-blocks"],
        al_offset=vals["al-offset"], bm_offset=vals["bm-offset"],
        bm_slot_bytes=vals["bm-slot-bytes"], meta_idx=vals["meta-index"],
        md_size_bytes=vals["md-size-bytes"], node_id=vals["node-id"],
        current_uuid=current, device_uuid=device, history_uuids=history, flags=flags,
        version=vals["format-version"], bm_block_size=vals["bm-granularity"],
        al_extent_shift=vals["al-extent-shift"])
    _check_ranges(sb)
    sb.check_fields("the dump")
    if sorted(peers) != list(range(sb.max_peers)):
        raise MetaError(f"dump must list peer slots 0..{sb.max_peers - 1} exactly once")
    sb.peers = [peers[i] for i in range(sb.max_peers)]
    bitmaps = []
    for slot in range(sb.max_peers):
        slot_runs = runs.get(slot, [])
        if any(last >= sb.data_blocks for _, last in slot_runs):
            raise MetaError(f"bitmap {slot}: run beyond the data size ({sb.data_blocks} blocks)")
        bm = bytes(bitmap_from_runs(slot_runs, sb.bm_slot_bytes))
        if counts.get(slot, 0) != count_bits(bm):
            raise MetaError(f"bitmap {slot}: set-blocks {counts.get(slot, 0)} does not match "
                            f"its runs ({count_bits(bm)})")
        bitmaps.append(bm)
    extra = set(runs) | set(counts)
    if any(s >= sb.max_peers for s in extra):
        raise MetaError("bitmap for a slot beyond max-peers")
    return Dump(layout, sb, bitmaps)


def _check_ranges(sb: Superblock) -> None:
    for name in ("data_sectors", "md_size_bytes", "bm_slot_bytes", "current_uuid", "device_uuid"):
        if not 0 <= getattr(sb, name) < 1 << 64:
            raise MetaError(f"{name.replace('_', '-')} out of range")
    if any(not 0 <= u < 1 << 64 for u in sb.history_uuids) or not 0 <= sb.flags < 1 << 32:
        raise MetaError("history-uuids or flags out of range")
    for name in ("node_id", "max_peers", "al_extents", "al_blocks", "version",
                 "bm_block_size", "al_extent_shift"):
        if not 0 <= getattr(sb, name) < 1 << 32:
            raise MetaError(f"{name.replace('_', '-')} out of range")


def _parse_peer(ln: _Line) -> PeerSlot:
    w = ln.words
    if len(w) != 8 or w[2] != "node-id" or w[4] != "flags" or w[6] != "bitmap-uuid":
        raise ln.err("expected 'peer N node-id ID|unassigned flags 0xF bitmap-uuid 0xU'")
    nid = UNASSIGNED if w[3] == "unassigned" else ln.int(3)
    flags, uuid = ln.int(5), ln.int(7)
    if not (0 <= flags < 1 << 32 and 0 <= uuid < 1 << 64 and (nid == UNASSIGNED or 0 <= nid <= 31)):
        raise ln.err("peer value out of range")
    return PeerSlot(nid, flags, uuid)


def _parse_bitmap(ln: _Line, runs: dict[int, list[tuple[int, int]]], counts: dict[int, int]) -> None:
    w = ln.words
    slot = ln.int(1)
    if len(w) != 4 or slot < 0:
        raise ln.err("expected 'bitmap SLOT set-blocks N' or 'bitmap SLOT run A[-B]'")
    if w[2] == "set-blocks":
        counts[slot] = ln.int(3)
        return
    if w[2] != "run":
        raise ln.err(f"unknown bitmap item '{w[2]}'")
    first, _, last = w[3].partition("-")
    try:
        a = int(first)
        b = int(last) if last else a
    except ValueError:
        raise ln.err(f"bad run '{w[3]}'") from None
    if a < 0 or b < a:
        raise ln.err(f"bad run '{w[3]}'")
    runs.setdefault(slot, []).append((a, b))
