"""The `wakeword` command line. Each subcommand is one small function; heavy imports stay inside them
so that `wakeword --help` and the torch-free commands start fast and work without the train extra."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wakeword import __version__
from wakeword.errors import WakewordError

log = logging.getLogger("wakeword")

DEMO_PHRASE = "hey nova"


def require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise WakewordError(
            f"'wakeword {command}' needs PyTorch: pip install 'wakeword[train]' (see README, Install)"
        ) from None


def refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise WakewordError(f"{path} already exists; pass --force to overwrite it")


def cmd_embed(args: argparse.Namespace) -> int:
    """Embeddings (T x 96, one per 80 ms) of each file: the encoder as a fixed feature extractor."""
    from wakeword.audio import SAMPLE_RATE, load_audio

    out = Path(args.out)
    if len(args.audio) > 1 and out.suffix != ".npz":
        raise WakewordError(f"{len(args.audio)} input files need an .npz output (one array per file), not {out}")
    if out.suffix not in (".npy", ".npz"):
        raise WakewordError(f"--out must end in .npy or .npz, not {out.name}")
    refuse_overwrite(out, args.force)
    clips = {name: load_audio(name) for name in args.audio}  # every file checked before any work
    require_torch("embed")
    from wakeword.encoder import TorchEncoder
    from wakeword.frontend import embed_audio

    encode = TorchEncoder()
    embeddings = {}
    for name, audio in clips.items():
        embeddings[name] = embed_audio(audio, encode)
        steps, dims = embeddings[name].shape
        print(f"{name}: {len(audio) / SAMPLE_RATE:.2f} s -> {steps} embeddings x {dims}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, next(iter(embeddings.values())))
    else:
        np.savez(out, **embeddings)
    print(f"wrote {out}")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    """Record (or import with --from) takes of the phrase, check each, write trimmed copies."""
    from wakeword import enroll
    from wakeword.phrases import describe_pronunciation, normalize_phrase

    args.phrase = normalize_phrase(args.phrase)
    print(f"phrase: {describe_pronunciation(args.phrase)}")
    out = Path(args.out)
    if args.from_dir:
        takes = enroll.import_takes(args.phrase, Path(args.from_dir), out)
    else:
        takes = enroll.record_takes(args.phrase, out, args.count, args.device, args.seconds)
    good = [t for t in takes if t.ok]
    for take in takes:
        status = (
            f"ok  {take.speech_seconds:4.2f} s  {take.speech_dbfs:4.0f} dBFS" if take.ok else f"refused: {take.reason}"
        )
        print(f"{take.source}: {status}")
    print(f"{len(good)} of {len(takes)} takes usable; trimmed copies and {enroll.MANIFEST} in {out}")
    if len(good) < 3:
        print("wakeword: warning: training wants at least 3 good takes", file=sys.stderr)
    return 0 if good else 1


def cmd_devices(args: argparse.Namespace) -> int:
    """List input devices."""
    from wakeword.microphone import MicrophoneError, input_devices

    devices = input_devices()
    if not devices:
        raise MicrophoneError("no input device found (is a microphone connected and the audio server running?)")
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark} {d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']} Hz)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Few-shot fine-tuning of the pretrained encoder for one phrase."""
    require_torch("train")
    from wakeword.phrases import describe_pronunciation, normalize_phrase
    from wakeword.train import ADAPT_RECIPE, TrainConfig, resume_config, train

    for folder in [args.clips, *args.negatives, *args.noise, *args.rirs, *args.feedback]:
        if folder and not Path(folder).is_dir():
            raise WakewordError(f"{folder}: not a folder")
    feedback = feedback_folders([Path(p) for p in args.feedback])
    recipe_before: dict | None = None
    if args.resume:
        out = Path(args.resume)
        config = resume_config(
            out,
            clips=Path(args.clips) if args.clips else None,
            negatives=[Path(p) for p in args.negatives] or None,
            noise=[Path(p) for p in args.noise] or None,
            rirs=[Path(p) for p in args.rirs] or None,
            device=args.device,
            cache_dir=Path(args.cache) if args.cache else None,
        )
        config.feedback = feedback_folders(config.feedback, previous=True)
        config.feedback += [p for p in feedback if p not in config.feedback]
        if feedback:  # a short run from the model as it is, on cached features (docs/adapt.md)
            # A 'features' model has a linear head: it stays one (it is retrained the way it was made).
            recipe = {k: v for k, v in ADAPT_RECIPE.items() if not (k == "strategy" and config.strategy == "features")}
            recipe_before = {key: getattr(config, key) for key in recipe}
            for key, value in recipe.items():
                setattr(config, key, value)
        if args.phrase and normalize_phrase(args.phrase) != config.phrase:
            raise WakewordError(f"{out} was trained for '{config.phrase}', not '{normalize_phrase(args.phrase)}'")
        print(f"resuming {out}: its files move to {out / 'previous'} when the new model is saved")
    else:
        if not args.phrase:
            raise WakewordError("give the phrase to train (or --resume MODEL_DIR)")
        phrase = normalize_phrase(args.phrase)
        out = Path(args.out or phrase.replace(" ", "_"))
        refuse_overwrite(out, args.force)
        config = TrainConfig(
            phrase=phrase,
            out=out,
            clips=Path(args.clips) if args.clips else None,
            negatives=[Path(p) for p in args.negatives],
            noise=[Path(p) for p in args.noise],
            rirs=[Path(p) for p in args.rirs],
            device=args.device,
            target_fa_per_hour=args.target_fa_per_hour,
            head=args.head,
            strategy=args.strategy,
            commercial_safe=not args.all_voices,
            seed=args.seed,
            cache_dir=Path(args.cache) if args.cache else None,
            feedback=feedback,
        )
    print(f"phrase: {describe_pronunciation(config.phrase)}")
    card = train(config)
    if recipe_before is not None:
        card = note_adaptation(out, card, recipe_before)
    from wakeword.export import export_model

    export_model(out)
    print_training_summary(card, out)
    return 0


def feedback_folders(folders: list[Path], previous: bool = False) -> list[Path]:
    """Keep folders checked (KeepError if one is not), each once. A folder an earlier run learnt from
    (`previous`) that is gone now is left out with a warning: its lessons stay in the weights."""
    from wakeword.feedback import check_folder

    out: list[Path] = []
    for folder in folders:
        if previous and not folder.is_dir():
            print(
                f"wakeword: warning: {folder} (feedback of an earlier run) is gone; training without it",
                file=sys.stderr,
            )
            continue
        check_folder(folder)
        if folder not in out:
            out.append(folder)
    return out


def note_adaptation(out: Path, card: dict, recipe_before: dict) -> dict:
    """Card of an adaptation run: its short recipe under "adaptation", and the model's own recipe back in
    "config", so a later `--resume` (say, with more takes) trains the full way again."""
    import json

    from wakeword.train import CARD

    card["adaptation"] = {"recipe": {k: card["config"][k] for k in recipe_before}, **card["data"].get("feedback", {})}
    card["config"].update(recipe_before)
    (out / CARD).write_text(json.dumps(card, indent=2, default=float) + "\n")
    return card


def print_training_summary(card: dict, out: Path) -> None:
    data, val = card["data"], card.get("validation") or {}
    p1, p2 = card["phase1"], card.get("phase2")
    lines = [
        f"trained '{card['phrase']}' ({card['strategy']} strategy, {card['head']} head) in "
        f"{card['training_seconds']:.0f} s on {card['device']}",
        f"  data: {data['user_clips']} of your takes, {data['positive_voice_configs']} synthetic voice configs "
        f"({data['positive_speakers']} speakers), {data['near_miss_phrases']} near-miss phrases, "
        f"{data['train_examples']} training / {data['val_examples']} validation examples",
        f"  phase 1 (frozen encoder): validation recall {p1['best_val_recall_at_0.5pct_fpr']:.3f}",
    ]
    if "negative_recordings" in data:
        minutes = data["negative_recording_minutes"]
        recorded = (
            f"{data['negative_recordings']} files, {minutes:.1f} min"
            if data["negative_recordings"]
            else "none: expect false accepts on real talk (docs/takes_only.md)"
        )
        lines.insert(2, f"  recorded everyday speech (--negatives): {recorded}")
    if p2:
        kept = "kept" if p2.get("kept") else "not kept (no gain)"
        lines.append(f"  phase 2 (top fine-tuned): validation recall {p2['best_val_recall_at_0.5pct_fpr']:.3f}, {kept}")
    if val:
        lines.append(
            f"  threshold {card['threshold']:.3f}: validation FRR {val.get('frr_at_threshold', float('nan')):.1%}, "
            f"{val.get('fa_per_hour_at_threshold', float('nan')):.2f} FA/h on {val['negative_hours'] * 60:.1f} min "
            "of held-aside negatives"
        )
        missed = val.get("missed_at_threshold")  # cards from before it was split: absent
        if missed:
            parts = [f"{origin} {m['missed']} of {m['clips']}" for origin, m in missed.items()]
            lines.append(f"    missed at the threshold: {', '.join(parts)}")
            if missed.get("your held-out takes", {}).get("missed"):
                # The one check on the user's own voice failed: say what to do rather than leave a silent model.
                lines.append(
                    "    a take of yours scores below the threshold: record more takes (wakeword enroll) and train "
                    "again, or try a lower --threshold with 'wakeword listen'"
                )
    if data.get("feedback"):
        fb = data["feedback"]
        lines.append(
            f"  feedback: {fb['false_accepts']} false accepts, {fb['true_detections']} confirmed detections, "
            f"{fb['ambient_snippets']} ambient snippets ({fb['unlabelled']} detections not marked, left out)"
        )
    lines += [f"  files: {out}/ (card.json, model.pt, det.png)", f"  listen: wakeword listen {out}"]
    print("\n".join(lines))


def cmd_export(args: argparse.Namespace) -> int:
    """ONNX graphs for the torch-free runtime (also run at the end of training)."""
    require_torch("export")
    from wakeword.export import export_model

    calibration = None
    if args.calibration:
        from wakeword.audio import load_audio

        calibration = np.concatenate([load_audio(p) for p in args.calibration])
    if args.target == "embedded":
        from wakeword.bundle import export_bundle

        if not args.out:
            raise WakewordError("--target embedded needs --out BUNDLE_DIR")
        refuse_overwrite(Path(args.out), args.force)
        if calibration is not None and args.quantization != "static":
            print("wakeword: warning: --calibration only matters with --quantization static", file=sys.stderr)
        report = export_bundle(
            Path(args.model), Path(args.out), calibration_audio=calibration, quantization=args.quantization
        )
        for name, size in report["files"].items():
            print(f"{Path(args.out) / name}: {size / 1024:.0f} KB")
        return 0
    info = export_model(Path(args.model), int8=args.int8, calibration_audio=calibration)
    if args.server:
        from wakeword.export import export_server

        info["files"][export_server(Path(args.model)).name] = None
    for name in info["files"]:
        size = (Path(args.model) / name).stat().st_size
        print(f"{Path(args.model) / name}: {size / 1024:.0f} KB")
    return 0


def file_scores(detector, path: str, chunk: int = 1280) -> tuple[list, np.ndarray]:
    """Stream a file through the detector in 80 ms chunks, exactly as the microphone daemon feeds it."""
    from wakeword.audio import load_audio

    audio = load_audio(path)
    detections, rows = [], []
    for start in range(0, len(audio), chunk):
        found, scores = detector.process_scores(audio[start : start + chunk])
        detections += found
        rows.append(scores)
    return detections, np.concatenate(rows) if rows else np.zeros((0, len(detector.models)), np.float32)


def make_detector(args: argparse.Namespace):
    from wakeword.runtime import Detector

    return Detector([args.model, *args.also], providers=args.providers, threshold=args.threshold, int8=args.int8)


def cmd_detect(args: argparse.Namespace) -> int:
    """One JSON line per detection: file, phrase, start, end, score."""
    import json

    for path in args.audio:
        detector = make_detector(args)  # a fresh stream per file
        detections, _ = file_scores(detector, path)
        for d in detections:
            print(json.dumps({"file": path, **d.as_dict()}), flush=True)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """time,score for every 80 ms step (one column per model), and the smoothed score a model's decision
    compares with its threshold (a decision_ column) for a model whose card smooths."""
    from wakeword.evaluate import smooth_scores

    out = Path(args.out)
    refuse_overwrite(out, args.force)
    detector = make_detector(args)
    _, scores = file_scores(detector, args.audio)
    names = [m.phrase.replace(" ", "_") for m in detector.models]
    columns = [(f"score_{n}", scores[:, j]) for j, n in enumerate(names)]
    for j, (n, m) in enumerate(zip(names, detector.models, strict=True)):
        if m.smoothing > 1:
            columns.append((f"decision_{n}", smooth_scores(scores[:, j], m.smoothing)))
    with open(out, "w") as f:
        f.write("time," + ",".join(name for name, _ in columns) + "\n")
        for step in range(len(scores)):
            f.write(f"{(step + 1) * 0.08:.2f}," + ",".join(f"{c[step]:.6f}" for _, c in columns) + "\n")
    print(f"wrote {out}: {len(scores)} steps")
    return 0


def runtime_scorer(model: str, providers: str = "auto", int8: bool = False, raw: bool = False):
    """A Scorer (wakeword.evaluate) that streams audio through the runtime in 80 ms chunks, as the daemon
    does, and returns the score the model's decision sees: smoothed as its card says (raw: the network's)."""
    from wakeword.evaluate import smooth_scores
    from wakeword.runtime import Detector, WakeWordModel

    loaded = WakeWordModel.load(model, providers, int8)
    smoothing = 1 if raw else loaded.smoothing

    def score(audio: np.ndarray) -> np.ndarray:
        detector = Detector([loaded])
        rows = [detector.process_scores(audio[i : i + 1280])[1] for i in range(0, len(audio), 1280)]
        return smooth_scores(np.concatenate(rows)[:, 0] if rows else np.zeros(0, np.float32), smoothing)

    return score, loaded


def cmd_eval(args: argparse.Namespace) -> int:
    """Streaming, event-level FRR and FA/h of a model on folders of positives and negatives."""
    from wakeword.dataset import read_audio_dirs
    from wakeword.evaluate import evaluate_scorer, write_report

    refuse_overwrite(Path(args.out) / "report.json", args.force)  # before the minutes of scoring
    scorer, model = runtime_scorer(args.model, args.providers, args.int8)
    positive_sources = read_audio_dirs(args.positives, "positive", 1)
    negative_sources = read_audio_dirs(args.negatives, "speech", 0)
    if not positive_sources or not negative_sources:
        raise WakewordError("eval needs audio files in both --positives and --negatives folders")
    positives, negatives = [s.audio for s in positive_sources], [s.audio for s in negative_sources]
    names = {
        "positive_names": [s.origin for s in positive_sources],
        "negative_names": [s.origin for s in negative_sources],
    }
    noise = None
    if args.noise:
        noise = np.concatenate([s.audio for s in read_audio_dirs(args.noise, "noise", 0)])
    reports = [evaluate_scorer(scorer, positives, negatives, model.phrase, model.threshold, **names)]
    if noise is not None:
        reports.append(
            evaluate_scorer(scorer, positives, negatives, model.phrase, model.threshold, noise, args.snr, **names)
        )
    out = Path(args.out)
    write_report(reports, out)
    for r in reports:
        at = r.at_model_threshold or {}
        print(
            f"{r.name} [{r.condition}]: FRR {r.frr_at_fa['0.1']:.1%} / {r.frr_at_fa['0.5']:.1%} / "
            f"{r.frr_at_fa['1.0']:.1%} at <= 0.1 / 0.5 / 1 FA/h; at threshold {at.get('threshold', 0):.3f}: "
            f"FRR {at.get('frr', 0):.1%}, {at.get('fa_per_hour', 0):.2f} FA/h; {r.negative_hours:.2f} h of negatives"
        )
        worst = r.highest_negatives[0]
        print(f"  highest-scoring negative: {worst['score']:.4f} {worst['clip']} (more in report.md)")
    print(f"report: {out}/report.md, report.json, det.png")
    return 0


def add_listen_arguments(p: argparse.ArgumentParser) -> None:
    from wakeword.listen import add_arguments  # the daemon owns its options

    add_arguments(p)


def cmd_listen(args: argparse.Namespace) -> int:
    """The live microphone daemon (wakeword.listen)."""
    from wakeword.listen import run

    return run(args)


def cmd_feedback(args: argparse.Namespace) -> int:
    """List what `wakeword listen --keep DIR` kept; mark detections true (the phrase) or false."""
    import json

    from wakeword import feedback

    folder = Path(args.folder)
    marks = [(ref, label) for ref, label in args.mark]
    marks += [(ref, "false") for ref in args.false_ids] + [(ref, "true") for ref in args.true_ids]
    if args.all_label:
        marks += [(d.id, args.all_label) for d in feedback.unlabelled(folder)]
    if args.interactive and not sys.stdin.isatty():
        raise WakewordError("--interactive needs a terminal; in scripts use --mark ID true|false or --all false")
    marked = feedback.mark(folder, marks) if marks else []
    if args.interactive:
        marked += review_detections(folder)
    detections = feedback.read_detections(folder)
    shown = detections[-args.limit :] if args.limit > 0 else detections
    if args.json:
        report = {
            "folder": str(folder),
            "marked": [d.as_dict() for d in marked],
            "summary": feedback.summary(folder),
            "detections": [d.as_dict() for d in shown],
        }
        print(json.dumps(report, indent=1))
        return 0
    for d in marked:
        print(f"{d.id}: {d.label or 'unmarked'}")
    if args.all_label and not marks:
        print("no unmarked detections with audio")
    if not (marks or args.interactive):
        if detections:
            print(feedback.table(shown))
        counts = feedback.summary(folder)
        print(
            f"{counts['detections']} detection(s) kept: {counts['true']} true, {counts['false']} false, "
            f"{counts['unlabelled']} not marked; {counts['ambient_snippets']} ambient snippet(s)"
        )
    return 0


def review_detections(folder: Path) -> list:
    """Ask about each unmarked detection in turn; each answer is written at once (quitting keeps them)."""
    from wakeword import feedback

    marked = []
    todo = feedback.unlabelled(folder)
    for i, d in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {d.id}  {d.record.get('phrase', '')}  score {d.record.get('score', '?')}")
        while True:
            try:
                answer = input("  was the phrase said? [y]es [n]o [p]lay [s]kip [q]uit: ").strip().lower()[:1]
            except EOFError:
                answer = "q"
            if answer == "p":
                play_clip(feedback.load_clip(d))
                continue
            if answer in ("y", "n"):
                marked += feedback.mark(folder, [(d.id, "true" if answer == "y" else "false")])
            if answer in ("y", "n", "s", "q"):
                break
        if answer == "q":
            break
    return marked


def play_clip(audio: np.ndarray) -> None:
    from wakeword.audio import SAMPLE_RATE
    from wakeword.microphone import sounddevice

    try:
        sd = sounddevice()
        sd.play(audio, SAMPLE_RATE)
        sd.wait()
    except Exception as exc:  # no speaker here is no reason to stop the review
        print(f"  cannot play it here ({exc}); the file is in the keep folder's detections/")


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on a bundled default: synthesise, train, export, then detect in a test recording."""
    require_torch("demo")
    from wakeword.demo import run_demo

    return run_demo(args.phrase, Path(args.out), force=args.force)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wakeword",
        description="Few-shot wake-word detection by transfer learning on Google's speech_embedding encoder.",
    )
    parser.add_argument("--version", action="version", version=f"wakeword {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("embed", help="write the encoder's embeddings (T x 96, one per 80 ms) of audio files")
    p.add_argument("audio", nargs="+", help="audio files (any rate, mono or stereo; WAV, FLAC, OGG, MP3)")
    p.add_argument("--out", required=True, help="EMB.npy for one file, EMB.npz for several (keyed by path)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("enroll", help="record (or import) takes of your phrase, checked and trimmed")
    p.add_argument("phrase", help="the wake phrase, e.g. 'hey nova'")
    p.add_argument("--out", required=True, help="folder for the takes, their trimmed copies and enroll.json")
    p.add_argument("--count", type=int, default=8, help="takes to record (default 8)")
    p.add_argument("--from", dest="from_dir", help="import existing recordings from this folder instead of recording")
    p.add_argument("--device", help="input device index or name (see 'wakeword devices')")
    p.add_argument("--seconds", type=float, default=3.0, help="recording length per take (default 3 s)")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("devices", help="list microphones")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("train", help="train a wake word from a few takes (or synthetic voices only)")
    p.add_argument("phrase", nargs="?", help="the wake phrase, e.g. 'hey nova' (optional with --resume)")
    p.add_argument("--clips", help="folder of your takes (from 'wakeword enroll'); omit for synthetic-only")
    p.add_argument("--resume", metavar="MODEL_DIR", help="train MODEL_DIR again from its weights and cache")
    p.add_argument("--negatives", nargs="*", default=[], help="folders of real speech that is NOT the phrase")
    p.add_argument("--noise", nargs="*", default=[], help="folders of background noise recordings")
    p.add_argument("--rirs", nargs="*", default=[], help="folders of room impulse responses")
    p.add_argument(
        "--feedback",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of 'wakeword listen --keep DIR' (repeatable): detections marked false become negatives, "
        "marked true positives, ambient snippets negatives; with --resume, a short adaptation run",
    )
    p.add_argument("--out", help="model folder (default: the phrase with underscores)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--target-fa-per-hour", type=float, default=0.5, help="false accepts per hour to calibrate for")
    p.add_argument("--head", default="conv", choices=["conv", "gru"], help="temporal head (default conv)")
    p.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "features", "head", "top", "full"],
        help="features: frozen encoder + logistic regression; head: frozen encoder + temporal head; "
        "top: + the encoder's top layers fine-tuned; full: + every encoder layer fine-tuned, pulled toward the "
        "pretrained weights (minutes more on CPU; its encoder bottom is its own, so at run time it is computed "
        "apart from other wake words'); auto: chosen from the number of takes (default; see docs/strategies.md)",
    )
    p.add_argument("--all-voices", action="store_true", help="also use non-commercial voices (MBROLA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="feature/synthesis cache folder (default ~/.cache/wakeword)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a trained model to ONNX for the runtime (--int8 for boards)")
    p.add_argument("model", help="model folder made by 'wakeword train'")
    p.add_argument("--int8", action="store_true", help="also write int8 graphs, calibrated on audio")
    p.add_argument(
        "--server", action="store_true", help="also write server.onnx: many streams at once (wakeword.server)"
    )
    p.add_argument("--calibration", nargs="*", help="audio files for int8 calibration (default: synthesised speech)")
    p.add_argument(
        "--target",
        default="desktop",
        choices=["desktop", "embedded"],
        help="embedded: an int8 bundle with a numpy + onnxruntime runner, written to --out",
    )
    p.add_argument("--out", help="bundle folder for --target embedded")
    p.add_argument(
        "--quantization",
        default="weights",
        choices=["weights", "static"],
        help="embedded: int8 weights computed in fp32 (default; same scores on every CPU) or static int8 "
        "activations calibrated on audio",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out bundle")
    p.set_defaults(func=cmd_export)

    for name, helptext in (
        ("detect", "print a JSON line per detection in audio files"),
        ("score", "write the score of every 80 ms step of a file to CSV"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("model", help="model folder (made by 'wakeword train')")
        p.add_argument("audio", nargs="+" if name == "detect" else None, help="audio file(s)")
        p.add_argument("--also", nargs="*", default=[], help="more model folders sharing the front end")
        p.add_argument("--threshold", type=float, help="override the model's calibrated threshold")
        p.add_argument("--int8", action="store_true", help="run the int8 graphs")
        p.add_argument("--providers", default="auto", help="onnxruntime providers: auto, CPUExecutionProvider, ...")
        if name == "score":
            p.add_argument("--out", required=True, help="CSV file to write")
            p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
        p.set_defaults(func=cmd_detect if name == "detect" else cmd_score)

    p = sub.add_parser("eval", help="streaming event-level FRR / FA per hour of a model, with a DET plot")
    p.add_argument("model", help="model folder")
    p.add_argument("--positives", nargs="+", required=True, help="folders of clips that say the phrase")
    p.add_argument("--negatives", nargs="+", required=True, help="folders of speech that does not")
    p.add_argument("--noise", nargs="*", help="folders of noise to mix in (a second, noisy condition)")
    p.add_argument("--snr", type=float, default=10.0, help="SNR in dB for the noisy condition (default 10)")
    p.add_argument("--out", required=True, help="report folder (report.json, report.md, det.png)")
    p.add_argument("--force", action="store_true", help="replace a report already in --out")
    p.add_argument("--int8", action="store_true", help="evaluate the int8 graphs")
    p.add_argument("--providers", default="auto", help="onnxruntime providers")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("listen", help="the microphone daemon: one JSON line per detection, runs for months")
    p.set_defaults(func=cmd_listen)
    add_listen_arguments(p)

    p = sub.add_parser(
        "feedback",
        help="list the detections 'wakeword listen --keep DIR' kept; mark them true or false for retraining",
        description="Without options: the most recent detections kept in DIR. Marked detections teach "
        "'wakeword train --resume MODEL --feedback DIR': false ones become negatives, true ones positives.",
    )
    p.add_argument("folder", metavar="DIR", help="the folder given to 'wakeword listen --keep'")
    p.add_argument(
        "--mark",
        nargs=2,
        action="append",
        default=[],
        metavar=("ID", "LABEL"),
        help="label a detection: true (the phrase was said), false (it was not) or none (repeatable)",
    )
    p.add_argument("--false", dest="false_ids", nargs="+", default=[], metavar="ID", help="mark these false")
    p.add_argument("--true", dest="true_ids", nargs="+", default=[], metavar="ID", help="mark these true")
    p.add_argument("--all", dest="all_label", choices=["true", "false"], help="mark every unmarked detection")
    p.add_argument("--interactive", action="store_true", help="ask y/n/skip for each unmarked detection")
    p.add_argument("--limit", type=int, default=20, help="list this many of the newest (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="print JSON (summary, detections, what was marked)")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("demo", help="run the main job on a bundled default phrase")
    p.add_argument("--phrase", default=DEMO_PHRASE, help=f"phrase to synthesise (default: {DEMO_PHRASE!r})")
    p.add_argument("--out", default="out/demo", help="folder for the demo's files (default: out/demo)")
    p.add_argument("--force", action="store_true", help="replace an earlier demo in --out")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except WakewordError as exc:
        print(f"wakeword: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
