#!/usr/bin/env bash
# One-time set-up of a fresh machine (idempotent; fast when everything is there):
# ffmpeg with libx265 from Debian, a virtual environment in .venv with the pinned CPU torch,
# the Python dependencies, CompressAI without its torchvision requirement, and bench itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# grep reads all of ffmpeg's list (no -q): an early exit would SIGPIPE ffmpeg, and pipefail would
# then take a present libx265 for a missing one and reinstall
if ! command -v ffmpeg >/dev/null 2>&1 || ! ffmpeg -hide_banner -encoders 2>/dev/null | grep libx265 >/dev/null; then
  echo "== installing ffmpeg (libx265) with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq ffmpeg >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
py=.venv/bin/python
if ! $py -c "import bench, compressai, torch, bjontegaard" >/dev/null 2>&1 || [ requirements.txt -nt .venv/.bench-installed ]; then
  echo "== installing Python packages"
  $py -m pip install -q --upgrade pip
  $py -m pip install -q -r requirements.txt
  $py -m pip install -q --no-deps compressai==1.2.8
  $py -m pip install -q --no-deps -e .
  touch .venv/.bench-installed
fi
echo "== set-up done ($($py -c 'import torch; print("torch", torch.__version__)'))"
