"""openWakeWord's pre-trained models, run by pyopen-wakeword 1.1.0 (TFLite, its bundled C library).

The stream is fed as int16 bytes in 1280-sample chunks, exactly as openWakeWord is fed live:
OpenWakeWordFeatures turns each chunk into mel frames and speech_embedding vectors, and
OpenWakeWord.process_streaming turns embeddings into the model's probability.

Timing. openWakeWord starts from 8 s of zeros, so the first chunk yields a burst of outputs (over
that silence); later chunks yield one each. Its mel stage runs on 1760-sample windows that end 800
samples (50 ms) before the newest sample, so score k reflects audio up to sample 1280 * (k + 1) - 800:
the engine's own latency, which the 0.5 s tolerance of the protocol absorbs. Score k is the highest
output produced while chunk k was fed.

Threshold: openWakeWord's documented default is 0.5 (MODEL_THRESHOLD).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tools.peers import chunks, pool_per_step, require, to_int16

MODELS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu", "hey_rhasspy")
MODEL_THRESHOLD = 0.5


def openwakeword_scorer(model: str = "hey_jarvis") -> Callable[[np.ndarray], np.ndarray]:
    """A Scorer running one built-in openWakeWord model; a fresh engine state for every stream."""
    require("openwakeword")
    from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

    if model not in MODELS:
        raise ValueError(f"unknown openWakeWord model {model!r}; built in: {', '.join(MODELS)}")
    features = OpenWakeWordFeatures.from_builtin()
    detector = OpenWakeWord.from_builtin(Model(model))

    def score(audio: np.ndarray) -> np.ndarray:
        features.reset()
        detector.reset()
        per_chunk = []
        for chunk in chunks(to_int16(audio)):
            outputs = []
            for embeddings in features.process_streaming(chunk.tobytes()):
                outputs.extend(detector.process_streaming(embeddings))
            per_chunk.append(outputs)
        return pool_per_step(per_chunk)

    return score
