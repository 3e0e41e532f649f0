"""The decision rule measured on trained models: score smoothing against a raw per-step threshold.

    python tools/bench_accuracy.py --seeds 0 --work RUN0 --out RUN0     # train and keep the models
    python tools/bench_decision.py --work RUN0 RUN1 [--rules step mean4 min4] [--out docs/decision.md]
    python tools/bench_decision.py --merge A.json B.json --out docs/decision.md   # runs made in parallel

Reuses the models a `bench_accuracy.py --work` run kept and its exact test split (same seed, same
streams). Each stream is scored once through the runtime; every rule is then applied to the stored
scores and swept like the benchmark (wakeword.evaluate), so the rules differ only in the decision:

    step      the score of each 80 ms step (the runtime with smoothing 1)
    meanN     the mean of the last N steps' scores (the runtime's `smoothing = N`)
    minN      the lowest of the last N steps (the score must hold for N steps: openWakeWord's "patience")

FRR at 0.5 FA/h is read where the test's own negatives allow it, as in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import WORDS, split_word  # noqa: E402
from wakeword.audio import load_audio  # noqa: E402


def trailing_min(scores: np.ndarray, n: int) -> np.ndarray:
    """Each step's lowest score over the last n steps (fewer at the start of the stream)."""
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([np.full(n - 1, np.inf), scores]), n)
    return windows.min(axis=1).astype(np.float32)


def rule(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """'step', 'meanN' or 'minN' -> the function from raw step scores to the scores the decision sees."""
    if name == "step":
        return lambda s: s
    from wakeword.evaluate import smooth_scores

    if name.startswith("mean") and name[4:].isdigit() and int(name[4:]) > 0:
        return lambda s: smooth_scores(s, int(name[4:]))
    if name.startswith("min") and name[3:].isdigit() and int(name[3:]) > 0:
        return lambda s: trailing_min(np.asarray(s, np.float32), int(name[3:]))
    raise SystemExit(f"unknown rule {name!r}: step, meanN or minN")


class CachedScorer:
    """The runtime scorer, with each stream's raw scores kept so that every rule reuses them."""

    def __init__(self, model_dir: Path) -> None:
        from wakeword.cli import runtime_scorer

        self.score, self.model = runtime_scorer(str(model_dir), "CPUExecutionProvider", raw=True)
        self.cache: dict[str, np.ndarray] = {}

    def with_rule(self, transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def scorer(audio: np.ndarray) -> np.ndarray:
            key = hashlib.blake2b(audio.tobytes(), digest_size=16).hexdigest()
            if key not in self.cache:
                self.cache[key] = self.score(audio)
            return transform(self.cache[key])

        return scorer


def measure(work: Path, seed: int, label: str, rules: list[str]) -> list[dict]:
    from wakeword.evaluate import evaluate_scorer

    split = split_word(label, 5, seed)
    model_dir = work / f"seed{seed}" / label / "model"
    if not (model_dir / "card.json").exists():
        raise SystemExit(f"{model_dir}: no trained model (run tools/bench_accuracy.py --work first)")
    card = json.loads((model_dir / "card.json").read_text())
    # Training may drop a take it finds unusable (warned per clip), never add one.
    if card["phrase"] != split.phrase or not 0 < card["data"].get("user_clips", 0) <= len(split.train_takes):
        raise SystemExit(f"{model_dir}: not a model of {split.phrase!r} from K = 5 takes")
    cached = CachedScorer(model_dir)
    positives = [load_audio(p) for p in split.test_takes]
    negatives = [load_audio(c.path) for c in split.test_negatives]
    noise = np.concatenate([load_audio(p) for p in split.test_noise])
    rows = []
    for name in rules:
        scorer = cached.with_rule(rule(name))
        for noise_arg, snr, condition in ((None, None, "clean"), (noise, 10.0, "noise 10 dB")):
            report = evaluate_scorer(scorer, positives, negatives, split.phrase, None, noise_arg, snr, seed)
            rows.append(
                {
                    "word": split.phrase,
                    "seed": seed,
                    "condition": condition,
                    "rule": name,
                    "frr_at_0.5_fa_per_hour": report.frr_at_fa["0.5"],
                    "frr_at_1_fa_per_hour": report.frr_at_fa["1.0"],
                    "test_positives": report.positives,
                    "negative_hours": round(report.negative_hours, 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def shown_command(argv: list[str]) -> str:
    """The command line as the report shows it, without this machine's paths: the --work folders as
    RUN1, RUN2, ..., the --merge files as RUN1/<name>, ..., and no --out path."""
    shown, runs, skip, merging = ["python", "tools/bench_decision.py"], 0, False, False
    for arg in argv:
        if skip:
            skip = False
            continue
        if runs and not arg.startswith("--"):
            shown.append(f"RUN{runs}/{Path(arg).name}" if merging else f"RUN{runs}")
            runs += 1
            continue
        runs, merging = (1 if arg in ("--work", "--merge") else 0), arg == "--merge"
        skip = arg == "--out"
        if not skip:
            shown.append(arg)
    return " ".join(shown)


def markdown(rows: list[dict], rules: list[str], argv: list[str]) -> str:
    cells: dict[tuple, dict[str, float]] = {}
    for r in rows:
        cells.setdefault((r["word"], r["seed"], r["condition"]), {})[r["rule"]] = r["frr_at_0.5_fa_per_hour"]
    lines = [
        "# The decision rule (`tools/bench_decision.py`)",
        "",
        f"Run {datetime.date.today()}, git {shared_data.git_revision()}. "
        f"Command: `{shown_command(argv)}`. "
        "FRR at 0.5 FA/h on the development benchmark's test streams (docs/benchmarks.md), "
        "the same models scored once, the rules applied to the stored scores.",
        "",
        "| word | seed | condition | " + " | ".join(rules) + " |",
        "|---|---:|---|" + "---:|" * len(rules),
    ]
    for (word, seed, condition), by_rule in cells.items():
        values = " | ".join(f"{by_rule[r]:.1%}" for r in rules)
        lines.append(f"| {word} | {seed} | {condition} | {values} |")
    lines += ["", "| rule | mean clean | mean 10 dB | cells better / worse than step |", "|---|---:|---:|---|"]
    for r in rules:
        clean = [v[r] for k, v in cells.items() if k[2] == "clean"]
        noisy = [v[r] for k, v in cells.items() if k[2] != "clean"]
        better = sum(v[r] < v["step"] - 1e-9 for v in cells.values())
        worse = sum(v[r] > v["step"] + 1e-9 for v in cells.values())
        lines.append(f"| {r} | {np.mean(clean):.1%} | {np.mean(noisy):.1%} | {better} / {worse} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", nargs="+", default=[], help="bench_accuracy.py --work folders (one per seed)")
    parser.add_argument("--words", nargs="*", default=list(WORDS), choices=list(WORDS))
    parser.add_argument("--rules", nargs="+", default=["step", "mean2", "mean3", "min2", "min3"])
    parser.add_argument("--out", help="markdown table, and its rows as JSON beside it (default: print only)")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="score nothing: one table from earlier runs' rows (run in parallel)"
    )
    args = parser.parse_args()
    if "step" not in args.rules:
        args.rules.insert(0, "step")
    for name in args.rules:
        rule(name)
    if not args.work and not args.merge:
        raise SystemExit("give --work folders to score, or --merge earlier runs' JSON")
    rows = [row for path in args.merge or [] for row in json.loads(Path(path).read_text())]
    if args.merge:
        args.rules = list(dict.fromkeys(row["rule"] for row in rows))  # the merged runs' rules, step first
    elif not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    for folder in map(Path, args.work):
        seeds = sorted(int(p.name[4:]) for p in folder.glob("seed*") if p.name[4:].isdigit())
        if not seeds:
            raise SystemExit(f"{folder}: no seedN folders (a bench_accuracy.py --work folder?)")
        for seed in seeds:
            for label in args.words:
                rows += measure(folder, seed, label, args.rules)
    text = markdown(rows, args.rules, sys.argv[1:])
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
