"""Where the guest kernel, QEMU, virtme-ng and the module live on the host."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import pyzip, zygote

REPO = Path(__file__).resolve().parents[3]


def newest_kver(modules_root: Path = Path("/lib/modules")) -> str | None:
    """Newest kernel with an installed image and build headers (not uname -r:
    the host's running kernel is not the guest's)."""
    candidates = []
    if modules_root.is_dir():
        for d in modules_root.iterdir():
            if (Path("/boot") / f"vmlinuz-{d.name}").exists() and (d / "build").exists():
                candidates.append(d.name)
    if not candidates:
        return None

    def key(v: str) -> list[object]:
        parts: list[object] = []
        for chunk in v.replace("-", ".").split("."):
            parts.append((0, int(chunk)) if chunk.isdigit() else (1, chunk))
        return parts

    return sorted(candidates, key=key)[-1]


@dataclass(frozen=True)
class KernelEnv:
    kver: str
    vmlinuz: Path
    vng: Path
    qemu: Path
    venv_bin: Path
    repo: Path = REPO
    pyzip: Path | None = None  # compiled modules the guest copies to tmpfs
    zygote: zygote.Zygote | None = None  # pre-imported tools (BSR_VM_ZYGOTE=0: off)

    @property
    def venv_python(self) -> Path:
        return self.venv_bin / "python"

    @property
    def kmod_dir(self) -> Path:
        return self.repo / "kmod"

    @property
    def bsr_ko(self) -> Path:
        return self.kmod_dir / "bsr.ko"


def find_env() -> tuple[KernelEnv | None, str]:
    """Return (env, "") or (None, reason the guest tests cannot run)."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None, "qemu-system-x86_64 not found (run tools/setup.sh)"
    venv_bin = Path(sys.prefix) / "bin"
    vng = venv_bin / "vng" if (venv_bin / "vng").exists() else None
    if vng is None:
        found = shutil.which("vng")
        vng = Path(found) if found else None
    if vng is None:
        return None, "virtme-ng (vng) not found (run tools/setup.sh)"
    kver = os.environ.get("BSR_KVER") or newest_kver()
    if kver is None:
        return None, "no /boot/vmlinuz-* with matching /lib/modules/*/build (install linux-image-amd64 linux-headers-amd64)"
    vmlinuz = Path("/boot") / f"vmlinuz-{kver}"
    if not os.access(vmlinuz, os.R_OK):
        return None, f"{vmlinuz} not readable"
    zyg = None
    if zygote.enabled():
        try:
            zyg = zygote.build(REPO / ".cache" / "zygote", REPO / "pyproject.toml")
        except RuntimeError as e:
            return None, str(e)
    return KernelEnv(kver=kver, vmlinuz=vmlinuz, vng=vng, qemu=Path(qemu), venv_bin=venv_bin,
                     pyzip=pyzip.build(REPO / ".cache" / "guest-py"), zygote=zyg), ""


def build_module(env: KernelEnv, subdir: Path | None = None) -> Path:
    """Build an out-of-tree module against the guest kernel; return the .ko dir.

    Raises RuntimeError with the compiler output when the build fails."""
    src = subdir or env.kmod_dir
    proc = subprocess.run(
        ["make", "-C", f"/lib/modules/{env.kver}/build", f"M={src}", "modules"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building {src} against {env.kver} failed:\n{proc.stdout}")
    return src
