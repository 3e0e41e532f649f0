"""Audio in and out: any file or buffer becomes 16 kHz mono float32 in [-1, 1], or a clear error.

This is the bottom layer: numpy, soundfile and soxr only, so the torch-free runtime can use it.
soundfile and soxr are imported where they are used: an embedded bundle (wakeword.bundle) carries
this module to boards that have numpy and onnxruntime only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wakeword.errors import AudioError

SAMPLE_RATE = 16000
MIN_SOURCE_RATE = 8000  # below this there is no speech band left to resample
MAX_SECONDS = 4 * 3600  # a file longer than this is almost certainly a mistake

log = logging.getLogger(__name__)


def load_audio(path: str | Path) -> np.ndarray:
    """Read an audio file as 16 kHz mono float32 in [-1, 1].

    Stereo is averaged to mono, other rates are resampled (soxr, high quality).
    Raises AudioError with a one-line reason for anything that is not usable audio.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
        if info.frames > MAX_SECONDS * info.samplerate:
            raise AudioError(f"{path}: {info.frames / info.samplerate / 3600:.1f} h is longer than the 4 h limit")
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: cannot decode audio (corrupt file or unsupported format): {reason}") from None
    return to_mono_16k(samples, rate, name=str(path))


def to_mono_16k(samples: np.ndarray, rate: int, name: str = "audio") -> np.ndarray:
    """Validate a (samples,) or (samples, channels) buffer and convert it to 16 kHz mono float32.

    Integer buffers are scaled to [-1, 1]; float buffers are taken as already in [-1, 1].
    """
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    elif samples.dtype == np.int32:
        samples = samples.astype(np.float32) / 2147483648.0
    elif not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"{name}: unsupported sample type {samples.dtype} (use int16, int32 or float)")
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise AudioError(f"{name}: expected (samples,) or (samples, channels), got shape {samples.shape}")
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if rate < MIN_SOURCE_RATE:
        raise AudioError(f"{name}: sample rate {rate} Hz is below {MIN_SOURCE_RATE} Hz; record at 16 kHz")
    if samples.shape[1] > 1:
        # Averaging keeps both microphones' speech; picking one channel could pick a dead one.
        log.info("%s: %d channels averaged to mono", name, samples.shape[1])
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE:
        import soxr

        log.info("%s: resampled %d Hz -> %d Hz", name, rate, SAMPLE_RATE)
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_wav(path: str | Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float audio in [-1, 1] as 16-bit PCM WAV (clipping anything outside)."""
    import soundfile as sf

    pcm = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(str(path), pcm, rate, subtype="PCM_16")
