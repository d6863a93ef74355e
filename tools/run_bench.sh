#!/usr/bin/env bash
# Run every executable benchmark script under bench/ (sorted); an empty
# bench/ is not an error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/.venv/bin:$PATH"
ran=0
for script in bench/*; do
    [ -f "$script" ] || continue
    case "$script" in
        *.py) echo "bench: running $script"; python "$script" ;;
        *) [ -x "$script" ] || continue; echo "bench: running $script"; "$script" ;;
    esac
    ran=$((ran + 1))
done
echo "bench: $ran script(s) run"
