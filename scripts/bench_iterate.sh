#!/usr/bin/env bash
# Per-iteration cost of each iteration feature, measured in one run with the
# built-in model: the same prompt, strokes and iterations, one feature at a time.
# Usage: scripts/bench_iterate.sh [ITERS] [STROKES]   (prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CLIPDRAW_BIN:-target/release/clipdraw}
iters=${1:-40}
strokes=${2:-256}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
common=(--iters "$iters" --strokes "$strokes" --seed 1 --device cpu -q --json --force)
"$bin" "a red star" "${common[@]}" -o "$dir/base" >/dev/null
python3 - "$dir/bg.png" <<'PY'
import sys, zlib, struct
w = h = 224
rows = b"".join(b"\0" + b"".join(bytes((x % 256, (255 - x) % 256, y % 256)) for x in range(w)) for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
run() { # name, extra flags...
  local name=$1; shift
  "$bin" "a red star" "${common[@]}" -o "$dir/$name" "$@" |
    python3 -c "import json,sys; t=json.load(sys.stdin)['timings']['per_iteration']; print('| $name | %.4f | %.4f | %.4f | %.4f |' % (t['total_s'], t['raster_s'], t['clip_s'], t['step_s']))"
}
echo "| feature | total s/iter | rasterizer | CLIP | step |"
echo "| --- | --- | --- | --- | --- |"
run plain
run init-continued --init "$dir/base.svg"
run freeze-init+add-64 --init "$dir/base.svg" --freeze-init --add-strokes 64
run canvas-384x216 --canvas 384x216
run canvas-1024x1024 --canvas 1024x1024
run black-opaque-width-2 --colors black --opacity opaque --width 2..2
run palette-4 --colors "#e63946,#f1c453,#1d3557,#2a9d8f"
run opaque --opacity opaque
run background-png --background "$dir/bg.png"
