"""The writer: a thread that appends sample lines to files, rotates them and
keeps each resource directory under its size budget.

The collector hands over whole batches with :meth:`Writer.submit`, which
never blocks: when the bounded queue is full (slow or hung disk) the batch is
dropped and counted.  Write errors (ENOSPC, EIO, ...) drop the batch too; the
first one is logged, and again when writing works once more, with the
number of batches lost in between.

Files stay open between batches (O_APPEND descriptors, up to a budget) and each
batch goes to a file in one ``write()``, so a SIGKILL loses nothing already
written and never leaves half a batch.  A file whose last line was cut short by a crash is truncated back
to its last complete line when it is opened again.
"""

from __future__ import annotations

import errno
import gzip
import logging
import os
import queue
import resource
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NoReturn

log = logging.getLogger("bsrmon")

# One entry of a batch: (path relative to the root, header for a new file, line)
Entry = tuple[str, str, str]


@dataclass
class Limits:
    file_size: int
    total_size: int
    compress: bool


@dataclass
class WriterStats:
    batches: int = 0
    lines: int = 0
    dropped_full_queue: int = 0
    dropped_write_error: int = 0
    rotations: int = 0
    removed_files: int = 0
    last_error: str = ""


def _fd_budget() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    want = min(want, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    limit = soft if soft != resource.RLIM_INFINITY else 65536
    return max(16, min(4096, limit - 64))


def repair_tail(path: Path) -> None:
    """Cut a partial last line (left by a crash) back to the last newline."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            pos = size
            while pos > 0:
                step = min(4096, pos)
                pos -= step
                f.seek(pos)
                chunk = f.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    f.truncate(pos + i + 1)
                    return
            f.truncate(0)
    except FileNotFoundError:
        return


class FileSet:
    """Open series files under ``root``, with rotation and budgets.

    Used from a single thread (the writer thread, or a test)."""

    def __init__(self, root: Path, limits: Limits, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._rooms: dict[str, int] = {}
        self.limits = limits
        self.clock = clock
        self.stats = WriterStats()
        self._open: OrderedDict[str, int] = OrderedDict()  # rel -> fd (O_APPEND)
        self._sizes: dict[str, int] = {}
        self._dirs: dict[str, set[str]] = {}  # current files per directory
        self._dir_of: dict[str, str] = {}  # rel -> its directory (a cache)
        # rel -> bytes it takes before it rotates, for open files whose
        # directory's file limit is unchanged since (the fast path)
        self._rooms: dict[str, int] = {}
        self._max_open = _fd_budget()

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = limits
        self._rooms = {}  # computed again with the new limits

    def close(self) -> None:
        for fd in self._open.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._open.clear()
        self._rooms = {}

    def _fd(self, rel: str, header: bytes) -> int:
        fd = self._open.get(rel)
        if fd is not None:
            self._open.move_to_end(rel)
            return fd
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size == 0 and header:
                _write_all(fd, header, 0)
                size = len(header)
        except OSError:
            os.close(fd)
            raise
        self._sizes[rel] = size
        siblings = self._dirs.setdefault(os.path.dirname(rel), set())
        siblings.add(rel)
        rooms = self._rooms
        for other in siblings:  # one more file: a lower file limit for all
            rooms.pop(other, None)
        self._open[rel] = fd
        while len(self._open) > self._max_open:
            old, old_fd = self._open.popitem(last=False)
            rooms.pop(old, None)
            os.close(old_fd)
        return fd

    def file_limit(self, directory: str) -> int:
        """Size at which a file of ``directory`` rotates: the configured limit,
        lowered so that every current file of the directory plus one rotated
        file fit in the budget."""
        n = len(self._dirs.get(directory, ())) or 1
        return max(256, min(self.limits.file_size, self.limits.total_size // (n + 1)))

    def write_batch(self, batch: list[Entry]) -> None:
        """Append every line, one write() per file; raises OSError (a file
        that could not take all of its lines is cut back: no partial line).

        A file known to have room for its lines is written at once (the
        common case: one dictionary look-up and the write()); others go
        through :meth:`_write_file` (open, rotate, compute the room).
        Files are closed first in, first out when there are too many
        open, not least recently used: a period writes every file once."""
        rooms = self._rooms
        sizes = self._sizes
        fds = self._open
        write = os.write
        limit_of: dict[str, int] = {}  # file_limit() per directory, this batch
        for rel, header, text in _per_file(batch):
            data = text.encode()
            n = len(data)
            room = rooms.get(rel)
            if room is None or n > room:
                self._write_file(rel, header, data, limit_of)
                rooms = self._rooms
                continue
            fd = fds[rel]
            size = sizes[rel]
            try:
                done = write(fd, data)
            except OSError as e:
                _cut_back(fd, size, e)
            if done != n:
                _cut_back(fd, size, None)
            sizes[rel] = size + n
            rooms[rel] = room - n
        self.stats.lines += len(batch)
        self.stats.batches += 1

    def _write_file(self, rel: str, header: str, data: bytes,
                    limit_of: dict[str, int]) -> None:
        """One file's lines the careful way: open it if needed, rotate it if
        they do not fit, and note how much room is left."""
        size = self._sizes.get(rel)
        fd = self._open.get(rel) if size is not None else None
        d = self._dir_of.get(rel)
        if d is None:
            d = self._dir_of[rel] = os.path.dirname(rel)
        hlen = len(header)
        if size is not None and size > hlen:
            limit = limit_of.get(d)
            if limit is None:
                limit = limit_of[d] = self.file_limit(d)
            if size + len(data) > limit:
                self._rotate(rel)
                fd = None
        if fd is None:
            fd = self._fd(rel, header.encode())
            limit_of.pop(d, None)  # the directory may have one more file
        else:
            self._open.move_to_end(rel)
        size = self._sizes[rel]
        _write_all(fd, data, size)
        self._sizes[rel] = size = size + len(data)
        limit = limit_of.get(d)
        if limit is None:
            limit = limit_of[d] = self.file_limit(d)
        # a file holding just its header never rotates: no room kept for it
        if size > hlen:
            self._rooms[rel] = limit - size

    def _rotate(self, rel: str) -> None:
        self._rooms.pop(rel, None)
        fd = self._open.pop(rel, None)
        if fd is not None:
            os.close(fd)
        cur = self.root / rel
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        dest = cur.with_name(f"{cur.name}.{stamp}")
        n = 1
        while dest.exists() or dest.with_name(dest.name + ".gz").exists():
            dest = cur.with_name(f"{cur.name}.{stamp}-{n}")
            n += 1
        os.replace(cur, dest)
        self._sizes.pop(rel, None)
        self.stats.rotations += 1
        if self.limits.compress and not rel.endswith("events.log"):
            dest = compress(dest)
        d = os.path.dirname(rel)
        n = len(self._dirs.get(d, ())) or 1
        self.enforce_budget(cur.parent, self.limits.total_size - n * self.file_limit(d))

    def enforce_budget(self, directory: Path, rotated_budget: int | None = None) -> None:
        """Remove the oldest rotated files until they fit ``rotated_budget``
        (default: until the whole directory fits the total budget); current
        files are never removed."""
        try:
            entries = [p for p in directory.iterdir() if p.is_file()]
        except FileNotFoundError:
            return
        rotated = sorted((p for p in entries if _is_rotated(p)), key=_age_key)
        if rotated_budget is None:
            total, budget = sum(_size(p) for p in entries), self.limits.total_size
        else:
            total, budget = sum(_size(p) for p in rotated), rotated_budget
        while total > budget and rotated:
            victim = rotated.pop(0)
            total -= _size(victim)
            try:
                victim.unlink()
                self.stats.removed_files += 1
            except FileNotFoundError:
                pass


def _per_file(batch: list[Entry]) -> list[Entry]:
    """(file, header, all of its lines) in order of first appearance: the
    batch itself when no file occurs twice (a tick: one line per series)."""
    if len({e[0] for e in batch}) == len(batch):
        return batch
    grouped: dict[str, list[str]] = {}  # rel -> [header, line, line, ...]
    for rel, header, line in batch:
        g = grouped.get(rel)
        if g is None:
            grouped[rel] = [header, line]
        else:
            g.append(line)
    return [(rel, g[0], "".join(g[1:])) for rel, g in grouped.items()]


def _write_all(fd: int, data: bytes, size_before: int) -> None:
    """Append ``data`` completely or not at all (short write: cut back, raise)."""
    try:
        if os.write(fd, data) == len(data):
            return
    except OSError as e:
        _cut_back(fd, size_before, e)
    _cut_back(fd, size_before, None)


def _cut_back(fd: int, size_before: int, err: OSError | None) -> NoReturn:
    """A write failed or was short: no partial line stays in the file."""
    try:
        os.ftruncate(fd, size_before)
    except OSError:
        pass
    raise err or OSError(errno.ENOSPC, "short write (disk full?)")


def _is_rotated(p: Path) -> bool:
    parts = p.name.split(".")
    return len(parts) >= 2 and parts[1][:8].isdigit() and not p.name.endswith(".tmp")


def _age_key(p: Path) -> tuple[str, str]:
    stamp = p.name.split(".")[1]
    return (stamp, p.name)


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def compress(path: Path) -> Path:
    """gzip a rotated file in place; returns the new path."""
    gz = path.with_name(path.name + ".gz")
    tmp = gz.with_name(gz.name + ".tmp")
    try:
        with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, gz)
        path.unlink()
        return gz
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        return path


_STOP = object()


@dataclass
class Writer:
    """The writer thread around a :class:`FileSet`."""

    root: Path
    limits: Limits
    queue_size: int = 64
    fileset: FileSet = field(init=False)
    _q: "queue.Queue[object]" = field(init=False)
    _thread: threading.Thread | None = field(init=False, default=None)
    _failing: bool = field(init=False, default=False)
    _lost_while_failing: int = field(init=False, default=0)
    _full_reported: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.fileset = FileSet(self.root, self.limits)
        self._q = queue.Queue(maxsize=self.queue_size)

    @property
    def stats(self) -> WriterStats:
        return self.fileset.stats

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bsrmon-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: list[Entry]) -> bool:
        """Queue a batch; False (and counted) when the writer is behind."""
        if not batch:
            return True
        try:
            self._q.put_nowait(batch)
            self._full_reported = False
            return True
        except queue.Full:
            self.stats.dropped_full_queue += 1
            if not self._full_reported:
                log.warning("writer is behind (disk slow?): dropping samples")
                self._full_reported = True
            return False

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        try:
            self._q.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is _STOP:
                    return
                self._write(item)  # type: ignore[arg-type]
        finally:
            self.fileset.close()

    def _write(self, batch: list[Entry]) -> None:
        try:
            self.fileset.write_batch(batch)
        except OSError as e:
            self.stats.dropped_write_error += 1
            self.stats.last_error = f"{e.strerror or e}"
            if not self._failing:
                log.error("cannot write samples under %s: %s; dropping samples until it works",
                          self.root, e.strerror or e)
                self._failing = True
                self._lost_while_failing = 0
            self._lost_while_failing += 1
            self.fileset.close()
            self.fileset._sizes.clear()
            return
        if self._failing:
            log.warning("writing samples works again; %d sample batches were dropped",
                        self._lost_while_failing)
            self._failing = False
