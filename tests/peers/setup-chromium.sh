#!/usr/bin/env bash
# Makes sure a headless Chromium is installed (Debian's `chromium` package) and prints its path on
# the last line of stdout. Quick when it is already there. Exits 3 when it cannot be had on this
# machine (no apt-get, no root, no package), so that the browser tests skip with that reason.
set -euo pipefail

find_chromium() {
    local c
    for c in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
        [ -n "$c" ] || continue
        if command -v "$c" 2>/dev/null; then
            return 0
        fi
    done
    return 1
}

if find_chromium; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-chromium.sh: no chromium on PATH and no apt-get to install it" >&2
    exit 3
fi
sudo=()
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "setup-chromium.sh: no chromium on PATH, and installing it needs root" >&2
        exit 3
    fi
fi

# Serialise concurrent setups (several tests may start at once); apt has its own lock too.
exec 9>"${TMPDIR:-/tmp}/wsgate-setup-chromium.lock"
flock 9
if find_chromium; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y chromium >&2; then
    # The package lists may be missing or stale.
    "${sudo[@]}" apt-get update >&2 || true
    if ! "${sudo[@]}" apt-get install -y chromium >&2; then
        echo "setup-chromium.sh: apt-get could not install chromium" >&2
        exit 3
    fi
fi
find_chromium || { echo "setup-chromium.sh: chromium installed but not on PATH" >&2; exit 3; }
