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


def test_resume_trains_again_from_the_saved_weights_and_keeps_the_old_files(trained, tmp_path):
    out, _card = trained
    copy = tmp_path / "hey_nova"
    shutil.copytree(out, copy)
    before = (copy / "model.pt").read_bytes()
    assert main(["train", "--resume", str(copy)]) == 0
    assert (copy / "previous" / "model.pt").read_bytes() == before  # the old model is kept, not lost
    resumed = json.loads((copy / "card.json").read_text())
    assert resumed["phrase"] == "hey nova" and resumed["config"]["resume"] is True
    assert resumed["data"]["cache_hits"] > 0  # synthesis and features came from the first run's cache
    assert (copy / "top.onnx").exists()


def test_resume_refuses_another_phrase_and_a_foreign_model(trained, tmp_path, capsys):
    out, _ = trained
    assert main(["train", "hey nora", "--resume", str(out)]) == 2
    assert "was trained for 'hey nova'" in capsys.readouterr().err
    foreign = tmp_path / "old"
    shutil.copytree(out, foreign)
    card = json.loads((foreign / "card.json").read_text())
    card["feature_version"] = -1
    (foreign / "card.json").write_text(json.dumps(card))
    assert main(["train", "--resume", str(foreign)]) == 2
    assert "feature version" in capsys.readouterr().err
    keep = tmp_path / "keep"
    (keep / "detections").mkdir(parents=True)
    assert main(["train", "--resume", str(foreign), "--feedback", str(keep)]) == 2  # adapting: refused alike
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "feature version -1" in err and "retrain it" in err
    del card["config"]  # a card from before resumable models
    card["feature_version"] = json.loads((out / "card.json").read_text())["feature_version"]
    (foreign / "card.json").write_text(json.dumps(card))
    assert main(["train", "--resume", str(foreign), "--feedback", str(keep)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "no training config" in err


def test_resume_with_feedback_adds_the_kept_audio_and_keeps_the_models_recipe(trained, tmp_path, capsys):
    from collections import Counter

    from wakeword.keep import KeepFolder
    from wakeword.train import ADAPT_RECIPE

    out, card = trained
    copy = tmp_path / "hey_nova"
    shutil.copytree(out, copy)
    keep = KeepFolder(tmp_path / "keep", 20 * 2**20)
    keep.create()
    rng = np.random.default_rng(0)
    for n in range(5):  # what the daemon keeps, marked false by the user
        record = {"id": f"20270101-0{n}0000-000-hey_nova", "phrase": "hey nova", "label": "false"}
        keep.write_detection({**record, "detection_at_s": 2.0}, rng.normal(0, 0.1, 40000).astype(np.float32))
    keep.write_detection({"id": "20270102-000000-000-hey_nova", "label": None}, np.zeros(40000, np.float32))
    for n in range(3):
        keep.write_ambient(f"20270101-1{n}0000-000", rng.normal(0, 0.02, 64000).astype(np.float32))
    assert main(["train", "--resume", str(copy), "--feedback", str(keep.root)]) == 0
    assert "feedback: 5 false accepts, 0 confirmed detections, 3 ambient snippets" in capsys.readouterr().out
    resumed = json.loads((copy / "card.json").read_text())
    data = resumed["data"]
    assert data["feedback"]["false_accepts"] == 5 and data["feedback"]["unlabelled"] == 1
    kinds = Counter(data["train_sources"])
    assert kinds["false_accept"] == 5 and kinds["ambient"] == 6  # all in training; two pieces per 4 s snippet
    assert resumed["config"]["feedback"] == [str(keep.root)]
    # The short recipe was this run's; the card keeps the model's own for the next plain --resume.
    assert resumed["adaptation"]["recipe"] == ADAPT_RECIPE
    for key in ADAPT_RECIPE:
        assert resumed["config"][key] == card["config"][key]
    assert (copy / "previous" / "model.pt").exists() and (copy / "top.onnx").exists()


def test_features_strategy_is_logistic_regression_on_the_frozen_encoder(trained, tmp_path):
    import torch

    from wakeword.encoder import load_encoder
    from wakeword.export import export_model
    from wakeword.model import WakeWordNet
    from wakeword.runtime import Detector
    from wakeword.train import load_model, resume_config, train

    out, _ = trained
    config = resume_config(out, strategy="features")
    config.out, config.resume = tmp_path / "features", False
    card = train(config)
    assert card["strategy"] == "features" and card["head"] == "linear" and card["phase2"] is None
    net, _ = load_model(config.out)
    trained_params = [n for n, p in net.named_parameters() if n.startswith("head.")]
    assert trained_params == ["head.out.weight", "head.out.bias"]  # a linear classifier, nothing else
    frozen = WakeWordNet(load_encoder()).top
    for a, b in zip(net.top.parameters(), frozen.parameters(), strict=True):
        assert torch.equal(a, b)  # the encoder is exactly the pretrained one
    export_model(config.out)
    scores = Detector([config.out]).process_scores(np.zeros(16000 * 2, np.float32))[1]
    assert scores.shape == (25, 1) and np.all((scores >= 0) & (scores <= 1))


def test_auto_strategy_and_unknown_strategies():
    from wakeword.errors import WakewordError
    from wakeword.train import choose_strategy

    assert choose_strategy("head", 5) == "head"
    assert choose_strategy("auto", 0) in ("features", "head", "top")
    with pytest.raises(WakewordError, match="--strategy"):
        choose_strategy("everything", 5)


def test_tail_threshold_extrapolates_the_false_alarm_rate():
    from wakeword.train import negative_peaks, tail_threshold

    rng = np.random.default_rng(0)
    # Peaks whose logits are exponential with scale 1 above 0: over 0.5 h, the rate above logit L is
    # (count / 0.5 h) * exp(-L); 2000 of them give 4000/h at L = 0, so 0.5 FA/h sits at L = ln(8000).
    peaks_logit = np.sort(rng.exponential(1.0, 2000))[::-1]
    peaks = 1 / (1 + np.exp(-peaks_logit[:20]))
    # The fit sees only the 20 highest; its k-th peak already carries the rate k / hours.
    threshold = tail_threshold(peaks, hours=0.5, target_fa_per_hour=0.5)
    logit = np.log(threshold / (1 - threshold))
    assert abs(logit - np.log(8000)) < 1.0
    assert threshold > peaks[0]  # past the highest peak seen: the data are too short to show 0.5/h
    # Plenty of audio: the k-th peak is already rarer than the target, no extrapolation.
    assert tail_threshold(peaks, hours=100.0, target_fa_per_hour=0.5) == peaks[-1]
    # Peaks: one per refractory window, highest first.
    scores = np.zeros(200)
    scores[[10, 12, 100]] = [0.9, 0.95, 0.5]
    assert negative_peaks(scores).tolist()[:2] == [0.95, 0.5]
