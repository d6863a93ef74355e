#!/usr/bin/env bash
# One-command setup for building and testing bsr on Debian 12.
#
# Idempotent: installs only what is missing and says "setup: nothing to
# install" when everything is already there.
#   1. Debian packages (apt-get update only when something is missing)
#   2. .venv with the project (editable, [test] extras) and virtme-ng,
#      guarded by a stamp holding a hash of pyproject.toml
#   3. checkpatch.pl (+ spelling.txt, const_structs.checkpatch) extracted
#      from Debian's linux-source package into .cache/checkpatch/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PKGS=(
    qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static file kmod
    iproute2 fio drbd-utils e2fsprogs
    # needed to build the module and the virtualenv on a bare machine
    make gcc python3 python3-venv python3-pip xz-utils
)
PIP_EXTRA=(virtme-ng)
VENV="$ROOT/.venv"
STAMP="$VENV/.bsr-setup-stamp"
CP_DIR="$ROOT/.cache/checkpatch"
CP_FILES=(scripts/checkpatch.pl scripts/spelling.txt scripts/const_structs.checkpatch)

did_something=0

say() { printf 'setup: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $*" >&2
        exit 1
    fi
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
}

# ---- 1. Debian packages ---------------------------------------------------
missing=()
for pkg in "${APT_PKGS[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt_update_once
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    did_something=1
fi

# ---- 2. virtualenv ---------------------------------------------------------
want_stamp="$( (cat pyproject.toml; echo "${PIP_EXTRA[*]}") | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV"
    did_something=1
fi
have_stamp="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$have_stamp" != "$want_stamp" ]; then
    say "installing the project and ${PIP_EXTRA[*]} into .venv"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]' "${PIP_EXTRA[@]}"
    echo "$want_stamp" >"$STAMP"
    did_something=1
fi

# ---- 3. checkpatch.pl from Debian's kernel source package --------------------
if [ ! -f "$CP_DIR/scripts/checkpatch.pl" ]; then
    say "fetching checkpatch.pl from linux-source-6.1 into .cache/checkpatch/"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    if ! (cd "$tmp" && apt-get download -q linux-source-6.1 >/dev/null 2>&1); then
        apt_update_once
        (cd "$tmp" && apt-get download -q linux-source-6.1)
    fi
    deb="$(ls "$tmp"/linux-source-6.1_*.deb)"
    # The .deb holds one big tarball of the tree; stream it and keep only
    # the three files checkpatch needs.
    tarball="$(dpkg-deb -c "$deb" | awk '{print $NF}' | grep -E 'linux-source-6\.1\.tar\.(xz|bz2|gz)$' | head -n1)"
    mkdir -p "$CP_DIR"
    dpkg-deb --fsys-tarfile "$deb" \
        | tar -xOf - "$tarball" \
        | tar -xJf - -C "$CP_DIR" --strip-components=1 \
            "${CP_FILES[@]/#/linux-source-6.1/}"
    chmod +x "$CP_DIR/scripts/checkpatch.pl"
    rm -rf "$tmp"
    trap - EXIT
    did_something=1
fi

if [ "$did_something" -eq 0 ]; then
    say "nothing to install"
else
    say "done"
fi
