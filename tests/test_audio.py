"""Loading audio: every kind of bad input gets one clear error; odd rates and stereo are converted."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SR, tone
from wakeword.audio import load_audio, to_mono_16k, write_wav
from wakeword.errors import AudioError


def dominant_hz(x: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(range(256)) * 4)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not audio\n" * 100)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(path)


def test_wav_with_no_samples(write):
    path = write("zero.wav", np.zeros(0, dtype=np.int16))
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(path)


def test_nan_samples(write):
    x = tone(0.5)
    x[100] = np.nan
    path = write("nan.wav", x, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path)


def test_stereo_is_averaged(write):
    left = tone(0.5)
    path = write("stereo.wav", np.stack([left, np.zeros_like(left)], axis=1))
    audio = load_audio(path)
    assert audio.ndim == 1 and len(audio) == len(left)
    np.testing.assert_allclose(audio, left / 2, atol=2 / 32768)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled(write, rate):
    path = write(f"r{rate}.wav", tone(1.0, 1000.0, rate=rate), rate=rate)
    audio = load_audio(path)
    assert abs(len(audio) - SR) <= 2
    assert abs(dominant_hz(audio) - 1000.0) < 5.0
    assert audio.dtype == np.float32


def test_rate_below_8k_refused(write):
    with pytest.raises(AudioError, match="below 8000"):
        load_audio(write("r4k.wav", tone(0.5, 500.0, rate=4000), rate=4000))


def test_flac_16k_passes_through_unchanged(write):
    x = (tone(0.5) * 32767).astype(np.int16)
    audio = load_audio(write("a.flac", x))
    np.testing.assert_array_equal(audio, x.astype(np.float32) / 32768)


def test_int16_buffer_scaling():
    x = np.array([0, 16384, -32768], dtype=np.int16)
    np.testing.assert_allclose(to_mono_16k(x, SR), [0.0, 0.5, -1.0])


def test_bad_buffer_type():
    with pytest.raises(AudioError, match="unsupported sample type"):
        to_mono_16k(np.array(["a", "b"]), SR)


def test_write_wav_round_trip(tmp_path):
    x = tone(0.25)
    write_wav(tmp_path / "x.wav", x)
    np.testing.assert_allclose(load_audio(tmp_path / "x.wav"), x, atol=1 / 32768)
