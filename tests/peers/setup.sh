#!/usr/bin/env bash
# Creates (or reuses) the virtualenv with the Python peers (the WebSocket peer, and jsonschema
# for the validator's cross-check) and prints its python path on the last line of stdout. Quick
# when the venv already holds the pinned versions.
set -euo pipefail

WEBSOCKETS_VERSION="${WEBSOCKETS_VERSION:-17.4}"
JSONSCHEMA_VERSION="${JSONSCHEMA_VERSION:-4.26.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${WSGATE_PY_VENV:-$(cd "$here/.." && pwd)/.venv}"

# Any Python 3.9+ with the venv module will do; prefer the one on PATH.
find_python() {
    local c
    for c in "${PYTHON3:-}" python3 /usr/bin/python3 "${PYENV_ROOT:-/nonexistent}"/versions/3.1[0-9]*/bin/python3; do
        [ -n "$c" ] || continue
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)' >/dev/null 2>&1; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

py="$venv/bin/python"
pinned() {
    "$py" -c "import sys, websockets, importlib.metadata as m; sys.exit(0 if websockets.__version__ == '$WEBSOCKETS_VERSION' and m.version('jsonschema') == '$JSONSCHEMA_VERSION' else 1)" >/dev/null 2>&1
}

if [ -x "$py" ] && pinned; then
    echo "$py"
    exit 0
fi

if ! base="$(find_python)"; then
    echo "setup.sh: no Python 3.9+ with the venv module found" >&2
    exit 3
fi

# Serialise concurrent setups (several test binaries may start at once).
mkdir -p "$venv"
exec 9>"$venv/.setup.lock"
flock 9
if ! { [ -x "$py" ] && pinned; }; then
    [ -x "$py" ] || "$base" -m venv "$venv" >&2
    "$py" -m pip install --disable-pip-version-check -q "websockets==$WEBSOCKETS_VERSION" \
        "jsonschema==$JSONSCHEMA_VERSION" >&2
fi
echo "$py"
