"""Training time from K real takes with default settings: a cold run (empty cache: synthesis, features,
both phases, calibration, export) and a second run with one more take on the warm cache.

    python tools/bench_train.py [--word athena] [--k 5] [--device auto] [--json docs/bench_train.json]
    python tools/bench_train.py --negatives            # the deployable recipe: + recorded speech, noise, rooms
    python tools/bench_train.py --pack DIR             # the same, then keep what a GPU machine needs in DIR
    python tools/bench_train.py --from-pack DIR --device cuda    # there: no TTS engines, no ../shared/data

Both runs are the user's command, `wakeword train PHRASE --clips DIR --out DIR`, in a subprocess, timed
wall-clock; the takes come from ../shared/data (the development benchmark's split). Targets (training
issue): cold <= 10 min and warm <= 3 min on the 2-core CPU; <= 2 min on an H100.

--negatives adds what the README tells a user to pass and every accuracy figure in docs/ trains with:
`--negatives` (the benchmark's training half of the other speech in ../shared/data: 2922 files, 52 min),
`--noise` and `--rirs`. Takes alone train faster but fire tens to hundreds of times an hour on real
talk (docs/takes_only.md), so this is the time to a deployable model.

A lent GPU machine has neither the TTS engines nor ../shared/data. --pack keeps, after the runs here,
the takes, the voice lists and the synthesised clips (the cache's int16 entries; the features are
dropped) in DIR, ~55 MB for athena. --from-pack times the same two runs from DIR with the voices read
from it and synthesis forbidden (it raises if a clip is missing): every feature, both phases,
calibration and export are computed there, synthesis is not, so its figures exclude synthesis (the
cold CPU run's progress shows its share).
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import WORDS, link_files, split_word  # noqa: E402


def timed_train(
    phrase: str, clips: Path, out: Path, cache: Path, device: str, pack: Path | None = None, data: Sequence[str] = ()
) -> dict:
    args = ["train", phrase, "--clips", str(clips), "--out", str(out), "--device", device, "--cache", str(cache)]
    args += list(data)
    if pack is None:
        cmd = [sys.executable, "-m", "wakeword", *args]
    else:  # the CLI in a process whose voices come from the pack (packed_train)
        cmd = [sys.executable, __file__, "--packed-train", str(pack), "--", *args]
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
        "phase_seconds": card.get("phase_seconds"),
        "threshold": card["threshold"],
        "validation_frr": validation.get("frr_at_threshold"),
        "validation_fa_per_hour": validation.get("fa_per_hour_at_threshold"),
        # The summary names the model folder, a temporary one on this machine: shown as MODEL_DIR.
        "summary": [line.replace(str(out), "MODEL_DIR") for line in result.stdout.strip().splitlines()[-8:]],
    }


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def write_pack(pack: Path, takes: list[Path], cache: Path) -> None:
    """The takes, the default voice lists and the synthesised clips (int16 cache entries) in `pack`."""
    from wakeword import tts

    for i, take in enumerate(takes):
        shutil.copy(take, pack / f"take{i}{take.suffix}")
    voices = {kind: [vars(v) for v in tts.list_voices(kind)] for kind in ("positive", "negative")}
    (pack / "voices.json").write_text(json.dumps(voices) + "\n")
    for entry in cache.rglob("*.npy"):
        if np.load(entry, mmap_mode="r").dtype == np.int16:  # synthesis; features are float16
            target = pack / "cache" / entry.relative_to(cache)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(entry, target)


def packed_train(pack: Path, argv: list[str]) -> int:
    """`wakeword train` with the pack's voice lists and its synthesised clips only (synthesis refused)."""
    from wakeword import cli, tts

    voices = json.loads((pack / "voices.json").read_text())

    def packed_voices(purpose: str = "positive", commercial_safe: bool = True, variations: bool = True) -> list:
        if not (commercial_safe and variations):
            raise SystemExit("the pack holds the default voice lists only")
        return [tts.Voice(**v) for v in voices[purpose]]

    def no_synthesis(items, workers: int | None = None, progress: bool = True):
        if items := list(items):
            raise SystemExit(f"{len(items)} clips are not in the pack, e.g. {items[0][0]!r} in {items[0][1].id}")
        return iter(())

    tts.list_voices, tts.synthesize_many = packed_voices, no_synthesis
    return cli.main(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="athena", choices=list(WORDS))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--pack", help="after the runs, keep the takes, voices and synthesis in this new folder")
    parser.add_argument("--from-pack", help="run from a --pack folder (no TTS engines or shared data needed)")
    parser.add_argument(
        "--negatives", action="store_true", help="also pass recorded negative speech, noise and rooms (deployable)"
    )
    parser.add_argument("--packed-train", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.negatives and (args.pack or args.from_pack):
        raise SystemExit("--negatives reads ../shared/data, which a pack does not carry: use it without --pack")
    if args.packed_train:
        sys.exit(packed_train(Path(args.packed_train), rest[1:] if rest[:1] == ["--"] else rest))
    pack = Path(args.from_pack or args.pack).resolve() if (args.from_pack or args.pack) else None
    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-train-"))
    data: list[str] = []  # what --negatives adds to the command
    try:
        if args.from_pack:
            phrase = WORDS[args.word]
            takes = sorted(pack.glob("take*"), key=lambda p: int(p.stem[4:]))
            cache = shutil.copytree(pack / "cache", work / "cache")  # synthesis only: features are computed
        else:
            if not shared_data.available():
                raise SystemExit(shared_data.MISSING_REASON)
            if pack:
                pack.mkdir(parents=True)  # refuses an existing folder: nothing is overwritten
            split = split_word(args.word, args.k + 1, seed=0)
            phrase, takes, cache = split.phrase, split.train_takes, work / "cache"  # empty: synthesis and all
        if args.negatives:
            data = ["--negatives", str(link_files(split.train_negatives, work / "negatives"))]
            data += ["--noise", str(link_files(split.train_noise, work / "noise"))]
            data += ["--rirs", str(shared_data.DATA_DIR / "rir")]
        first = link_files(takes[: args.k], work / "clips")
        more = link_files(takes[: args.k + 1], work / "clips_more")
        from_pack = pack if args.from_pack else None
        cold = timed_train(phrase, first, work / "cold", cache, args.device, from_pack, data)
        print(json.dumps({"cold": cold}), flush=True)
        warm = timed_train(phrase, more, work / "warm", cache, args.device, from_pack, data)
        print(json.dumps({"warm": warm}), flush=True)
        if args.pack:
            write_pack(pack, takes[: args.k + 1], cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": shared_data.shown_command("tools/bench_train.py", sys.argv[1:]),
        "word": phrase,
        "k": args.k,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f", {gpu}" if (gpu := gpu_name()) else ""),
        "synthesis": "pre-synthesised (--from-pack): not in these times" if args.from_pack else "included",
        "recorded negatives, noise, rooms": args.negatives,
        "cold (empty cache, K takes)": cold,
        "warm (same cache, K + 1 takes)": warm,
        "targets": {"cold_cpu_s": 600, "warm_cpu_s": 180, "h100_s": 120},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
