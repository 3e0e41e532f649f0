"""Peer wake-word engines, each run through its own runtime, as Scorers for wakeword.evaluate.

Every adapter turns a whole 16 kHz float32 stream into one score per 80 ms step (len(audio) // 1280),
score k being the engine's output after it has heard the audio up to sample 1280 * (k + 1). An engine
that emits at another rate is put on that grid by max-pooling: each of its outputs goes to the step
in which the audio it had heard ends, and a step gets the highest output that falls in it. A step
with no output keeps the previous one (the engine's state has not changed).

These are benchmark tools, not package dependencies: each adapter imports its engine lazily and
raises PeerUnavailableError with the pip command when it is missing. Nothing is downloaded at run time;
every model used ships inside its engine's wheel.

    pip install pyopen-wakeword==1.1.0 pymicro-wakeword==2.5.0 pocketsphinx==5.1.1
    pip install --no-deps efficientword-net==1.0.5   # see efficientword.py for why --no-deps
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from wakeword.errors import WakewordError
from wakeword.frontend import CHUNK_SAMPLES

STEP_SAMPLES = CHUNK_SAMPLES  # 1280 samples = 80 ms


class PeerUnavailableError(WakewordError):
    """A peer engine whose package is not installed."""


@dataclass(frozen=True)
class Peer:
    name: str
    module: str  # the engine's import name, to tell whether it is installed
    pip: str  # how to install it


PEERS = {
    "openwakeword": Peer("openwakeword", "pyopen_wakeword", "pip install pyopen-wakeword==1.1.0"),
    "microwakeword": Peer("microwakeword", "pymicro_wakeword", "pip install pymicro-wakeword==2.5.0"),
    "pocketsphinx": Peer("pocketsphinx", "pocketsphinx", "pip install pocketsphinx==5.1.1"),
    "efficientword": Peer("efficientword", "eff_word_net", "pip install --no-deps efficientword-net==1.0.5"),
}


def installed(peer: str) -> bool:
    return importlib.util.find_spec(PEERS[peer].module) is not None


def require(peer: str) -> None:
    if not installed(peer):
        raise PeerUnavailableError(f"{peer} is not installed: {PEERS[peer].pip}")


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> int16 PCM, as every peer's runtime takes it (clipping anything outside)."""
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def chunks(pcm: np.ndarray) -> list[np.ndarray]:
    """The stream's complete 80 ms chunks (a trailing partial chunk has no step of its own)."""
    steps = len(pcm) // STEP_SAMPLES
    return [pcm[k * STEP_SAMPLES : (k + 1) * STEP_SAMPLES] for k in range(steps)]


def pool_per_step(per_chunk: list[list[float]], floor: float = 0.0) -> np.ndarray:
    """One score per step from the outputs an engine gave while it was fed each 80 ms chunk:
    the highest of them, or the previous step's score when it gave none (floor before any)."""
    scores = np.empty(len(per_chunk), dtype=np.float64)
    last = floor
    for k, outputs in enumerate(per_chunk):
        if outputs:
            last = max(outputs)
        scores[k] = last
    return scores
