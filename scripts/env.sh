# Sourced by scripts/setup.sh and scripts/test.sh: makes sure the cached Python venv
# (torch 2.11.0 for libtorch, open_clip for model export) exists, and exports what
# cargo and torch-sys need to build against it. Idempotent; seconds when cached.

set -euo pipefail

CLIPDRAW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIPDRAW_CACHE="${CLIPDRAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clipdraw}"
_req="$CLIPDRAW_ROOT/scripts/requirements.txt"
_req_hash="$(sha256sum "$_req" | cut -c1-12)"
CLIPDRAW_VENV="$CLIPDRAW_CACHE/venv-torch2.11.0-$_req_hash"

_log() { printf 'clipdraw setup: %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1; then
    _log "error: python3 is needed to install libtorch (PyPI torch==2.11.0)"; exit 2
fi
if ! command -v cargo >/dev/null 2>&1; then
    _log "error: cargo is needed (install Rust from rustup.rs)"; exit 2
fi

if [ ! -f "$CLIPDRAW_VENV/.complete" ]; then
    _log "installing torch 2.11.0 and open_clip into $CLIPDRAW_VENV (about 5 GB, a few minutes, once)"
    rm -rf "$CLIPDRAW_VENV"
    mkdir -p "$CLIPDRAW_CACHE"
    python3 -m venv "$CLIPDRAW_VENV"
    "$CLIPDRAW_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r "$_req"
    touch "$CLIPDRAW_VENV/.complete"
fi

export CLIPDRAW_ROOT CLIPDRAW_CACHE CLIPDRAW_VENV
export PATH="$CLIPDRAW_VENV/bin:$PATH"
# torch-sys asks this python where libtorch is and which C++ ABI it uses.
export LIBTORCH_USE_PYTORCH=1
unset LIBTORCH LIBTORCH_LIB LIBTORCH_INCLUDE 2>/dev/null || true
