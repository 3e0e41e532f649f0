"""microWakeWord's pre-trained models, run by pymicro-wakeword 2.5.0 (TFLite Micro front end in C,
the streaming quantised model through its bundled TFLite C library).

Fed as int16 bytes in 1280-sample chunks. The front end gives one feature frame per 10 ms; the
model runs once every `stride` frames (3 = 30 ms for the built-in models) and the engine's
probability is the mean of its last `sliding_window_size` outputs (5), which is what microWakeWord
compares with its cutoff. Between runs process_streaming_prob returns 0.0 placeholders.

Grid. 30 ms outputs do not divide 80 ms steps, so each step gets the highest output produced while
its chunk was fed (two or three real outputs per step; the placeholders never win unless the real
outputs are 0 too). Max-pooling is the right reduction for event detection: a step fires if the
engine would have fired at any moment inside it.

Threshold: each model's own `probability_cutoff` from its JSON (0.97 for hey_jarvis, for instance).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tools.peers import chunks, pool_per_step, require, to_int16

MODELS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")


def _config(model: str) -> dict:
    import pymicro_wakeword

    return json.loads((Path(pymicro_wakeword.__file__).parent / "models" / f"{model}.json").read_text())


def model_threshold(model: str) -> float:
    """The model's own probability_cutoff."""
    require("microwakeword")
    return float(_config(model)["micro"]["probability_cutoff"])


def microwakeword_scorer(model: str = "hey_jarvis") -> Callable[[np.ndarray], np.ndarray]:
    """A Scorer running one built-in microWakeWord model; a fresh engine state for every stream."""
    require("microwakeword")
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    if model not in MODELS:
        raise ValueError(f"unknown microWakeWord model {model!r}; built in: {', '.join(MODELS)}")

    def score(audio: np.ndarray) -> np.ndarray:
        # The model keeps streaming state inside the TFLite interpreter: a new engine per stream.
        detector = MicroWakeWord.from_builtin(Model(model))
        features = MicroWakeWordFeatures()
        per_chunk = []
        for chunk in chunks(to_int16(audio)):
            outputs = []
            for frame in features.process_streaming(chunk.tobytes()):
                prob = detector.process_streaming_prob(frame)
                if prob is not None:
                    outputs.append(prob)
            per_chunk.append(outputs)
        detector.close()
        return pool_per_step(per_chunk)

    return score
