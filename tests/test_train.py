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
    from wakeword.train import TrainConfig, train

    out = tmp_path_factory.mktemp("train") / "hey_nova"
    config = TrainConfig(
        phrase="Hey Nova!",
        out=out,
        cache_dir=tmp_path_factory.mktemp("cache"),
        max_positive_voices=40,
        near_miss_limit=30,
        near_miss_voices=1,
        sentences_without_negatives=(20, 1),
        head_epochs=4,
        top_epochs=2,
        hard_negatives=30,
        isolated_negatives=10,  # off by default; on here so that its path runs end to end
    )
    card = train(config)
    return out, card


def test_training_writes_a_complete_card(trained):
    out, card = trained
    assert card["phrase"] == "hey nova"
    for key in ("threshold", "data", "phase1", "phase2", "validation", "encoder", "training_seconds", "device"):
        assert key in card, key
    assert 0.5 <= card["threshold"] < 1.0
    assert card["decision"] == {"smoothing": 4}  # TrainConfig.smoothing: the runtime decides on that mean
    assert card["data"]["positive_voice_configs"] == 40 and card["data"]["near_miss_phrases"] >= 20
    assert card["device"] == "cpu"
    # TTS sentences are heard as running talk and (10 of them, as asked) alone, framed like the phrase.
    sources = card["data"]["train_sources"]
    assert (
        sources["isolated"] > 0
        and sum(card["data"][k].get("isolated", 0) for k in ("train_sources", "val_sources")) == 10
    )
    assert (out / "model.pt").exists() and json.loads((out / "card.json").read_text())["phrase"] == "hey nova"
    # No --negatives: the card and the summary say so (docs/takes_only.md).
    assert card["data"]["negative_recordings"] == 0 and card["data"]["negative_recording_minutes"] == 0


def test_the_summary_says_how_much_recorded_speech_training_had(trained, capsys):
    from wakeword.cli import print_training_summary

    out, card = trained
    print_training_summary(card, out)
    assert "recorded everyday speech (--negatives): none: expect false accepts" in capsys.readouterr().out
    with_speech = {**card, "data": {**card["data"], "negative_recordings": 120, "negative_recording_minutes": 36.9}}
    print_training_summary(with_speech, out)
    assert "recorded everyday speech (--negatives): 120 files, 36.9 min" in capsys.readouterr().out
    # The validation misses by origin (no takes here: synthetic only), and cards from before the split.
    clips = card["validation"]["positives"]
    missed = card["validation"]["missed_at_threshold"]["synthetic voices"]["missed"]
    print_training_summary(card, out)
    shown = capsys.readouterr().out
    assert f"missed at the threshold: synthetic voices {missed} of {clips}" in shown
    assert "a take of yours scores below the threshold" not in shown
    takes_missed = {"your held-out takes": {"clips": 2, "missed": 1}, "synthetic voices": {"clips": 24, "missed": 3}}
    print_training_summary({**card, "validation": {**card["validation"], "missed_at_threshold": takes_missed}}, out)
    shown = capsys.readouterr().out
    assert "your held-out takes 1 of 2, synthetic voices 3 of 24" in shown
    assert "a take of yours scores below the threshold: record more takes" in shown
    old_card = {**card, "validation": {k: v for k, v in card["validation"].items() if k != "missed_at_threshold"}}
    print_training_summary(old_card, out)
    assert "missed at the threshold" not in capsys.readouterr().out


def test_validation_misses_are_counted_apart_for_the_takes_and_the_synthetic_voices():
    from wakeword.evaluate import STEP_S, build_positive_stream
    from wakeword.train import missed_by_origin

    clips = [np.full(16000, 0.1, np.float32)] * 4
    stream = build_positive_stream(clips, seed=0)
    scores = np.zeros(stream.steps)
    for start, _end in stream.targets[:1] + stream.targets[2:3]:  # only the 1st and 3rd clips fire
        scores[int(start / STEP_S) + 2] = 0.9
    kinds = ["user", "user", "tts", "tts"]
    assert missed_by_origin(scores, stream, kinds, 0.5) == {
        "your held-out takes": {"clips": 2, "missed": 1},
        "synthetic voices": {"clips": 2, "missed": 1},
    }
    assert missed_by_origin(scores, stream, kinds, 0.95) == {
        "your held-out takes": {"clips": 2, "missed": 2},
        "synthetic voices": {"clips": 2, "missed": 2},
    }
    assert missed_by_origin(scores, stream, ["tts"] * 4, 0.5) == {"synthetic voices": {"clips": 4, "missed": 2}}


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


@pytest.fixture(scope="module")
def trained_full(trained, tmp_path_factory):
    """The fixture's model trained again with --strategy full (a short phase 3)."""
    from wakeword.train import resume_config, train

    out, _ = trained
    config = resume_config(out, strategy="full", full_epochs=1, full_examples_per_epoch=128, full_val_examples=64)
    config.out, config.resume = tmp_path_factory.mktemp("full") / "hey_nova", False
    return config.out, train(config)


def test_full_strategy_fine_tunes_its_own_bottom_close_to_the_pretrained_one(trained_full):
    import torch

    from wakeword.encoder import load_encoder
    from wakeword.model import bottom_parameters
    from wakeword.train import load_model

    out, card = trained_full
    assert card["strategy"] == "full" and card["bottom_shared"] is False
    assert card["phase2"]["kept"] and card["phase3"]["epochs_run"] == 1
    net, _ = load_model(out)  # the checkpoint holds the bottom, and load_model restores it
    assert net.bottom is not None
    moved = [p.detach() for p in bottom_parameters(net.bottom)]
    pretrained = [p.detach() for p in bottom_parameters(load_encoder())]
    assert any(not torch.equal(a, b) for a, b in zip(moved, pretrained, strict=True))
    distance = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(moved, pretrained, strict=True)))
    norm = torch.sqrt(sum((b**2).sum() for b in pretrained))
    assert 0 < distance / norm < 0.01  # moved, but a little: the pull toward the pretrained weights
    assert card["phase3"]["bottom_distance"]["relative"] == pytest.approx(float(distance / norm), rel=1e-3)


def test_full_model_exports_its_own_bottom_and_runs_beside_a_shared_one(trained, trained_full):
    from wakeword import tts
    from wakeword.encoder import load_encoder
    from wakeword.export import export_model
    from wakeword.model import score_audio
    from wakeword.runtime import Detector
    from wakeword.train import load_model

    top_dir, full_dir = trained[0], trained_full[0]
    export_model(top_dir)
    exported = export_model(full_dir)
    assert exported["bottom_shared"] is False and exported["bottom_shared_sha256"] is None
    assert (full_dir / "bottom.onnx").read_bytes() != (top_dir / "bottom.onnx").read_bytes()
    voice = tts.list_voices("positive", variations=False)[0]
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 0.003, 16000 * 2).astype(np.float32)
    audio = np.concatenate([quiet, tts.synthesize("hey nova", voice) * 0.5, quiet]).astype(np.float32)
    net, _ = load_model(full_dir)
    offline = score_audio(net, load_encoder(), audio)
    assert offline.std() > 0.01  # scores that move, so the comparison below says something
    together = Detector([full_dir, top_dir], providers="CPUExecutionProvider")
    assert len(together._groups) == 2  # the full model's bottom runs apart from the shared one
    scores = together.process_scores(audio)[1]
    assert np.abs(scores[:, 0] - offline).max() <= 1e-4
    for column, path in enumerate([full_dir, top_dir]):
        alone = Detector([path], providers="CPUExecutionProvider").process_scores(audio)[1][:, 0]
        np.testing.assert_allclose(scores[:, column], alone, atol=1e-6)


def test_a_full_model_is_not_resumed_on_the_shared_bottom(trained_full, tmp_path, capsys):
    out, _ = trained_full
    copy = tmp_path / "hey_nova"
    shutil.copytree(out, copy)
    keep = tmp_path / "keep"
    (keep / "detections").mkdir(parents=True)
    # Adapting from feedback trains the head on the shared bottom's features: refused, with the reason.
    assert main(["train", "--resume", str(copy), "--feedback", str(keep)]) == 2
    err = capsys.readouterr().err
    assert "its own encoder bottom" in err and "--strategy full" in err
    assert not (copy / "previous").exists()


def test_phase_3_pull_keeps_the_bottom_near_the_pretrained_weights(tmp_path):
    """fit on random log-mel: the same steps move the bottom far less with the pull than without it."""
    import torch

    from wakeword.dataset import Features
    from wakeword.encoder import load_encoder
    from wakeword.model import SEGMENT_FRAMES, WakeWordNet, bottom_parameters
    from wakeword.train import Data, TrainConfig, fit

    def examples(n: int, seed: int) -> Features:
        generator = torch.Generator().manual_seed(seed)
        labels = (torch.arange(n) % 2).float()
        mels = torch.randn(n, SEGMENT_FRAMES, 32, generator=generator) + labels[:, None, None]
        return Features(torch.zeros(n, 96, 38, 2), labels, torch.ones(n), ["x"] * n, mels.half())

    data = Data(examples(64, 0), examples(32, 1), [], [], {})
    distances = []
    for pull in (0.0, 1e4):
        config = TrainConfig(phrase="x", out=tmp_path, batch_size=16, full_examples_per_epoch=64, pull_bottom=pull)
        encoder = load_encoder()
        net = WakeWordNet(encoder, own_bottom=True)
        fit(net, data, "cpu", 1, 1e-3, True, config, "phase 3", train_bottom=True)
        moved, start = bottom_parameters(net.bottom), bottom_parameters(encoder)
        with torch.no_grad():
            distances.append(float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(moved, start, strict=True)))))
    assert distances[0] > 0 and distances[1] < 0.5 * distances[0]


def test_train_seed_alone_decides_the_optimisation(tmp_path):
    """fit on random activations: train_seed (batch order, dropout) moves the weights, the data seed does not
    once train_seed is set, and an unset train_seed falls back to the seed."""
    import torch

    from wakeword.dataset import Features
    from wakeword.encoder import load_encoder
    from wakeword.model import WakeWordNet
    from wakeword.train import Data, TrainConfig, fit

    def examples(n: int, seed: int) -> Features:
        generator = torch.Generator().manual_seed(seed)
        labels = (torch.arange(n) % 2).float()
        acts = torch.randn(n, 96, 38, 2, generator=generator) + labels[:, None, None, None]
        return Features(acts.half(), labels, torch.ones(n), ["x"] * n)

    data = Data(examples(96, 0), examples(32, 1), [], [], {})
    encoder = load_encoder()

    def head_after(**seeds) -> torch.Tensor:
        torch.manual_seed(123)  # the same initial head every time
        net = WakeWordNet(encoder)
        fit(net, data, "cpu", 2, 1e-2, False, TrainConfig(phrase="x", out=tmp_path, batch_size=16, **seeds), "p1")
        return torch.cat([p.detach().flatten() for p in net.head.parameters()])

    base = head_after(seed=0)
    assert torch.equal(base, head_after(seed=0))
    assert torch.equal(base, head_after(seed=7, train_seed=0))
    assert torch.equal(head_after(seed=1, train_seed=5), head_after(seed=2, train_seed=5))
    assert not torch.equal(base, head_after(seed=0, train_seed=5))


def test_checkpoint_averaging_ends_on_the_mean_of_the_best_epochs(tmp_path):
    """average_best: floating weights are the element-wise mean, integer buffers come from the best epoch;
    a fit with it ends elsewhere than on its single best epoch and says how many epochs it averaged."""
    import torch

    from wakeword.dataset import Features
    from wakeword.encoder import load_encoder
    from wakeword.model import WakeWordNet
    from wakeword.train import Data, TrainConfig, average_states, fit

    states = [
        {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
        {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)},
    ]
    mean = average_states(states)
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and int(mean["n"]) == 3
    frozen = torch.tensor([-1.3526537418365479, -0.3413603901863098])  # their mean of 3 copies is not them in float32
    assert torch.equal(average_states([{"w": frozen.clone()} for _ in range(3)])["w"], frozen)

    def examples(n: int, seed: int) -> Features:
        generator = torch.Generator().manual_seed(seed)
        labels = (torch.arange(n) % 2).float()
        acts = torch.randn(n, 96, 38, 2, generator=generator) + 0.3 * labels[:, None, None, None]
        return Features(acts.half(), labels, torch.ones(n), ["x"] * n)

    data = Data(examples(96, 0), examples(64, 1), [], [], {})
    encoder = load_encoder()
    heads, reports = [], []
    for average_best in (1, 3):
        torch.manual_seed(123)
        net = WakeWordNet(encoder)
        config = TrainConfig(phrase="x", out=tmp_path, batch_size=16, patience=10, average_best=average_best)
        reports.append(fit(net, data, "cpu", 4, 1e-2, False, config, "p1"))
        heads.append(torch.cat([p.detach().flatten() for p in net.head.parameters()]))
    assert [r["epochs_averaged"] for r in reports] == [1, 3]
    assert reports[0]["history"] == reports[1]["history"]  # the same trajectory, only its end differs
    assert not torch.allclose(heads[0], heads[1])


def test_auto_strategy_and_unknown_strategies():
    from wakeword.errors import WakewordError
    from wakeword.train import choose_strategy, phase2_guarded

    assert choose_strategy("head", 5) == "head" and choose_strategy("full", 0) == "full"
    # The rule read off docs/strategies.md: 'top' at every K; phase 2 guarded by validation only with
    # 3 to 19 real takes, and never for an explicit strategy.
    assert [choose_strategy("auto", k) for k in (0, 3, 5, 10, 20, 50)] == ["top"] * 6
    assert [phase2_guarded("auto", k) for k in (0, 3, 19, 20, 50)] == [False, True, True, False, False]
    assert not phase2_guarded("top", 5) and not phase2_guarded("full", 5)
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


def exponential_peaks(rng: np.random.Generator, hours: float, rate_at_0: float = 4000.0, scale: float = 1.0):
    """The highest negative peaks of `hours` of audio whose false-alarm rate above logit L is
    rate_at_0 * exp(-L / scale) per hour (a Poisson count of peaks, each exponential above logit 0)."""
    count = rng.poisson(rate_at_0 * hours)
    logits = np.sort(rng.exponential(scale, count))[::-1][:20]
    return 1 / (1 + np.exp(-logits))


def test_tail_fit_gets_closer_to_the_true_rate_with_more_held_aside_hours():
    from wakeword.train import tail_fit

    rng = np.random.default_rng(1)
    true_logit = np.log(4000.0 / 0.5)  # where this process falls to 0.5 FA/h
    errors = {}
    for hours in (0.1, 0.5, 2.5):
        logits = []
        for _ in range(200):
            t = tail_fit(exponential_peaks(rng, hours), hours, 0.5)["threshold"]
            logits.append(np.log(t / (1 - t)))
        errors[hours] = np.sqrt(np.mean((np.array(logits) - true_logit) ** 2))
        # Unbiased enough that the false-alarm rate it gives is near the target on average (in logit, 0.5
        # is a factor 1.6 in rate), whatever the hours.
        assert abs(np.mean(logits) - true_logit) < 0.5, (hours, np.mean(logits))
    assert errors[0.1] > errors[0.5] > errors[2.5], errors
    assert errors[2.5] < 0.6 * errors[0.1], errors


def test_tail_fit_never_goes_below_what_the_held_aside_peaks_already_show():
    from wakeword.evaluate import false_accepts_per_hour
    from wakeword.train import negative_peaks, tail_fit

    # One odd peak far above a tight bulk: the tail fit alone (small scale) would put the threshold
    # below it, where this quarter hour already shows 4 false alarms per hour.
    peaks = np.array([0.99] + [0.05 - 0.001 * i for i in range(19)])
    fit = tail_fit(peaks, hours=0.25, target_fa_per_hour=0.5)
    assert fit["threshold"] > 0.99 and fit["floor"] > 0.99
    # Four hours may show two false alarms at 0.5 FA/h: above the third peak, not necessarily the second.
    peaks = np.array([0.99, 0.98, 0.97] + [0.05 - 0.001 * i for i in range(17)])
    assert 0.97 < tail_fit(peaks, hours=4.0, target_fa_per_hour=0.5)["threshold"] <= 0.98
    # The same through the evaluator's event counting, on a score track holding those peaks.
    scores = np.zeros(int(4 * 3600 / 0.08))
    scores[np.arange(len(peaks)) * 1000 + 50] = peaks
    threshold = tail_fit(negative_peaks(scores), hours=4.0, target_fa_per_hour=0.5)["threshold"]
    assert false_accepts_per_hour(scores, 4.0, threshold) <= 0.5
    assert false_accepts_per_hour(scores, 4.0, np.nextafter(0.97, 0)) > 0.5  # and the floor is the right peak


def test_tail_fit_with_no_peaks_or_no_audio():
    from wakeword.train import tail_fit

    assert tail_fit(np.zeros(0), 0.25, 0.5)["threshold"] == 0.5
    assert tail_fit(np.array([0.9]), 0.0, 0.5)["threshold"] == 0.5


def test_positive_cap_is_the_highest_threshold_that_keeps_the_positives():
    from wakeword.train import positive_cap

    rows = [{"threshold": t, "frr": f} for t, f in ((0.5, 0.0), (0.8, 0.05), (0.9, 0.1), (0.95, 0.4), (0.99, 0.9))]
    assert positive_cap(rows, 0.1) == 0.9
    assert positive_cap(rows, 0.0) == 0.5
    assert positive_cap([{"threshold": 0.5, "frr": 0.5}], 0.1) == 0.0  # none does: no cap below the floor


def test_calibrated_threshold_caps_the_extrapolation_but_not_the_evidence():
    from wakeword.train import calibrated_threshold

    fit, thin = {"threshold": 0.9999, "floor": 0.3}, 0.01  # hours of held-aside speech, as in the demo
    assert calibrated_threshold(fit, cap=0.93, hours=thin) == 0.93  # a guess past the data gives way
    assert calibrated_threshold(fit | {"threshold": 0.8}, cap=0.93, hours=thin) == 0.8  # below the cap: its own
    assert calibrated_threshold(fit | {"floor": 0.97}, cap=0.93, hours=thin) == 0.97  # a seen false alarm never passes
    assert calibrated_threshold({"threshold": 0.5, "floor": None}, cap=0.0, hours=thin) == 0.5  # no peaks: default
    assert calibrated_threshold({"threshold": 1.0, "floor": 0.9999999}, cap=1.0, hours=thin) < 1.0  # within bounds
    # From a quarter hour of real speech the tail is the better guess (measured): the cap does not act.
    assert calibrated_threshold(fit, cap=0.93, hours=0.25) == 0.9995


def test_calibration_records_its_rule_and_holds_the_target_on_its_own_stream(trained):
    from wakeword.train import MAX_THRESHOLD

    _out, card = trained
    validation = card["validation"]
    assert validation["threshold_rule"].startswith("tail_fit") and validation["tail_scale_logit"] is not None
    # Synthetic only: every held-aside positive is a synthetic voice, and their misses are the pooled FRR.
    by_origin = validation["missed_at_threshold"]
    assert list(by_origin) == ["synthetic voices"] and by_origin["synthetic voices"]["clips"] == validation["positives"]
    assert by_origin["synthetic voices"]["missed"] == round(validation["frr_at_threshold"] * validation["positives"])
    peaks = validation["negative_peaks"]
    assert peaks == sorted(peaks, reverse=True)
    assert peaks[0] == pytest.approx(validation["highest_negative_score"], abs=1e-5)
    # Under 2 h of held-aside speech at 0.5 FA/h, not one of its false alarms may pass the threshold, as
    # the evaluator counts them (unless the threshold is pinned at its cap).
    assert validation["negative_hours"] * card["target_fa_per_hour"] < 1
    if card["threshold"] < MAX_THRESHOLD:
        assert card["threshold"] > validation["highest_negative_score"]
        assert validation["fa_per_hour_at_threshold"] == 0.0
    # Past the evidence, the tail's guess gives way to the held-aside positives (calibrated_threshold).
    floor = float(np.nextafter(validation["highest_negative_score"], 1.0))
    assert card["threshold"] <= max(validation["positive_cap"], floor, 0.5) + 1e-9
    assert card["threshold"] <= validation["tail_threshold"] + 1e-9 or card["threshold"] == 0.5


def test_synthetic_sentences_fill_in_when_there_are_no_recorded_negatives(tmp_path, monkeypatch):
    """tts_sources: max_sentences x sentence_voices beside recorded speech, sentences_without_negatives
    without any (then the sentences are all the everyday speech training and calibration have)."""
    import numpy as np

    from wakeword import tts
    from wakeword.train import TrainConfig, tts_sources

    voices = [tts.Voice("espeak-ng", f"v{i}", f"speaker{i}", "GPL-3.0", True) for i in range(4)]
    monkeypatch.setattr(tts, "list_voices", lambda *args, **kwargs: voices)
    monkeypatch.setattr(
        tts, "synthesize_many", lambda items, progress=True: ((t, v, np.zeros(1600, np.float32)) for t, v in items)
    )

    def speech_clips(**values) -> int:
        config = TrainConfig(
            phrase="hey nova",
            out=tmp_path / "m",
            cache_dir=tmp_path / "cache",
            max_positive_voices=1,
            near_miss_limit=0,
            max_sentences=3,
            sentence_voices=1,
            sentences_without_negatives=(5, 2),
            **values,
        )
        sources, _ = tts_sources(config, np.random.default_rng(0))
        return sum(s.kind == "speech" for s in sources)

    assert speech_clips(negatives=[tmp_path]) == 3
    assert speech_clips() == 10


def test_synthetic_sources_keep_their_order_whatever_the_cache_holds(tmp_path, monkeypatch):
    """tts_sources lists the same sources in the same order cold, warm and with part of the clips cached
    (another word's run caches the shared sentences): later steps draw their random numbers source by
    source, so another order would train another model from the same recipe."""
    import numpy as np

    from wakeword import tts
    from wakeword.train import TrainConfig, tts_sources

    voices = [tts.Voice("espeak-ng", f"v{i}", f"speaker{i}", "GPL-3.0", True) for i in range(4)]
    monkeypatch.setattr(tts, "list_voices", lambda *args, **kwargs: voices)

    def fake_synthesis(items, progress=True):  # a clip that says which (text, voice) it is
        for t, v in items:
            yield t, v, np.full(1600, (hash((t, v.id)) % 1000) / 2000, np.float32)

    monkeypatch.setattr(tts, "synthesize_many", fake_synthesis)

    def listed(cache: str, phrase: str = "hey nova") -> list[tuple[str, str, float]]:
        config = TrainConfig(
            phrase=phrase,
            out=tmp_path / "m",
            cache_dir=tmp_path / cache,
            max_positive_voices=2,
            near_miss_limit=3,
            max_sentences=4,
            sentence_voices=1,
            negatives=[tmp_path],
        )
        sources, _ = tts_sources(config, np.random.default_rng(0))
        return [(s.kind, s.group, float(s.audio[0])) for s in sources]

    cold = listed("a")
    assert {kind for kind, _, _ in cold} == {"tts", "near_miss", "speech"}
    assert listed("a") == cold  # warm: every clip from the cache
    listed("b", phrase="hey vega")  # another phrase's run caches the same sentences in the same voices
    partly = listed("b")
    assert partly == cold


def test_a_long_recording_of_negatives_is_cut_into_pieces_that_split_by_block():
    """One hour-long file as --negatives must give many crops and some held-aside speech, not one source."""
    from wakeword.dataset import Source, split_by_group
    from wakeword.train import BLOCK_S, STREAM_S, as_streams, long_recordings_in_pieces

    rng = np.random.default_rng(0)
    rate = 16000
    podcast = Source(rng.normal(0, 0.1, int(605 * rate)).astype(np.float32), 0, "speech", "file:podcast.mp3")
    words = [Source(rng.normal(0, 0.1, rate).astype(np.float32), 0, "speech", f"file:w{i}.flac") for i in range(30)]
    streams = as_streams([podcast, *words])
    pieces_alone = long_recordings_in_pieces([podcast])
    from_podcast = [p for p in streams if p.group.startswith("file:podcast.mp3")]
    assert len(from_podcast) == int(605 // STREAM_S)  # 50 pieces, the last one 17 s
    assert all(len(p.audio) >= STREAM_S * rate for p in from_podcast)
    assert np.array_equal(np.concatenate([p.audio for p in from_podcast]), podcast.audio)
    assert len({p.group for p in from_podcast}) == int(np.ceil(605 / BLOCK_S)) - 1  # 10 pieces per 2 min block
    assert [s.key for s in as_streams([podcast])] == [s.key for s in pieces_alone]  # cut, not joined
    joined = [s for s in streams if not s.group.startswith("file:podcast.mp3")]
    assert sum(len(s.audio) for s in joined) > 30 * rate  # every word, joined into stretches of 12 s and more
    assert all(STREAM_S * rate <= len(s.audio) < 2 * STREAM_S * rate for s in joined[:-1])
    train, val = split_by_group(from_podcast, 0.2, seed=0)
    assert val and train and not {p.group for p in train} & {p.group for p in val}


def test_takes_without_recorded_negatives_warn_once_the_takes_are_accepted(tmp_path, write, monkeypatch, caplog):
    from tests.conftest import speechlike
    from wakeword import train as train_module
    from wakeword.errors import WakewordError
    from wakeword.train import TrainConfig, collect_sources

    monkeypatch.setattr(train_module, "tts_sources", lambda config, rng: ([], {}))  # no voices needed here
    takes, speech, empty = tmp_path / "takes", tmp_path / "speech", tmp_path / "empty"
    for folder in (takes, speech, empty):
        folder.mkdir()
    for i in range(3):
        write(f"takes/take{i}.wav", speechlike(1.0, seed=i))
    write("speech/talk.wav", speechlike(5.0, seed=9))

    def warned(**values) -> bool:
        caplog.clear()
        collect_sources(TrainConfig(phrase="hey nova", out=tmp_path / "m", **values), np.random.default_rng(0))
        return "no --negatives" in caplog.text

    assert warned(clips=takes)
    assert not warned(clips=takes, negatives=[speech])
    assert not warned()  # synthetic only: nothing real for the model to tell apart
    with pytest.raises(WakewordError, match="0 usable take"):
        warned(clips=empty)  # refused takes: the refusal is the one message, no warning before it
    assert "no --negatives" not in caplog.text
