#!/usr/bin/env bash
# Install everything callqa needs into ./.venv and lay out the local model store.
# Idempotent: a second run only checks.  Needs Python 3.11 and, once, root (or sudo) for FFmpeg's
# shared libraries, which torchcodec (pyannote.audio's audio reader) loads.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$candidate; break
    fi
  done
fi
[ -n "$PY" ] || { echo "callqa needs Python 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }

# System packages: FFmpeg's shared libraries (torchcodec) and, for the review console's browser
# test, Debian's Chromium (Playwright drives it; no browser download) and a CJK font.
missing=()
ldconfig -p 2>/dev/null | grep -q 'libavutil\.so' || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Pages show Chinese rule titles: a CJK font for the browser test and for anyone on this machine.
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
# The PostgreSQL tests start a real server of their own (results store on PostgreSQL).
{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ask an administrator to 'apt-get install ${missing[*]}'"; exit 1
  fi
fi

# A fresh install puts about 9 GB into .venv (torch 2.9.1 from PyPI is the CUDA build: NVIDIA's
# libraries alone are 4.3 GB) and pip holds its downloads in a temporary folder while it unpacks them.
# Check the room first, so a full disk is one line naming the fix rather than pip's "[Errno 28] No
# space left on device" half-way through.  CALLQA_INSTALL_NEED_GB overrides the figure (whole GB).
torch_ready=no
[ -x .venv/bin/python ] && .venv/bin/python -c 'import torch, torchaudio; assert torch.__version__.startswith("2.9.1")' 2>/dev/null && torch_ready=yes
if [ $torch_ready = no ]; then
  need_gb=${CALLQA_INSTALL_NEED_GB:-12}
  [[ "$need_gb" =~ ^[0-9]{1,6}$ ]] || { echo "CALLQA_INSTALL_NEED_GB must be a whole number of GB, not '${need_gb:0:40}'"; exit 1; }
  for place in . "${TMPDIR:-/tmp}"; do
    free_gb=$("$PY" -c 'import shutil, sys; print(shutil.disk_usage(sys.argv[1]).free // 2**30)' "$place" 2>/dev/null) \
      || { echo "cannot read the free space of '${place:0:200}': is TMPDIR a folder that exists?"; exit 1; }
    if [ "$free_gb" -lt "$need_gb" ]; then
      echo "callqa's install needs about $need_gb GB free for the torch stack; $(cd "$place" && pwd) has only $free_gb GB free."
      echo "Free some space there (an old checkout's .venv is about 9 GB) and run this again."
      exit 1
    fi
  done
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
if [ $torch_ready = no ]; then
  say "installing the torch stack (torch 2.9.1 + torchaudio 2.9.1)"
  "${PIP[@]}" install --upgrade pip
  "${PIP[@]}" install -r constraints.txt
fi
say "installing callqa and its dependencies"
# (pip's notes about this machine's extra local indexes are filtered out; its exit status is kept)
"${PIP[@]}" install -c constraints.txt -e ".[dev]" 2> >(grep -v -E "is ignored: it is neither" >&2)
say "checking imports"
.venv/bin/python -c 'import pipelines, models, qa_rules, faster_whisper, pyannote.audio, torchcodec, torchaudio'

say "preparing the local model store"
.venv/bin/callqa models prepare

# librosa compiles its pitch tracker (numba, cache=True) on first use and caches the machine code in
# site-packages.  Two workers compiling it at once on a fresh install can write a broken cache that
# then crashes every later run (seen: a segmentation fault in librosa.pyin), so compile it once here.
say "compiling librosa's pitch tracker once"
warm='import numpy as np, librosa; y = np.sin(2 * np.pi * 200 * np.arange(16000) / 16000).astype(np.float32); librosa.pyin(y, fmin=60, fmax=500, sr=16000); librosa.feature.zero_crossing_rate(y)'
if ! .venv/bin/python -c "$warm" 2>/dev/null; then
  echo "librosa's compiled-code cache is broken: clearing it and compiling again"
  find .venv -path '*librosa*__pycache__*' -name '*.nb[ic]' -delete
  .venv/bin/python -c "$warm"
fi

# pip byte-compiles the wheels it installs, not this editable checkout: without .pyc files every
# `callqa` process compiles the project's modules again (≈ 0.1 s a start, a 500-call re-score's
# start-up included), or cannot cache them at all where PYTHONDONTWRITEBYTECODE is set.
say "byte-compiling the project's modules"
.venv/bin/python -m compileall -q pipelines qa_rules models >/dev/null
