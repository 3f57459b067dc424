#!/usr/bin/env bash
# Runs a benchmark (default: all) and prints its table:
#   scripts/bench.sh [iteration|raster]
# The iteration benchmark needs a real-size model; it exports a random-init
# ViT-B-32 into the cache the first time (same compute as the real one).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPDRAW_ROOT"
export CLIPDRAW_BENCH_MODEL="${CLIPDRAW_BENCH_MODEL:-$CLIPDRAW_CACHE/models/ViT-B-32-random.pt}"
if [ ! -f "$CLIPDRAW_BENCH_MODEL" ]; then
    mkdir -p "$(dirname "$CLIPDRAW_BENCH_MODEL")"
    python scripts/export_clip.py --arch ViT-B-32 --random-init -o "$CLIPDRAW_BENCH_MODEL"
fi
if [ $# -eq 0 ]; then
    cargo bench
else
    for b in "$@"; do cargo bench --bench "$b"; done
fi
