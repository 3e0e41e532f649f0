"""EfficientWord-Net 1.0.5 (few-shot: a ResNet-50 ArcFace audio encoder in ONNX, bundled in its
wheel; a phrase is a handful of reference clips, and a window's score is its best cosine similarity
to them, mapped to [0, 1] as (cos + 1) / 2).

Install with `pip install --no-deps efficientword-net==1.0.5`. Its declared dependencies include
PyAudio (an sdist that needs PortAudio headers and a compiler on Linux), twine, typer and requests,
none of which the scoring path uses: eff_word_net.audio_processing needs numpy and onnxruntime only,
and the model and sample references are inside the wheel, so it runs offline. We do not import
eff_word_net.engine (it imports pyaudio at the top) but reproduce its scoring exactly:
HotwordDetector.scoreFrame = Resnet50_Arc_loss.scoreVector(audioToVector(window), references).

Windows. The engine scores 1.5 s windows (24000 samples). At step k (every `hop_steps` steps) the
window is the 1.5 s ending at sample 1280 * (k + 1), zero-padded before the stream starts; steps in
between keep the last score (the engine has not looked again). One window costs ~65 ms on 2 CPU
cores, so hop_steps = 1 (every 80 ms) runs at ~0.8x real time; the default 3 (240 ms, between its
README's 125 ms and 750 ms hops) runs at ~0.27x. Its live loop also skips windows whose first
100 ms is louder than 0.2 of the window's peak ("unsafe" gate against continuous speech); `gate`
keeps that (such windows score 0, as the engine returns no match for them).

References: either a bundled sample reference by name (SAMPLE_REFERENCES: alexa, mycroft, computer,
...) or >= 4 clips of the phrase, embedded as its generate_reference tool does (trim leading and
trailing digital silence, then pad or crop to 1.5 s at a seeded random offset).

Threshold: 0.7, the value its README's examples use (HotwordDetector's own default is 0.9).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tools.peers import STEP_SAMPLES, require

SAMPLE_REFERENCES = ("alexa", "balloon", "computer", "lights_off", "lights_on", "mobile", "mycroft")
MODEL_THRESHOLD = 0.7
WINDOW_SAMPLES = 24000  # 1.5 s, the Resnet50_Arc_loss window
GATE_SAMPLES = 1600  # the first 100 ms of a window
GATE_RATIO = 0.2
MIN_REFERENCES = 4  # HotwordDetector refuses fewer


def _model():
    require("efficientword")
    from eff_word_net.audio_processing import Resnet50_Arc_loss

    return Resnet50_Arc_loss()


def _sample_references(name: str) -> np.ndarray:
    from eff_word_net import samples_loc

    if name not in SAMPLE_REFERENCES:
        raise ValueError(f"no bundled EfficientWord-Net reference {name!r}; bundled: {', '.join(SAMPLE_REFERENCES)}")
    data = json.loads((Path(samples_loc) / f"{name}_ref.json").read_text())
    return np.asarray(data["embeddings"], dtype=np.float32)


def _clip_references(model, clips: Sequence[np.ndarray], seed: int) -> np.ndarray:
    if len(clips) < MIN_REFERENCES:
        raise ValueError(f"EfficientWord-Net needs at least {MIN_REFERENCES} reference clips, got {len(clips)}")
    random.seed(seed)  # fixPaddingIssues places the clip with the random module
    vectors = [model.audioToVector(model.fixPaddingIssues(np.asarray(c, dtype=np.float32))) for c in clips]
    return np.concatenate(vectors).astype(np.float32)


def _gated(window: np.ndarray) -> bool:
    """The engine's 'unsafe' check: a loud start means the window cuts into ongoing speech."""
    peak = float(window.max())
    return peak <= 0.0 or float(np.max(window[:GATE_SAMPLES] / peak)) > GATE_RATIO


def efficientword_scorer(
    references: str | Sequence[np.ndarray], hop_steps: int = 3, gate: bool = True, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """A Scorer for one phrase: a bundled reference name, or >= 4 clips (16 kHz float32) of it."""
    if hop_steps < 1:
        raise ValueError("hop_steps must be at least 1")
    model = _model()
    refs = _sample_references(references) if isinstance(references, str) else _clip_references(model, references, seed)

    def score(audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        padded = np.concatenate([np.zeros(WINDOW_SAMPLES, np.float32), audio])
        scores = np.zeros(len(audio) // STEP_SAMPLES)
        last = 0.0
        for k in range(len(scores)):
            if k % hop_steps == hop_steps - 1 or k == len(scores) - 1:
                end = WINDOW_SAMPLES + STEP_SAMPLES * (k + 1)
                window = padded[end - WINDOW_SAMPLES : end]
                last = 0.0 if gate and _gated(window) else float(model.scoreVector(model.audioToVector(window), refs))
            scores[k] = last
        return scores

    return score
