#!/usr/bin/env bash
# One-time set-up of a fresh Debian/Ubuntu machine: system packages, then a virtual environment in
# .venv with the package and its train + dev extras. Called by `make setup` (and so by `make demo`,
# `make test` and .ci/run). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# espeak-ng: synthetic voices (demo, training data). libportaudio2: microphone access (sounddevice).
APT_PACKAGES="espeak-ng libportaudio2"

missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    echo "setup: please install the Debian packages:$missing (apt-get install$missing), then re-run" >&2
    exit 1
  fi
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.11.* / torchaudio==2.11.* come from the train extra (a ~4.7 GB CUDA build that also runs on CPU).
.venv/bin/python -m pip install -q --progress-bar off -e ".[train,dev]"
echo "setup: done ($(.venv/bin/wakeword --version))"
