#!/usr/bin/env bash
# Sourced by scripts/test.sh: installs the Debian packages the test suite drives for
# real when they are missing (a browser for pages, a Slurm cluster, man, tmux for
# terminal tests). Idempotent: nothing happens when all are present.
_need=()
command -v chromium >/dev/null 2>&1 || _need+=(chromium)
command -v sbatch >/dev/null 2>&1 || _need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || _need+=(munge)
command -v parallel >/dev/null 2>&1 || _need+=(parallel)
command -v man >/dev/null 2>&1 || _need+=(man-db)
command -v tmux >/dev/null 2>&1 || _need+=(tmux)
if [ ${#_need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        _log "error: the tests need Debian packages ${_need[*]}; install them (as root: apt-get install ${_need[*]})"
        exit 2
    fi
    _log "installing Debian packages ${_need[*]} (once)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${_need[@]}" >/dev/null
fi
unset _need
