#!/usr/bin/env bash
# Sets everything up and builds target/release/clipdraw against the cached libtorch
# (its path is baked into the binary, so it runs without LD_LIBRARY_PATH).
# Idempotent: the second run takes seconds.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPDRAW_ROOT"
cargo build --release --quiet
_log "ready: $CLIPDRAW_ROOT/target/release/clipdraw"
