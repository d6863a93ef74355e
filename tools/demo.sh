#!/usr/bin/env bash
# make demo: two guests replicating r0 with bsr.ko, bsrwatch on guest a in
# this terminal; quitting bsrwatch powers the lab off (tools/demo_lab.py).
#   tools/demo.sh               interactive (needs a terminal)
#   tools/demo.sh --check 30    headless: run the flow, check, shut down
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ]; then
    echo "demo: $ROOT/.venv is missing; run make setup" >&2
    exit 1
fi
if [ -z "$("$ROOT/tools/kver.sh")" ]; then
    echo "demo: no guest kernel (linux-image-amd64 + linux-headers-amd64); run make setup" >&2
    exit 1
fi
if [ "${1:-}" != "--check" ] && { [ ! -t 0 ] || [ ! -t 1 ]; }; then
    echo "demo: needs an interactive terminal (or: tools/demo.sh --check SECONDS)" >&2
    exit 1
fi
export PATH="$ROOT/.venv/bin:$PATH"
exec "$PY" "$ROOT/tools/demo_lab.py" run "$@"
