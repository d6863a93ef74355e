"""bsrmeta on sparse image files: create-md, dump/restore, refusals, apply-al."""
from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bsr import meta as M
from bsr.meta_cli import run


def bsrmeta(*argv: str, answer: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = run([str(a) for a in argv], out, err, ask=lambda _p: answer)
    return rc, out.getvalue(), err.getvalue()


def image(tmp_path: Path, name: str = "disk.img", size: int = 64 << 20) -> Path:
    p = tmp_path / name
    with open(p, "wb") as f:
        f.truncate(size)
    return p


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_create_md_internal_prints_drbd_like_messages(tmp_path):
    d = image(tmp_path)
    rc, out, err = bsrmeta(0, "v1", d, "internal", "create-md", "--max-peers=2")
    assert rc == 0, err
    assert "initializing activity log" in out
    assert "Writing meta data..." in out
    assert out.rstrip().endswith("New bsr meta data block successfully created.")
    rc, out, _ = bsrmeta(0, "v1", d, "internal", "dstate")
    assert (rc, out) == (0, "Inconsistent\n")
    rc, out, _ = bsrmeta(0, "v1", d, "internal", "get-gi")
    assert out.startswith("0000000000000004:0000000000000000:")
    assert out.strip().endswith(":0:0:0:0:1:0:0")


def test_create_md_external_flexible_and_indexed(tmp_path):
    d, m = image(tmp_path, "d.img", 256 << 20), image(tmp_path, "m.img", 300 << 20)
    assert bsrmeta(0, "v1", d, m, "flexible", "create-md")[0] == 0
    assert bsrmeta(1, "v1", d, m, "2", "create-md")[0] == 0
    _, out, _ = bsrmeta(0, "v1", d, m, "flexible", "dump-md")
    assert "data-sectors 524288\n" in out and "layout flexible\n" in out
    _, out, _ = bsrmeta(1, "v1", d, m, "2", "dump-md")
    assert "layout index\n" in out and "meta-index 2\n" in out
    with open(m, "rb") as f:
        f.seek(2 * (128 << 20))
        assert struct.unpack("<I", f.read(4))[0] == M.MAGIC


def test_create_md_peer_node_ids_and_own_node_id(tmp_path):
    d = image(tmp_path)
    rc, _, err = bsrmeta("--node-id=2", 0, "v1", d, "internal", "create-md",
                         "--max-peers=3", "--peer-node-ids=0,1")
    assert rc == 0, err
    _, out, _ = bsrmeta(0, "v1", d, "internal", "dump-md")
    assert "node-id 2\n" in out
    assert "peer 0 node-id 0 " in out and "peer 1 node-id 1 " in out
    assert "peer 2 node-id unassigned " in out


def test_create_md_refuses_existing_metadata_without_force(tmp_path):
    d = image(tmp_path)
    bsrmeta(0, "v1", d, "internal", "create-md")
    before = sha(d)
    rc, _, err = bsrmeta(0, "v1", d, "internal", "create-md")
    assert rc == 10 and "already holds bsr metadata" in err
    assert sha(d) == before
    assert bsrmeta("--force", 0, "v1", d, "internal", "create-md")[0] == 0


@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="needs mkfs.ext4")
def test_create_md_refuses_a_disk_holding_ext4(tmp_path):
    d = image(tmp_path, size=32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(d)], check=True)
    before = sha(d)
    rc, _, err = bsrmeta(0, "v1", d, "internal", "create-md")
    assert rc == 10 and "ext2/3/4 filesystem" in err
    assert sha(d) == before
    assert bsrmeta("--force", 0, "v1", d, "internal", "create-md")[0] == 0


def test_create_md_refuses_drbd_metadata(tmp_path):
    d = image(tmp_path)
    with open(d, "r+b") as f:  # DRBD 8.4 keeps a big-endian magic in its last 4 KiB
        f.seek((64 << 20) - 4096 + 60)
        f.write(struct.pack(">I", 0x83740267))
    rc, _, err = bsrmeta(0, "v1", d, "internal", "create-md")
    assert rc == 10 and "DRBD metadata" in err


def test_create_md_refuses_too_small_device_with_sizes(tmp_path):
    d = image(tmp_path, size=600 << 10)
    rc, _, err = bsrmeta(0, "v1", d, "internal", "create-md")
    assert rc == 10
    assert "device too small for its metadata: 614400 bytes, need at least" in err


def _dirty(d: Path) -> None:
    """Put some out-of-sync bits and UUIDs into an internal-metadata image."""
    with M.Device(str(d), write=True) as dev:
        md = M.read_metadata(dev, M.geometry(M.Layout.INTERNAL, dev.size, dev.size))
        bm = bytearray(md.read_bitmap(0))
        M.set_bits(bm, 0, 99)
        M.set_bits(bm, 5000, 5000)
        md.write_bitmap(0, bytes(bm))
        md.sb.current_uuid = 0xC0FFEE0000000001
        md.sb.history_uuids = [0x11, 0x22, 0, 0]
        md.sb.flags |= 1
        md.sb.peers[1].bitmap_uuid = 0x5555
        md.write_sb()


def test_dump_restore_dump_is_identical(tmp_path):
    d = image(tmp_path)
    bsrmeta(0, "v1", d, "internal", "create-md", "--max-peers=2", "--peer-node-ids=1")
    _dirty(d)
    _, dump1, _ = bsrmeta(0, "v1", d, "internal", "dump-md")
    assert "bitmap 0 set-blocks 101\n" in dump1
    assert "bitmap 0 run 0-99\nbitmap 0 run 5000\n" in dump1
    f = tmp_path / "dump.txt"
    f.write_text(dump1)
    other = image(tmp_path, "other.img")
    rc, _, err = bsrmeta(0, "v1", other, "internal", "restore-md", f)
    assert rc == 0, err
    _, dump2, _ = bsrmeta(0, "v1", other, "internal", "dump-md")
    assert dump2 == dump1


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("max-peers 2", "max-peers two"), r"line 8: expected a number"),
    (lambda t: t.replace("set-blocks 101", "set-blocks 100"), "does not match its runs"),
    (lambda t: t.replace("\nend\n", "\n"), "truncated"),
    (lambda t: t.replace("layout internal", "layout internal\nfrobnicate 1"), "line 4: unknown keyword"),
    (lambda t: t.replace("bsr-dump-version 1", "bsr-dump-version 9"), "line 2: not a bsr metadata dump"),
])
def test_restore_md_refuses_malformed_input_with_line_numbers(tmp_path, edit, message):
    d = image(tmp_path)
    bsrmeta(0, "v1", d, "internal", "create-md", "--max-peers=2")
    _dirty(d)
    _, dump, _ = bsrmeta(0, "v1", d, "internal", "dump-md")
    f = tmp_path / "bad.txt"
    f.write_text(edit(dump))
    before = sha(d)
    rc, _, err = bsrmeta(0, "v1", d, "internal", "restore-md", f)
    assert rc == 10
    assert message in err or __import__("re").search(message, err), err
    assert sha(d) == before


@pytest.mark.parametrize("corrupt, message", [
    (lambda f, sb: (f.seek(sb), f.write(b"XXXX")), "no bsr metadata found on"),
    (lambda f, sb: (f.seek(sb + 0x100), f.write(b"\1")), "metadata checksum mismatch"),
])
def test_damaged_metadata_is_refused_and_left_unchanged(tmp_path, corrupt, message):
    d = image(tmp_path)
    bsrmeta(0, "v1", d, "internal", "create-md")
    with open(d, "r+b") as f:
        corrupt(f, (64 << 20) - 4096)
    before = sha(d)
    for cmd in ("dump-md", "apply-al", "get-gi", "dstate", "show-gi"):
        rc, _, err = bsrmeta(0, "v1", d, "internal", cmd)
        assert rc == 10 and message in err, (cmd, err)
    assert sha(d) == before


def test_truncated_device_is_refused(tmp_path):
    d = image(tmp_path)
    m = image(tmp_path, "m.img", 1 << 20)
    bsrmeta(0, "v1", d, m, "flexible", "create-md")
    with open(d, "r+b") as f:
        f.truncate(16 << 20)
    before = sha(m)
    rc, _, err = bsrmeta(0, "v1", d, m, "flexible", "dump-md")
    assert rc == 10 and "backing device too small" in err
    assert sha(m) == before


def test_wipe_md_asks_and_force_wipes(tmp_path):
    d = image(tmp_path)
    bsrmeta(0, "v1", d, "internal", "create-md")
    assert bsrmeta(0, "v1", d, "internal", "wipe-md", answer="no")[0] == 10
    assert bsrmeta(0, "v1", d, "internal", "dstate")[0] == 0
    assert bsrmeta(0, "v1", d, "internal", "wipe-md", answer="yes\n")[0] == 0
    rc, _, err = bsrmeta(0, "v1", d, "internal", "dstate")
    assert rc == 10 and "no bsr metadata found" in err


def test_apply_al_marks_active_extents_in_every_slot(tmp_path):
    d = image(tmp_path, size=128 << 20)
    bsrmeta(0, "v1", d, "internal", "create-md", "--max-peers=2", "--al-extents=100")
    with M.Device(str(d), write=True) as dev:
        md = M.read_metadata(dev, M.geometry(M.Layout.INTERNAL, dev.size, dev.size))
        md.sb.flags &= ~int(M.MdFlag.AL_CLEAN)
        md.write_sb()
        ring = md.al_offset_abs()
        trs = [M.AlTransaction(1, 100, [(0, 2)], 0, []),
               M.AlTransaction(2, 100, [(1, 5), (2, 31)], 0, [])]  # 31 lies beyond the data
        for t in trs:
            dev.write(ring + (t.tr_number % md.sb.al_blocks) * 4096, t.encode())
    rc, out, err = bsrmeta(0, "v1", d, "internal", "apply-al")
    assert rc == 0, err
    assert "applied 3 activity log extents" in out
    _, dump, _ = bsrmeta(0, "v1", d, "internal", "dump-md")
    for slot in (0, 1):
        assert f"bitmap {slot} run 2048-3071\nbitmap {slot} run 5120-6143\n" in dump
    assert "# AL_CLEAN" in dump


def test_usage_errors_exit_20(tmp_path):
    assert bsrmeta()[0] == 20
    assert bsrmeta(0, "v09", "x", "internal", "dump-md")[0] == 20
    assert bsrmeta(0, "v1", "x", "internal", "frob")[0] == 20
    assert bsrmeta(0, "v1", "x", "y", "banana", "dump-md")[0] == 20
    rc, out, _ = bsrmeta("--help")
    assert rc == 0 and "create-md" in out


def test_missing_device_is_refused(tmp_path):
    rc, _, err = bsrmeta(0, "v1", tmp_path / "nope", "internal", "dump-md")
    assert rc == 10 and "cannot open" in err
