#!/usr/bin/env bash
# The embedded bundle on aarch64: Debian bookworm's arm64 python3 under qemu-user, numpy and onnxruntime
# from their aarch64 wheels, the bundle's runner on a test recording, compared with the same runner on
# this (x86) machine: fp32 scores within 1e-3, int8 detections identical. Exit 0 when they agree.
#
#   tools/test_arm64.sh [BUNDLE_DIR WAV]
#
# Without arguments a test model, its bundle (with fp32 graphs) and a recording are made here
# (tools/bench_embedded.py --test-bundle; needs the train extra). A bundle given must have fp32 graphs.
#
# Needs: root (debootstrap), `apt-get install debootstrap qemu-user-static`, network to a Debian mirror
# and PyPI on the first run. binfmt_misc is not needed (containers often cannot register it): python3
# is started as `qemu-aarch64-static -L ROOT ROOT/usr/bin/python3`, and -L makes every absolute path
# the program opens resolve inside ROOT first, so the arm64 python finds its own libraries. Nor is
# debootstrap's second stage (it would run arm64 binaries): the packages' files are unpacked with
# dpkg-deb, which is all python needs.
#
# Cached in $WAKEWORD_ARM64_CACHE (default ~/.cache/wakeword-arm64): the root file system (~300 MB)
# and the wheels (~40 MB). Delete it to start again. $PYTHON: the x86 python (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${WAKEWORD_ARM64_CACHE:-$HOME/.cache/wakeword-arm64}"
ROOT="$CACHE/bookworm-arm64"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
QEMU="$(command -v qemu-aarch64-static || true)"
[ -n "$QEMU" ] || { echo "test_arm64: qemu-aarch64-static not found: apt-get install qemu-user-static" >&2; exit 2; }

start=$(date +%s%N)
elapsed() {  # seconds since $1 (date +%s%N), one decimal
  local ms=$((($(date +%s%N) - $1) / 1000000))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# 1. The arm64 root: debootstrap's first stage, then every downloaded package unpacked.
if [ -f "$ROOT/.ready" ]; then
  root_state="cached"
else
  root_state="built"
  command -v debootstrap >/dev/null || { echo "test_arm64: debootstrap not found: apt-get install debootstrap" >&2; exit 2; }
  [ "$(id -u)" = 0 ] || { echo "test_arm64: building the arm64 root needs root (debootstrap)" >&2; exit 2; }
  rm -rf "$ROOT"
  mkdir -p "$ROOT"
  echo "test_arm64: debootstrap bookworm arm64 into $ROOT" >&2
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { echo "test_arm64: debootstrap failed, see $CACHE/debootstrap.log" >&2; exit 1; }
  for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
  rm -f "$ROOT"/var/cache/apt/archives/*.deb
  # onnxruntime's CPU detection (cpuinfo) reads /proc/cpuinfo, which under qemu-user is the host's
  # x86 one, and crashes on it. -L maps /proc/cpuinfo to this file: a Raspberry Pi 4 (Cortex-A72).
  mkdir -p "$ROOT/proc"
  for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n' "$i"
    printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done >"$ROOT/proc/cpuinfo"
  printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' >>"$ROOT/proc/cpuinfo"
  touch "$ROOT/.ready"
fi
ARM_PYTHON="$ROOT/usr/bin/$(basename "$(readlink -f "$ROOT/usr/bin/python3")")"

# 2. numpy and onnxruntime: the versions the x86 side runs, from their aarch64 wheels, unzipped.
versions=$("$PYTHON" -c 'import numpy, onnxruntime; print(numpy.__version__, onnxruntime.__version__)')
read -r NUMPY_VERSION ORT_VERSION <<<"$versions"
SITE="$ROOT/opt/site-numpy$NUMPY_VERSION-ort$ORT_VERSION"
if [ ! -f "$SITE/.ready" ]; then
  py_version=$(env -i "$QEMU" -L "$ROOT" "$ARM_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  wheels="$CACHE/wheels"
  mkdir -p "$wheels"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$wheels" --python-version "$py_version" \
    --platform manylinux2014_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
    "numpy==$NUMPY_VERSION" "onnxruntime==$ORT_VERSION"
  rm -rf "$SITE"
  for wheel in "$wheels"/numpy-"$NUMPY_VERSION"-*aarch64*.whl "$wheels"/onnxruntime-"$ORT_VERSION"-*aarch64*.whl; do
    "$PYTHON" -m zipfile -e "$wheel" "$SITE"
  done
  touch "$SITE/.ready"
fi
setup_s=$(elapsed "$start")

# 3. The bundle and the recording, copied into the root.
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ $# -ge 2 ]; then
  BUNDLE="$1"
  WAV="$2"
else
  "$PYTHON" tools/bench_embedded.py --test-bundle "$WORK/made" >&2
  BUNDLE="$WORK/made/bundle"
  WAV="$WORK/made/test.wav"
fi
rm -rf "$ROOT/opt/bundle" "$ROOT/opt/test.wav"
cp -r "$BUNDLE" "$ROOT/opt/bundle"
cp "$WAV" "$ROOT/opt/test.wav"

# -cpu cortex-a72: a Raspberry Pi 4's instruction set (no int8 dot product), so onnxruntime picks the
# kernels it would pick there. Bytecode is written (into ROOT): the unconfigured packages and the
# unzipped wheels have none, and compiling numpy under emulation on every start costs most of a run.
arm() {
  env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONPATH="$SITE" \
    "$QEMU" -cpu cortex-a72 -L "$ROOT" "$ARM_PYTHON" "$ROOT/opt/bundle/run.py" "$@"
}
x86() {
  "$PYTHON" "$ROOT/opt/bundle/run.py" "$@"
}

# 4. The same commands on both. Their outputs are kept in $CACHE/last-run for a look afterwards.
OUT="$CACHE/last-run"
rm -rf "$OUT"
mkdir -p "$OUT"
run_start=$(date +%s%N)
for side in x86 arm; do
  "$side" check --seconds 1 >"$OUT/$side.check.json"
  "$side" score --fp32 "$ROOT/opt/test.wav" >"$OUT/$side.fp32.csv"
  "$side" score "$ROOT/opt/test.wav" >"$OUT/$side.int8.csv"
  "$side" detect "$ROOT/opt/test.wav" >"$OUT/$side.int8.jsonl"
done
run_s=$(elapsed "$run_start")

# 5. Compare.
"$PYTHON" - "$OUT" "$root_state" "$setup_s" "$run_s" "$(elapsed "$start")" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np

work, root_state, setup_s, run_s, total_s = Path(sys.argv[1]), *sys.argv[2:]


def scores(side: str, kind: str) -> np.ndarray:
    return np.loadtxt(work / f"{side}.{kind}.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1:]


def events(side: str, kind: str) -> list[dict]:
    lines = (work / f"{side}.{kind}.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("file", "model")} for line in lines]


check = {side: json.loads((work / f"{side}.check.json").read_text()) for side in ("x86", "arm")}
x86_events, arm_events = events("x86", "int8"), events("arm", "int8")
# Equal events: the same wake words at the same steps. Their scores are compared apart: int8 kernels
# differ between x86 and arm (a value rounded one int8 step apart), so scores agree closely, not exactly.
timing = [[(e["phrase"], e["start"], e["end"]) for e in side] for side in (x86_events, arm_events)]
events_equal = timing[0] == timing[1]
result = {
    "arm_machine": check["arm"]["machine"],
    "arm_python": check["arm"]["python"],
    "numpy": check["arm"]["numpy"],
    "onnxruntime": check["arm"]["onnxruntime"],
    "steps": len(scores("x86", "fp32")),
    "fp32_max_score_diff": float(np.abs(scores("x86", "fp32") - scores("arm", "fp32")).max()),
    "int8_max_score_diff": float(np.abs(scores("x86", "int8") - scores("arm", "int8")).max()),
    "int8_mean_score_diff": float(np.abs(scores("x86", "int8") - scores("arm", "int8")).mean()),
    "int8_events": len(x86_events),
    "int8_events_equal": events_equal,
    "int8_event_score_max_diff": (
        max((abs(a["score"] - b["score"]) for a, b in zip(x86_events, arm_events, strict=True)), default=0.0)
        if events_equal
        else None
    ),
    "root": root_state,
    "setup_s": float(setup_s),
    "runs_s": float(run_s),
    "total_s": float(total_s),
}
if not events_equal:
    print(f"test_arm64: int8 events differ\n  x86: {x86_events}\n  arm: {arm_events}", file=sys.stderr)
print(json.dumps(result))
(work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
ok = (
    result["arm_machine"] == "aarch64"
    and result["fp32_max_score_diff"] <= 1e-3
    and result["int8_events_equal"]
    and result["steps"] > 0
)
print(f"test_arm64: {'PASS' if ok else 'FAIL'}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
