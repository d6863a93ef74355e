#!/bin/bash
# Runs inside the demo guest (see tools/demo.sh): load bsr.ko, then hand the
# terminal to an interactive shell with the project's tools on PATH.
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$REPO/.venv/bin:$PATH"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
insmod "$REPO/kmod/bsr.ko" && echo "demo: bsr.ko loaded (version $(cat /sys/module/bsr/version))"
if command -v bsrsetup >/dev/null 2>&1; then
    echo "demo: bsrsetup is on PATH ($(command -v bsrsetup))"
else
    echo "demo: bsrsetup is not installed yet"
fi
echo "demo: this is the single-node stand-in until replication exists; exit the shell to power off"
cd "$REPO"
exec /bin/bash -i
