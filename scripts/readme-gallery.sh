#!/usr/bin/env bash
# Draws the README's gallery with the built-in model at default settings (seed 0)
# and writes docs/gallery/<name>.png (192 px) and docs/gallery/<name>.svg.
#   scripts/readme-gallery.sh            # about 15 s per drawing on a 2-core CPU
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=target/release/clipdraw
[[ -x $bin ]] || scripts/setup.sh
mkdir -p docs/gallery
prompts=(
  "a drawing of a cat"
  "a drawing of a sailboat"
  "a painting of a sunset"
  "a drawing of a house"
  "a sketch of a bicycle"
  "a red car on the left"
  "a drawing of a snowman"
  "a watercolor of a fire engine"
)
for p in "${prompts[@]}"; do
  name=$(echo "$p" | tr 'A-Z ' 'a-z-')
  "$bin" "$p" -o "docs/gallery/$name" --png-size 192 --force --quiet
  rm -f "docs/gallery/$name.json"
  echo "docs/gallery/$name.png"
done
