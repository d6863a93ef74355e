"""pytest plugin: guest fixtures, kernel-log checks and failure reports.

Loaded by tests/vm/conftest.py.  Everything per-session lives in the
:class:`Registry` kept in ``config.stash``.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .guest import CommandFailed, Disk, Guest, GuestError, GuestSpec
from .kernel import KernelEnv, build_module, find_env
from .kernel_log import KernelLogProblem, find_problems, format_records
from .lab import HostUdpBuffers, Lab

KMEMLEAK_ENV = "BSR_KMEMLEAK"  # set to 1 to boot guests with kmemleak=on and scan after each test
KMEMLEAK_FILE = "/sys/kernel/debug/kmemleak"


class Registry:
    """Every guest of the session, plus what each test touched."""

    def __init__(self) -> None:
        self.guests: list[Guest] = []
        self.env: KernelEnv | None = None
        self.env_problem = ""
        self._start_boots: dict[int, int] = {}
        self._alive_at_start: set[int] = set()
        self.kmemleak = os.environ.get(KMEMLEAK_ENV) == "1"
        self.kmemleak_unsupported: set[str] = set()
        # modules still to run that use the single-node guest (``solo``)
        self.solo_modules: set[str] = set()

    def add(self, guest: Guest) -> Guest:
        self.guests.append(guest)
        return guest

    def begin_test(self) -> None:
        self._start_boots = {id(g): g.boots for g in self.guests}
        self._alive_at_start = {id(g) for g in self.guests if g.alive}

    def involved(self) -> list[Guest]:
        return [
            g for g in self.guests
            if g.boots and (g.alive or id(g) in self._alive_at_start
                            or g.boots != self._start_boots.get(id(g), 0))
        ]

    def kmemleak_scan(self, g: Guest) -> list[str]:
        if not self.kmemleak or not g.alive:
            return []
        r = g.run(
            f"mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; "
            f"test -e {KMEMLEAK_FILE} || exit 77; echo scan > {KMEMLEAK_FILE}; cat {KMEMLEAK_FILE}",
            timeout=120,
        )
        if r.rc == 77:
            self.kmemleak_unsupported.add(g.env.kver)
            return []
        if r.stdout.strip():
            g.run(f"echo clear > {KMEMLEAK_FILE}", timeout=30)
            return ["[kmemleak] " + line for line in r.stdout.splitlines()]
        return []

    def scan(self, guests: list[Guest] | None = None) -> str:
        """Fetch new kernel log records of ``guests`` (default: the ones this
        test touched) and describe anything bad; "" when all is well."""
        report = []
        for g in guests if guests is not None else self.involved():
            problems: list[str] = []
            if g.alive:
                try:
                    g.kmsg()
                except GuestError as e:
                    problems.append(f"cannot read kernel log: {e}")
                else:
                    problems += self.kmemleak_scan(g)
            problems += find_problems(g.unchecked)
            g.unchecked.clear()
            if problems:
                report.append(f"guest {g.name}:\n  " + "\n  ".join(problems))
        return "\n".join(report)


REGISTRY_KEY = pytest.StashKey[Registry]()


def registry_of(config: pytest.Config) -> Registry:
    return config.stash[REGISTRY_KEY]


# ---------------------------------------------------------------- hooks
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: boots guest kernels under QEMU (slow)")
    config.addinivalue_line("markers", "soak: long-running; only under make soak")
    reg = Registry()
    reg.env, reg.env_problem = find_env()
    config.stash[REGISTRY_KEY] = reg


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Modules that use the session's single-node guest run first, together,
    # and those that use its two-node lab last, together: neither is left
    # idling (and scanned) beside the other tests, and each boots once.
    def users(fixture: str) -> set[Any]:
        return {item.module for item in items if fixture in getattr(item, "fixturenames", ())}

    with_lab, with_solo = users("lab"), users("solo")
    items.sort(key=lambda item: (getattr(item, "module", None) in with_lab,
                                 getattr(item, "module", None) not in with_solo))
    registry_of(config).solo_modules = {m.__name__ for m in with_solo}
    # Long runs (soak loops, the DRBD reference variants) only under `make soak`.
    if "soak" not in (config.option.markexpr or ""):
        later = pytest.mark.skip(reason="soak: runs only under `make soak` (pytest -m soak)")
        for item in items:
            if item.get_closest_marker("soak"):
                item.add_marker(later)
    reg = registry_of(config)
    if reg.env is not None:
        return
    skip = pytest.mark.skip(reason=f"guest tests need QEMU + virtme-ng + a Debian kernel: {reg.env_problem}")
    for item in items:
        if item.get_closest_marker("vm"):
            item.add_marker(skip)


def pytest_runtest_setup(item: pytest.Item) -> None:
    registry_of(item.config).begin_test()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    reg = registry_of(item.config)
    if reg.guests:
        problems = reg.scan()
        if problems:
            raise KernelLogProblem("guest kernel logged a problem during the test:\n" + problems)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.failed:
        for g in registry_of(item.config).involved():
            report.sections.append((f"guest {g.name} console (last 150 lines)", g.console_tail(150)))
            report.sections.append((f"guest {g.name} dmesg", guest_kernel_log(g)))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reg = config.stash.get(REGISTRY_KEY, None)
    if reg is None:
        return
    booted = [g for g in reg.guests if g.boot_seconds]
    if booted:
        times = ", ".join(f"{g.name}:{'/'.join(map(str, g.boot_seconds))}s" for g in booted)
        terminalreporter.write_line(f"guest boots: {times}")
    if reg.kmemleak_unsupported:
        terminalreporter.write_line(
            f"{KMEMLEAK_ENV}=1 but kernel(s) {sorted(reg.kmemleak_unsupported)} have no kmemleak "
            f"(CONFIG_DEBUG_KMEMLEAK off): leak scan skipped"
        )


def guest_kernel_log(g: Guest) -> str:
    if g.alive:
        try:
            return g.dmesg(timeout=15)
        except GuestError as e:
            return f"(dmesg failed: {e})\nrecords seen so far:\n{format_records(g.kmsg_seen)}"
    return "(guest not running; records seen before it stopped)\n" + format_records(g.kmsg_seen)


# ------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def guest_registry(request: pytest.FixtureRequest) -> Registry:
    return registry_of(request.config)


@pytest.fixture(scope="session")
def kernel_env(guest_registry: Registry) -> KernelEnv:
    if guest_registry.env is None:
        pytest.skip(f"guest tests need QEMU + virtme-ng + a Debian kernel: {guest_registry.env_problem}")
    return guest_registry.env


@pytest.fixture(scope="session")
def bsr_ko(kernel_env: KernelEnv) -> Path:
    """kmod/bsr.ko built once per session against the guest kernel."""
    failure = ""
    try:
        build_module(kernel_env)
    except RuntimeError as e:
        failure = str(e)
    if failure:
        pytest.fail(failure, pytrace=False)
    return kernel_env.bsr_ko


@pytest.fixture(scope="session")
def warnmod_ko(kernel_env: KernelEnv) -> Path:
    """tests/vm/warnmod/bsr_warnmod.ko: WARN()s when loaded (harness self-test)."""
    src = Path(__file__).resolve().parents[1] / "warnmod"
    failure = ""
    try:
        build_module(kernel_env, src)
    except RuntimeError as e:
        failure = str(e)
    if failure:
        pytest.fail(failure, pytrace=False)
    return src / "bsr_warnmod.ko"


@pytest.fixture(scope="session")
def vm_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vm")


GuestFactory = Callable[..., Guest]


@pytest.fixture(scope="module")
def make_guest(kernel_env: KernelEnv, guest_registry: Registry, vm_workdir: Path,
               request: pytest.FixtureRequest) -> Iterator[GuestFactory]:
    """Create (unbooted) guests that live until the end of the test module.

    ``make_guest("n1", disks_mb=[256], cpus=1, memory="1G")``; every disk is
    a file in the session's work directory, attached with cache=none."""
    made: list[Guest] = []
    modname = request.module.__name__.rsplit(".", 1)[-1]

    def factory(name: str, disks_mb: list[int] | None = None, cpus: int = 1, memory: str = "1G",
                cache: str = "none") -> Guest:
        workdir = vm_workdir / modname / name
        disks = [
            Disk(workdir / f"disk{i}.img", mb, serial=f"bsr{name}{i}"[:20], cache=cache)
            for i, mb in enumerate(disks_mb if disks_mb is not None else [256])
        ]
        append = ["kmemleak=on"] if guest_registry.kmemleak else []
        g = guest_registry.add(Guest(GuestSpec(name=name, workdir=workdir, disks=disks, cpus=cpus,
                                               memory=memory, rwdir=workdir / "shared",
                                               extra_append=append), kernel_env))
        (workdir / "shared").mkdir(parents=True, exist_ok=True)
        made.append(g)
        return g

    yield factory
    for g in made:
        g.shutdown()


def _clean_modules(g: Guest, modules: tuple[str, ...] = ("bsr",)) -> None:
    for m in modules:
        g.rmmod(m)


# Guest.rmmod("bsr") as one shell command, to be combined with others.
UNLOAD_BSR = "{ ! test -d /sys/module/bsr/sections || rmmod bsr; }"


def _check_all(guests: list[Guest], cmd: str, timeout: float = 60) -> None:
    """Guest.check(cmd) on every guest at once (each answers on its own)."""
    pending = [g.run_async(cmd, timeout) for g in guests]
    for g, p in zip(guests, pending):
        r = p.wait()
        if r.rc != 0:
            raise CommandFailed(g.name, cmd, r)


# ------------------------------------------- the session's single-node guest
# One guest serves every single-node module (a boot costs ~30 s under TCG).
# Its disks are sparse files, so the canonical list is generous: each module
# takes the disks it needs by size (``pick_disks``) and finds them zeroed.
SOLO_NAME = "solo"
SOLO_DISKS_MB = (320, 128, 96, 64, 64)
SOLO_CPUS = 2
SOLO_MEMORY = "1G"
# what a module or a failed test may have left over the disks
RELEASE_DISKS = "dmsetup remove_all --force 2>/dev/null; losetup -D; true"


def pick_disks(g: Guest, sizes_mb: list[int] | tuple[int, ...]) -> list[Disk]:
    """Distinct disks of ``g`` with exactly the sizes asked for, in that order."""
    free = list(g.spec.disks)
    picked = []
    for mb in sizes_mb:
        match = next((d for d in free if d.size_mb == mb), None)
        if match is None:
            have = [d.size_mb for d in g.spec.disks]
            raise ValueError(f"guest {g.name} has no free {mb} MiB disk for {list(sizes_mb)} "
                             f"(its disks: {have} MiB; see SOLO_DISKS_MB)")
        free.remove(match)
        picked.append(match)
    return picked


def zero_disks(g: Guest, disks: list[Disk]) -> None:
    """Give ``disks`` back as new: the image files become holes on the host
    (instant; QEMU keeps its descriptor) and the guest drops cached blocks."""
    flush = "blockdev --flushbufs " + " ".join(d.device for d in disks)
    if g.alive:
        g.check(flush, timeout=60)  # written back first: nothing dirty lands later
    for d in disks:  # a hole over the whole file: its size never changes under QEMU
        subprocess.run(["fallocate", "--punch-hole", "--offset", "0", "--length",
                        str(d.size_mb << 20), str(d.path)], check=True, timeout=60)
    if g.alive:
        g.check(flush, timeout=60)


@pytest.fixture(scope="session")
def _session_solo(kernel_env: KernelEnv, guest_registry: Registry, vm_workdir: Path) -> Iterator[Guest]:
    """The single-node guest of the session, created here, booted on first use."""
    workdir = vm_workdir / SOLO_NAME
    disks = [Disk(workdir / f"disk{i}.img", mb, serial=f"bsr{SOLO_NAME}{i}")
             for i, mb in enumerate(SOLO_DISKS_MB)]
    append = ["kmemleak=on"] if guest_registry.kmemleak else []
    g = guest_registry.add(Guest(GuestSpec(name=SOLO_NAME, workdir=workdir, disks=disks,
                                           cpus=SOLO_CPUS, memory=SOLO_MEMORY,
                                           rwdir=workdir / "shared", extra_append=append),
                                 kernel_env))
    (workdir / "shared").mkdir(parents=True, exist_ok=True)
    yield g
    g.shutdown()


@pytest.fixture(scope="module")
def solo(_session_solo: Guest, guest_registry: Registry, request: pytest.FixtureRequest) -> Iterator[Guest]:
    """The session's single-node guest, this module's turn of it.

    The module starts with the guest running, bsr.ko not loaded, no device
    mapper or loop device left, every disk zeroed and the kernel log read
    (a problem found there fails the module's first test).  When the module
    is done its own fixtures have cleaned up; bsr.ko is unloaded and the
    kernel log checked again (a problem fails the module's last teardown).
    The guest is shut down after the last module that uses it."""
    g = _session_solo
    if not g.alive:
        g.boot()
    _check_all([g], f"{UNLOAD_BSR} && {{ {RELEASE_DISKS}; }}")
    zero_disks(g, g.spec.disks)
    problems = guest_registry.scan([g])
    if problems:
        raise KernelLogProblem("guest kernel logged a problem before this module began:\n" + problems)
    yield g
    if g.alive:
        _clean_modules(g)
    guest_registry.solo_modules.discard(request.module.__name__)
    if not guest_registry.solo_modules:
        g.shutdown()
    problems = guest_registry.scan([g])
    if problems:
        raise KernelLogProblem("guest kernel logged a problem while this module cleaned up:\n"
                               + problems)


@pytest.fixture
def guest(solo: Guest, guest_registry: Registry) -> Iterator[Guest]:
    """The session's single-node guest; each test starts with it running
    and bsr.ko not loaded (a killed guest is booted again)."""
    g = solo
    if not g.alive:
        g.boot()
    _clean_modules(g)
    guest_registry.scan([g])  # earlier noise is not this test's business
    yield g
    if g.alive:
        _clean_modules(g)
        problems = guest_registry.scan([g])
        if problems:
            raise KernelLogProblem("guest kernel logged a problem while cleaning up:\n" + problems)


@pytest.fixture(scope="module")
def bsr_disks(solo: Guest, request: pytest.FixtureRequest) -> list[Disk]:
    """The disks of the single-node guest this module uses: one per size in
    the module's ``BSR_NODE_DISKS_MB`` (default ``[64]``)."""
    return pick_disks(solo, list(getattr(request.module, "BSR_NODE_DISKS_MB", [64])))


@pytest.fixture
def bsr_node(solo: Guest, bsr_disks: list[Disk], bsr_ko: Path,
             request: pytest.FixtureRequest) -> Iterator[Guest]:
    """The single-node guest with bsr.ko loaded afresh for each test.

    The test module may set ``BSR_NODE_DISKS_MB`` (its disks, see
    ``bsr_disks``) and ``BSR_NODE_CLEANUP``, a command run after each test
    before bsr.ko is unloaded (e.g. ``"bsradm down r0"``).  A killed guest
    is booted again."""
    g = solo
    if not g.alive:
        g.boot()
    g.rmmod("bsr")
    g.insmod(bsr_ko)
    yield g
    if not g.alive:
        return
    cleanup = getattr(request.module, "BSR_NODE_CLEANUP", "")
    if cleanup:
        g.run(cleanup, timeout=600)
    g.rmmod("bsr")


@pytest.fixture(scope="session")
def _session_lab(kernel_env: KernelEnv, guest_registry: Registry, vm_workdir: Path) -> Iterator[Lab]:
    """One lab for the whole session: a boot pair costs ~30 s under TCG and
    every two-node module would otherwise pay it (the ``lab`` fixture
    resets link, modules and kernel-log cursor between tests)."""
    buffers = HostUdpBuffers()
    raised = buffers.raise_()
    lab = Lab(kernel_env, vm_workdir / "lab")
    lab.udp_buffers_raised = raised  # type: ignore[attr-defined]
    for g in lab.nodes:
        if guest_registry.kmemleak:
            g.spec.extra_append.append("kmemleak=on")
        guest_registry.add(g)
    try:
        start = time.monotonic()
        lab.boot()
        lab.boot_seconds = round(time.monotonic() - start, 1)  # type: ignore[attr-defined]
        yield lab
    finally:
        lab.shutdown()
        buffers.restore()


@pytest.fixture
def lab(_session_lab: Lab, guest_registry: Registry) -> Iterator[Lab]:
    """Two guests ``lab.a``/``lab.b`` on 198.18.0.1-2/24 and fd00::1-2 with a
    9000-byte MTU dgram link; each test starts with both running, the link
    healthy and unshaped, and bsr.ko not loaded."""
    lab_ = _session_lab
    if not all(g.alive for g in lab_.nodes):
        lab_.boot()  # boots only nodes that are down
    lab_.reset()
    # Both nodes at once, one command each: bsr.ko unloaded, what a failed
    # test may have left over the disks removed (the pair lives all
    # session), and `dmesg` cleared so that it shows this test's lines only
    # (the scan reads /dev/kmsg by sequence number and is unaffected).
    _check_all(lab_.nodes, f"{UNLOAD_BSR} && {{ {RELEASE_DISKS}; }} && dmesg --clear")
    guest_registry.scan(lab_.nodes)
    yield lab_
    alive = [g for g in lab_.nodes if g.alive]
    _check_all(alive, UNLOAD_BSR)
    problems = guest_registry.scan(alive)
    if problems:
        raise KernelLogProblem("guest kernel logged a problem while cleaning up:\n" + problems)


@pytest.fixture
def two_guests(lab: Lab) -> tuple[Guest, Guest]:
    return lab.a, lab.b
