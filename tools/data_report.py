"""What the data step produces for a phrase: counts per source and voice, durations, throughput, and
example WAVs to listen to.

    python tools/data_report.py "hey nova" --out data_report [--clips DIR] [--negatives DIR ...] [--fresh]

--fresh synthesises into an empty cache, so the throughput figures measure synthesis, not the cache.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wakeword import phrases, tts  # noqa: E402
from wakeword.audio import SAMPLE_RATE, write_wav  # noqa: E402
from wakeword.augment import Augmenter  # noqa: E402
from wakeword.dataset import featurize, make_segments, partial_sources, read_audio_dirs  # noqa: E402
from wakeword.encoder import load_encoder  # noqa: E402
from wakeword.train import TrainConfig, tts_sources, user_sources  # noqa: E402

FEATURE_SAMPLE = 512  # examples timed through augmentation and the encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phrase")
    parser.add_argument("--out", default="data_report")
    parser.add_argument("--clips", help="folder of your takes")
    parser.add_argument("--negatives", nargs="*", default=[])
    parser.add_argument("--noise", nargs="*", default=[])
    parser.add_argument("--all-voices", action="store_true", help="include non-commercial voices")
    parser.add_argument("--fresh", action="store_true", help="synthesise into an empty cache (honest timing)")
    args = parser.parse_args()

    phrase = phrases.normalize_phrase(args.phrase)
    print(f"phrase: {phrases.describe_pronunciation(phrase)}")
    print("engines: " + ", ".join(f"{k} ({v})" for k, v in tts.engine_status().items()))
    cache = Path(tempfile.mkdtemp(prefix="wakeword-cache-")) if args.fresh else None
    config = TrainConfig(phrase=phrase, out=Path(args.out), commercial_safe=not args.all_voices, cache_dir=cache)
    start = time.time()
    synthetic, info = tts_sources(config, np.random.default_rng(0))
    synth_s = time.time() - start
    sources = list(synthetic)
    if args.clips:
        sources += user_sources(Path(args.clips))
    sources += partial_sources([s for s in sources if s.label == 1], 0)
    sources += read_audio_dirs(args.negatives, "speech", 0) + read_audio_dirs(args.noise, "noise", 0)

    print(
        f"\nvoice configurations for positives: {info['positive_voice_configs']} "
        f"({info['positive_speakers']} speakers); for negatives: {info['negative_voice_configs']}"
    )
    print(f"near-miss phrases: {info['near_miss_phrases']}, e.g. {', '.join(info['near_miss_examples'][:8])}")
    print(f"spelling variants: {', '.join(info['spelling_variants'])}")
    print("\n| kind | clips | seconds | mean s | min s | max s |\n|---|---:|---:|---:|---:|---:|")
    by_kind: dict[str, list[float]] = defaultdict(list)
    for s in sources:
        by_kind[s.kind].append(len(s.audio) / SAMPLE_RATE)
    for kind, secs in sorted(by_kind.items()):
        print(f"| {kind} | {len(secs)} | {sum(secs):.0f} | {np.mean(secs):.2f} | {min(secs):.2f} | {max(secs):.2f} |")
    engines = Counter((s.kind, s.origin.split(":")[0]) for s in synthetic)
    print("\nclips per engine: " + ", ".join(f"{k}/{e}: {n}" for (k, e), n in sorted(engines.items())))
    per_voice = Counter(s.origin.rsplit(":", 2)[0] for s in synthetic if s.kind == "tts")
    print("positive clips per base voice: " + ", ".join(f"{v}: {n}" for v, n in sorted(per_voice.items())))

    synthesised = len(synthetic)
    print(
        f"\nsynthesis: {synthesised} clips in {synth_s:.0f} s = {synthesised / synth_s * 60:.0f} clips/min "
        f"({'fresh cache' if args.fresh else 'cache may have served some'}, 2 threads)"
    )
    rng = np.random.default_rng(0)
    sample = [sources[i] for i in rng.choice(len(sources), min(FEATURE_SAMPLE, len(sources)), replace=False)]
    segments = make_segments(sample, {}, {}, 0)
    augment = Augmenter(device="cpu", seed=0)
    t = time.time()
    augmented = augment(torch.from_numpy(segments.audio))
    aug_s = time.time() - t
    t = time.time()
    featurize(segments, load_encoder(), None, None, "cpu")
    feat_s = time.time() - t
    print(f"augmentation: {len(segments.labels) / aug_s * 60:.0f} segments/min (1.98 s each)")
    print(
        f"features (log-mel + frozen encoder bottom, 16 embeddings each): {len(segments.labels) / feat_s:.0f} "
        f"segments/s = {16 * len(segments.labels) / feat_s:.0f} embeddings/s"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for kind in sorted({s.kind for s in sample}):
        idx = [i for i, s in enumerate(sample) if s.kind == kind][:3]
        for j, i in enumerate(idx):
            write_wav(out / f"{kind}_{j}_clean.wav", segments.audio[i])
            write_wav(out / f"{kind}_{j}_augmented.wav", augmented[i].numpy())
    print(f"\nexample segments (clean and augmented) in {out}/")


if __name__ == "__main__":
    main()
