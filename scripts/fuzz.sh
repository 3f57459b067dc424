#!/usr/bin/env bash
# Fuzzes clipdraw's parsers of outside input with cargo-fuzz (libFuzzer): the
# targets are fuzz/fuzz_targets/*.rs, their bodies src/fuzz.rs.
#
#   scripts/fuzz.sh TARGET [RUNS] [SECONDS]   one target (default 10^7 runs or 1 hour)
#   scripts/fuzz.sh list                      the targets
#
# New inputs go to fuzz/work/TARGET (not committed); the committed seeds are read
# from fuzz/corpus/TARGET. A crash is written to fuzz/artifacts/TARGET/: copy it into
# fuzz/corpus/TARGET/ so that tests/fuzz_corpus.rs replays it from then on. A slow
# unit (a time-out) goes to fuzz/slow/TARGET/ instead: replayed by the tests too, but
# not fed back to the fuzzer, which would spend its time on that input's neighbours.
#
# No sanitizer (-s none): the parsers are safe Rust, so a bug shows as a panic,
# a hang or runaway memory, which libFuzzer catches without ASan, at about twice
# the executions per second. -rss_limit_mb and -timeout make memory and time bugs
# crashes too.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLIPDRAW_ROOT"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    _log "installing cargo-fuzz 0.13.2 (once)"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
target="${1:?usage: scripts/fuzz.sh TARGET|list [RUNS] [SECONDS]}"
if [ "$target" = list ]; then
    ls fuzz/fuzz_targets | sed 's/\.rs$//'
    exit 0
fi
runs="${2:-10000000}"
secs="${3:-3600}"
# cargo-fuzz passes -Z flags to rustc; the machine's toolchain is stable.
export RUSTC_BOOTSTRAP=1
torch_lib="$(python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "fuzz/work/$target" "fuzz/corpus/$target"
cd fuzz
exec cargo fuzz run -s none "$target" "work/$target" "corpus/$target" -- \
    -runs="$runs" -max_total_time="$secs" -rss_limit_mb=3072 -timeout=10 \
    -max_len="${CLIPDRAW_FUZZ_MAX_LEN:-8192}" -print_final_stats=1
