"""Which transfer strategy wins at which amount of real data: FRR at 0.5 FA/h against K real takes.

    python tools/bench_strategies.py [--word athena] [--k 0 3 5 10 20 50] [--strategies features head top]
                                     [--quick] [--out docs/]

For each K (0 = synthetic voices only; the CLI needs 3 takes or none, so K = 1 and 2 are not run)
and each strategy, train on the development benchmark's split (tools/bench_accuracy.py: K takes of
the word train, the other takes test; negatives split by speaker or file) and evaluate the clean
condition through the runtime. For one K, all strategies see the same data (features come from the
cache after the first). Writes docs/strategies.md, docs/strategies.json and docs/strategies.png; the
'auto' rule in wakeword/train.py (choose_strategy) is read off this table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import WORDS, evaluate_word, split_word, train_word  # noqa: E402


def plot(rows: list[dict], path: Path, word: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in sorted({r["strategy"] for r in rows}):
        points = sorted((r["k"], r["frr_at_0.5_fa_per_hour"]) for r in rows if r["strategy"] == strategy)
        ax.plot([k for k, _ in points], [f * 100 for _, f in points], marker="o", label=strategy)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("real takes K (0: synthetic voices only)")
    ax.set_ylabel("FRR at 0.5 FA/h (%)")
    ax.set_title(f"'{word}': transfer strategy against data")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="athena", choices=list(WORDS))
    parser.add_argument("--k", nargs="+", type=int, default=[0, 3, 5, 10, 20, 50])
    parser.add_argument("--strategies", nargs="+", default=["features", "head", "top"])
    parser.add_argument("--quick", action="store_true", help="the quick training recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    if any(k in (1, 2) for k in args.k):
        raise SystemExit("K = 1 or 2: training takes 3 real takes or none (synthetic only)")
    rows = []
    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-strategies-"))
    try:
        for k in args.k:
            split = split_word(args.word, k, args.seed)
            for strategy in args.strategies:
                model_dir, _card, seconds = train_word(
                    split, work / f"k{k}_{strategy}", args.quick, args.seed, strategy=strategy
                )
                (clean,) = evaluate_word(model_dir, split, args.seed, noisy=False)
                rows.append(
                    {
                        "word": split.phrase,
                        "k": k,
                        "strategy": strategy,
                        "frr_at_0.5_fa_per_hour": clean.frr_at_fa["0.5"],
                        "frr_at_1_fa_per_hour": clean.frr_at_fa["1.0"],
                        "frr_at_threshold": (clean.at_model_threshold or {}).get("frr"),
                        "fa_per_hour_at_threshold": (clean.at_model_threshold or {}).get("fa_per_hour"),
                        "negative_hours": round(clean.negative_hours, 3),
                        "test_positives": clean.positives,
                        "train_seconds": round(seconds),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "strategies.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, out / "strategies.png", rows[0]["word"])
    lines = [
        "# Transfer strategies against the amount of real data (`tools/bench_strategies.py`)",
        "",
        f"Run {datetime.date.today()} on {platform.machine()}, git {shared_data.git_revision()}, recipe "
        f"{'quick' if args.quick else 'default'}, seed {args.seed}. Command: "
        f"`{shared_data.shown_command('tools/bench_strategies.py', sys.argv[1:])}`. "
        "Clean condition, streaming event-level (see benchmarks.md); K = 0 is synthetic voices only. "
        "Plot: `strategies.png`.",
        "",
        "| K | " + " | ".join(f"{s}: FRR @ 0.5 FA/h / at threshold" for s in args.strategies) + " |",
        "|---:|" + "---|" * len(args.strategies),
    ]
    for k in args.k:
        cells = []
        for s in args.strategies:
            r = next(r for r in rows if r["k"] == k and r["strategy"] == s)
            cells.append(f"{r['frr_at_0.5_fa_per_hour']:.1%} / {r['frr_at_threshold']:.1%} ({r['train_seconds']} s)")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    (out / "strategies.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"took {time.process_time():.0f} s CPU")


if __name__ == "__main__":
    main()
