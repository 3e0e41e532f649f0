"""Streaming, event-level evaluation: one harness for our models and every peer engine.

Every wake-word project quotes numbers from its own protocol (clip-level accuracy, windows scored
offline, per-frame false-positive rates), so they cannot be compared. Here every engine is run the
same way a deployed detector runs: over long streams, one score per 80 ms step, and only *events*
count.

Protocol
    streams     positives: each positive clip placed in background (silence or noise) with random
                gaps; negatives: one long stream of speech clips with short random gaps. Either
                can be mixed with noise at a given SNR, which then holds for every clip: each clip
                is first brought to the clips' median speech level (speech_level), so a take
                recorded 40 dB quieter than the rest is not buried 30 dB under the noise.
    scorer      the whole 16 kHz float32 stream in, one score per 80 ms step out (Scorer below).
    event       a rising threshold crossing (score >= threshold after a step below it). A crossing
                less than REFRACTORY_S after the start of the previous event belongs to that event
                (the detector is deaf for 2 s after it fires, as a daemon is).
    detected    a positive clip is detected if an event starts within [clip start, clip end + 0.5 s].
    false accept  any event on the negative stream; FA/h = events / hours of negative audio.
    sweep       the scores are stored once and the threshold swept over them (never re-run).

Timing conventions (the same as wakeword.frontend): step k covers audio that ends at sample
1280 * (k + 1), so a stream of N samples has N // 1280 steps, and an event's time is the end time of
its crossing step, (k + 1) * 0.08 s. A scorer that decides at step k has heard nothing after that time.

This module is part of the torch-free runtime: numpy, the standard library and wakeword's own
audio/frontend constants only; matplotlib is imported lazily for the DET plot and is optional.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from wakeword.audio import SAMPLE_RATE
from wakeword.errors import WakewordError
from wakeword.frontend import CHUNK_SAMPLES

log = logging.getLogger(__name__)

STEP_SAMPLES = CHUNK_SAMPLES  # 1280 samples, one score per step
STEP_S = STEP_SAMPLES / SAMPLE_RATE  # 0.08 s
REFRACTORY_S = 2.0
TOLERANCE_S = 0.5  # a detection may come this long after the clip ends (engines decide late)
FA_TARGETS = (0.1, 0.5, 1.0)  # FA/h operating points reported
EXTREMES = 10  # clips named in a report: the highest-scoring negatives and the lowest-scoring positives
SECONDS_PER_HOUR = 3600.0
POSITIVE_GAP_S = (2.5, 4.0)  # longer than the refractory, so one clip's event never swallows the next
NEGATIVE_GAP_S = (0.1, 0.6)  # speech-like pauses between words
MAX_SWEEP_VALUES = 256  # per kind of candidate threshold (see det_curve); keeps the sweep O(1000 x steps)
FA_PLOT_FLOOR = 0.01  # FA/h = 0 cannot sit on a log axis; it is drawn here (and said so on the plot)
TIME_EPS_S = 1e-6  # float slack when comparing event times with window edges (times are sample-exact)

Scorer = Callable[[np.ndarray], np.ndarray]
"""Whole 16 kHz float32 stream -> scores, one per 80 ms step (len(audio) // 1280 of them);
score k is the engine's output after hearing the audio that ends at sample 1280 * (k + 1)."""


@dataclass
class Stream:
    audio: np.ndarray
    targets: list[tuple[float, float]]  # (start_s, end_s) of each positive clip; empty for negatives
    name: str
    starts: list[int] = field(default_factory=list)  # each clip's first sample, in the order given

    @property
    def hours(self) -> float:
        return len(self.audio) / SAMPLE_RATE / SECONDS_PER_HOUR

    @property
    def steps(self) -> int:
        return len(self.audio) // STEP_SAMPLES


# ----------------------------------------------------------------------------- building streams


def _check_clips(clips: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    if len(clips) == 0:
        raise WakewordError(f"no {what} clips given: the evaluation needs at least one")
    checked = []
    for i, clip in enumerate(clips):
        clip = np.asarray(clip, dtype=np.float32).reshape(-1)
        if clip.size == 0:
            raise WakewordError(f"{what} clip {i} is empty")
        if not np.all(np.isfinite(clip)):
            raise WakewordError(f"{what} clip {i} contains NaN or infinite samples")
        checked.append(clip)
    return checked


def _check_gap(gap_s: tuple[float, float]) -> None:
    low, high = gap_s
    if not 0.0 <= low <= high:
        raise WakewordError(f"gap_s must be (low, high) with 0 <= low <= high, got {gap_s}")


def _gap_samples(rng: np.random.Generator, gap_s: tuple[float, float]) -> int:
    return round(rng.uniform(*gap_s) * SAMPLE_RATE)


def _fit_noise(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A `length`-sample stretch of noise: looped as needed, from a random starting point."""
    noise = np.asarray(noise, dtype=np.float32).reshape(-1)
    if noise.size == 0 or not np.all(np.isfinite(noise)):
        raise WakewordError("noise must be a non-empty array of finite samples")
    if not np.any(noise):
        raise WakewordError("noise is all zeros: no SNR can be set with it")
    start = int(rng.integers(noise.size))
    reps = math.ceil((start + length) / noise.size)
    return np.tile(noise, reps)[start : start + length]


def _scale_to_snr(speech_power: float, noise: np.ndarray, snr_db: float) -> np.ndarray:
    noise_power = float(np.mean(noise.astype(np.float64) ** 2))
    gain = math.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (noise * gain).astype(np.float32)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """speech + noise scaled so that mean(speech^2) / mean(noise^2) is snr_db (over the whole buffer).

    The noise is looped to the speech's length from a random offset. Nothing is clipped here (that
    would change the SNR); the stream builders rescale the whole stream if it would clip.
    """
    speech = np.asarray(speech, dtype=np.float32).reshape(-1)
    power = float(np.mean(speech.astype(np.float64) ** 2))
    if power == 0.0:
        raise WakewordError("speech is silent: no SNR can be set against it")
    return speech + _scale_to_snr(power, _fit_noise(noise, len(speech), rng), snr_db)


def speech_level(clip: np.ndarray, frame: int = 320) -> float:
    """Mean power of the louder half of a clip's 20 ms frames: its speech level, pauses ignored
    (the definition training's augmentation mixes noise by, augment.speech_power)."""
    clip = np.asarray(clip, dtype=np.float64).reshape(-1)
    n = max(frame, len(clip) // frame * frame)
    frames = np.pad(clip, (0, max(0, n - len(clip))))[:n].reshape(-1, frame)
    power = np.sort(np.mean(frames**2, axis=1))[::-1]
    return float(np.mean(power[: max(1, len(power) // 2)]))


def at_common_level(clips: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Each clip scaled to the median speech level of all of them (silent clips left as they are),
    and that level. Real recordings differ by 40 dB and more (a few athena takes in ../shared/data
    peak at 0.002): with one noise track for the stream, an SNR set against the stream's average
    would put the quiet takes far under the noise, and measure the recording levels, not the model."""
    levels = np.array([speech_level(c) for c in clips])
    audible = levels[levels > 0]
    if audible.size == 0:
        raise WakewordError("every clip is silent: no SNR can be set against them")
    target = float(np.median(audible))
    scaled = [c * np.float32(math.sqrt(target / p)) if p > 0 else c for c, p in zip(clips, levels, strict=True)]
    return scaled, target


def _add_background(
    audio: np.ndarray,
    speech_power: float | None,
    noise: np.ndarray | None,
    snr_db: float | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add noise across the whole stream, at snr_db below speech_power (the clips' common speech
    level) when given, else at the noise's own level."""
    if noise is None:
        if snr_db is not None:
            raise WakewordError("snr_db was given without any noise to mix in")
        return audio
    track = _fit_noise(noise, len(audio), rng)
    if snr_db is not None:
        track = _scale_to_snr(speech_power, track, snr_db)
    mixed = audio + track
    peak = float(np.max(np.abs(mixed)))
    if peak > 1.0:
        # Scaling the whole stream keeps the SNR; clipping would not.
        log.info("stream peak %.2f > 1 after mixing: scaled down by %.2f dB", peak, 20 * math.log10(peak))
        mixed /= peak
    return mixed


def _assemble(
    clips: list[np.ndarray], gap_s: tuple[float, float], rng: np.random.Generator, lead: bool
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Clips with random gaps between them (and before the first / after the last when `lead`).

    Returns the audio and each clip's (start, end) sample.
    """
    gaps = [_gap_samples(rng, gap_s) for _ in range(len(clips) + 1)]
    if not lead:
        gaps[0] = gaps[-1] = 0
    total = sum(gaps) + sum(len(c) for c in clips)
    audio = np.zeros(total, dtype=np.float32)
    spans = []
    pos = gaps[0]
    for clip, gap in zip(clips, gaps[1:], strict=True):
        audio[pos : pos + len(clip)] = clip
        spans.append((pos, pos + len(clip)))
        pos += len(clip) + gap
    return audio, spans


def _mixed_stream(
    clips: Sequence[np.ndarray],
    what: str,
    gap_s: tuple[float, float],
    noise: np.ndarray | None,
    snr_db: float | None,
    seed: int,
    lead: bool,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Both builders: check, lay the clips out, bring them to one level if an SNR is asked, add the noise."""
    clips = _check_clips(clips, what)
    _check_gap(gap_s)
    rng = np.random.default_rng(seed)
    level = None
    if snr_db is not None and noise is not None:
        clips, level = at_common_level(clips)
    audio, spans = _assemble(clips, gap_s, rng, lead=lead)
    return _add_background(audio, level, noise, snr_db, rng), spans


def build_positive_stream(
    clips: Sequence[np.ndarray],
    gap_s: tuple[float, float] = POSITIVE_GAP_S,
    background: np.ndarray | None = None,
    snr_db: float | None = None,
    seed: int = 0,
) -> Stream:
    """Each positive clip with background before and after it: silence, or `background` looped
    (at its own level, or at snr_db against the clips when given)."""
    audio, spans = _mixed_stream(clips, "positive", gap_s, background, snr_db, seed, lead=True)
    targets = [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in spans]
    return Stream(audio, targets, "positives", [start for start, _ in spans])


def build_negative_stream(
    clips: Sequence[np.ndarray],
    gap_s: tuple[float, float] = NEGATIVE_GAP_S,
    noise: np.ndarray | None = None,
    snr_db: float | None = None,
    seed: int = 0,
) -> Stream:
    """One long stream of negative speech with short random pauses, optionally in noise."""
    audio, spans = _mixed_stream(clips, "negative", gap_s, noise, snr_db, seed, lead=False)
    return Stream(audio, [], "negatives", [start for start, _ in spans])


# ----------------------------------------------------------------------------- events


def _check_scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise WakewordError(f"{name}: expected one score per step (1-D), got shape {scores.shape}")
    bad = ~np.isfinite(scores)
    if bad.any():
        first = int(np.argmax(bad))
        raise WakewordError(
            f"{name}: {int(bad.sum())} NaN or infinite scores (first at step {first}, "
            f"{(first + 1) * STEP_S:.2f} s): the scorer is broken"
        )
    return scores


def smooth_scores(scores: np.ndarray, smoothing: int) -> np.ndarray:
    """Each step's mean over the last `smoothing` steps (fewer at the start of the stream): the score a
    detector with that smoothing decides on (runtime._Decision, server.BatchDetector), for a whole track."""
    scores = np.asarray(scores, np.float32)
    if smoothing <= 1 or len(scores) == 0:
        return scores
    sums = np.cumsum(scores, dtype=np.float64)
    sums[smoothing:] = sums[smoothing:] - sums[:-smoothing]
    counts = np.minimum(np.arange(1, len(scores) + 1), smoothing)
    return (sums / counts).astype(np.float32)


def _refractory_steps(refractory_s: float) -> int:
    # In whole steps, rounded up, so that floating point (2.0 / 0.08 = 25.000000000000004) cannot
    # turn a 25-step refractory into 26.
    return max(0, math.ceil(round(refractory_s / STEP_S, 9)))


def _event_steps(scores: np.ndarray, threshold: float, refractory: int) -> np.ndarray:
    """Crossing step of each event: rising crossings, each starting a new event only if it comes
    at least `refractory` steps after the start of the previous event."""
    above = scores >= threshold
    # Before the stream there is nothing: a stream that starts above the threshold fires at step 0.
    crossings = np.flatnonzero(above & ~np.concatenate(([False], above[:-1])))
    if refractory <= 1 or len(crossings) < 2:
        return crossings
    starts = []
    i = 0
    while i < len(crossings):
        starts.append(crossings[i])
        i = int(np.searchsorted(crossings, crossings[i] + refractory, side="left"))
    return np.asarray(starts, dtype=np.int64)


def detect_events(
    scores: np.ndarray, threshold: float, refractory_s: float = REFRACTORY_S
) -> list[tuple[float, float]]:
    """Events in a score track: (time_s, peak score).

    time_s is the end of the crossing step, (k + 1) * 0.08 s. The peak is the highest score from
    the crossing until the next event starts (every merged crossing belongs to the event).
    """
    scores = _check_scores(scores)
    steps = _event_steps(scores, threshold, _refractory_steps(refractory_s))
    bounds = [*steps.tolist(), len(scores)]
    return [((int(k) + 1) * STEP_S, float(np.max(scores[k:end]))) for k, end in pairwise(bounds)]


def false_accepts_per_hour(
    scores: np.ndarray, hours: float, threshold: float, refractory_s: float = REFRACTORY_S
) -> float:
    if hours <= 0:
        raise WakewordError("the negative stream is empty: FA/h needs some hours of negative audio")
    scores = _check_scores(scores)
    return len(_event_steps(scores, threshold, _refractory_steps(refractory_s))) / hours


def _target_windows(stream: Stream, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    starts = np.array([start for start, _ in stream.targets], dtype=np.float64)
    ends = np.array([end for _, end in stream.targets], dtype=np.float64) + tolerance_s
    return starts - TIME_EPS_S, ends + TIME_EPS_S


def _missed(event_steps: np.ndarray, window_starts: np.ndarray, window_ends: np.ndarray) -> int:
    """How many [start, end] windows contain no event time."""
    times = (event_steps + 1) * STEP_S
    first_after_start = np.searchsorted(times, window_starts, side="left")
    hit = first_after_start < len(times)
    hit[hit] = times[first_after_start[hit]] <= window_ends[hit]
    return int((~hit).sum())


def false_reject_rate(
    scores: np.ndarray,
    stream: Stream,
    threshold: float,
    refractory_s: float = REFRACTORY_S,
    tolerance_s: float = TOLERANCE_S,
) -> float:
    """Share of the stream's positive clips with no event starting in [start, end + tolerance_s]."""
    if not stream.targets:
        raise WakewordError(f"stream {stream.name!r} has no positive clips to reject")
    scores = _check_scores(scores)
    events = _event_steps(scores, threshold, _refractory_steps(refractory_s))
    return _missed(events, *_target_windows(stream, tolerance_s)) / len(stream.targets)


def clip_peaks(scores: np.ndarray, stream: Stream, tolerance_s: float = TOLERANCE_S) -> np.ndarray:
    """Each clip's highest score: over the steps that end from its start to its end + tolerance_s for a
    positive (the window an event must start in), from its start to the next clip's start for a negative
    (an engine may fire in the pause after a word)."""
    scores = _check_scores(scores)
    if stream.targets:
        starts, ends = _target_windows(stream, tolerance_s)
        first = np.ceil(starts / STEP_S).astype(np.int64) - 1  # the first step that ends at or after the start
        last = np.floor(ends / STEP_S).astype(np.int64) - 1
    elif not stream.starts:  # a stream built by hand, with no record of where its clips are
        return np.zeros(0)
    else:
        first = np.asarray(stream.starts, np.int64) // STEP_SAMPLES
        last = np.append(first[1:] - 1, len(scores) - 1)
    if len(scores) == 0:  # a stream shorter than one step
        return np.zeros(len(first))
    first, last = np.clip(first, 0, len(scores) - 1), np.clip(last, 0, len(scores) - 1)
    return np.array([scores[a : max(a, b) + 1].max() for a, b in zip(first, last, strict=True)])


def extremes(peaks: np.ndarray, names: Sequence[str] | None, highest: bool, count: int = EXTREMES) -> list[dict]:
    """The `count` clips with the highest (or lowest) peak: what decides a DET curve's far end."""
    order = np.argsort(peaks, kind="stable")
    order = order[::-1] if highest else order
    return [{"clip": names[i] if names is not None else f"#{i}", "score": float(peaks[i])} for i in order[:count]]


# ----------------------------------------------------------------------------- the sweep


def _sweep_thresholds(pos_scores: np.ndarray, pos_stream: Stream, neg_scores: np.ndarray) -> np.ndarray:
    """Candidate thresholds, highest last: where FRR and FA/h can change.

    Every result is computed exactly at every candidate; the candidates only bound the work on an
    hour of scores (tens of thousands of distinct values). They are each positive clip's best score
    in its window (FRR changes there), the highest negative scores (the low-FA/h end, which the
    reported operating points depend on), a spread of quantiles for the rest of the curve, and one
    value above every score (FRR 1, FA/h 0), so the curve always reaches FA/h = 0.
    """
    starts, ends = _target_windows(pos_stream, TOLERANCE_S)
    step_times = (np.arange(len(pos_scores)) + 1) * STEP_S
    lo = np.searchsorted(step_times, starts, side="left")
    hi = np.searchsorted(step_times, ends, side="right")
    target_best = [pos_scores[a:b].max() for a, b in zip(lo, hi, strict=True) if b > a]
    neg_unique = np.unique(neg_scores)
    everything = np.unique(np.concatenate([pos_scores, neg_scores]))
    quantiles = everything[np.linspace(0, len(everything) - 1, min(len(everything), MAX_SWEEP_VALUES)).astype(int)]
    above_all = np.nextafter(np.max(everything), np.inf)
    candidates = np.unique(np.concatenate([target_best, neg_unique[-MAX_SWEEP_VALUES:], quantiles, [above_all]]))
    # At the lowest score every step is above threshold: one "event" at step 0 of each stream,
    # an artefact of where the stream starts, not a detection. Leave it out unless it is all there is.
    return candidates[1:] if len(candidates) > 1 else candidates


def det_curve(
    pos_scores: np.ndarray,
    pos_stream: Stream,
    neg_scores: np.ndarray,
    neg_hours: float,
    thresholds: Sequence[float] | None = None,
    refractory_s: float = REFRACTORY_S,
    tolerance_s: float = TOLERANCE_S,
) -> list[dict]:
    """Rows {threshold, frr, fa_per_hour}, ascending threshold, from stored scores.

    Event counts are exact at each threshold. They are not strictly monotonic in the threshold:
    lowering it can join two crossings into one above-threshold run, or move a crossing into a
    refractory window, so FA/h can dip by an event; frr_at_fa reads real operating points, never an
    interpolation, so every number it reports is one a deployed detector would show.
    """
    pos_scores = _check_scores(pos_scores, "positive-stream scores")
    neg_scores = _check_scores(neg_scores, "negative-stream scores")
    if neg_hours <= 0:
        raise WakewordError("the negative stream is empty: FA/h needs some hours of negative audio")
    if not pos_stream.targets:
        raise WakewordError("the positive stream has no positive clips")
    if thresholds is None:
        thresholds = _sweep_thresholds(pos_scores, pos_stream, neg_scores)
    refractory = _refractory_steps(refractory_s)
    windows = _target_windows(pos_stream, tolerance_s)
    rows = []
    for threshold in sorted(float(t) for t in thresholds):
        missed = _missed(_event_steps(pos_scores, threshold, refractory), *windows)
        false_accepts = len(_event_steps(neg_scores, threshold, refractory))
        rows.append(
            {
                "threshold": threshold,
                "frr": missed / len(pos_stream.targets),
                "fa_per_hour": false_accepts / neg_hours,
            }
        )
    return rows


def frr_at_fa(det_rows: Sequence[dict], max_fa_per_hour: float) -> tuple[float, float]:
    """(best FRR, its threshold) among operating points with FA/h <= max_fa_per_hour.

    Ties go to the higher threshold (fewer false accepts for the same FRR). (1.0, inf) if no row
    qualifies, which a curve from det_curve never allows (its top threshold has FA/h = 0).
    """
    ok = [row for row in det_rows if row["fa_per_hour"] <= max_fa_per_hour + 1e-12]
    if not ok:
        return 1.0, math.inf
    best = min(ok, key=lambda row: (row["frr"], -row["threshold"]))
    return float(best["frr"]), float(best["threshold"])


def det_envelope(det_rows: Sequence[dict]) -> list[dict]:
    """The operating points no other point beats on both FRR and FA/h, by ascending FA/h.

    This is what a DET plot should draw: reading it at any FA/h gives exactly frr_at_fa. The raw
    rows also hold thresholds below the engine's resting score, where the score sits above threshold
    almost all the time, so there are few crossings: few false accepts *and* few detections. Those
    points are real but dominated, and drawn they fold the curve back on itself.
    """
    front: list[dict] = []
    for row in sorted(det_rows, key=lambda r: (r["fa_per_hour"], r["frr"], -r["threshold"])):
        if not front or row["frr"] < front[-1]["frr"]:
            front.append(row)
    return front


# ----------------------------------------------------------------------------- one engine, one condition


@dataclass
class EvalReport:
    name: str
    condition: str  # "clean", or e.g. "noise 5 dB SNR"
    positives: int
    negative_hours: float
    frr_at_fa: dict[str, float]  # "0.1" / "0.5" / "1.0" -> best FRR with FA/h at or below it
    thresholds: dict[str, float]  # the threshold that achieves each of those
    at_model_threshold: dict[str, float] | None  # {threshold, frr, fa_per_hour}, if the engine has one
    det: list[dict] = field(repr=False)
    realtime_factor: float = 0.0  # scoring time / audio time, both streams
    # The clips that decide the low-FA/h end: with about an hour of negatives, "FRR at 0.5 FA/h" is the
    # share of positives whose peak is below the single highest negative's.
    highest_negatives: list[dict] = field(default_factory=list)  # {clip, score}, highest first
    lowest_positives: list[dict] = field(default_factory=list)  # {clip, score}, lowest first


def _condition(noise: np.ndarray | None, snr_db: float | None) -> str:
    if noise is None:
        return "clean"
    return f"noise {snr_db:g} dB SNR" if snr_db is not None else "noise (as recorded)"


def _run_scorer(scorer: Scorer, stream: Stream, name: str) -> np.ndarray:
    scores = np.asarray(scorer(stream.audio))
    if scores.shape != (stream.steps,):
        raise WakewordError(
            f"{name}: scorer returned {scores.shape} scores for {stream.steps} steps of "
            f"{len(stream.audio) / SAMPLE_RATE:.1f} s (expected one per {STEP_S * 1000:.0f} ms)"
        )
    return _check_scores(scores, f"{name} on {stream.name}")


def evaluate_scorer(
    scorer: Scorer,
    positive_clips: Sequence[np.ndarray],
    negative_clips: Sequence[np.ndarray],
    name: str,
    model_threshold: float | None = None,
    noise: np.ndarray | None = None,
    snr_db: float | None = None,
    seed: int = 0,
    positive_names: Sequence[str] | None = None,
    negative_names: Sequence[str] | None = None,
) -> EvalReport:
    """Build both streams, score each once, sweep the threshold over the stored scores.

    The names (a file name per clip, in order) label the report's highest negatives and lowest positives."""
    for names, clips in ((positive_names, positive_clips), (negative_names, negative_clips)):
        if names is not None and len(names) != len(clips):
            raise WakewordError(f"{len(names)} clip names for {len(clips)} clips")
    positive = build_positive_stream(positive_clips, background=noise, snr_db=snr_db, seed=seed)
    negative = build_negative_stream(negative_clips, noise=noise, snr_db=snr_db, seed=seed + 1)
    started = time.perf_counter()
    pos_scores = _run_scorer(scorer, positive, name)
    neg_scores = _run_scorer(scorer, negative, name)
    elapsed = time.perf_counter() - started
    audio_s = (len(positive.audio) + len(negative.audio)) / SAMPLE_RATE
    rows = det_curve(pos_scores, positive, neg_scores, negative.hours)
    frr, thresholds = {}, {}
    for target in FA_TARGETS:
        frr[str(target)], thresholds[str(target)] = frr_at_fa(rows, target)
    at_model = None
    if model_threshold is not None:
        at_model = {
            "threshold": float(model_threshold),
            "frr": false_reject_rate(pos_scores, positive, model_threshold),
            "fa_per_hour": false_accepts_per_hour(neg_scores, negative.hours, model_threshold),
        }
    report = EvalReport(
        name=name,
        condition=_condition(noise, snr_db),
        positives=len(positive.targets),
        negative_hours=negative.hours,
        frr_at_fa=frr,
        thresholds=thresholds,
        at_model_threshold=at_model,
        det=rows,
        realtime_factor=elapsed / audio_s,
        highest_negatives=extremes(clip_peaks(neg_scores, negative), negative_names, highest=True),
        lowest_positives=extremes(clip_peaks(pos_scores, positive), positive_names, highest=False),
    )
    log.info("%s [%s]: FRR@1FA/h %.3f, %.2f h negatives", name, report.condition, frr["1.0"], negative.hours)
    return report


# ----------------------------------------------------------------------------- reports


def _json_safe(value):
    # JSON has no Infinity: an unreachable operating point is written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _clips(rows: list[dict], count: int) -> str:
    return "; ".join(f"{row['score']:.4f} {row['clip']}" for row in rows[:count])


def _markdown(reports: Sequence[EvalReport]) -> str:
    head = " | ".join(f"FRR @ {t:g} FA/h (thr)" for t in FA_TARGETS)
    lines = [
        "# Wake-word evaluation",
        "",
        "Streaming, event-level: one score per 80 ms step, an event is a rising threshold crossing "
        f"with a {REFRACTORY_S:g} s refractory merge; a positive counts when an event starts within "
        f"[clip start, clip end + {TOLERANCE_S:g} s]; FA/h = events on the negative stream per hour.",
        "",
        f"| engine | condition | positives | negative h | {head} | at model threshold: thr / FRR / FA/h | RTF |",
        "|---|---|---:|---:|" + "---:|" * len(FA_TARGETS) + "---:|---:|",
    ]
    for r in reports:
        cells = [f"{_fmt(r.frr_at_fa[str(t)], '.3f')} ({_fmt(r.thresholds[str(t)], '.3g')})" for t in FA_TARGETS]
        m = r.at_model_threshold
        model = "-" if m is None else f"{m['threshold']:.3g} / {m['frr']:.3f} / {m['fa_per_hour']:.2f}"
        lines.append(
            f"| {r.name} | {r.condition} | {r.positives} | {r.negative_hours:.3f} | "
            + " | ".join(cells)
            + f" | {model} | {r.realtime_factor:.3f} |"
        )
    lines.append("")
    for r in reports:
        if r.highest_negatives:
            lines.append(f"{r.name} [{r.condition}], highest-scoring negatives: " + _clips(r.highest_negatives, 5))
        if r.lowest_positives:
            lines.append(f"{r.name} [{r.condition}], lowest-scoring positives: " + _clips(r.lowest_positives, 5))
    lines += [
        "",
        "One false accept on the negative stream is 1 / (negative hours) FA/h, so an operating point",
        "below that means no false accept at all there. Thresholds are each engine's own score scale.",
        "DET curves (best FRR at or below each FA/h, log axis): `det.png`; every swept row: `report.json`.",
        "",
    ]
    return "\n".join(lines)


def plot_det(reports: Sequence[EvalReport], path: Path) -> bool:
    """All engines and conditions on one DET plot. False (and a log line) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: skipping the DET plot %s", path)
        return False
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in reports:
        rows = det_envelope(r.det)
        fa = [max(row["fa_per_hour"], FA_PLOT_FLOOR) for row in rows]
        ax.step(
            fa, [row["frr"] for row in rows], where="post", marker="o", markersize=3, label=f"{r.name} ({r.condition})"
        )
    for target in FA_TARGETS:
        ax.axvline(target, color="grey", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour (0 drawn at {FA_PLOT_FLOOR:g})")
    ax.set_ylabel("false reject rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("DET: streaming, event-level (best FRR at each FA/h)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(reports: list[EvalReport], out_dir: Path) -> None:
    """report.json (everything, DET rows included), report.md (the summary table) and det.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "protocol": {
            "step_s": STEP_S,
            "refractory_s": REFRACTORY_S,
            "tolerance_s": TOLERANCE_S,
            "fa_targets_per_hour": list(FA_TARGETS),
        },
        "reports": [asdict(r) for r in reports],
    }
    (out_dir / "report.json").write_text(json.dumps(_json_safe(payload), indent=1) + "\n")
    (out_dir / "report.md").write_text(_markdown(reports))
    plot_det(reports, out_dir / "det.png")
    log.info("wrote %s", out_dir)
