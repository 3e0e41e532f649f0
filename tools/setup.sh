#!/usr/bin/env bash
# One-time set-up of a fresh Debian/Ubuntu machine: system packages, then a virtual environment in
# .venv with the package and its train + dev extras. Called by `make setup` (and so by `make demo`,
# `make test` and .ci/run). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Required: PortAudio (microphone, sounddevice) and espeak-ng (voices, demo). Optional: the other
# offline TTS voices training uses (docs/voices.md); mbrola*, libttspico-utils and rhvoice* come from
# Debian's contrib/non-free. A voice package that cannot be installed is skipped: training uses what is there.
REQUIRED="libportaudio2 espeak-ng"
# For the tests: a software sound card for the daemon's end-to-end test (PulseAudio reached through
# ALSA's pulse plugin) and an emulated arm64 Debian root for the embedded bundle (tools/test_arm64.sh).
TESTING="pulseaudio pulseaudio-utils libasound2-plugins debootstrap qemu-user-static"
VOICES="mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 libttspico-utils flite festival festvox-kallpc16k
  festvox-kdlpc16k festvox-rablpc16k festvox-don festvox-us-slt-hts rhvoice rhvoice-english"
NONFREE_SOURCES=/etc/apt/sources.list.d/wakeword-contrib-nonfree.sources

missing=""
for pkg in $REQUIRED $TESTING $VOICES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    echo "setup: please install the Debian packages:$missing (apt-get install$missing), then re-run" >&2
    exit 1
  fi
  echo "setup: installing Debian packages:$missing"
  if ! grep -rqsE '(^|[[:space:]])non-free([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
      && grep -qs bookworm /etc/os-release; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $SUDO tee "$NONFREE_SOURCES" >/dev/null
  fi
  $SUDO apt-get update -qq
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends $REQUIRED >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends $TESTING >/dev/null \
    || echo "setup: test packages ($TESTING) not installed: the daemon and arm64 tests will skip" >&2
  if ! $SUDO apt-get install -y -qq --no-install-recommends $VOICES >/dev/null 2>&1; then
    for pkg in $VOICES; do
      $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 \
        || echo "setup: voice package $pkg not available, skipped" >&2
    done
  fi
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.11.0 / torchaudio==2.11.0 come from the train extra (a ~4.7 GB CUDA build that also runs on CPU).
.venv/bin/python -m pip install -q --progress-bar off -e ".[train,dev,bench]"
.venv/bin/python -m pip install -q --progress-bar off --no-deps "efficientword-net==1.0.5"
echo "setup: done ($(.venv/bin/wakeword --version))"
