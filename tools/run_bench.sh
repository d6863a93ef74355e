#!/usr/bin/env bash
# Run every executable benchmark script under bench/ (sorted); an empty
# bench/ is not an error.  A script that fails (a goal missed, a row not
# measured) does not stop the others; the exit status says whether any did.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/.venv/bin:$PATH"
ran=0
failed=()
for script in bench/*; do
    [ -f "$script" ] || continue
    case "$script" in
        *.py) echo "bench: running $script"; python "$script" || failed+=("$script") ;;
        *) [ -x "$script" ] || continue; echo "bench: running $script"; "$script" || failed+=("$script") ;;
    esac
    ran=$((ran + 1))
done
echo "bench: $ran script(s) run"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: failed (exit status not 0): ${failed[*]}"
    exit 1
fi
