"""The synthetic-voice layer: the real engines where installed, a fake engine for the machinery around them."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tools.check_voices import edit_distance, words
from wakeword import tts
from wakeword.errors import WakewordError

SR = 16000
PHRASE = "hey nova"
# Seconds of PHRASE from the first voice of each engine at speed 1, pitch 0, after trimming (measured).
PHRASE_SECONDS = {
    "espeak-ng": 0.66,
    "mbrola": 0.49,
    "pico": 0.74,
    "flite": 0.64,
    "festival": 0.66,
    "rhvoice": 0.75,
    "piper": 0.58,
    "hibari": 0.77,
    "kokoro": 0.86,
}


def f0(audio: np.ndarray, low: float = 60.0, high: float = 500.0) -> float:
    """Median fundamental frequency (autocorrelation) over the loud 40 ms frames."""
    frame, estimates = 640, []
    threshold = 0.3 * np.max(np.abs(audio))
    for start in range(0, len(audio) - frame, frame // 2):
        x = audio[start : start + frame]
        if np.max(np.abs(x)) < threshold:
            continue
        x = x - x.mean()
        corr = np.correlate(x, x, "full")[frame - 1 :]
        lags = np.arange(int(SR / high), int(SR / low))
        estimates.append(SR / lags[np.argmax(corr[lags])])
    return float(np.median(estimates))


# --- a fake engine: the machinery (rate, pitch, trim, level, failures) without any TTS installed ---------


class FakeEngine(tts.Engine):
    """Says a 150 Hz buzz for 0.6 s / rate, with 0.5 s of silence either side; can be told to fail."""

    name = "fake"
    install = "nothing to install"

    def __init__(self) -> None:
        self.catalogue = [fake_voice("buzz"), fake_voice("bad")]
        self.calls: list[tuple[str, str, float]] = []
        self.silent = False

    def available(self) -> bool:
        return True

    def render(self, text: str, name: str, rate: float, tmp: Path) -> np.ndarray:
        self.calls.append((text, name, rate))
        assert tmp.is_dir()
        if name == "bad":
            time.sleep(0.02)  # slow enough that parallel workers overlap on the broken voice
            raise RuntimeError("engine crashed")
        t = np.arange(int(0.6 / rate * SR)) / SR
        buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6)).astype(np.float32) * 0.2
        pad = np.zeros(SR // 2, np.float32)
        return np.concatenate([pad, buzz * (0 if self.silent else 1), pad])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    engine = FakeEngine()
    monkeypatch.setitem(tts.ENGINES, "fake", engine)
    return engine


def fake_voice(name: str = "buzz", speed: float = 1.0, pitch: float = 0.0) -> tts.Voice:
    return tts.Voice("fake", name, f"fake:{name}", "CC0", name == "buzz", speed=speed, pitch=pitch)


def test_output_is_trimmed_normalised_float32(fake: FakeEngine) -> None:
    audio = tts.synthesize(PHRASE, fake_voice())
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.max(np.abs(audio)) == pytest.approx(tts.PEAK, abs=1e-3)
    # 0.6 s of buzz plus at most TRIM_PAD_S of the silence on each side: 1.6 s went in.
    assert 0.6 <= len(audio) / SR <= 0.6 + 2 * tts.TRIM_PAD_S + 0.01


def test_speed_and_pitch(fake: FakeEngine) -> None:
    plain = tts.synthesize(PHRASE, fake_voice())
    fast = tts.synthesize(PHRASE, fake_voice(speed=1.2))
    up = tts.synthesize(PHRASE, fake_voice(pitch=3.0))
    down = tts.synthesize(PHRASE, fake_voice(pitch=-12.0))
    assert len(plain) / len(fast) == pytest.approx(1.2, rel=0.05)
    # Pitch moves F0 by 2^(st/12) and the engine's rate compensates, so the duration stays.
    assert f0(up) / f0(plain) == pytest.approx(2 ** (3 / 12), rel=0.03)
    assert f0(down) / f0(plain) == pytest.approx(0.5, rel=0.03)
    assert len(up) == pytest.approx(len(plain), rel=0.05) and len(down) == pytest.approx(len(plain), rel=0.05)
    assert fake.calls[2][2] == pytest.approx(2 ** (-3 / 12))  # the rate the engine was asked for


def test_failures_are_tts_errors(fake: FakeEngine) -> None:
    with pytest.raises(tts.TTSError, match="engine crashed"):
        tts.synthesize(PHRASE, fake_voice("bad"))
    fake.silent = True
    with pytest.raises(tts.TTSError, match="silence"):
        tts.synthesize(PHRASE, fake_voice())
    with pytest.raises(tts.TTSError, match="unknown TTS engine"):
        tts.synthesize(PHRASE, tts.Voice("nope", "x", "x", "x", True))
    with pytest.raises(tts.TTSError, match="empty"):
        tts.synthesize("  ", fake_voice())
    assert issubclass(tts.TTSError, WakewordError)


def test_synthesize_many_skips_failures_in_order(fake: FakeEngine, caplog: pytest.LogCaptureFixture) -> None:
    good, bad = fake_voice(), fake_voice("bad")
    items = [(f"{PHRASE} {i}", voice) for i in range(5) for voice in (good, bad)]
    with caplog.at_level(logging.WARNING, logger="wakeword.tts"):
        results = list(tts.synthesize_many(items, workers=4, progress=False))
    assert [text for text, _, _ in results] == [f"{PHRASE} {i}" for i in range(5)]  # input order, bad ones gone
    assert all(voice == good and audio.dtype == np.float32 for _, voice, audio in results)
    bad_calls = [call for call in fake.calls if call[1] == "bad"]
    assert len(bad_calls) == tts.MAX_FAILURES_PER_VOICE  # dropped after that many failures, not retried 5 times
    assert "dropped for this run" in caplog.text


# --- the catalogue ------------------------------------------------------------------------------------------


def test_voice_id() -> None:
    voice = tts.Voice("flite", "slt", "cmu-arctic:slt", "BSD", True, speed=1.1, pitch=2.0)
    assert voice.id == "flite:slt:s1.10:p+2"
    assert tts.Voice("flite", "slt", "x", "x", True, pitch=-1.5).id == "flite:slt:s1.00:p-1.5"


def test_ids_unique_and_deterministic() -> None:
    first = tts.list_voices("negative", commercial_safe=False)
    second = tts.list_voices("negative", commercial_safe=False)
    assert [v.id for v in first] == [v.id for v in second]
    assert len({v.id for v in first}) == len(first)
    base = tts.list_voices("negative", commercial_safe=False, variations=False)
    assert len(first) == len(base) * len(tts.SPEEDS) * len(tts.PITCHES)
    everything = [v for engine in tts.ENGINES.values() for v in engine.catalogue]
    assert len({v.id for v in everything}) == len(everything)


def test_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(v.commercial_safe for v in tts.list_voices("negative"))
    assert all(tts.is_positive(v) for v in tts.list_voices("positive", commercial_safe=False))
    monkeypatch.setattr(tts, "WORD_ACCURACY", {})
    assert tts.list_voices("positive") == []  # an unmeasured voice is never a positive
    with pytest.raises(tts.TTSError):
        tts.list_voices("both")


def test_positives_follow_the_measurements() -> None:
    # Every voice in the table was measured, and the voices the issue measured as unintelligible stay out.
    known = {v.base for engine in tts.ENGINES.values() for v in engine.catalogue}
    assert set(tts.WORD_ACCURACY) <= known
    assert not any(tts.is_positive(v) for v in tts.ESPEAK_VOICES)
    passing = [v for v in tts.ESPEAK_VOICES + tts.FLITE_VOICES + tts.RHVOICE_VOICES if tts.is_positive(v)]
    assert {v.engine for v in passing} == {"flite", "rhvoice"}


def test_missing_engines_are_skipped(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    monkeypatch.setattr(tts, "_logged_missing", set())
    with caplog.at_level(logging.INFO, logger="wakeword.tts"):
        assert tts.list_voices("negative", commercial_safe=False) == []
        assert tts.list_voices("positive") == []
    assert caplog.text.count("not installed") == len(tts.ENGINE_ORDER)  # logged once per engine, not per call
    status = tts.engine_status()
    assert list(status) == list(tts.ENGINE_ORDER)
    assert all(state.startswith("missing: ") for state in status.values())
    with pytest.raises(tts.TTSError, match="not installed"):
        tts.synthesize(PHRASE, tts.FLITE_VOICES[0])


# --- the real engines ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", tts.ENGINE_ORDER)
def test_engine_speaks(engine: str) -> None:
    voices = tts.ENGINES[engine].voices()
    if not voices:
        pytest.skip(f"{engine} not installed: {tts.ENGINES[engine].install}")
    assert tts.engine_status()[engine] == f"ok: {len(voices)} voices"
    slow, plain, fast = (tts.synthesize(PHRASE, tts.vary(voices[0], [s], [0.0])[0]) for s in (0.8, 1.0, 1.2))
    for audio in (slow, plain, fast):
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.all(np.isfinite(audio))
        assert np.max(np.abs(audio)) == pytest.approx(tts.PEAK, abs=1e-3)
    # The phrase lasts what it lasted when measured (first voice of each engine, ±25 %): a sample-rate mistake,
    # even 22.05 kHz taken as 16 kHz (x1.38), falls outside. Little silence is left at either end.
    assert len(plain) / SR == pytest.approx(PHRASE_SECONDS[engine], rel=0.25)
    assert np.sqrt(np.mean(plain**2)) > 0.05
    assert np.max(np.abs(plain[:80])) < 0.5 * tts.PEAK  # trimmed to the onset, not into it
    assert len(slow) > 1.1 * len(fast)  # the rate control works, in the right direction
    pitched = tts.synthesize(PHRASE, tts.vary(voices[0], [1.0], [3.0])[0])
    assert len(pitched) == pytest.approx(len(plain), rel=0.2)
    # The same clip every time: training from an empty cache repeats (piper drew noise on every call).
    assert np.array_equal(tts.synthesize(PHRASE, tts.vary(voices[0], [1.0], [0.0])[0]), plain)


def test_a_changed_rendering_is_cached_under_another_name() -> None:
    piper, flite = tts.PIPER_VOICES[0], tts.FLITE_VOICES[0]
    assert tts.cache_name("hey nova", flite) == f"tts:hey nova:{flite.id}"  # the names clips were cached under
    assert tts.cache_name("hey nova", piper) == f"tts:hey nova:{piper.id}:render{tts.RENDER_VERSIONS['piper']}"


def test_at_least_100_positive_configurations() -> None:
    needed = ("pico", "flite", "festival", "rhvoice")
    missing = [name for name in needed if not tts.ENGINES[name].voices()]
    if missing:
        pytest.skip(f"needs the {', '.join(missing)} engines (tools/setup.sh installs them)")
    positives = tts.list_voices("positive")
    assert len(positives) >= 100
    assert all(v.commercial_safe for v in positives)
    assert len({v.speaker for v in positives}) >= 10


# --- the check tool's scoring -----------------------------------------------------------------------------


def test_word_scoring() -> None:
    assert words("It’s the man's fall, Sir!") == ["it's", "the", "man's", "fall", "sir"]
    assert edit_distance(["a", "b", "c"], ["a", "c", "d"]) == 2
    assert edit_distance(["a", "b"], []) == 2 and edit_distance([], ["x"]) == 1
