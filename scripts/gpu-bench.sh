#!/usr/bin/env bash
# GPU benchmark of `clipdraw batch` (prepared on the CPU machine, run on the GPU
# machine of DESIGN.md section 5; it builds nothing there): per-drawing time for a
# random-init ViT-B-32 at --batch-size 1, 4 and 16, 16 drawings each, 256 strokes,
# 8 augmentations, ITERS iterations (default 100). Results go to OUTDIR/gpu-bench.txt.
#
#   scripts/gpu-bench.sh BIN OUTDIR [MODEL]
#
# BIN is a release clipdraw built against torch 2.11.0; MODEL a ViT-B-32 model
# file, made here with scripts/export_clip.py --random-init if not given (that needs
# open_clip_torch importable: set PYTHONPATH to a directory of its unpacked wheels).
# LD_LIBRARY_PATH defaults to the GPU machine's torch in /opt/torch/.venv.
# DEVICE (default cuda) and MODEL=builtin let the script be tried on a CPU machine.
set -euo pipefail
bin="$1"
out="$2"
model="${3:-$out/ViT-B-32-random.pt}"
iters="${ITERS:-100}"
device="${DEVICE:-cuda}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-/opt/torch/.venv/bin/python}"
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-$("$py" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}"
mkdir -p "$out"
log="$out/gpu-bench.txt"
exec > >(tee "$log") 2>&1
nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv || true
model_flag=(--model "$model")
label="$(basename "$model")"
if [ "$model" = builtin ]; then
    model_flag=()
    label="built-in model"
elif [ ! -f "$model" ]; then
    "$py" "$here/export_clip.py" --arch ViT-B-32 --random-init -o "$model"
fi
"$bin" info "${model_flag[@]}"
: > "$out/jobs.txt"
for c in red blue green yellow purple orange pink black; do
    echo "a $c star" >> "$out/jobs.txt"
    echo "a $c circle" >> "$out/jobs.txt"
done
now() { date +%s.%N; }
for n in 1 4 16; do
    rm -rf "$out/bs$n"
    t0=$(now)
    "$bin" batch "$out/jobs.txt" -o "$out/bs$n" "${model_flag[@]}" --device "$device" \
        --iters "$iters" --batch-size "$n" -q
    t1=$(now)
    per=$("$py" -c "print(f'{($t1 - $t0) / 16:.3f}')")
    echo "$label, --batch-size $n: $per s per drawing ($iters iterations, 16 drawings)"
done
# The default on CUDA: the batch size chosen from free memory.
t0=$(now)
"$bin" batch "$out/jobs.txt" -o "$out/auto" "${model_flag[@]}" --device "$device" --iters "$iters" -q
t1=$(now)
echo "default --batch-size (from free memory): $("$py" -c "print(f'{($t1 - $t0) / 16:.3f}')") s per drawing"
