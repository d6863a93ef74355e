"""bsr.meta: superblock, AL transactions and replay, bitmap helpers."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from bsr import meta as M
from bsr.abi import MdFlag


def internal_sb(size: int = 64 << 20, peers: int = 2) -> tuple[M.Superblock, M.Geometry]:
    geo = M.geometry(M.Layout.INTERNAL, size, size)
    return M.plan(geo, peers, M.AL_EXTENTS_DEFAULT), geo


def test_crc32c_matches_the_castagnoli_check_value():
    assert M.crc32c(b"123456789") == 0xE3069283


def test_superblock_roundtrips_through_encode_decode():
    sb, geo = internal_sb()
    sb.current_uuid = 0x1234_5678_9ABC_DEF1
    sb.history_uuids = [1, 2, 3, 4]
    sb.flags = int(MdFlag.CONSISTENT | MdFlag.AL_CLEAN)
    sb.peers[1] = M.PeerSlot(3, int(M.PeerFlag.DEVICE_SEEN), 0xABCD)
    again = M.Superblock.decode(sb.encode())
    assert again == sb
    M.check_layout(again, geo)


def test_internal_layout_puts_superblock_in_last_4k_and_data_before_bitmap():
    sb, geo = internal_sb(64 << 20 | 1234)  # size not a multiple of 4 KiB
    assert geo.sb_offset == (64 << 20) - 4096
    start, end = geo.area(sb)
    assert end == 64 << 20
    assert sb.data_bytes <= start
    assert start == geo.sb_offset - sb.al_blocks * 4096 - 2 * sb.bm_slot_bytes
    assert sb.bm_slot_bytes * 8 * 4096 >= sb.data_bytes


def test_flexible_layout_covers_the_whole_backing_device():
    geo = M.geometry(M.Layout.FLEXIBLE, 1 << 30, 1 << 20)
    sb = M.plan(geo, 1, 6001)
    assert sb.data_bytes == 1 << 30
    assert sb.al_offset == 4096 and sb.bm_offset == 4096 + 8 * 4096
    assert sb.bm_slot_bytes == 32768


def test_indexed_layout_uses_its_128mib_slot():
    geo = M.geometry(M.Layout.INDEXED, 1 << 30, 3 << 27, meta_idx=2)
    assert geo.sb_offset == 2 << 27
    sb = M.plan(geo, 1, 6001)
    M.check_layout(sb, geo)
    with pytest.raises(M.MetaError, match="too small"):
        M.plan(M.geometry(M.Layout.INDEXED, 1 << 30, 2 << 27, meta_idx=2), 1, 6001)


def test_too_small_device_is_refused_with_sizes():
    geo = M.geometry(M.Layout.INTERNAL, 512 << 10, 512 << 10)
    with pytest.raises(M.MetaError, match=r"device too small for its metadata: 524288 bytes, need"):
        M.plan(geo, 1, 6001)


def test_al_ring_grows_with_al_extents():
    assert M.al_blocks_for(6001) == 8
    assert M.al_blocks_for(65534) == 75
    assert M.al_capacity(M.al_blocks_for(65534)) >= 65534


@pytest.mark.parametrize("mutate, message", [
    (lambda b: struct.pack_into("<I", b, 0, 0xDEADBEEF), "bad magic 0xdeadbeef"),
    (lambda b: struct.pack_into("<I", b, 0x48, 0xFF), "checksum mismatch"),
    (lambda b: struct.pack_into("<I", b, 4, 7), "unsupported bsr metadata version 7"),
])
def test_damaged_superblock_is_refused(mutate, message):
    sb, _ = internal_sb()
    raw = bytearray(sb.encode())
    mutate(raw)
    with pytest.raises(M.MetaError, match=message):
        M.Superblock.decode(bytes(raw))


def _resealed(raw: bytearray) -> bytes:
    struct.pack_into("<I", raw, 8, 0)
    struct.pack_into("<I", raw, 8, M.crc32c(bytes(raw)))
    return bytes(raw)


@pytest.mark.parametrize("off, fmt, value, message", [
    (0x50, "<I", 0, "invalid max-peers"),
    (0x50, "<I", 1000, "invalid max-peers"),
    (0x64, "<I", 1 << 30, "invalid al-extents"),
    (0x60, "<I", 1 << 30, "invalid activity log size"),
    (0x10, "<Q", 1 << 62, "bitmap too small"),
    (0x70, "<q", -(1 << 62), "inconsistent"),
    (0x6C, "<i", 9999, "invalid meta index"),
])
def test_absurd_values_with_valid_checksum_are_refused(off, fmt, value, message):
    sb, _ = internal_sb()
    raw = bytearray(sb.encode())
    struct.pack_into(fmt, raw, off, value)
    with pytest.raises(M.MetaError, match=message):
        M.Superblock.decode(_resealed(raw))


def test_superblock_larger_than_device_is_refused():
    sb, _ = internal_sb(64 << 20)
    small = M.geometry(M.Layout.INTERNAL, 32 << 20, 32 << 20)
    with pytest.raises(M.MetaError):
        M.check_layout(sb, small)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_random_garbage_superblock_only_raises_metaerror(head, with_magic):
    raw = bytearray(head.ljust(4096, b"\0"))
    if with_magic:
        struct.pack_into("<II", raw, 0, M.MAGIC, M.FORMAT_VERSION)
    with pytest.raises(M.MetaError):
        M.Superblock.decode(bytes(raw))
    with pytest.raises(M.MetaError):
        M.Superblock.decode(head)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 0x7FF), st.integers(0, 2**32 - 1)), max_size=40))
def test_garbage_with_valid_magic_and_checksum_never_crashes(edits):
    sb, geo = internal_sb()
    raw = bytearray(sb.encode())
    for off, val in edits:
        struct.pack_into("<I", raw, off & ~3, val)
    struct.pack_into("<I", raw, 0, M.MAGIC)
    struct.pack_into("<I", raw, 4, M.FORMAT_VERSION)
    try:
        got = M.Superblock.decode(_resealed(raw))
        M.check_layout(got, geo)
    except M.MetaError:
        pass


def test_al_transaction_roundtrip_and_torn_block_is_ignored():
    t = M.AlTransaction(7, 6001, [(3, 100), (4, 101)], 888, [5] * 888)
    raw = t.encode()
    assert M.AlTransaction.decode(raw) == t
    torn = raw[:2048] + b"\0" * 2048
    assert M.AlTransaction.decode(torn) is None
    assert M.AlTransaction.decode(b"\0" * 4096) is None


def _ring(trs: list[M.AlTransaction], blocks: int = 8) -> list[bytes]:
    ring = [b"\0" * 4096] * blocks
    for t in trs:
        ring[t.tr_number % blocks] = t.encode()
    return ring


def test_replay_collects_updates_of_recent_transactions():
    trs = [M.AlTransaction(1, 100, [(0, 10)], 0, []),
           M.AlTransaction(2, 100, [(1, 11)], 0, []),
           M.AlTransaction(3, 100, [(0, 12)], 0, [])]  # slot 0: 10 evicted
    active, last = M.al_replay(_ring(trs))
    assert last == 3
    assert active == {11, 12}


def test_replay_rebuilds_full_lru_from_rolling_context():
    n = 2000  # needs ceil(2000/888) = 3 transactions of context
    lru = {s: 5000 + s for s in range(n)}
    trs = []
    start = 0
    for tr in range(1, 11):
        ctx = [lru[(start + i) % n] for i in range(M.AL_CTX_PER_TR)]
        trs.append(M.AlTransaction(tr, n, [], start, ctx))
        start = (start + M.AL_CTX_PER_TR) % n
    active, last = M.al_replay(_ring(trs))
    assert last == 10
    assert active == set(lru.values())


def test_replay_context_overrides_older_updates():
    trs = [M.AlTransaction(1, 100, [(5, 50)], 0, []),
           M.AlTransaction(2, 100, [], 0, [M.AL_EMPTY] * 100)]  # close: all empty
    assert M.al_replay(_ring(trs))[0] == set()


def test_bitmap_runs_and_back():
    bm = bytearray(4096)
    M.set_bits(bm, 3, 3)
    M.set_bits(bm, 10, 200)
    M.set_bits(bm, 1024, 2047)
    runs = list(M.bitmap_runs(bm, 4096 * 8))
    assert runs == [(3, 3), (10, 200), (1024, 2047)]
    assert M.bitmap_from_runs(runs, 4096) == bm
    assert M.count_bits(bm) == 1 + 191 + 1024


def test_disk_state_from_flags():
    assert M.disk_state(0) == "Inconsistent"
    assert M.disk_state(MdFlag.CONSISTENT) == "Outdated"
    assert M.disk_state(MdFlag.CONSISTENT | MdFlag.WAS_UP_TO_DATE) == "UpToDate"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=8), st.booleans())
def test_garbage_al_blocks_never_crash_replay(heads, sealed):
    blocks = []
    for h in heads:
        raw = bytearray(h.ljust(4096, b"\xff"))
        if sealed:  # right magic and checksum, garbage counts
            struct.pack_into("<I", raw, 0, M.AL_MAGIC)
            struct.pack_into("<I", raw, 4, 0)
            struct.pack_into("<I", raw, 4, M.crc32c(bytes(raw)))
        blocks.append(bytes(raw))
    active, last = M.al_replay(blocks)
    assert isinstance(active, set) and last >= 0


def test_replay_stops_at_a_gap_in_transaction_numbers():
    trs = [M.AlTransaction(1, 100, [(0, 7)], 0, []),
           M.AlTransaction(3, 100, [(1, 9)], 0, [])]  # 2 missing: 1 is not trusted
    assert M.al_replay(_ring(trs))[0] == {9}
