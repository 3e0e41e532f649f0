"""Input adaptation to a microphone (wakeword/channel.py): the offset measured, written, applied, removed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.signal

from tests.conftest import SR, speechlike
from tests.test_runtime import make_model
from wakeword.channel import MAX_BOOST_DB, MAX_CUT_DB, adapt_model, band_means, channel_offset, reset_adaptation
from wakeword.errors import ModelError, WakewordError
from wakeword.frontend import F_MAX, F_MIN, FEATURE_SCALE, N_MELS, _hz_to_mel, _mel_to_hz


def talk(seconds: float, seed: int) -> np.ndarray:
    return np.concatenate([speechlike(2.0, seed=seed + i) for i in range(int(seconds // 2))])


def lowpass(audio: np.ndarray, hz: float) -> np.ndarray:
    sos = scipy.signal.butter(6, hz, fs=SR, output="sos")
    return scipy.signal.sosfilt(sos, audio).astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("channel") / "word")


def test_offset_undoes_a_dull_microphone_in_shape_not_level():
    clean = [talk(20.0, seed=0)]
    reference, _ = band_means(clean)
    dull, _ = band_means([lowpass(a, 2000.0) * 0.3 for a in clean])  # quieter, and nothing above 2 kHz
    offset = channel_offset(dull, reference)
    assert offset.shape == (N_MELS,)
    centres = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))[1:-1]
    high, low = offset[centres > 3000], offset[centres < 1000]
    assert high.min() > low.max()  # the lost top is raised relative to the bottom
    assert offset.max() <= MAX_BOOST_DB * FEATURE_SCALE + 1e-6 and offset.min() >= -MAX_CUT_DB * FEATURE_SCALE - 1e-6
    same = channel_offset(reference + 0.7, reference)  # a pure level change is not a channel
    np.testing.assert_allclose(same, 0.0, atol=1e-5)


def test_adapt_writes_the_card_the_runtime_applies_and_reset_removes(model_dir, tmp_path):
    from wakeword.runtime import Detector

    adapted = tmp_path / "adapted"
    shutil.copytree(model_dir, adapted)
    room = [lowpass(talk(40.0, seed=5), 3000.0)]
    entry = adapt_model(adapted, room, ["room.wav"])
    card = json.loads((adapted / "card.json").read_text())
    assert card["input_adaptation"]["mel_offset"] == entry["mel_offset"] and len(entry["mel_offset"]) == N_MELS

    audio = talk(4.0, seed=9)
    plain = Detector([model_dir]).process_scores(audio)[1][:, 0]
    moved = Detector([adapted]).process_scores(audio)[1][:, 0]
    assert not np.allclose(plain, moved, atol=1e-4)  # the offset reaches the encoder
    both = Detector([model_dir, adapted])  # different inputs: two runs of the bottom, each right
    assert len(both._groups) == 2
    np.testing.assert_allclose(both.process_scores(audio)[1], np.stack([plain, moved], 1), atol=1e-5)

    assert reset_adaptation(adapted) and not reset_adaptation(adapted)
    np.testing.assert_allclose(Detector([adapted]).process_scores(audio)[1][:, 0], plain, atol=1e-6)


def test_too_little_audio_and_a_broken_offset_are_clear_errors(model_dir, tmp_path):
    from wakeword.runtime import Detector

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    with pytest.raises(WakewordError, match="at least"):
        adapt_model(broken, [talk(4.0, seed=1)], ["short.wav"])
    card = json.loads((broken / "card.json").read_text())
    card["input_adaptation"] = {"mel_offset": [0.0] * 5}
    (broken / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="--reset"):
        Detector([broken])
