#!/usr/bin/env bash
# Sets everything up and builds target/release/clipdraw against the cached libtorch
# (its path is baked into the binary, so it runs without LD_LIBRARY_PATH).
# Idempotent: the second run takes seconds.
#
#   scripts/setup.sh                       set up and build
#   scripts/setup.sh --install [PREFIX]    and put clipdraw on PATH (default ~/.local)
#   scripts/setup.sh --uninstall [PREFIX]  remove exactly what --install put there
case "${1:-}" in
    --uninstall) exec "$(dirname "${BASH_SOURCE[0]}")/install.sh" "$@" ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPDRAW_ROOT"
cargo build --release --quiet
_log "ready: ${CARGO_TARGET_DIR:-$CLIPDRAW_ROOT/target}/release/clipdraw"
if [ "${1:-}" = "--install" ]; then
    shift
    exec scripts/install.sh "$@"
fi
