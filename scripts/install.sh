#!/usr/bin/env bash
# Installs the built clipdraw into PREFIX (default ~/.local), or removes exactly what
# an earlier install put there:
#
#   scripts/install.sh [PREFIX]               (scripts/setup.sh --install builds first)
#   scripts/install.sh --uninstall [PREFIX]
#
# Installs PREFIX/bin/clipdraw, the man page (PREFIX/share/man/man1/clipdraw.1) and
# completions where the shells look under a prefix (bash-completion's
# share/bash-completion/completions, zsh's share/zsh/site-functions, fish's
# share/fish/vendor_completions.d). It records every file and every directory it
# created in PREFIX/share/clipdraw/installed, which --uninstall reads. Re-running
# replaces the files (atomically). The binary keeps using the libtorch in the
# clipdraw cache (~/.cache/clipdraw), which it was linked against.
set -euo pipefail

mode=install
if [ "${1:-}" = "--uninstall" ]; then
    mode=uninstall
    shift
fi
if [ $# -gt 1 ] || [[ "${1:-}" == -* ]]; then
    echo "usage: scripts/install.sh [--uninstall] [PREFIX]" >&2
    exit 2
fi
PREFIX="${1:-$HOME/.local}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CLIPDRAW_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/clipdraw}"
RECORD="$PREFIX/share/clipdraw/installed"

_log() { printf 'clipdraw install: %s\n' "$*" >&2; }

if [ "$mode" = uninstall ]; then
    if [ ! -f "$RECORD" ]; then
        _log "error: nothing to uninstall: $RECORD does not exist"
        exit 2
    fi
    # Files first, then the record, then the directories the install created,
    # deepest first, and only while empty.
    grep '^file ' "$RECORD" | cut -c6- | while IFS= read -r f; do rm -f -- "$f"; done
    dirs="$(grep '^dir ' "$RECORD" | cut -c5- | sort -r)"
    rm -f -- "$RECORD"
    printf '%s\n' "$dirs" | while IFS= read -r d; do
        [ -n "$d" ] && rmdir -- "$d" 2>/dev/null || true
    done
    _log "removed clipdraw from $PREFIX"
    exit 0
fi

if [ ! -x "$BIN" ]; then
    _log "error: $BIN is missing; build it first (scripts/setup.sh --install does both)"
    exit 2
fi

# Directories this install creates are recorded (the previous record's too, so a
# re-install still knows which ones it made).
created=()
if [ -f "$RECORD" ]; then
    while IFS= read -r d; do created+=("$d"); done < <(grep '^dir ' "$RECORD" | cut -c5-)
fi
make_dir() {
    local d="$1" parent
    [ -d "$d" ] && return 0
    parent="$(dirname "$d")"
    make_dir "$parent"
    mkdir -- "$d"
    created+=("$d")
}

files=()
# put SOURCE_COMMAND... > DEST: writes the command's output to DEST atomically.
put() {
    local dest="$1" mode="$2"
    shift 2
    make_dir "$(dirname "$dest")"
    local tmp="$dest.tmp-$$"
    "$@" > "$tmp"
    chmod "$mode" "$tmp"
    mv -f -- "$tmp" "$dest"
    files+=("$dest")
}

put "$PREFIX/bin/clipdraw" 755 cat "$BIN"
put "$PREFIX/share/man/man1/clipdraw.1" 644 "$BIN" man
put "$PREFIX/share/bash-completion/completions/clipdraw" 644 "$BIN" completions bash
put "$PREFIX/share/zsh/site-functions/_clipdraw" 644 "$BIN" completions zsh
put "$PREFIX/share/fish/vendor_completions.d/clipdraw.fish" 644 "$BIN" completions fish

make_dir "$(dirname "$RECORD")"
{
    for f in "${files[@]}"; do printf 'file %s\n' "$f"; done
    for d in "${created[@]}"; do printf 'dir %s\n' "$d"; done
} > "$RECORD.tmp-$$"
mv -f -- "$RECORD.tmp-$$" "$RECORD"

_log "installed $PREFIX/bin/clipdraw"
_log "man page: $PREFIX/share/man/man1/clipdraw.1 (man clipdraw finds it when $PREFIX/bin is on PATH)"
_log "completions: bash $PREFIX/share/bash-completion/completions/clipdraw (loaded by bash-completion),"
_log "  zsh $PREFIX/share/zsh/site-functions/_clipdraw (add that directory to fpath),"
_log "  fish $PREFIX/share/fish/vendor_completions.d/clipdraw.fish"
case ":$PATH:" in
    *":$PREFIX/bin:"*) ;;
    *) _log "note: $PREFIX/bin is not on PATH; add it, e.g. export PATH=\"$PREFIX/bin:\$PATH\"" ;;
esac
_log "uninstall: scripts/install.sh --uninstall $PREFIX"
