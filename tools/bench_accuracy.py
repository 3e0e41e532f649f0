"""The development accuracy benchmark: few-shot on real speech from ../shared/data, one command.

    python tools/bench_accuracy.py [--words computer athena ...] [--k 5] [--seeds 0 1 2] [--out docs/]

For each wake word with real recordings (Mycroft Precise community data): train from K takes, test on
the rest, through the runtime (the daemon's code path) with wakeword.evaluate's streaming, event-level
protocol. Nothing a test uses is seen in training:
  - positives: K takes train, every other take of the word tests;
  - negatives never contain the phrase ("hey computer" is not a negative for "computer");
  - negative speech is split by speaker (Speech Commands) or by file (other wake words): one half may
    be passed to training as --negatives, the other half tests, with the word's near-miss recordings;
  - noise files are split too: training augments with one half, the 10 dB test condition uses the other.
Each seed draws other takes and trains another model: one seed's cell moves 10-25 points with the draw,
so with several seeds the table leads with each cell's mean over them (and its range).
Writes the table to docs/benchmarks.md (with date, machine and git revision) and the raw reports.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from wakeword.audio import SAMPLE_RATE, load_audio  # noqa: E402

WORDS = {  # manifest label -> phrase
    "computer": "computer",
    "athena": "athena",
    "amelia": "amelia",
    "hey_chatterbox": "hey chatterbox",
    "android": "android",
}
NEAR_MISSES = {"hey_chatterbox": ("a_cheddar_block", "you_better_talk")}
TRAIN_NOISE = ("pink_noise", "white_noise", "bg_noise")  # the rest of the noise files test


def is_train_half(clip: shared_data.Clip) -> bool:
    key = clip.speaker if clip.source.startswith("speech") else clip.path.name
    return zlib.crc32(key.encode()) % 2 == 0


def link_files(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):  # numbered: Speech Commands reuses file names across word folders
        (folder / f"{i:05d}_{f.name}").symlink_to(f)
    return folder


@dataclass
class WordSplit:
    """Which recordings of ../shared/data train and which test, for one wake word."""

    label: str
    phrase: str
    train_takes: list[Path]
    test_takes: list[Path]
    train_negatives: list[Path]
    test_negatives: list[shared_data.Clip]
    train_noise: list[Path]
    test_noise: list[Path]


def split_word(label: str, k: int, seed: int) -> WordSplit:
    clips = shared_data.manifest()
    takes = sorted((c for c in clips if c.label == label), key=lambda c: c.path.name)
    rng = np.random.default_rng(seed)
    chosen = {takes[i].path for i in rng.choice(len(takes), k, replace=False)}
    # Negatives are speech that does not say the phrase: other words, minus any that contain it
    # ("hey computer" says "computer"; a detector that fires on it is right) and minus Spanish.
    words = set(WORDS[label].split())
    speech = [
        c
        for c in clips
        if c.role in ("positive", "negative")
        and c.label not in (label, "ey_ordenador")
        and not words & set(c.label.split("_"))
    ]
    near = [c for c in speech if c.label in NEAR_MISSES.get(label, ())]
    others = [c for c in speech if c not in near]
    noise = [c.path for c in clips if c.role == "noise"]
    train_noise = [p for p in noise if any(t in str(p) for t in TRAIN_NOISE)]
    return WordSplit(
        label=label,
        phrase=WORDS[label],
        train_takes=sorted(chosen),
        test_takes=[c.path for c in takes if c.path not in chosen],
        train_negatives=[c.path for c in others if is_train_half(c)],
        test_negatives=[c for c in others if not is_train_half(c)] + near,
        train_noise=train_noise,
        test_noise=[p for p in noise if p not in train_noise],
    )


def one_recording(files: list[Path], folder: Path) -> Path:
    """The files joined into one FLAC (0.3 s between them), alone in `folder`: a podcast-like --negatives."""
    import soundfile as sf

    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([part for f in files for part in (load_audio(f), gap)])
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "talk.flac", audio, SAMPLE_RATE)
    return folder


def train_word(
    split: WordSplit,
    work: Path,
    seed: int,
    int8: bool = False,
    takes_only: bool = False,
    one_negative_file: bool = False,
    **overrides,
) -> tuple[Path, dict, float]:
    """Train (and export; int8 too if asked, calibrated on the training takes and negatives) from the
    split's K takes; returns the model folder, its card and the seconds (training and export).

    takes_only: as the README's `wakeword train PHRASE --clips takes/` does, with no recorded negative
    speech, noise or rooms: what a user who brings only their takes gets. one_negative_file: the same
    negative speech as one long recording instead of a folder of clips."""
    from wakeword.export import export_model
    from wakeword.train import TrainConfig, train

    base = work / split.label
    if takes_only:
        negatives = []
    elif one_negative_file:
        negatives = [one_recording(split.train_negatives, base / "negatives")]
    else:
        negatives = [link_files(split.train_negatives, base / "negatives")]
    config = TrainConfig(
        phrase=split.phrase,
        out=base / "model",
        clips=link_files(split.train_takes, base / "clips") if split.train_takes else None,
        negatives=negatives,
        noise=[] if takes_only else [link_files(split.train_noise, base / "noise")],
        rirs=[] if takes_only else [shared_data.DATA_DIR / "rir"],
        seed=seed,
        **overrides,
    )
    start = time.time()
    card = train(config)
    calibration = None
    if int8:  # the user's own audio, as `wakeword export --int8 --calibration` would get it
        files = [*split.train_takes, *split.train_negatives[:40]]
        calibration = np.concatenate([load_audio(p) for p in files])
    export_model(config.out, int8=int8, calibration_audio=calibration)
    return config.out, card, time.time() - start


def evaluate_word(model_dir: Path, split: WordSplit, seed: int, int8: bool = False, noisy: bool = True) -> list:
    """Both conditions (clean, noise at 10 dB; clean only if not noisy) through the runtime: EvalReports."""
    from wakeword.cli import runtime_scorer
    from wakeword.evaluate import evaluate_scorer

    scorer, model = runtime_scorer(str(model_dir), "CPUExecutionProvider", int8=int8)
    positives = [load_audio(p) for p in split.test_takes]
    negatives = [load_audio(c.path) for c in split.test_negatives]
    noise_audio = np.concatenate([load_audio(p) for p in split.test_noise])
    names = {
        "positive_names": [shared_data.relative(p) for p in split.test_takes],
        "negative_names": [shared_data.relative(c.path) for c in split.test_negatives],
    }
    return [
        evaluate_scorer(scorer, positives, negatives, split.phrase, model.threshold, noise_arg, snr, seed, **names)
        for noise_arg, snr in ((None, None), (noise_audio, 10.0))[: 2 if noisy else 1]
    ]


def run_word(
    label: str,
    k: int,
    work: Path,
    seed: int,
    int8: bool = False,
    overrides: dict | None = None,
    takes_only: bool = False,
    one_negative_file: bool = False,
) -> list[dict]:
    split = split_word(label, k, seed)
    model_dir, card, train_s = train_word(
        split, work, seed, int8=int8, takes_only=takes_only, one_negative_file=one_negative_file, **(overrides or {})
    )
    rows = []
    reports = [(r, "") for r in evaluate_word(model_dir, split, seed)]
    if int8:
        reports += [(r, ", int8") for r in evaluate_word(model_dir, split, seed, int8=True)]
    for report, graphs in reports:
        at = report.at_model_threshold or {}
        rows.append(
            {
                "word": split.phrase,
                "seed": seed,
                "condition": ("clean" if report.condition == "clean" else "noise 10 dB") + graphs,
                "k": k,
                "test_positives": report.positives,
                "negative_hours": round(report.negative_hours, 3),
                "frr_at_0.5_fa_per_hour": report.frr_at_fa["0.5"],
                "frr_at_1_fa_per_hour": report.frr_at_fa["1.0"],
                # Where the test's own 0.5 FA/h point is, beside where calibration put the threshold.
                "test_threshold_at_0.5_fa_per_hour": report.thresholds["0.5"],
                "threshold": at.get("threshold"),
                "frr_at_threshold": at.get("frr"),
                "fa_per_hour_at_threshold": at.get("fa_per_hour"),
                "train_seconds": round(train_s),
                "phase2_kept": (card.get("phase2") or {}).get("kept"),
                "validation_negative_hours": round(card["validation"].get("negative_hours", 0.0), 3),
                "validation_highest_negative": card["validation"].get("highest_negative_score"),
                "threshold_rule": card["validation"].get("threshold_rule"),
                # What decides the cell: the positives below the highest negative are its FRR.
                "highest_negatives": report.highest_negatives[:3],
                "lowest_positives": report.lowest_positives[:3],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def seed_summary(rows: list[dict]) -> list[str]:
    """Markdown lines: each word and condition's FRR at 0.5 FA/h, mean over the seeds, range, and each seed's."""
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"Mean over seeds {', '.join(map(str, seeds))} (each seed: other takes, another model, other streams):",
        "",
        "| word | condition | FRR @ 0.5 FA/h, mean | range | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|---|---:|---:|" + "---:|" * len(seeds),
    ]
    cells: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        cells.setdefault((r["word"], r["condition"]), {})[r["seed"]] = r["frr_at_0.5_fa_per_hour"]
    for (word, condition), by_seed in cells.items():
        values = list(by_seed.values())
        per_seed = " | ".join(f"{by_seed[s]:.1%}" if s in by_seed else "-" for s in seeds)
        lines.append(
            f"| {word} | {condition} | {np.mean(values):.1%} | {min(values):.1%}-{max(values):.1%} | {per_seed} |"
        )
    return [*lines, ""]


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    variant = f", recipe changed by {', '.join(args.set)}" if args.set else ""
    if args.takes_only:
        variant += ", trained from the takes alone (no recorded negatives, noise or rooms: --takes-only)"
    if args.one_negative_file:
        variant += ", the training negatives joined into one long recording (--one-negative-file)"
    if args.merge:
        variant += ", each seed run as its own process (`--seeds S --out DIR`) and the rows merged with `--merge`"
    lines = [
        "# Benchmarks",
        "",
        "## Few-shot on real speech (`tools/bench_accuracy.py`)",
        "",
        f"Run {datetime.date.today()} on {platform.machine()} ({platform.processor() or 'cpu'}), "
        f"git {shared_data.git_revision()}, recipe default, K = {args.k}, "
        f"seeds {' '.join(map(str, args.seeds))}{variant}. "
        f"Command: `{shared_data.shown_command('tools/bench_accuracy.py', sys.argv[1:])}`.",
        "Streaming, event-level (wakeword.evaluate): an event is a rising threshold crossing with a 2 s refractory "
        "merge; a positive counts if an event starts within [clip start, clip end + 0.5 s]. Negatives are the "
        "held-out half of the other speech in ../shared/data plus the word's near-miss recordings; with about "
        "1 h of negatives, 'FRR at <= 0.5 FA/h' means no false accept at all. In the noise condition each clip "
        "is first brought to the clips' median speech level, so that every clip is 10 dB above the noise "
        "(wakeword.evaluate.at_common_level).",
        "",
        *(seed_summary(rows) if len(args.seeds) > 1 else []),
        "'threshold' is the model's own (calibrated on held-aside speech, train.tail_fit); 'test's 0.5' is the "
        "threshold at which the test itself reaches 0.5 FA/h, known only after the fact.",
        "",
        "| word | seed | condition | test positives | negative h | FRR @ 0.5 FA/h | FRR @ 1 FA/h | threshold "
        "| test's 0.5 | FRR / FA/h at threshold | train s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['word']} | {r['seed']} | {r['condition']} | {r['test_positives']} | {r['negative_hours']:.2f} | "
            f"{r['frr_at_0.5_fa_per_hour']:.1%} | {r['frr_at_1_fa_per_hour']:.1%} | {r['threshold']:.3f} | "
            f"{r['test_threshold_at_0.5_fa_per_hour']:.3f} | "
            f"{r['frr_at_threshold']:.1%} / {r['fa_per_hour_at_threshold']:.2f} | {r['train_seconds']} |"
        )
    lines += [
        "",
        "What decides each cell: its FRR @ 0.5 FA/h is the share of test positives whose peak score is below "
        "the highest-scoring test negative (about an hour of negatives: no false accept allowed).",
        "",
        "| word | seed | condition | highest-scoring negatives | lowest-scoring positives |",
        "|---|---:|---|---|---|",
    ]
    for r in rows:
        if "highest_negatives" in r:
            cells = [
                ", ".join(f"{c['score']:.4f} `{c['clip']}`" for c in r[k])
                for k in ("highest_negatives", "lowest_positives")
            ]
            lines.append(f"| {r['word']} | {r['seed']} | {r['condition']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def parse_overrides(pairs: list[str]) -> dict:
    """--set KEY=VALUE pairs -> TrainConfig overrides; VALUE as JSON (true, 0.5, 400), else a string."""
    from wakeword.train import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--set {pair}: expected KEY=VALUE with KEY a TrainConfig field")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def write_results(rows: list[dict], args: argparse.Namespace, done: bool) -> None:
    """benchmarks.partial.{json,md} after every word, so that a stopped run keeps what it measured
    without replacing the last complete table; benchmarks.{json,md} at the end."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "benchmarks" if done else "benchmarks.partial"
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(rows, args))
    if done:
        for suffix in (".json", ".md"):
            (out / f"benchmarks.partial{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", nargs="*", default=list(WORDS), choices=list(WORDS))
    parser.add_argument("--k", type=int, default=5, help="training takes per word")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed; the table averages them")
    parser.add_argument("--int8", action="store_true", help="also export and evaluate the int8 graphs")
    parser.add_argument(
        "--takes-only",
        action="store_true",
        help="train from the takes alone (no recorded negatives, noise or rooms), as the README's train command",
    )
    parser.add_argument(
        "--one-negative-file",
        action="store_true",
        help="pass the training negatives as one long recording (a podcast) instead of a folder of clips",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="a recipe variant (TrainConfig)")
    parser.add_argument("--out", help="where the table goes (default docs/; a --set variant must name its own)")
    parser.add_argument("--work", help="train in this folder and keep it (models, cards) instead of a temporary one")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="train nothing: one table from the rows of earlier runs' benchmarks.json (seeds run in parallel); "
        "give the flags those runs had (--set, --takes-only, --k)",
    )
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    if (args.set or args.takes_only or args.one_negative_file) and args.out is None:
        raise SystemExit("--set, --takes-only and --one-negative-file measure a variant: give it its own --out")
    args.out = args.out or str(ROOT / "docs")
    if args.merge:
        rows = [row for path in args.merge for row in json.loads(Path(path).read_text())]
        if any(row["k"] != args.k for row in rows):
            raise SystemExit(f"--merge: the rows were not all trained from K = {args.k} takes")
        args.seeds = sorted({row["seed"] for row in rows})
        write_results(rows, args, done=True)
        print(markdown(rows, args))
        return
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    rows = []
    with shared_data.work_folder(args.work, "wakeword-bench-") as work:
        for seed in args.seeds:
            for label in args.words:
                rows += run_word(
                    label,
                    args.k,
                    work / f"seed{seed}",
                    seed,
                    args.int8,
                    overrides,
                    args.takes_only,
                    args.one_negative_file,
                )
                write_results(rows, args, done=False)
    write_results(rows, args, done=True)
    print(markdown(rows, args))


if __name__ == "__main__":
    main()
