#!/usr/bin/env bash
# CPU benchmark of `clipdraw batch`, one run each (figures for the batch issue):
#   1. 16 built-in-model drawings through one `clipdraw batch` against 16 separate
#      `clipdraw` runs (what a shell loop does: the model is loaded 16 times);
#   2. per-drawing time at --batch-size 1, 2, 4 and 8 (8 drawings each).
# Settings: STROKES strokes (default 256), 8 augmentations, ITERS iterations
# (default 50, so the whole script takes minutes on an idle 2-core CPU).
#   scripts/batch-bench.sh [OUTDIR]
# Needs target/release/clipdraw (scripts/setup.sh); CLIPDRAW overrides it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${CLIPDRAW:-$root/target/release/clipdraw}"
iters="${ITERS:-50}"
strokes="${STROKES:-256}"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
colours=(red blue green yellow purple orange pink black)
shapes=(star circle)
: > "$out/jobs16.txt"
for s in "${shapes[@]}"; do for c in "${colours[@]}"; do echo "a $c $s" >> "$out/jobs16.txt"; done; done
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

t0=$(now)
"$bin" batch "$out/jobs16.txt" -o "$out/batch16" --iters "$iters" --strokes "$strokes" -q
t1=$(now)
mkdir -p "$out/loop16"
while read -r prompt; do
    "$bin" "$prompt" --iters "$iters" --strokes "$strokes" -q -o "$out/loop16/${prompt// /-}" >/dev/null
done < "$out/jobs16.txt"
t2=$(now)
echo "16 drawings, $strokes strokes, $iters iterations, built-in model, CPU ($(nproc) cores)"
echo "  clipdraw batch:        $(secs "$t0" "$t1") s"
echo "  16 separate clipdraw:  $(secs "$t1" "$t2") s"

head -8 "$out/jobs16.txt" > "$out/jobs8.txt"
echo "per-drawing time, 8 drawings, $strokes strokes, $iters iterations:"
for n in 1 2 4 8; do
    t0=$(now)
    "$bin" batch "$out/jobs8.txt" -o "$out/bs$n" --iters "$iters" --strokes "$strokes" --batch-size "$n" -q
    t1=$(now)
    echo "  --batch-size $n: $(python3 -c "print(f'{($t1 - $t0) / 8:.2f}')") s per drawing"
done
