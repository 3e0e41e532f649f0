"""What input adaptation from unlabelled audio (wakeword/channel.py) does for a cheap microphone in a
reverberant room, on the development benchmark.

    python tools/bench_channel.py [--word computer] [--k 5] [--model DIR] [--out docs/]

Trains a model from K takes (tools/bench_accuracy.py's split; or takes --model, trained on that
split) and evaluates the same test streams three ways through the runtime:
  clean                      the recordings as they are
  cheap microphone           every test clip through a reverberant room (RT60 0.5 s) and a thin,
                             dull microphone (2nd-order high-pass at 350 Hz, 4th-order low-pass at
                             2.8 kHz): the condition the model was not trained on
  cheap microphone, adapted  the same, after channel.adapt_model on unlabelled audio from that
                             microphone: the training half of the other speech (never the test
                             half), 5 minutes of it
Writes docs/channel.md and docs/channel.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import WORDS, split_word, train_word  # noqa: E402
from wakeword.audio import SAMPLE_RATE, load_audio  # noqa: E402
from wakeword.channel import MAX_BOOST_DB, MAX_CUT_DB  # noqa: E402

RT60_S = 0.5
HIGHPASS_HZ, LOWPASS_HZ = 350.0, 2800.0
ADAPT_SECONDS = 300.0


def room_impulse(seed: int) -> np.ndarray:
    """A simulated room: a direct path, then exponentially decaying noise (-60 dB at RT60)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RT60_S * SAMPLE_RATE)) / SAMPLE_RATE
    rir = rng.normal(0.0, 1.0, len(t)) * np.exp(-6.9 * t / RT60_S) * 0.3
    rir[: int(0.002 * SAMPLE_RATE)] = 0.0
    rir[0] = 1.0
    return rir / np.linalg.norm(rir)


def cheap_microphone(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    wet = scipy.signal.fftconvolve(audio, rir)[: len(audio)]
    high = scipy.signal.butter(2, HIGHPASS_HZ, "highpass", fs=SAMPLE_RATE, output="sos")
    low = scipy.signal.butter(4, LOWPASS_HZ, fs=SAMPLE_RATE, output="sos")
    out = scipy.signal.sosfilt(low, scipy.signal.sosfilt(high, wet))
    peak = np.abs(out).max()
    return (out * (np.abs(audio).max() / peak if peak > 0 else 1.0)).astype(np.float32)


def evaluate(model: Path, positives: list[np.ndarray], negatives: list[np.ndarray], phrase: str, seed: int) -> dict:
    from wakeword.cli import runtime_scorer
    from wakeword.evaluate import evaluate_scorer

    scorer, loaded = runtime_scorer(str(model), "CPUExecutionProvider")
    report = evaluate_scorer(scorer, positives, negatives, phrase, loaded.threshold, seed=seed)
    at = report.at_model_threshold or {}
    return {
        "frr_at_0.5_fa_per_hour": report.frr_at_fa["0.5"],
        "frr_at_1_fa_per_hour": report.frr_at_fa["1.0"],
        "frr_at_threshold": at.get("frr"),
        "fa_per_hour_at_threshold": at.get("fa_per_hour"),
        "negative_hours": round(report.negative_hours, 3),
        "test_positives": report.positives,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="computer", choices=list(WORDS))
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--model", help="a model trained on this word's split with the same --k (skips training)")
    parser.add_argument("--max-boost-db", type=float, default=MAX_BOOST_DB)
    parser.add_argument("--max-cut-db", type=float, default=MAX_CUT_DB)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    from wakeword.channel import adapt_model

    split = split_word(args.word, args.k, args.seed)
    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-channel-"))
    try:
        model = Path(args.model) if args.model else train_word(split, work, args.seed)[0]
        positives = [load_audio(p) for p in split.test_takes]
        negatives = [load_audio(c.path) for c in split.test_negatives]
        rir = room_impulse(args.seed)
        cheap_pos = [cheap_microphone(a, rir) for a in positives]
        cheap_neg = [cheap_microphone(a, rir) for a in negatives]
        # Unlabelled audio from the same microphone and room: other speech, from the training half.
        room, seconds = [], 0.0
        for path in split.train_negatives:
            audio = load_audio(path)
            room.append(cheap_microphone(audio, rir))
            seconds += len(audio) / SAMPLE_RATE
            if seconds >= ADAPT_SECONDS:
                break
        adapted = work / "adapted"
        shutil.copytree(model, adapted)
        entry = adapt_model(
            adapted,
            room,
            [f"{len(room)} training-half clips through the cheap microphone"],
            args.max_boost_db,
            args.max_cut_db,
        )
        rows = []
        for condition, model_dir, pos, neg in (
            ("clean", model, positives, negatives),
            ("cheap microphone", model, cheap_pos, cheap_neg),
            ("cheap microphone, adapted", adapted, cheap_pos, cheap_neg),
            ("clean, adapted to the cheap microphone", adapted, positives, negatives),
        ):
            row = {
                "word": split.phrase,
                "condition": condition,
                **evaluate(model_dir, pos, neg, split.phrase, args.seed),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "adaptation": {"seconds": round(seconds), "mel_offset": entry["mel_offset"]}}
    (out / "channel.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Input adaptation to a microphone (`tools/bench_channel.py`)",
        "",
        f"Run {datetime.date.today()} on {platform.machine()}, git {shared_data.git_revision()}, "
        f"'{split.phrase}', K = {args.k}, recipe default, seed {args.seed}. "
        f"Command: `{shared_data.shown_command('tools/bench_channel.py', sys.argv[1:])}`.",
        f"Cheap microphone: room RT60 {RT60_S} s, high-pass {HIGHPASS_HZ:.0f} Hz, low-pass {LOWPASS_HZ:.0f} Hz. "
        f"Adaptation: channel.adapt_model (boost <= {args.max_boost_db:g} dB, cut <= {args.max_cut_db:g} dB) "
        f"on {seconds / 60:.1f} min of unlabelled training-half speech through it. "
        "Streaming, event-level, as in benchmarks.md.",
        "",
        "| condition | FRR @ 0.5 FA/h | FRR @ 1 FA/h | FRR / FA/h at the model's threshold |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['frr_at_0.5_fa_per_hour']:.1%} | {r['frr_at_1_fa_per_hour']:.1%} | "
            f"{r['frr_at_threshold']:.1%} / {r['fa_per_hour_at_threshold']:.2f} |"
        )
    (out / "channel.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
