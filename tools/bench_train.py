"""Training time from K real takes with default settings: a cold run (empty cache: synthesis, features,
both phases, calibration, export) and a second run with one more take on the warm cache.

    python tools/bench_train.py [--word athena] [--k 5] [--device auto] [--json docs/bench_train.json]

Both runs are the user's command, `wakeword train PHRASE --clips DIR --out DIR`, in a subprocess, timed
wall-clock; the takes come from ../shared/data (the development benchmark's split). Targets (training
issue): cold <= 10 min and warm <= 3 min on the 2-core CPU; <= 2 min on an H100.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import WORDS, link_files, split_word  # noqa: E402


def timed_train(phrase: str, clips: Path, out: Path, cache: Path, device: str) -> dict:
    cmd = [sys.executable, "-m", "wakeword", "train", phrase, "--clips", str(clips), "--out", str(out)]
    cmd += ["--device", device, "--cache", str(cache)]
    start = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - start
    if result.returncode != 0:
        raise SystemExit(f"training failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    card = json.loads((out / "card.json").read_text())
    validation = card.get("validation") or {}
    return {
        "wall_seconds": round(seconds, 1),
        "training_seconds": card["training_seconds"],
        "device": card["device"],
        "takes": card["data"]["user_clips"],
        "cache_hits": card["data"]["cache_hits"],
        "cache_misses": card["data"]["cache_misses"],
        "threshold": card["threshold"],
        "validation_frr": validation.get("frr_at_threshold"),
        "validation_fa_per_hour": validation.get("fa_per_hour_at_threshold"),
        # The summary names the model folder, a temporary one on this machine: shown as MODEL_DIR.
        "summary": [line.replace(str(out), "MODEL_DIR") for line in result.stdout.strip().splitlines()[-8:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="athena", choices=list(WORDS))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    split = split_word(args.word, args.k + 1, seed=0)
    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-train-"))
    try:
        cache = work / "cache"  # empty: the first run synthesises and featurises everything
        first = link_files(split.train_takes[: args.k], work / "clips")
        more = link_files(split.train_takes, work / "clips_more")
        cold = timed_train(split.phrase, first, work / "cold", cache, args.device)
        print(json.dumps({"cold": cold}), flush=True)
        warm = timed_train(split.phrase, more, work / "warm", cache, args.device)
        print(json.dumps({"warm": warm}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "word": split.phrase,
        "k": args.k,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cold (empty cache, K takes)": cold,
        "warm (same cache, K + 1 takes)": warm,
        "targets": {"cold_cpu_s": 600, "warm_cpu_s": 180, "h100_s": 120},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
