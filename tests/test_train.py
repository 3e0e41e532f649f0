"""`wakeword train` end to end on CPU with a tiny recipe: sources -> phases -> calibration -> export -> detect."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from wakeword.cli import main

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="TTS voices not installed (make setup)")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from wakeword.train import quick_config, train

    out = tmp_path_factory.mktemp("train") / "hey_nova"
    config = quick_config(
        phrase="Hey Nova!",
        out=out,
        cache_dir=tmp_path_factory.mktemp("cache"),
        max_positive_voices=40,
        near_miss_limit=30,
        near_miss_voices=1,
        max_sentences=20,
        head_epochs=4,
        top_epochs=2,
        hard_negatives=30,
    )
    card = train(config)
    return out, card


def test_training_writes_a_complete_card(trained):
    out, card = trained
    assert card["phrase"] == "hey nova"
    for key in ("threshold", "data", "phase1", "phase2", "validation", "encoder", "training_seconds", "device"):
        assert key in card, key
    assert 0.5 <= card["threshold"] < 1.0
    assert card["data"]["positive_voice_configs"] == 40 and card["data"]["near_miss_phrases"] >= 20
    assert card["device"] == "cpu"
    assert (out / "model.pt").exists() and json.loads((out / "card.json").read_text())["phrase"] == "hey nova"


def test_trained_model_exports_and_separates_phrase_from_noise(trained, tmp_path):
    from wakeword import tts
    from wakeword.export import export_model
    from wakeword.runtime import Detector

    out, _card = trained
    export_model(out)
    voice = tts.list_voices("positive", variations=False)[0]
    phrase = tts.synthesize("hey nova", voice) * 0.5
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 0.003, 16000 * 2).astype(np.float32)
    stream = np.concatenate([quiet, phrase + rng.normal(0, 0.003, len(phrase)).astype(np.float32), quiet])
    scores = Detector([out]).process_scores(stream)[1][:, 0]
    noise_scores = Detector([out]).process_scores(rng.normal(0, 0.05, 16000 * 4).astype(np.float32))[1][:, 0]
    assert scores.max() > noise_scores.max() + 0.2


def test_existing_model_folder_is_never_overwritten(trained, capsys):
    out, _ = trained
    before = (out / "card.json").read_bytes()
    assert main(["train", "hey nova", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "card.json").read_bytes() == before


def test_too_few_usable_clips_is_refused(tmp_path, write, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    write("clips/silent1.wav", np.zeros(16000, np.float32))
    write("clips/silent2.wav", np.zeros(16000, np.float32))
    assert main(["train", "hey nova", "--clips", str(clips), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "at least 3" in err[-1]
    assert not (tmp_path / "m").exists()
