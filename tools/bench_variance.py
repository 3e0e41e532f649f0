"""How much of a benchmark cell is the training's own randomness, and what averaging models buys.

    python tools/bench_variance.py [--word computer] [--seed 0] [--train-seeds 0 1 2 3 4] [--out docs/]

One word, one split of ../shared/data (tools/bench_accuracy.split_word: the same K takes, training
negatives, noise and test set for every model), several models that differ only in TrainConfig.train_seed
(weight init, batch order, dropout). Each model is measured on bench_accuracy's test streams, clean
and at 10 dB, and so is the ensemble that averages their logits. Writes variance.{md,json} to --out.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import WORDS, parse_overrides, split_word, train_word  # noqa: E402
from wakeword.audio import load_audio  # noqa: E402

CONDITIONS = ((None, "clean"), (10.0, "noise 10 dB"))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def ensemble_scorer(scorers: list, memo: dict):
    """Scorers -> one scorer: the mean of their logits. Each member scores a stream once (memo)."""

    def member(i: int, audio: np.ndarray) -> np.ndarray:
        key = (i, hashlib.blake2b(audio.tobytes(), digest_size=16).hexdigest())
        if key not in memo:
            memo[key] = logit(scorers[i](audio))
        return memo[key]

    def scorer_of(members: list[int]):
        def score(audio: np.ndarray) -> np.ndarray:
            mean = np.mean([member(i, audio) for i in members], axis=0)
            return (1 / (1 + np.exp(-mean))).astype(np.float32)

        return score

    return scorer_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="computer", choices=list(WORDS))
    parser.add_argument("--seed", type=int, default=0, help="the split (takes, negatives, noise) and the data")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--work", help="train in this folder and keep it instead of a temporary one")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="a recipe variant (TrainConfig)")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    if args.set and args.out == str(ROOT / "docs"):
        raise SystemExit("--set measures a variant, not the default recipe: give it its own --out folder")
    if len(args.train_seeds) < 2:
        raise SystemExit("--train-seeds: give at least two, or there is nothing to average")
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    from wakeword.cli import runtime_scorer
    from wakeword.evaluate import evaluate_scorer

    started = time.time()
    split = split_word(args.word, args.k, args.seed)
    positives = [load_audio(p) for p in split.test_takes]
    negatives = [load_audio(c.path) for c in split.test_negatives]
    noise = np.concatenate([load_audio(p) for p in split.test_noise])
    scorers, cards = [], []
    with shared_data.work_folder(args.work, "wakeword-variance-") as work:
        for t in args.train_seeds:
            model_dir, card, _ = train_word(split, work / f"train{t}", args.seed, train_seed=t, **overrides)
            scorers.append(runtime_scorer(str(model_dir), "CPUExecutionProvider")[0])
            cards.append(card)
        scorer_of = ensemble_scorer(scorers, {})
        variants = [(f"train_seed {t}", [i]) for i, t in enumerate(args.train_seeds)]
        variants.append((f"ensemble of {len(scorers)}", list(range(len(scorers)))))
        rows = []
        for name, members in variants:
            row = {"model": name}
            for snr, condition in CONDITIONS:
                report = evaluate_scorer(
                    scorer_of(members), positives, negatives, split.phrase, 0.5, noise if snr else None, snr, args.seed
                )
                row[condition] = report.frr_at_fa["0.5"]
                row[f"{condition} threshold"] = report.thresholds["0.5"]
            if len(members) == 1:
                row["phase2_kept"] = (cards[members[0]].get("phase2") or {}).get("kept")
            rows.append(row)
            print(json.dumps(row), flush=True)
    singles = rows[:-1]
    summary = {
        c: {
            "mean": float(np.mean([r[c] for r in singles])),
            "min": min(r[c] for r in singles),
            "max": max(r[c] for r in singles),
            "ensemble": rows[-1][c],
        }
        for _, c in CONDITIONS
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = shared_data.shown_command("tools/bench_variance.py", sys.argv[1:])
    (out / "variance.json").write_text(
        json.dumps({"command": command, "rows": rows, "summary": summary}, indent=2) + "\n"
    )
    lines = [
        "# Training randomness and ensembles (`tools/bench_variance.py`)",
        "",
        f"Run {datetime.date.today()} on {platform.machine()} (cpu), git {shared_data.git_revision()}, "
        f"{(time.time() - started) / 60:.0f} min. Command: `{command}`.",
        "",
        f"Word '{split.phrase}', split seed {args.seed} (K = {args.k}, recipe default): "
        "every model below trains on the same takes, negatives and noise, with the same augmentation draws; "
        "they differ only in TrainConfig.train_seed (head init, batch order, dropout). Test set and protocol as "
        "tools/bench_accuracy.py. The ensemble averages the members' logits.",
        "",
        "| model | FRR @ 0.5 FA/h clean | threshold there | FRR @ 0.5 FA/h, 10 dB | threshold there | phase 2 kept |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['clean']:.1%} | {r['clean threshold']:.4f} | {r['noise 10 dB']:.1%} | "
            f"{r['noise 10 dB threshold']:.4f} | {r.get('phase2_kept', '')} |"
        )
    lines.append("")
    for condition, s in summary.items():
        lines.append(
            f"- {condition}: single models {s['min']:.1%}-{s['max']:.1%} (mean {s['mean']:.1%}); "
            f"the ensemble {s['ensemble']:.1%}."
        )
    (out / "variance.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
