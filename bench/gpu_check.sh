#!/usr/bin/env bash
# GPU-ready check (README, "Tests and bench"): run on a GPU worker in the project checkout after
# `make install`; finishes in under 8 minutes.  `bench/gpu_check.sh --cpu-only` (or a machine with no
# visible GPU) runs the CPU part only and says the GPU part was skipped.  Other options: see
# `bench/gpu_check.sh --help` (--call FILE, --threads N, --json FILE).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
if [ ! -x "$python" ]; then
  echo "error: no Python at $python — fix: run \`make install\` in $here (or set PYTHON)" >&2
  exit 2
fi
cd "$here"
# 8 minutes is the budget; stop with a clear line instead of holding a worker past it
limit="${GPU_CHECK_TIMEOUT_S:-480}"
rc=0
timeout --signal=TERM "$limit" env PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$python" -u bench/gpu_check.py "$@" || rc=$?
if [ "$rc" -eq 124 ]; then
  echo "error: the GPU check ran past its ${limit} s budget and was stopped — fix: check the device detection line above (a GPU that is not used runs at CPU speed), or give fewer calls with --call" >&2
fi
exit "$rc"
