#!/usr/bin/env bash
# What watching costs: a default drawing with the built-in model (256 strokes, 250
# iterations) without and with the live preview, a preview PNG and a timelapse
# (--frame-every 5, frames at 256 px), in one run, alternating so that load on a
# shared machine hits both alike. The runs happen in a tmux pane, so the preview
# really draws (it turns itself off without a terminal). Prints a table.
#   scripts/bench-watch.sh [rounds]      (default 2 rounds of 3 runs)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPDRAW_ROOT"
rounds="${1:-2}"
cargo build --release --quiet
work="$(mktemp -d)"
trap 'tmux -L clipdraw-bench kill-server 2>/dev/null; rm -rf "$work"' EXIT
# A copy: a shared target directory may get another build of the binary meanwhile.
bin="$work/clipdraw"
cp "${CARGO_TARGET_DIR:-$CLIPDRAW_ROOT/target}/release/clipdraw" "$bin"
"$bin" --help | grep -q -- --timelapse || { echo "error: $bin is not this build" >&2; exit 2; }
prompt="a red star on the left"
common="--png-size 256 --force"

cat >"$work/run.sh" <<EOF
cd "$work"
t() { local s=\$(date +%s.%N); "\$@" >/dev/null; awk "BEGIN { print \$(date +%s.%N) - \$s }"; }
for r in \$(seq $rounds); do
  echo "plain \$(t "$bin" "$prompt" $common -o plain)" >>times
  echo "preview+gif \$(t "$bin" "$prompt" $common -o gif --preview --preview-png p.png --timelapse t.gif)" >>times
  echo "preview+svg \$(t "$bin" "$prompt" $common -o svg --preview --preview-png p.png --timelapse t.svg)" >>times
done
echo done >finished
EOF
tmux -L clipdraw-bench -f /dev/null new-session -d -x 120 -y 50 "sh $work/run.sh; sleep 5"
while [ ! -f "$work/finished" ]; do sleep 2; done

awk -v gif="$(stat -c %s "$work/t.gif")" -v svg="$(stat -c %s "$work/t.svg")" '
  { sum[$1] += $2; n[$1]++ }
  END {
    base = sum["plain"] / n["plain"]
    printf "| run | wall s (mean of %d) | vs plain | timelapse size |\n| --- | --- | --- | --- |\n", n["plain"]
    printf "| plain | %.1f | 1.000 | |\n", base
    printf "| preview + preview PNG + GIF | %.1f | %.3f | %.2f MB |\n", sum["preview+gif"]/n["preview+gif"], sum["preview+gif"]/n["preview+gif"]/base, gif/1e6
    printf "| preview + preview PNG + SVG | %.1f | %.3f | %.2f MB |\n", sum["preview+svg"]/n["preview+svg"], sum["preview+svg"]/n["preview+svg"]/base, svg/1e6
  }' "$work/times"
