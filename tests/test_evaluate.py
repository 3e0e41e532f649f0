"""The evaluation harness: streams, events, the sweep, and the whole thing on oracle/random scorers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest

from tests.conftest import needs_shared_data, speechlike
from tools import shared_data
from wakeword import evaluate as ev
from wakeword.errors import WakewordError

SR = 16000
STEP = 1280


def burst(seconds: float, seed: int, amplitude: float = 0.2) -> np.ndarray:
    """A stand-in clip: noise under a 4 Hz envelope."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(n) / SR)
    return (amplitude * rng.standard_normal(n) * envelope).astype(np.float32)


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2)))


def scores_with_events(n_steps: int, event_steps: list[int], value: float = 1.0) -> np.ndarray:
    scores = np.zeros(n_steps)
    scores[event_steps] = value
    return scores


POSITIVES = [burst(0.8 + 0.1 * (i % 4), seed=i) for i in range(12)]
NEGATIVES = [burst(1.0, seed=100 + i, amplitude=0.1) for i in range(300)]  # ~6.5 min of stream


# ----------------------------------------------------------------------------- events


def test_event_time_is_the_end_of_the_crossing_step():
    events = ev.detect_events(scores_with_events(100, [9]), threshold=0.5)
    assert events == [(pytest.approx(0.8), 1.0)]  # step 9 ends at sample 12800 = 0.8 s


def test_staying_above_threshold_is_one_event():
    scores = np.zeros(200)
    scores[10:150] = 0.9  # 11 s above threshold: one rising crossing
    assert len(ev.detect_events(scores, 0.5)) == 1


def test_refractory_merges_crossings_less_than_two_seconds_apart():
    # 25 steps = exactly 2.0 s: a new event. 24 steps = 1.92 s: merged, and its peak counts.
    merged = scores_with_events(100, [10, 34], value=0.7)
    merged[34] = 0.95
    assert ev.detect_events(merged, 0.5) == [(pytest.approx(0.88), 0.95)]
    separate = ev.detect_events(scores_with_events(100, [10, 35]), 0.5)
    assert [t for t, _ in separate] == [pytest.approx(0.88), pytest.approx(2.88)]
    # Refractory counts from the start of the event, not from its last crossing.
    chain = ev.detect_events(scores_with_events(100, [10, 20, 30, 40]), 0.5)
    assert [t for t, _ in chain] == [pytest.approx(0.88), pytest.approx(3.28)]


def test_refractory_zero_keeps_every_crossing():
    assert len(ev.detect_events(scores_with_events(100, [10, 12, 14]), 0.5, refractory_s=0.0)) == 3


def test_no_events_below_threshold_and_a_stream_starting_above_fires_at_once():
    assert ev.detect_events(np.full(50, 0.2), 0.5) == []
    assert ev.false_accepts_per_hour(np.full(50, 0.2), 1.0, 0.5) == 0.0
    assert ev.detect_events(np.full(50, 0.7), 0.5) == [(pytest.approx(0.08), 0.7)]


def test_smoothed_tracks_fire_where_the_runtime_decision_fires():
    """evaluate (and calibration) decide on smooth_scores' track; the runtime on its running mean: the same
    events, step for step, so a threshold calibrated on one holds for the other."""
    from wakeword.runtime import _Decision

    rng = np.random.default_rng(3)
    track = np.clip(rng.normal(0.3, 0.3, 3000), 0, 1).astype(np.float32)
    smoothed = ev.smooth_scores(track, 4)
    np.testing.assert_allclose(smoothed[:4], np.cumsum(track[:4]) / np.arange(1, 5), rtol=1e-6)  # fewer at first
    np.testing.assert_allclose(smoothed[10], track[7:11].mean(), rtol=1e-6)
    for threshold in (0.4, 0.55, 0.7):
        decision = _Decision(threshold, smoothing=4, refractory_steps=25)
        fired = [k for k, score in enumerate(track) if decision.update(k, float(score)) is not None]
        assert fired == ev._event_steps(smoothed, threshold, 25).tolist() and fired
    assert np.array_equal(ev.smooth_scores(track, 1), track)


def test_nan_scores_are_a_clear_error():
    scores = np.zeros(20)
    scores[7] = np.nan
    with pytest.raises(WakewordError, match=r"NaN.*step 7"):
        ev.detect_events(scores, 0.5)


def test_false_accepts_per_hour_counts_events():
    scores = scores_with_events(45000, list(range(0, 45000, 4500)))  # 10 events in an hour of steps
    assert ev.false_accepts_per_hour(scores, hours=1.0, threshold=0.5) == pytest.approx(10.0)
    with pytest.raises(WakewordError):
        ev.false_accepts_per_hour(scores, hours=0.0, threshold=0.5)


def window_stream() -> ev.Stream:
    # One target from 1.6 s (end of step 19) to 2.4 s (end of step 29), in 4 s of audio.
    return ev.Stream(np.zeros(4 * SR, dtype=np.float32), [(1.6, 2.4)], "edges")


@pytest.mark.parametrize(
    ("event_step", "detected"),
    [
        (18, False),  # ends at 1.52 s: before the clip starts
        (19, True),  # ends at 1.60 s: exactly the clip start
        (29, True),  # ends at 2.40 s: the clip end
        (35, True),  # ends at 2.88 s: inside the 0.5 s tolerance
        (36, False),  # ends at 2.96 s: past end + 0.5 s
    ],
)
def test_detection_window_edges(event_step, detected):
    frr = ev.false_reject_rate(scores_with_events(50, [event_step]), window_stream(), 0.5)
    assert frr == (0.0 if detected else 1.0)


def test_detection_window_upper_edge_is_inclusive():
    # With a tolerance of 0.48 s, end + tolerance = 2.88 s is exactly the end of step 35.
    assert ev.false_reject_rate(scores_with_events(50, [35]), window_stream(), 0.5, tolerance_s=0.48) == 0.0
    assert ev.false_reject_rate(scores_with_events(50, [36]), window_stream(), 0.5, tolerance_s=0.48) == 1.0


# ----------------------------------------------------------------------------- streams and mixing


def test_mix_at_snr_is_exact():
    rng = np.random.default_rng(0)
    speech = speechlike(3.0)
    noise = burst(1.3, seed=5)  # shorter than the speech: it is looped
    for target in (-5.0, 0.0, 10.0, 20.0):
        mixed = ev.mix_at_snr(speech, noise, target, rng)
        assert abs(snr_db(speech, mixed - speech) - target) < 0.1


def test_mix_at_snr_rejects_silence():
    with pytest.raises(WakewordError, match="silent"):
        ev.mix_at_snr(np.zeros(1000, np.float32), burst(1.0, 0), 10.0, np.random.default_rng(0))
    with pytest.raises(WakewordError, match="zeros"):
        ev.mix_at_snr(burst(1.0, 0), np.zeros(1000, np.float32), 10.0, np.random.default_rng(0))


def test_positive_stream_layout_and_snr():
    clean = ev.build_positive_stream(POSITIVES, seed=3)
    assert len(clean.targets) == len(POSITIVES)
    for (start, end), clip in zip(clean.targets, POSITIVES, strict=True):
        a, b = round(start * SR), round(end * SR)
        assert b - a == len(clip)
        np.testing.assert_array_equal(clean.audio[a:b], clip)
    gaps = [b[0] - a[1] for a, b in pairwise(clean.targets)]
    assert min(gaps) >= 2.5 - 1e-9 and max(gaps) <= 4.0 + 1e-9
    assert clean.targets[0][0] >= 2.5 - 1e-9  # background before the first clip too


def test_the_snr_holds_for_every_clip_whatever_its_recording_level():
    # Half the takes recorded 40 dB quieter: each must still sit 5 dB above the noise, not 35 dB under it.
    clips = [c * (0.01 if i % 2 else 1.0) for i, c in enumerate(POSITIVES)]
    noise = burst(2.0, seed=9, amplitude=0.05)
    layout = ev.build_positive_stream(clips, seed=3)
    up = ev.build_positive_stream(clips, background=noise, snr_db=5.0, seed=3)
    down = ev.build_positive_stream(clips, background=-noise, snr_db=5.0, seed=3)
    assert up.targets == layout.targets  # the same seed lays out the same stream
    track, speech = (up.audio - down.audio) / 2, (up.audio + down.audio) / 2
    noise_power = float(np.mean(track.astype(np.float64) ** 2))
    for start, end in up.targets:
        clip = speech[round(start * SR) : round(end * SR)]
        assert 10 * np.log10(ev.speech_level(clip) / noise_power) == pytest.approx(5.0, abs=0.1)
    assert np.all(track != 0)  # the noise runs through the gaps as well


def test_speech_level_ignores_pauses_and_common_level_keeps_silence():
    voiced = np.random.default_rng(1).normal(0, 0.1, SR).astype(np.float32)  # steady: every frame as loud
    with_pause = np.concatenate([voiced, np.zeros_like(voiced)])
    assert ev.speech_level(with_pause) == pytest.approx(ev.speech_level(voiced), rel=0.1)  # a mean would halve it
    silent = np.zeros(SR, np.float32)
    scaled, level = ev.at_common_level([voiced, voiced * 0.001, silent, voiced * 0.01])
    assert level == pytest.approx(ev.speech_level(voiced * 0.01))  # the median of the audible three
    assert all(ev.speech_level(c) == pytest.approx(level, rel=1e-4) for c in (scaled[0], scaled[1], scaled[3]))
    np.testing.assert_array_equal(scaled[2], silent)
    with pytest.raises(WakewordError, match="silent"):
        ev.at_common_level([silent])


def test_negative_stream_gaps_and_hours():
    stream = ev.build_negative_stream(NEGATIVES[:20], seed=1)
    speech = sum(len(c) for c in NEGATIVES[:20]) / SR
    assert stream.targets == []
    assert speech + 19 * 0.1 <= len(stream.audio) / SR <= speech + 19 * 0.6
    assert stream.hours == pytest.approx(len(stream.audio) / SR / 3600)


def test_empty_and_broken_inputs_are_clear_errors():
    with pytest.raises(WakewordError, match="no positive clips"):
        ev.build_positive_stream([])
    with pytest.raises(WakewordError, match="no negative clips"):
        ev.build_negative_stream([])
    with pytest.raises(WakewordError, match="NaN"):
        ev.build_negative_stream([np.array([0.0, np.nan], np.float32)])
    with pytest.raises(WakewordError, match="without any noise"):
        ev.build_negative_stream(NEGATIVES[:2], snr_db=10.0)
    with pytest.raises(WakewordError, match="no positive clips"):
        ev.evaluate_scorer(lambda a: np.zeros(len(a) // STEP), [], NEGATIVES[:2], "x")


def test_scorer_with_the_wrong_number_of_scores_is_rejected():
    with pytest.raises(WakewordError, match="expected one per 80 ms"):
        ev.evaluate_scorer(lambda a: np.zeros(len(a) // STEP + 1), POSITIVES[:2], NEGATIVES[:2], "off by one")
    with pytest.raises(WakewordError, match="NaN"):
        ev.evaluate_scorer(lambda a: np.full(len(a) // STEP, np.nan), POSITIVES[:2], NEGATIVES[:2], "nan")


# ----------------------------------------------------------------------------- the sweep


def bump_scores(n_steps: int, centres: list[int], heights: list[float]) -> np.ndarray:
    """Smooth unimodal bumps on a zero floor, far apart: event counts are then exactly monotonic."""
    scores = np.zeros(n_steps)
    shape = np.array([0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25])
    for centre, height in zip(centres, heights, strict=True):
        scores[centre - 3 : centre + 4] = np.maximum(scores[centre - 3 : centre + 4], height * shape)
    return scores


def test_det_curve_matches_counts_and_is_monotonic():
    rng = np.random.default_rng(1)
    targets = [(4.0 + 6 * i, 5.0 + 6 * i) for i in range(20)]
    pos_stream = ev.Stream(np.zeros(130 * SR, np.float32), targets, "positives")
    pos_heights = rng.uniform(0.3, 1.0, 20)
    # Each bump peaks at the step ending at the clip end.
    pos_scores = bump_scores(pos_stream.steps, [round(end / 0.08) - 1 for _, end in targets], list(pos_heights))
    neg_heights = rng.uniform(0.1, 0.9, 40)
    neg_scores = bump_scores(45000, list(range(500, 44000, 1000)[:40]), list(neg_heights))
    rows = ev.det_curve(pos_scores, pos_stream, neg_scores, neg_hours=1.0)
    thresholds = [r["threshold"] for r in rows]
    assert thresholds == sorted(thresholds)
    assert all(a["frr"] <= b["frr"] for a, b in pairwise(rows))
    assert all(a["fa_per_hour"] >= b["fa_per_hour"] for a, b in pairwise(rows))
    for row in rows:
        assert row["frr"] == pytest.approx(np.mean(pos_heights < row["threshold"]))
        assert row["fa_per_hour"] == pytest.approx(np.sum(neg_heights >= row["threshold"]))
    assert rows[-1]["fa_per_hour"] == 0.0 and rows[-1]["frr"] == 1.0
    # Best FRR at <= 1 FA/h: the threshold just above the second-highest negative peak.
    frr, threshold = ev.frr_at_fa(rows, 1.0)
    second = np.sort(neg_heights)[-2]
    assert frr == pytest.approx(np.mean(pos_heights <= second))
    assert np.sum(neg_heights >= threshold) <= 1


def test_frr_at_fa_prefers_the_higher_threshold_on_ties():
    rows = [
        {"threshold": 0.2, "frr": 0.1, "fa_per_hour": 0.0},
        {"threshold": 0.5, "frr": 0.1, "fa_per_hour": 0.0},
        {"threshold": 0.1, "frr": 0.0, "fa_per_hour": 3.0},
    ]
    assert ev.frr_at_fa(rows, 0.5) == (0.1, 0.5)
    assert ev.frr_at_fa(rows, 3.0) == (0.0, 0.1)
    assert ev.frr_at_fa([], 1.0) == (1.0, float("inf"))


def test_det_envelope_is_monotonic_and_reads_like_frr_at_fa():
    # A random scorer's raw rows fold back at low thresholds (the score sits above them); the
    # envelope must not, and must give the same FRR as frr_at_fa at every FA/h.
    report = ev.evaluate_scorer(random_scorer(3), POSITIVES, NEGATIVES[:100], "random")
    front = ev.det_envelope(report.det)
    assert all(a["fa_per_hour"] <= b["fa_per_hour"] and a["frr"] > b["frr"] for a, b in pairwise(front))
    for fa in (0.0, 0.1, 1.0, 10.0, 100.0, 1000.0, 1e5):
        assert ev.frr_at_fa(front, fa)[0] == ev.frr_at_fa(report.det, fa)[0]


# ----------------------------------------------------------------------------- the whole harness


def oracle_scorer(positive_clips, seed: int = 0) -> ev.Scorer:
    """Knows where the positives are (it builds the same stream): 1.0 at each clip's last step."""
    reference = ev.build_positive_stream(positive_clips, seed=seed)

    def score(audio: np.ndarray) -> np.ndarray:
        scores = np.zeros(len(audio) // STEP)
        if len(audio) == len(reference.audio) and np.array_equal(audio, reference.audio):
            for _, end in reference.targets:
                scores[int(np.ceil(end * SR / STEP)) - 1] = 1.0
        return scores

    return score


def random_scorer(seed: int = 0) -> ev.Scorer:
    rng = np.random.default_rng(seed)
    return lambda audio: rng.uniform(0.0, 1.0, len(audio) // STEP)


def test_oracle_scorer_is_perfect():
    report = ev.evaluate_scorer(oracle_scorer(POSITIVES), POSITIVES, NEGATIVES, "oracle", model_threshold=0.5)
    assert report.frr_at_fa == {"0.1": 0.0, "0.5": 0.0, "1.0": 0.0}
    assert report.at_model_threshold["frr"] == 0.0
    assert report.at_model_threshold["fa_per_hour"] == 0.0
    assert report.positives == len(POSITIVES)
    assert report.condition == "clean"
    assert 0.09 < report.negative_hours < 0.12


def test_random_scorer_is_useless():
    report = ev.evaluate_scorer(random_scorer(), POSITIVES, NEGATIVES, "random", model_threshold=0.5)
    assert report.frr_at_fa["0.1"] > 0.8  # nothing beats chance at a low FA/h
    assert report.at_model_threshold["fa_per_hour"] > 1000  # ~ one event per refractory period
    # At a low threshold it fires about every refractory period (2 s -> ~1800/h), catching most positives.
    # (Near the very bottom FA/h falls again: the score then stays above threshold, with few crossings.)
    low = min(report.det, key=lambda row: abs(row["threshold"] - 0.3))
    assert low["fa_per_hour"] > 1000 and low["frr"] < 0.5


def test_noise_condition_and_written_report(tmp_path):
    noise = burst(5.0, seed=77)
    reports = [
        ev.evaluate_scorer(oracle_scorer(POSITIVES), POSITIVES, NEGATIVES[:50], "oracle", model_threshold=0.5),
        ev.evaluate_scorer(random_scorer(), POSITIVES, NEGATIVES[:50], "random", noise=noise, snr_db=5.0),
    ]
    assert reports[1].condition == "noise 5 dB SNR"
    assert reports[1].at_model_threshold is None
    ev.write_report(reports, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert [r["name"] for r in data["reports"]] == ["oracle", "random"]
    assert data["reports"][0]["det"][0].keys() == {"threshold", "frr", "fa_per_hour"}
    markdown = (tmp_path / "report.md").read_text()
    assert "| oracle | clean | 12 |" in markdown and "noise 5 dB SNR" in markdown
    pytest.importorskip("matplotlib")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"


def test_report_without_matplotlib_skips_the_plot(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    report = ev.evaluate_scorer(random_scorer(), POSITIVES[:3], NEGATIVES[:10], "random")
    with caplog.at_level(logging.WARNING, logger="wakeword.evaluate"):
        ev.write_report([report], tmp_path)
    assert (tmp_path / "report.md").exists() and not (tmp_path / "det.png").exists()
    assert "matplotlib is not installed" in caplog.text


def test_evaluate_stays_torch_free():
    code = "import sys, wakeword.evaluate; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@needs_shared_data
def test_real_audio_through_the_harness(tmp_path):
    """Real keyword clips against real other words in real noise, scored by loudness alone: the
    harness must run end to end on real audio and put such a scorer far from perfect."""
    from wakeword.audio import load_audio

    clips = shared_data.manifest()
    yes = [load_audio(c.path) for c in clips if c.label == "yes"][:15]
    others = [load_audio(c.path) for c in clips if c.role == "negative"][:60]
    noise = load_audio(next(c.path for c in clips if c.role == "noise" and "running_tap" in c.path.name))

    def loudness(audio: np.ndarray) -> np.ndarray:
        steps = audio[: len(audio) // STEP * STEP].reshape(-1, STEP)
        return 10 * np.log10(np.mean(steps.astype(np.float64) ** 2, axis=1) + 1e-10)

    report = ev.evaluate_scorer(loudness, yes, others, "loudness", model_threshold=-30.0, noise=noise, snr_db=10.0)
    assert report.positives == 15 and report.condition == "noise 10 dB SNR"
    assert 0.015 < report.negative_hours < 0.03
    # Loud speech is everywhere in the negatives: at a threshold that catches every keyword, it fires a lot.
    assert report.at_model_threshold["fa_per_hour"] > 100
    ev.write_report([report], tmp_path)
    assert (tmp_path / "report.json").exists()


def peak_amplitude(audio: np.ndarray) -> np.ndarray:
    return np.abs(audio[: len(audio) // STEP * STEP].reshape(-1, STEP)).max(axis=1)


def test_report_names_the_clips_that_decide_the_far_end():
    """The loudest negative and the quietest positive, by name, under a scorer that is the peak amplitude."""
    negatives = [clip.copy() for clip in NEGATIVES[:40]]
    negatives[7] *= 4.0  # ~1.2 peak: far above every other clip
    negatives[23] *= 3.0  # the runner-up
    positives = [clip.copy() for clip in POSITIVES]
    positives[3] *= 0.05
    report = ev.evaluate_scorer(
        peak_amplitude,
        positives,
        negatives,
        "peak",
        positive_names=[f"pos{i}" for i in range(len(positives))],
        negative_names=[f"neg{i}" for i in range(len(negatives))],
    )
    assert [row["clip"] for row in report.highest_negatives[:2]] == ["neg7", "neg23"]
    assert report.highest_negatives[0]["score"] == pytest.approx(np.abs(negatives[7]).max())
    assert report.lowest_positives[0]["clip"] == "pos3"
    assert len(report.highest_negatives) == ev.EXTREMES
    # Unnamed clips are numbered in the order given.
    unnamed = ev.evaluate_scorer(peak_amplitude, positives, negatives, "peak")
    assert unnamed.highest_negatives[0]["clip"] == "#7"
    with pytest.raises(WakewordError, match="names for"):
        ev.evaluate_scorer(peak_amplitude, positives, negatives, "peak", negative_names=["only one"])


def test_positive_peaks_look_only_inside_the_detection_window():
    """A positive's peak is over the steps an event may start in: a high score just past the clip's
    end + tolerance belongs to nobody."""
    stream = ev.build_positive_stream(POSITIVES[:3], seed=0)
    scores = np.zeros(stream.steps)
    _, end = stream.targets[1]
    scores[int(np.floor((end + ev.TOLERANCE_S) / ev.STEP_S))] = 0.9  # ends just after the window
    scores[int(np.floor((end + ev.TOLERANCE_S) / ev.STEP_S)) - 1] = 0.4  # the window's last step
    assert ev.clip_peaks(scores, stream).tolist() == [0.0, 0.4, 0.0]


def test_clip_peaks_of_a_stream_without_clip_positions_is_empty():
    assert ev.clip_peaks(np.ones(10), ev.Stream(np.zeros(10 * STEP, np.float32), [], "by hand")).size == 0
