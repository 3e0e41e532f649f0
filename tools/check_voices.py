"""Which synthetic voices are intelligible enough to speak positives? Measured, not guessed.

    python tools/check_voices.py [--sentences 12] [--workers 2] [--out docs/voices.md] [--only mbrola:us1,...]

For every installed base voice (wakeword.tts.base_voices(), speed 1, pitch 0) this synthesises Harvard
sentences and recognises them with pocketsphinx (its en-us acoustic and language models ship in the
PyPI wheel; nothing is downloaded), and reports word accuracy = 1 - word error rate. It also times
"hey nova" clips across the speed x pitch grid (CPU time of this process and its children, so
subprocess engines count) and notes what the recogniser hears for the phrase itself.

Writes the table to --out (docs/voices.md) and prints it, then prints the WORD_ACCURACY block for
wakeword/tts.py: paste it there to change which voices are used for positives.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wakeword import tts  # noqa: E402

PHRASE = "hey nova"
# IEEE Harvard sentences, lists 1 and 2 (IEEE 1969 recommended practice; phonetically balanced).
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)
# The diagonal of the speed x pitch grid: what a training run asks of each voice, at the cost it pays.
TIMING_CONFIGS = tuple(zip(tts.SPEEDS, tts.PITCHES, strict=True))
BORDER = 0.10  # voices this close to the threshold are measured again on all 20 sentences
PAD = np.zeros(int(0.3 * tts.SAMPLE_RATE), np.float32)  # the recogniser needs some silence around speech

_decoder = None


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c == "'" else " " for c in text.lower().replace("’", "'")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def recognise(audio: np.ndarray) -> str:
    global _decoder
    if _decoder is None:
        from pocketsphinx import Decoder

        # The bundled en-us acoustic model, language model and dictionary. Capping active HMMs and words per
        # frame decodes 1.5x faster with the same accuracy (within 0.02 on four voices x 20 sentences).
        _decoder = Decoder(loglevel="FATAL", maxhmmpf=2000, maxwpf=5)
    pcm = (np.clip(np.concatenate([PAD, audio, PAD]), -1, 1) * 32767).astype(np.int16).tobytes()
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def measure_accuracy(voice: tts.Voice, sentences: tuple[str, ...]) -> tuple[float | None, str]:
    """Word accuracy over the sentences (None if the voice failed) and what PHRASE was heard as."""
    errors = total = 0
    try:
        for sentence in sentences:
            ref = words(sentence)
            errors += edit_distance(ref, words(recognise(tts.synthesize(sentence, voice))))
            total += len(ref)
        heard = recognise(tts.synthesize(PHRASE, voice))
    except tts.TTSError as exc:
        print(f"{voice.base}: failed: {exc}", file=sys.stderr)
        return None, "(failed)"
    return max(0.0, 1.0 - errors / total), heard


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def clips_per_cpu_minute(voice: tts.Voice) -> float | None:
    """PHRASE at each TIMING_CONFIGS point, after one warm-up clip (model loading is not per clip)."""
    try:
        tts.synthesize(PHRASE, voice)
        start = cpu_seconds()
        for speed, pitch in TIMING_CONFIGS:
            tts.synthesize(PHRASE, tts.vary(voice, [speed], [pitch])[0])
        spent = cpu_seconds() - start
    except tts.TTSError:
        return None
    return len(TIMING_CONFIGS) * 60.0 / max(spent, 1e-3)


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def report(voices: list[tts.Voice], accuracy: dict, heard: dict, speed: dict, counts: dict, sentences: int) -> str:
    passing = {v.base for v in voices if (accuracy[v.base] or 0.0) >= tts.POSITIVE_MIN_ACCURACY}
    positive = [v for v in voices if v.base in passing]
    configs = len(tts.SPEEDS) * len(tts.PITCHES)
    safe_pos = [v for v in positive if v.commercial_safe]
    lines = [
        "# Synthetic voices",
        "",
        "Generated by `python tools/check_voices.py` (do not edit by hand). Word accuracy is 1 − word error",
        f"rate of pocketsphinx (en-us model and language model from its PyPI wheel) on {sentences} Harvard",
        f"sentences per voice at speed 1, pitch 0, and on all {len(HARVARD)} for voices within {BORDER:.2f} of the",
        "threshold (column 'sentences'). A voice is used for positives when its accuracy is at least",
        f"{tts.POSITIVE_MIN_ACCURACY:.2f} (`POSITIVE_MIN_ACCURACY` in `wakeword/tts.py`); every voice is used for",
        f"negatives. Clips/CPU-minute: {PHRASE!r} across the speed × pitch grid, after one warm-up clip, counting",
        "the CPU time of engine subprocesses. The recogniser's general language model makes absolute figures",
        "low even for clear speech: read the column as a ranking.",
        "",
        f"Base voices: {len(voices)} ({len({v.speaker for v in voices})} distinct speakers). "
        f"Passing for positives: {len(positive)} ({len({v.speaker for v in positive})} speakers), "
        f"{len(safe_pos)} of them commercial-safe ({len({v.speaker for v in safe_pos})} speakers).",
        "",
        f"Positive configurations for {PHRASE!r} with the default grid ({configs} per voice): "
        f"{configs * len(safe_pos)} commercial-safe (the default), {configs * len(positive)} in all. "
        f"Negative configurations: {configs * sum(v.commercial_safe for v in voices)} commercial-safe, "
        f"{configs * len(voices)} in all.",
        "",
        "| engine | voice | speaker | licence | commercial-safe | clips/CPU-min | word accuracy | sentences "
        f"| {PHRASE!r} heard as | positives |",
        "|---|---|---|---|---|---:|---:|---:|---|---|",
    ]
    for v in voices:
        lines.append(
            f"| {v.engine} | {v.name} | {v.speaker} | {v.licence} | {'yes' if v.commercial_safe else 'no'} "
            f"| {fmt(speed[v.base], '.0f')} | {fmt(accuracy[v.base], '.2f')} | {counts[v.base]} "
            f"| {heard[v.base] or '(nothing)'} "
            f"| {'yes' if v.base in passing else 'no'} |"
        )
    lines += ["", "Per engine (median over its voices):", "", "| engine | voices | clips/CPU-min | word accuracy |"]
    lines.append("|---|---:|---:|---:|")
    for engine in dict.fromkeys(v.engine for v in voices):
        mine = [v.base for v in voices if v.engine == engine]
        rates = [speed[b] for b in mine if speed[b] is not None]
        accs = [accuracy[b] for b in mine if accuracy[b] is not None]
        rate = float(np.median(rates)) if rates else None
        acc = float(np.median(accs)) if accs else None
        lines.append(f"| {engine} | {len(mine)} | {fmt(rate, '.0f')} | {fmt(acc, '.2f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=12, help="Harvard sentences per voice (1-20, default 12)")
    parser.add_argument("--workers", type=int, default=2, help="processes for synthesis + recognition")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "voices.md")
    parser.add_argument("--only", default="", help="comma-separated engine:name voices (a second look at a few)")
    args = parser.parse_args()
    sentences = HARVARD[: max(1, min(args.sentences, len(HARVARD)))]

    status = tts.engine_status()
    for engine, state in status.items():
        print(f"{engine:10s} {state}", file=sys.stderr)
    voices = tts.base_voices()
    if args.only:
        voices = [v for v in voices if v.base in args.only.split(",") or v.engine in args.only.split(",")]
    started = time.time()
    # Timing first, alone in this process, so that no other thread's CPU time is counted.
    speed = {v.base: clips_per_cpu_minute(v) for v in voices}
    print(f"timed {len(voices)} voices in {time.time() - started:.0f} s", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = dict(zip(voices, pool.map(measure_accuracy, voices, [sentences] * len(voices)), strict=True))
        used = dict.fromkeys(voices, len(sentences))
        # A voice near the threshold gets all the sentences, so that its side of the line is not down to noise.
        near = [
            v for v, (acc, _) in results.items() if acc is not None and abs(acc - tts.POSITIVE_MIN_ACCURACY) < BORDER
        ]
        if len(sentences) < len(HARVARD) and near:
            results.update(zip(near, pool.map(measure_accuracy, near, [HARVARD] * len(near)), strict=True))
            used.update(dict.fromkeys(near, len(HARVARD)))
    accuracy = {v.base: acc for v, (acc, _) in results.items()}
    heard = {v.base: said for v, (_, said) in results.items()}
    counts = {v.base: n for v, n in used.items()}
    print(f"measured {len(voices)} voices ({len(near)} twice) in {time.time() - started:.0f} s", file=sys.stderr)

    table = report(voices, accuracy, heard, speed, counts, len(sentences))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {os.path.relpath(args.out)}\n\n# for wakeword/tts.py:\nWORD_ACCURACY: dict[str, float] = {{")
    for v in voices:
        if accuracy[v.base] is not None:
            print(f'    "{v.base}": {accuracy[v.base]:.2f},')
    print("}")
    stale = [v.base for v in voices if accuracy[v.base] is not None and tts.WORD_ACCURACY.get(v.base) is None]
    if stale:
        print(f"note: {len(stale)} voices are not yet in tts.WORD_ACCURACY", file=sys.stderr)


if __name__ == "__main__":
    main()
