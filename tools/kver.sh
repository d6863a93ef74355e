#!/usr/bin/env bash
# Print the guest kernel version: the newest kernel that has both
# /boot/vmlinuz-KVER and /lib/modules/KVER/build (linux-image + headers).
# BSR_KVER overrides.  Prints nothing when there is none.
set -euo pipefail
if [ -n "${BSR_KVER:-}" ]; then
    echo "$BSR_KVER"
    exit 0
fi
for dir in /lib/modules/*/; do
    kver="$(basename "$dir")"
    if [ -e "/boot/vmlinuz-$kver" ] && [ -e "/lib/modules/$kver/build" ]; then
        echo "$kver"
    fi
done | sort -V | tail -n 1
