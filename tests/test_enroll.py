"""Enrollment checks: bad takes are refused with the reason; imports never touch the originals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SR, needs_shared_data
from tools import shared_data
from wakeword.audio import load_audio
from wakeword.cli import main
from wakeword.enroll import check_take, import_takes, trim


def take(speech_s: float = 0.8, level: float = 0.3, noise: float = 0.001, seed: int = 0) -> np.ndarray:
    """Silence, a burst of 'speech' (modulated noise), silence."""
    rng = np.random.default_rng(seed)
    n = int(speech_s * SR)
    speech = rng.normal(0, level / 3, n) * np.hanning(n)
    x = np.concatenate([np.zeros(SR // 2), speech, np.zeros(SR // 2)])
    return (x + rng.normal(0, noise, len(x))).astype(np.float32)


def test_good_take_is_found_and_trimmed():
    x = take()
    check = check_take(x)
    assert check.ok, check.reason
    assert 0.45 < check.speech_start_s < 0.75 and 1.05 < check.speech_end_s < 1.35
    trimmed = trim(x, check)
    assert len(trimmed) < len(x) and len(trimmed) > 0.5 * SR


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (np.zeros(SR, np.float32), "no speech"),
        (np.random.default_rng(0).normal(0, 0.01, SR).astype(np.float32), "no speech"),
        (take(level=0.004, noise=0.000001), "too quiet"),
        (np.clip(take(level=3.0), -1, 1), "clipped"),
        (take(speech_s=4.0), "too long"),
    ],
)
def test_bad_takes_are_refused_with_the_reason(audio, reason):
    check = check_take(audio)
    assert not check.ok and reason in check.reason


def test_import_keeps_originals_and_numbers_new_files(tmp_path, write):
    src = tmp_path / "src"
    src.mkdir()
    write("src/a.wav", take(seed=1))
    write("src/b.wav", take(seed=2), rate=SR)
    write("src/silent.wav", np.zeros(SR, np.float32))
    before = {p: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    takes = import_takes("hey nova", src, out)
    assert [t.ok for t in takes] == [True, True, False]
    assert {p: p.read_bytes() for p in src.iterdir()} == before
    first = sorted(out.glob("*.trimmed.wav"))
    assert len(first) == 2
    import_takes("hey nova", src, out)  # again: new files, nothing overwritten
    assert len(list(out.glob("*.trimmed.wav"))) == 4
    manifest = json.loads((out / "enroll.json").read_text())
    assert manifest["phrase"] == "hey nova" and len(manifest["takes"]) == 6


def test_enroll_cli_from_folder(tmp_path, write, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write(f"src/t{i}.flac", take(seed=i))
    assert main(["enroll", "hey nova", "--from", str(src), "--out", str(tmp_path / "out")]) == 0
    assert "3 of 3 takes usable" in capsys.readouterr().out


def test_enroll_without_microphone_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import wakeword.microphone as mic

    monkeypatch.setattr(mic, "input_devices", lambda: [])
    assert main(["enroll", "hey nova", "--out", str(tmp_path / "out"), "--count", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no input device" in err[-1]


@needs_shared_data
def test_real_wake_word_takes_mostly_pass():
    clips = [c for c in shared_data.manifest() if c.label in ("computer", "android", "hey_chatterbox")]
    passed = [check_take(load_audio(c.path)).ok for c in clips]
    assert np.mean(passed) > 0.9


class FakeStream:
    """Stands in for a sounddevice InputStream: 48 kHz stereo, a burst of 'speech' in the middle."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio, self.pos = audio, 0

    def read(self, frames: int):
        chunk = self.audio[self.pos : self.pos + frames]
        self.pos += frames
        if len(chunk) < frames:
            chunk = np.concatenate([chunk, np.zeros((frames - len(chunk), 2), np.float32)])
        return chunk, False


def test_recording_path_with_a_fake_microphone(tmp_path, monkeypatch, capsys):
    """The recording path (meter, resampling, checks, retries, files) without a sound card."""
    from contextlib import contextmanager

    import wakeword.microphone as mic
    from wakeword.enroll import record_takes

    takes = iter([np.zeros(3 * 48000, np.float32), take(seed=3), take(seed=4)])  # silent first: refused, retried

    @contextmanager
    def fake_open(device, blocksize=0):
        mono = next(takes)
        up = np.interp(np.arange(len(mono) * 3) / 3, np.arange(len(mono)), mono).astype(np.float32)
        yield FakeStream(np.stack([up, up], axis=1)), 48000

    monkeypatch.setattr(mic, "open_input_stream", fake_open)
    monkeypatch.setattr(mic, "resolve_device", lambda device: {"index": 0, "name": "fake", "rate": 48000})
    result = record_takes("hey nova", tmp_path, count=2, device=None, seconds=2.0)
    assert [t.ok for t in result] == [False, True, True]
    assert "no speech" in result[0].reason
    assert len(list(tmp_path.glob("take_*.trimmed.wav"))) == 2
    assert len([p for p in tmp_path.glob("take_*.wav") if ".trimmed" not in p.name]) == 3  # originals kept
    err = capsys.readouterr().err
    assert "Take 1/2" in err and "refused" in err and "dBFS" in err
