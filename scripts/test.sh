#!/usr/bin/env bash
# Sets everything up (cached venv with libtorch and open_clip, the Debian packages
# the tests drive (scripts/deps.sh), test model files made
# by the committed scripts) and runs the whole test suite. Extra arguments go to
# `cargo test`. Idempotent: the second run reuses the caches.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPDRAW_ROOT"
source scripts/deps.sh

_fx_hash="$(cat scripts/export_clip.py scripts/make_test_fixtures.py scripts/requirements.txt | sha256sum | cut -c1-12)"
CLIPDRAW_FIXTURES="$CLIPDRAW_CACHE/fixtures-$_fx_hash"
if [ ! -f "$CLIPDRAW_FIXTURES/.complete" ]; then
    _log "making test model files in $CLIPDRAW_FIXTURES"
    rm -rf "$CLIPDRAW_FIXTURES"
    python scripts/make_test_fixtures.py "$CLIPDRAW_FIXTURES" 2> >(grep -v "No pretrained weights" >&2)
    touch "$CLIPDRAW_FIXTURES/.complete"
fi
export CLIPDRAW_FIXTURES

# Release mode: torch-sys's C++ wrapper is compiled once for binary and tests.
cargo test --release "$@"
