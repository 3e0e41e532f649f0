"""Which transfer strategy wins at which amount of real data: FRR at 0.5 FA/h against K real takes.

    python tools/bench_strategies.py [--word athena] [--k 0 3 5 10 20 50] [--strategies features head top full]
                                     [--out docs/]

For each K (0 = synthetic voices only; the CLI needs 3 takes or none, so K = 1 and 2 are not run)
and each strategy, train on the development benchmark's split (tools/bench_accuracy.py: K takes of
the word train, the other takes test; negatives split by speaker or file) and evaluate the clean
condition through the runtime. For one K, all strategies see the same data (features come from the
cache after the first; 'full' featurizes again, with a fresh augmentation draw, where the cache holds
no log-mel for an example yet). After each cell, writes docs/strategies.md, docs/strategies.json and
docs/strategies.png (--merge: keeping the other cells of an earlier run); the 'auto' rule in
wakeword/train.py (choose_strategy, phase2_guarded) is read off this table.
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


READING_MARK = "<!-- reading: kept when the table is rewritten -->"


def cell(rows: list[dict], k: int, strategy: str) -> str:
    row = next((r for r in rows if r["k"] == k and r["strategy"] == strategy), None)
    if row is None:
        return "not run"
    at = row["frr_at_threshold"]
    at_text = f"{at:.1%}" if at is not None else "n/a"
    return f"{row['frr_at_0.5_fa_per_hour']:.1%} / {at_text} ({row['train_seconds']} s)"


def write_report(rows: list[dict], out: Path, seed: int) -> None:
    """strategies.json/.md/.png from every row so far: called after each cell, so a killed run keeps what finished.

    The text after READING_MARK in an existing strategies.md (the hand-written reading of the table) is kept."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "strategies.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, out / "strategies.png", rows[0]["word"])
    order = ["features", "head", "top", "full", "auto"]
    strategies = sorted({r["strategy"] for r in rows}, key=lambda s: (order.index(s) if s in order else 99, s))
    ks = sorted({r["k"] for r in rows})
    commands = sorted({r.get("command", "") for r in rows if r.get("command")})
    lines = [
        "# Transfer strategies against the amount of real data (`tools/bench_strategies.py`)",
        "",
        f"Run {datetime.date.today()} on {platform.machine()}, git {shared_data.git_revision()}, recipe "
        f"default, seed {seed}. "
        + ("Commands: " if len(commands) > 1 else "Command: ")
        + ", ".join(f"`{c}`" for c in commands)
        + ". Clean condition, streaming event-level (see benchmarks.md); K = 0 is synthetic voices only; "
        "K = 1 and 2 are not run (training takes 3 real takes or none). Each cell: FRR at 0.5 FA/h / FRR at "
        "the model's own threshold (training + export wall seconds). Plot: `strategies.png`.",
        "",
        "| K | " + " | ".join(strategies) + " |",
        "|---:|" + "---|" * len(strategies),
    ]
    for k in ks:
        lines.append(f"| {k} | " + " | ".join(cell(rows, k, s) for s in strategies) + " |")
    reading = ""
    md = out / "strategies.md"
    if md.exists() and READING_MARK in md.read_text():
        reading = md.read_text().split(READING_MARK, 1)[1]
    md.write_text("\n".join(lines) + "\n\n" + READING_MARK + (reading or "\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="athena", choices=list(WORDS))
    parser.add_argument("--k", nargs="+", type=int, default=[0, 3, 5, 10, 20, 50])
    parser.add_argument("--strategies", nargs="+", default=["features", "head", "top", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other cells of OUT/strategies.json (same word, recipe and seed); re-run cells replace theirs",
    )
    args = parser.parse_args()
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    if any(k in (1, 2) for k in args.k):
        raise SystemExit("K = 1 or 2: training takes 3 real takes or none (synthetic only)")
    out = Path(args.out)
    command = shared_data.shown_command("tools/bench_strategies.py", sys.argv[1:])
    rows: list[dict] = []
    if args.merge and (out / "strategies.json").exists():
        rows = [
            r
            for r in json.loads((out / "strategies.json").read_text())
            if r.get("word") == WORDS[args.word] and r.get("recipe") == "default" and r.get("seed") == args.seed
        ]
    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-strategies-"))
    try:
        for k in args.k:
            split = split_word(args.word, k, args.seed)
            for strategy in args.strategies:
                cpu_before = time.process_time()
                model_dir, card, seconds = train_word(split, work / f"k{k}_{strategy}", args.seed, strategy=strategy)
                cpu_seconds = time.process_time() - cpu_before
                (clean,) = evaluate_word(model_dir, split, args.seed, noisy=False)
                row = {
                    "word": split.phrase,
                    "k": k,
                    "strategy": strategy,
                    "strategy_trained": card["strategy"],
                    "frr_at_0.5_fa_per_hour": clean.frr_at_fa["0.5"],
                    "frr_at_1_fa_per_hour": clean.frr_at_fa["1.0"],
                    "frr_at_threshold": (clean.at_model_threshold or {}).get("frr"),
                    "fa_per_hour_at_threshold": (clean.at_model_threshold or {}).get("fa_per_hour"),
                    "negative_hours": round(clean.negative_hours, 3),
                    "test_positives": clean.positives,
                    "train_seconds": round(seconds),
                    "train_cpu_seconds": round(cpu_seconds),
                    "phase_seconds": card.get("phase_seconds"),
                    "recipe": "default",
                    "seed": args.seed,
                    "command": command,
                }
                rows = [r for r in rows if not (r["k"] == k and r["strategy"] == strategy)] + [row]
                rows.sort(key=lambda r: (r["k"], r["strategy"]))
                print(json.dumps(row), flush=True)
                write_report(rows, out, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"took {time.process_time():.0f} s CPU")


if __name__ == "__main__":
    main()
