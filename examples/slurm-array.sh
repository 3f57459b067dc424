#!/usr/bin/env bash
# clipdraw batch as a Slurm job array: array task I of N draws the jobs whose index
# is I modulo N (clipdraw reads SLURM_ARRAY_TASK_ID, _MIN and _COUNT itself), all
# into one shared directory. Submit it as a script file, not with --wrap: `exec`
# makes clipdraw the batch step's own process, so the SIGTERM that scancel, a time
# limit or a preemption sends reaches clipdraw, which checkpoints, saves the drawing
# so far and exits 143. Submitting the same array again resumes every unfinished job
# where it stopped and skips the finished ones.
#
#   sbatch --array=0-3 examples/slurm-array.sh prompts.txt out [clipdraw batch flags]
#
# CLIPDRAW names the binary (default: clipdraw on PATH); sbatch passes the
# submitting shell's environment on.
#SBATCH --job-name=clipdraw
#SBATCH --cpus-per-task=2
#SBATCH --output=clipdraw-%A_%a.out
# TERM to this script (that is, clipdraw) two minutes before the time limit.
#SBATCH --signal=B:TERM@120
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: sbatch --array=0-N examples/slurm-array.sh JOBS DIR [clipdraw batch flags]" >&2
    exit 2
fi
jobs=$1
dir=$2
shift 2
exec "${CLIPDRAW:-clipdraw}" batch "$jobs" -o "$dir" "$@"
