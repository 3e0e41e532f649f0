"""`wakeword demo`: the whole chain on a bundled default, on a fresh machine, in minutes.

synthesise the phrase with TTS voices -> train (default recipe, no user takes) -> export ONNX
-> build a test recording (the phrase in voices and at speeds training did not use, near-misses,
   other sentences, noise) -> detect it through the torch-free runtime -> print what was found
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from wakeword.audio import SAMPLE_RATE, write_wav
from wakeword.errors import WakewordError

TEST_SPEED, TEST_PITCH = 1.05, 0.75  # a speed and pitch off the training grid: unseen configurations
MATCH_TOLERANCE_S = 0.5


def fired_during(end_s: float, start: float, end: float) -> bool:
    """Whether a detection ending at end_s belongs to an item said from start to end (a little late is fine)."""
    return start <= end_s <= end + MATCH_TOLERANCE_S


def test_recording(phrase: str, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float, str, bool]], list[str]]:
    """Speech with the phrase said 6 times by voices off the training grid, among near-misses and sentences.

    Returns the audio, every item said (start s, end s, text, whether it is the phrase) and the script."""
    from dataclasses import replace

    from wakeword import tts
    from wakeword.train import confusable_phrases, general_sentences

    rng = np.random.default_rng(seed)
    positive = [replace(v, speed=TEST_SPEED, pitch=TEST_PITCH) for v in tts.list_voices("positive", variations=False)]
    if not positive:
        raise WakewordError("no TTS voices installed: run 'make setup'")
    voices = [positive[i] for i in rng.choice(len(positive), min(6, len(positive)), replace=False)]
    misses = [m.text for m in confusable_phrases(phrase, limit=60)[:40:8]]
    sentences = general_sentences()[::40]
    items = [("phrase", phrase, v) for v in voices]
    items += [("other", t, voices[i % len(voices)]) for i, t in enumerate(misses + sentences)]
    order = rng.permutation(len(items))
    parts, truth, script, t = [], [], [], 1.0
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    for i in order:
        kind, text, voice = items[i]
        audio = tts.synthesize(text, voice) * 0.5
        truth.append((t, t + len(audio) / SAMPLE_RATE, text, kind == "phrase"))
        script.append(f"{t:6.2f} s  {'*' if kind == 'phrase' else ' '} {text}  ({voice.base})")
        gap = np.zeros(int(rng.uniform(1.2, 2.0) * SAMPLE_RATE), np.float32)
        parts += [audio, gap]
        t += (len(audio) + len(gap)) / SAMPLE_RATE
    stream = np.concatenate(parts)
    stream += rng.normal(0, 0.003, len(stream)).astype(np.float32)  # a quiet room
    return stream, truth, script


def run_demo(phrase: str, out: Path, force: bool = False) -> int:
    from wakeword.export import export_model
    from wakeword.phrases import describe_pronunciation, normalize_phrase
    from wakeword.runtime import Detector
    from wakeword.train import TrainConfig, train

    phrase = normalize_phrase(phrase)
    model_dir = out / phrase.replace(" ", "_")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise WakewordError(f"{out} already holds a demo; pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"1/4 phrase: {describe_pronunciation(phrase)}")
    print("2/4 training (synthetic voices only) ...")
    card = train(TrainConfig(phrase=phrase, out=model_dir))
    export_model(model_dir)
    print(f"3/4 exported ONNX graphs to {model_dir}")
    stream, said, script = test_recording(phrase)
    truth = [(start, end) for start, end, _, is_phrase in said if is_phrase]
    write_wav(out / "test_recording.wav", stream)
    (out / "test_recording.txt").write_text("\n".join(script) + "\n")
    detections = Detector([model_dir]).process(stream)
    seconds = len(stream) / SAMPLE_RATE
    print(f"4/4 detections in {out / 'test_recording.wav'} ({seconds:.0f} s, phrase said {len(truth)} times):")
    hits = 0
    for d in detections:
        match = any(fired_during(d.end_s, start, end) for start, end in truth)
        hits += match
        # What was being said when it fired: a false detection is most often a near-miss ("hey nofa").
        heard = [text for start, end, text, _ in said if fired_during(d.end_s, start, end)]
        print("   " + json.dumps({**d.as_dict(), "correct": match, "heard": heard[0] if heard else None}))
    missed = sum(not any(fired_during(d.end_s, start, end) for d in detections) for start, end in truth)
    val = card.get("validation") or {}
    print(
        f"summary: {hits} correct detections, {len(detections) - hits} false, {missed} of {len(truth)} missed; "
        f"threshold {card['threshold']:.3f}; trained in {card['training_seconds']:.0f} s on {card['device']}; "
        f"validation FRR {val.get('frr_at_threshold', float('nan')):.1%}"
    )
    if len(detections) > hits:
        print(
            "   (a model trained on synthetic voices alone confuses the closest near-misses; your own takes "
            "(--clips) and everyday speech (--negatives) are what teach it the difference)"
        )
    print(f"model card: {model_dir / 'card.json'}; the script of the recording: {out / 'test_recording.txt'}")
    return 0
