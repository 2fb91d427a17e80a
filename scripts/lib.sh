# Shared shell helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
TOOLS_BIN="$ROOT/.tools/bin"
export PATH="$TOOLS_BIN:$PATH"

# tool_pin NAME: print the pinned value of NAME from scripts/tools.env
tool_pin() {
    local line
    line="$(grep -E "^$1=" "$ROOT/scripts/tools.env" | tail -n 1)"
    [ -n "$line" ] || { echo "scripts/tools.env has no pin for $1" >&2; return 1; }
    printf '%s\n' "${line#*=}"
}

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root for: $* (run as root or install sudo)"
    fi
}
