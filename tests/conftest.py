"""Shared fixtures: synthetic audio written on the fly, the real-audio set when it is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tools import shared_data

SR = 16000

needs_shared_data = pytest.mark.skipif(not shared_data.available(), reason=shared_data.MISSING_REASON)


def tone(seconds: float, hz: float = 1000.0, rate: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts under a moving band: not speech, but it exercises every band and the floor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = rng.normal(0, 0.1, n).astype(np.float32)
    envelope = (np.sin(2 * np.pi * 3.0 * np.arange(n) / SR) > 0).astype(np.float32)
    chirp = np.sin(2 * np.pi * (200 + 1500 * np.arange(n) / n) * np.arange(n) / SR).astype(np.float32)
    silence = np.zeros(n // 10, dtype=np.float32)  # digital silence exercises the floor
    return np.concatenate([silence, (x + 0.3 * chirp) * envelope, silence])


@pytest.fixture
def write(tmp_path: Path):
    """write(name, samples, rate=16000, subtype='PCM_16') -> path of a new audio file in tmp_path."""

    def _write(name: str, samples: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> Path:
        path = tmp_path / name
        sf.write(str(path), samples, rate, subtype=subtype)
        return path

    return _write


@pytest.fixture(scope="session")
def encoder():
    from wakeword.encoder import TorchEncoder

    return TorchEncoder()


@pytest.fixture(scope="session")
def real_speech() -> np.ndarray:
    """About 3 minutes of real speech from 64 speakers, concatenated (skips without shared data)."""
    if not shared_data.available():
        pytest.skip(shared_data.MISSING_REASON)
    from wakeword.audio import load_audio

    clips = [c for c in shared_data.parity_clips() if c.role != "noise"]
    return np.concatenate([load_audio(c.path) for c in clips])
