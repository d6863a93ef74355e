#!/usr/bin/env bash
# make demo: until replication exists, boot ONE guest with bsr.ko loaded and
# drop into an interactive shell inside it (bsrsetup on PATH if installed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KVER="$("$ROOT/tools/kver.sh")"
if [ -z "$KVER" ]; then
    echo "demo: no guest kernel (linux-image-amd64 + linux-headers-amd64); run make setup" >&2
    exit 1
fi
if [ ! -t 0 ]; then
    echo "demo: needs an interactive terminal (stdin is not a tty)" >&2
    exit 1
fi
echo "demo: single-node stand-in (replication between two nodes is not built yet):"
echo "demo: booting one guest on /boot/vmlinuz-$KVER under TCG (~20 s), bsr.ko loaded, shell inside"
export PATH="$ROOT/.venv/bin:$PATH"
exec vng -r "/boot/vmlinuz-$KVER" --disable-kvm --force-9p -p 2 -m 2G \
    -a oops=panic --name bsr-demo --shell "$ROOT/tools/demo-guest.sh"
