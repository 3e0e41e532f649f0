"""`wakeword train`: few-shot transfer learning of one wake word, readable top to bottom.

    1. sources     the user's takes, TTS voices saying the phrase, near-miss phrases, other speech, noise
    2. split       by speaker/voice/text/file, before any augmentation
    3. features    augmented segments through the frozen encoder bottom (cached by content)
    4. phase 1     encoder frozen: the head alone, on cached embeddings (seconds)
    5. mining      score the negative pool, add the windows that fired
    6. phase 2     the encoder top unfrozen, small learning rate, pulled toward its pretrained weights
       phase 3     ('full' only) every encoder layer unfrozen, a few steps on log-mel, pulled harder
    7. calibrate   threshold for the target false accepts per hour, on held-aside negative streams
    8. save        checkpoint, card.json, DET plot

Config is a dataclass of explicit values; nothing is read from anywhere else.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from wakeword import FEATURE_VERSION, __version__
from wakeword.audio import SAMPLE_RATE, load_audio
from wakeword.cache import ArrayCache, content_key
from wakeword.dataset import (
    Features,
    Source,
    counts,
    featurize,
    isolated_sources,
    make_segments,
    partial_sources,
    read_audio_dirs,
    scrambled_sources,
    split_by_group,
    stable_hash,
)
from wakeword.encoder import CARD_FILE, MODELS_DIR, SpeechEmbedding, load_encoder
from wakeword.errors import WakewordError
from wakeword.model import HEAD_STEPS, SEGMENT_SAMPLES, WakeWordNet, bottom_parameters, score_audio

if TYPE_CHECKING:
    from wakeword.evaluate import Stream

log = logging.getLogger(__name__)

MIN_USER_CLIPS = 3
# Takes alone teach a model the user's voice and microphone, and synthetic voices are all it hears of anyone
# else: on the development benchmark's real speech such models fired 35-370 times an hour at their own
# threshold (tools/bench_accuracy.py --takes-only, docs/takes_only.md).
NO_NEGATIVES_WARNING = (
    "no --negatives: without recordings of everyday speech the model knows other voices only from "
    "synthetic ones and will fire often on real talk (35-370 false accepts an hour on the development "
    "benchmark, docs/takes_only.md). Pass --negatives with 10 minutes or more of speech that is not the "
    "phrase (a podcast, the radio, a conversation: any rate or format), or adapt it later with "
    "'wakeword listen --keep' and 'wakeword train --resume --feedback'."
)
# How much of the pretrained network a wake word retrains (the transfer-learning moves):
#   features  frozen encoder, logistic regression on pooled embeddings (seconds; the baseline)
#   head      frozen encoder, temporal head (phase 1 only)
#   top       head, then the encoder's top layers fine-tuned toward the pretrained weights (phase 2)
#   full      top, then every encoder layer fine-tuned with a strong pull toward the pretrained weights
#             (phase 3): the model carries its own bottom, which other wake words cannot share at run time
#   auto      chosen by the number of real takes (choose_strategy)
STRATEGIES = ("auto", "features", "head", "top", "full")
WORDS_ONLY = re.compile(r"[^\w ]")
CHECKPOINT = "model.pt"
CARD = "card.json"


@dataclass
class TrainConfig:
    phrase: str
    out: Path
    clips: Path | None = None  # folder of the user's takes; None: synthetic only
    negatives: list[Path] = field(default_factory=list)  # folders of real speech that is not the phrase
    noise: list[Path] = field(default_factory=list)  # folders of background noise
    rirs: list[Path] = field(default_factory=list)  # folders of room impulse responses
    feedback: list[Path] = field(default_factory=list)  # keep folders of `wakeword listen --keep` (feedback_sources)
    device: str = "auto"
    target_fa_per_hour: float = 0.5
    head: str = "conv"
    strategy: str = "auto"  # one of STRATEGIES (the CLI default too)
    commercial_safe: bool = True
    seed: int = 0  # the data: takes split, synthesis draws, augmentation, segment placement
    # The optimisation alone: weight init, batch order, dropout (None: seed). On the same data it moves the
    # result as much as another data draw does (tools/bench_variance.py, docs/variance.md).
    train_seed: int | None = None
    cache_dir: Path | None = None
    resume: bool = False  # start from the weights already in `out` (its files move to out/previous/)
    # Data recipe: how many examples each source gives, and how much each counts. The sizes here and the
    # epochs below are the smaller of two recipes (the 'quick' recipe of older notes and of docs/, where
    # every benchmark measured it; the default since 2026-11-23). The larger one
    # (all ~475 voice configurations, 400 x 3 near-misses, every sentence in 2 voices, twice the copies of
    # each take, 4x the noise, 3x the hard negatives, 40 head / 12 top epochs, patience 8) lost on every
    # word of the development benchmark (tools/bench_accuracy.py, K = 5, seed 0), FRR at 0.5 FA/h clean /
    # 10 dB, smaller -> larger: computer 17.3/59.6 -> 44.2/86.5 %, athena 10.5/21.0 -> 16.6/35.4 %, amelia
    # 5.5/5.5 -> 7.3/11.9 %, hey chatterbox 43.1/47.1 -> 58.8/64.7 %, android 5.1/11.9 -> 10.2/16.9 %: all
    # ten cells, while it trained 2.3-4x longer (278-460 s against 109-124 s, synthesis included).
    # Presumably the longer fit learns the five takes' voice rather than the phrase.
    user_copies: int = 30  # augmented copies of each user take (they are few, and the truth)
    tts_copies: int = 1
    near_miss_limit: int = 80
    near_miss_voices: int = 2  # voices per near-miss phrase
    # Per near-miss example, against 1.0 for a crop of everyday speech. 4.0 was measured (quick recipe,
    # K = 5, seed 0): FRR at 0.5 FA/h clean 16.3 -> 24.8 % over the five words, and worse for the very
    # word with recorded near-misses in the test (hey chatterbox 43 -> 71 %); presumably weight on sounds
    # one phoneme from the phrase also pushes the phrase itself down. Kept as a knob for such A/Bs.
    near_miss_weight: float = 1.0
    # General sentences synthesised as everyday negative speech: at most max_sentences (None: all), each
    # in sentence_voices voices. Beside recordings of speech (--negatives) they are a small share of the
    # negatives; without any they are all the speech the model learns to ignore and calibrates its
    # threshold on (60 in one voice leave half a minute held aside), so then it takes the pair below: the
    # larger recipe's amount (not measured apart: the development benchmark always has recordings).
    max_sentences: int | None = 60
    sentence_voices: int = 1
    sentences_without_negatives: tuple[int | None, int] = (None, 2)  # (max_sentences, sentence_voices)
    speech_copies: int = 12  # crops per ~12 s negative stretch...
    speech_segments: int = 4000  # ...fewer when there are many recordings: at most about this many in all
    # Negative recordings also heard alone, framed like the phrase (isolated_sources). Off: measured on
    # the development benchmark (quick recipe, K = 5, 400 of them), FRR at 0.5 FA/h clean went
    # 25.0/14.9/3.7/52.9/13.6 -> 9.6/4.8/10.6/60.8/3.4 % (computer/athena/amelia/hey chatterbox/android,
    # seed 0) but 0.0/4.0/1.4 -> 3.8/6.1/26.1 % (computer/athena/amelia, seed 1, same split both ways):
    # no gain beyond the run-to-run spread, and amelia lost on both seeds.
    isolated_negatives: int = 0
    noise_segments: int = 100
    # Real takes weigh this many times all synthetic positives together. 1.0 was measured (quick recipe,
    # K = 5, seed 0): on one split of "computer" with five train seeds, FRR at 0.5 FA/h clean fell from a
    # mean 26 % to 15 % (10 dB unchanged, 60 -> 61 %), but over the five words (against the seed-0 cells
    # of docs/benchmarks.md) it rose from 16 to 28 % clean and 29 to 39 % at 10 dB (hey chatterbox
    # 43 -> 80 %, android 5 -> 19 %): kept at 3.
    user_weight: float = 3.0
    hard_negatives: int = 200  # per mining round
    # 1 -> 3: "computer" (K = 5, quick) FRR@0.5 FA/h 56 % -> 33 % clean, 69 % -> 42 % at 10 dB. 3 -> 5
    # (tools/bench_accuracy.py --seeds 0 / 1 --set mining_rounds=5, 2026-12-07, against docs/benchmarks.md's
    # rows of the same seeds): mean FRR at 0.5 FA/h over the five words 16.9 -> 19.7 % clean and 32.6 -> 34.7 %
    # at 10 dB. computer gained (15.4/59.6 -> 12.5/45.2 %); hey chatterbox and android gained a little on
    # seed 1 and lost more on seed 0; athena and amelia lost in all eight of their cells.
    mining_rounds: int = 3
    # Share of the total example weight on negatives. The operating point is far out in the negative
    # tail (0.5 FA/h), so negatives count more: 0.5 -> 0.7 took "computer" (K = 5, quick recipe) from
    # 56 % to 21 % FRR at 0.5 FA/h on the development benchmark. 0.7 -> 0.85 (tools/bench_accuracy.py
    # --seeds 0, K = 5, 2026-12-03), FRR at 0.5 FA/h clean / 10 dB: computer 9.6/75.0 -> 25.0/46.2 %,
    # athena 28.3/27.7 -> 5.9/16.8 %, amelia 9.6/24.3 -> 5.5/6.4 %, hey chatterbox 76.5/96.1 -> 92.2/92.2 %,
    # android 13.6/23.7 -> 6.8/13.6 %: 8 of 10 cells and every word at 10 dB (mean 49 -> 35 %; clean
    # 27.5 -> 27.1 %, median 13.6 -> 6.8 %). One seed, whose cells move 10-25 points on their own.
    negative_share: float = 0.85
    max_positive_voices: int | None = 120  # a draw of the voice configurations (None: every one)
    # Optimisation.
    batch_size: int = 64
    head_epochs: int = 15
    head_lr: float = 2e-3
    top_epochs: int = 4
    top_lr: float = 1e-4
    pull_to_pretrained: float = 1e-2  # L2-SP strength: sum of squared distances to the pretrained top
    # Phase 3 ('full'). Every step runs the whole encoder forward and back on log-mel, ~40x the work of a
    # phase-2 step on cached activations (4 s per batch of 64 on one CPU thread), so the phase sees a
    # random draw of the training set per epoch and a fixed draw of the validation set.
    full_epochs: int = 2
    full_lr: float = 3e-5
    full_examples_per_epoch: int = 1024
    full_val_examples: int = 1024
    # L2-SP strength on the layers below the split, 100x the top's: the bottom was trained on far more
    # speech than a wake word's few takes, so it may only move a little.
    pull_bottom: float = 1.0
    val_fraction: float = 0.2
    # Share of the negative speech held aside: the threshold is calibrated on it (tail_fit) and it is early
    # stopping's negatives. More of it shortens the extrapolation to the target FA/h, but training loses it:
    # 0.2 -> 0.4 (K = 5, quick recipe, one seed) doubled the calibration speech (0.25 -> 0.5 h), but the
    # models, trained on a quarter less negative speech, fired far higher on the test negatives (highest
    # peak: athena 0.86 -> 0.98, amelia 0.29 -> 0.9997; FRR at 0.5 FA/h 8.0 -> 9.2 % and 6.0 -> 19.7 %).
    speech_val_fraction: float = 0.2
    spec_augment_p: float = 0.3  # share of training examples with SpecAugment masks on the log-mel
    patience: int = 4
    # Each fit ends on the mean of its average_best best epochs' weights (by validation recall), not on the
    # single best epoch: checkpoint averaging, against the noise of picking one epoch on a small split.
    # 1 -> 3 (tools/bench_accuracy.py, K = 5, seeds 0 and 1, docs/checkpoint_averaging.md) won 14 of 20
    # cells, FRR at 0.5 FA/h mean clean 22.3 -> 18.0 %, 10 dB 31.6 -> 29.9 % (seed 1: 8 of 10 cells, clean
    # 17.5 -> 11.1 %, 10 dB 28.2 -> 20.7 %; seed 0: 6 of 10, clean 27.1 -> 24.9 %, 10 dB 35.0 -> 39.0 %).
    average_best: int = 3
    # The decision's score is the mean of the last `smoothing` 80 ms steps (written to the card; the runtime,
    # the server and calibration all use it). 1 -> 4 measured on the development benchmark's models
    # (tools/bench_decision.py, docs/decision.md: the same 40 models scored once, K = 5, seeds 0 and 1, this
    # recipe and mining_rounds = 5): FRR at 0.5 FA/h at 10 dB fell in 15 of 20 cells (5 rose), mean 32.6 ->
    # 29.0 % and 34.7 -> 28.4 %; clean cells went both ways (8 better, 8 worse; mean 16.9 -> 16.0 %, 19.7 -> 19.5 %).
    # Noise makes single-step spikes that an average over 320 ms flattens; a detection comes 1-3 steps later.
    # Longer, on the same models: 6 steps 16.9 / 29.4 %, 8 steps 20.3 / 30.4 % (clean / 10 dB): no gain past 4.
    smoothing: int = 4


def optimisation_seed(config: TrainConfig) -> int:
    return config.seed if config.train_seed is None else config.train_seed


@dataclass
class Data:
    train: Features
    val: Features
    train_sources: list[Source]
    val_sources: list[Source]
    info: dict


# From this many real takes on, 'auto' keeps phase 2 without asking validation (phase2_guarded).
UNGUARDED_FROM_TAKES = 20


def choose_strategy(requested: str, user_clips: int) -> str:
    """The strategy to train with: 'auto' is 'top' at every number of real takes (docs/strategies.md).

    Read off the measured crossover ('computer', quick recipe, K = 0-50 real takes, one seed, FRR at
    0.5 FA/h on held-out real takes, where one seed swings by 10-20 points):
    - 'features' (logistic regression on the frozen encoder) lost to the best strategy at every K,
      by 14-95 points: never chosen.
    - 'full' had the lowest (or tied lowest) FRR at 4 of 6 K, but on the same data as 'top' its phase 3
      (which moves the bottom by ~0.1 % of its norm) moved FRR by 0 to 19 points, both ways: this
      benchmark's noise. It costs ~90 s more CPU and its bottom cannot be shared at run time: asked
      for, never chosen.
    - 'head' against 'top': each won some K, within the noise except at K = 0 and 20, where the
      fine-tuned top won by 21 and 35 points. So 'top' everywhere; whether its phase 2 stays is up to
      phase2_guarded.
    """
    check_strategy(requested)
    if requested != "auto":
        return requested
    return "top"


def phase2_guarded(requested: str, user_clips: int) -> bool:
    """Whether phase 2 is kept only if it beats phase 1 on validation recall (else phase 1 is restored).

    Only for 'auto' with 3 to UNGUARDED_FROM_TAKES - 1 real takes. In the crossover the guard restored
    phase 1 at K = 0, 3, 10 and 20; on held-out real takes that cost 21 points at K = 0 (validation
    positives are then synthetic voices alone) and 35 at K = 20, and was within the noise at 3 and 10
    (7 points better, 6 worse). So it stays where the table cannot tell, and goes where it was clearly
    wrong. An explicit 'top' or 'full' always keeps phase 2 (so that tools/bench_strategies.py measures
    what fine-tuning does, not the guard).
    """
    return requested == "auto" and 0 < user_clips < UNGUARDED_FROM_TAKES


def check_strategy(requested: str) -> None:
    if requested not in STRATEGIES:
        raise WakewordError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {requested!r}")


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise WakewordError("--device cuda asked for, but PyTorch sees no CUDA GPU (use --device auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise WakewordError(f"--device must be auto, cpu or cuda, not {name!r}")
    return name


# ---------------------------------------------------------------------------------------------- 1. sources


def user_sources(folder: Path) -> list[Source]:
    """The user's takes, checked like enrollment does: bad ones are reported and left out."""
    from wakeword.enroll import audio_files, check_take, trim

    paths = sorted(folder.glob("*.trimmed.wav")) or audio_files(folder)
    kept, lengths = [], []
    for path in paths:
        try:
            audio = load_audio(path)
        except WakewordError as exc:
            log.warning("clip skipped: %s", exc)
            continue
        check = check_take(audio)
        if not check.ok:
            log.warning("clip skipped: %s: %s", path, check.reason)
            continue
        kept.append((path, trim(audio, check)))
        lengths.append(check.speech_seconds)
    if kept:  # a take of another length is probably another phrase, or two takes in one
        median = float(np.median(lengths))
        good = []
        for (path, audio), seconds in zip(kept, lengths, strict=True):
            if not median / 3 <= seconds <= 3 * median:  # speech-length estimates are rough: only clear outliers
                log.warning("clip skipped: %s: %.2f s of speech, the others have %.2f s", path, seconds, median)
            else:
                good.append(Source(audio, 1, "user", f"user:{path.name}", origin=str(path)))
        return good
    return []


def tts_sources(config: TrainConfig, rng: np.random.Generator) -> tuple[list[Source], dict]:
    """The phrase in every positive voice (spelling variants spread over them), near-misses and
    general sentences in negative voices. Synthesis is cached by (text, voice)."""
    from wakeword import phrases, tts

    cache = ArrayCache(config.cache_dir)
    variants = phrases.spelling_variants(config.phrase)
    pos_voices = tts.list_voices("positive", config.commercial_safe)
    neg_voices = tts.list_voices("negative", config.commercial_safe)
    if not pos_voices:
        raise WakewordError("no TTS voice installed for synthetic positives: run 'make setup' (espeak-ng and friends)")
    if config.max_positive_voices and len(pos_voices) > config.max_positive_voices:
        pick = np.sort(rng.choice(len(pos_voices), config.max_positive_voices, replace=False))
        pos_voices = [pos_voices[i] for i in pick]
    jobs: list[tuple[str, object, str, str]] = []  # text, voice, kind, group
    for i, voice in enumerate(pos_voices):
        jobs.append((variants[i % len(variants)], voice, "tts", f"voice:{voice.speaker}"))
    near = confusable_phrases(config.phrase, config.near_miss_limit, config.seed)
    for miss in near:
        for j in rng.choice(len(neg_voices), size=min(config.near_miss_voices, len(neg_voices)), replace=False):
            jobs.append((miss.text, neg_voices[j], "near_miss", f"text:{miss.text}"))
    sentences = [t for t in general_sentences() if f" {config.phrase} " not in f" {WORDS_ONLY.sub('', t.lower())} "]
    most, voices = (
        (config.max_sentences, config.sentence_voices) if config.negatives else config.sentences_without_negatives
    )
    for sentence in sentences[:most]:
        for j in rng.choice(len(neg_voices), size=min(voices, len(neg_voices)), replace=False):
            jobs.append((sentence, neg_voices[j], "speech", f"text:{sentence}"))

    # Sources keep the jobs' order whatever the cache holds: later steps draw their random numbers
    # source by source, so a run with some clips cached (another word's sentences, say) must see the
    # same list as a cold one, or the same recipe trains another model.
    pcm_of: dict[tuple[str, str], np.ndarray] = {}
    todo: dict[tuple[str, str], tuple[str, tts.Voice]] = {}  # a (text, voice) asked twice is synthesised once
    for text, voice, _, _ in jobs:
        key = (text, voice.id)
        if key in pcm_of or key in todo:
            continue
        hit = cache.get(content_key(tts.cache_name(text, voice)))
        if hit is not None:
            pcm_of[key] = hit
        else:
            todo[key] = (text, voice)
    for text, voice, audio in tts.synthesize_many(list(todo.values()), progress=True):
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        cache.put(content_key(tts.cache_name(text, voice)), pcm)
        pcm_of[(text, voice.id)] = pcm
    sources = [
        Source(pcm_of[(t, v.id)].astype(np.float32) / 32767.0, int(k == "tts"), k, g, origin=v.id)
        for t, v, k, g in jobs
        if (t, v.id) in pcm_of  # a clip whose synthesis failed is left out (synthesize_many warned)
    ]
    info = {
        "positive_voice_configs": len(pos_voices),
        "positive_speakers": len({v.speaker for v in pos_voices}),
        "negative_voice_configs": len(neg_voices),
        "engines": sorted({v.engine for v in pos_voices} | {v.engine for v in neg_voices}),
        "spelling_variants": variants,
        "near_miss_phrases": len(near),
        "near_miss_examples": [m.text for m in near[:12]],
    }
    return sources, info


def confusable_phrases(phrase: str, limit: int, seed: int = 0) -> list:
    """Near-miss phrases (wakeword.phrases) minus those that are only an accent of the phrase itself."""
    from wakeword import phrases

    phrase_phones = tuple(p for word in phrases.pronounce(phrase) for p in word.phonemes)
    near = phrases.near_miss_phrases(phrase, limit, seed)
    dropped = [m.text for m in near if not keep_near_miss(m, phrase_phones)]
    return [m for m in near if not any(f" {d} " in " " + WORDS_ONLY.sub("", m.text) + " " for d in dropped)]


def keep_near_miss(miss, phrase_phones: tuple[str, ...]) -> bool:  # miss: wakeword.phrases.NearMiss
    """Drop near-misses that people (and TTS voices) say for the phrase itself.

    A change to vowels alone at the smallest distance ("cahmputer", "computa", "compyooter" for
    "computer") is an accent, not another word: as a negative it would teach the model to reject
    real takes. Consonant changes at that distance ("combuter", "hey mipa") stay: they are the
    confusions users complain about.
    """
    from wakeword.phrases import VOWELS, strip_stress

    if miss.kind != "substitution" or miss.distance > 0.5:
        return True
    ours, theirs = strip_stress(phrase_phones), strip_stress(miss.phonemes)
    if len(ours) != len(theirs):
        return True
    changed = [b for a, b in zip(ours, theirs, strict=True) if a != b]
    return not changed or not all(p in VOWELS for p in changed)


def general_sentences() -> list[str]:
    path = Path(__file__).parent / "data" / "sentences.txt"
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


STREAM_S = 12.0  # a stretch of negative talk (as_streams)
BLOCK_S = 120.0  # pieces of one long recording within this span share a group: they go to one side of the split


def long_recordings_in_pieces(
    sources: list[Source], seconds: float = STREAM_S, block_s: float = BLOCK_S
) -> list[Source]:
    """Long recordings (as_streams picks them: two stretches or longer) cut into `seconds` pieces.

    Segments are cut per source (make_segments: speech_copies crops each) and the split holds aside
    whole groups: one hour-long podcast given as --negatives would otherwise give a dozen crops and
    nothing held aside to calibrate on. Pieces within one block_s span share a group, so neighbours
    (the same sentence, carried across a cut) stay on one side of the split."""
    out = []
    piece = int(seconds * SAMPLE_RATE)
    for s in sources:
        starts = range(0, max(len(s.audio) - piece, 0) + 1, piece)
        for i, start in enumerate(starts):
            stop = start + piece if i < len(starts) - 1 else len(s.audio)  # the last piece takes the rest
            block = int(start // (block_s * SAMPLE_RATE))
            out.append(Source(s.audio[start:stop], s.label, s.kind, f"{s.group}#{block}", origin=f"{s.origin}@{start}"))
    return out


def as_streams(sources: list[Source], seconds: float = STREAM_S, seed: int = 0) -> list[Source]:
    """Short recordings joined into ~12 s stretches with 0.1-0.6 s gaps, as a microphone hears talk.

    Deployed, a window can end anywhere: mid-word, in a gap, just after one sentence and before the
    next. Cropping segments from these stretches puts every such alignment into training; a clip
    placed alone at a segment's end would only teach "speech that has just ended". Each stretch keeps
    the group of its first clip, and clips of one group are kept together so the split stays honest.
    Recordings two stretches long or longer are running talk already: they are cut, not joined
    (long_recordings_in_pieces).
    """
    rng = np.random.default_rng(seed)
    long: list[Source] = []
    by_group: dict[str, list[Source]] = {}
    for s in sources:
        if len(s.audio) >= 2 * seconds * SAMPLE_RATE:
            long.append(s)
        else:
            by_group.setdefault(s.group, []).append(s)
    out, parts, group, length = [], [], "", 0
    for g in rng.permutation(sorted(by_group)).tolist():
        for s in by_group[g]:
            if not parts:
                group = g
            gap = np.zeros(int(rng.uniform(0.1, 0.6) * SAMPLE_RATE), np.float32)
            parts += [s.audio, gap]
            length += len(s.audio) + len(gap)
        if length >= seconds * SAMPLE_RATE:
            out.append(Source(np.concatenate(parts), 0, "speech", group, origin=f"stream of {len(parts) // 2} clips"))
            parts, length = [], 0
    if parts:
        out.append(Source(np.concatenate(parts), 0, "speech", group, origin=f"stream of {len(parts) // 2} clips"))
    return out + long_recordings_in_pieces(long, seconds)


def load_folder_audio(dirs: list[Path]) -> list[np.ndarray]:
    return [s.audio for s in read_audio_dirs(dirs, "noise", 0)]


# Feedback from deployment (`wakeword listen --keep DIR`, labelled with `wakeword feedback DIR`).
FALSE_ACCEPT_WEIGHT = 2.0  # per example, as the mined hard negatives: the model's own false alarms
MAX_AMBIENT_SEGMENTS = 1500  # newest first: a 200 MB keep folder holds ~1,600 snippets (~100 min)
# `wakeword train --resume MODEL --feedback DIR` changes these for that run only (the card keeps the
# model's own recipe): a fine-tune of the trained head over the encoder top as the model has it, on
# cached features, a few epochs at a quarter of the learning rate, no mining. Measured on "computer"
# (K = 5, quick recipe, 14 false accepts and 175 ambient snippets; 2 shared cores): 15 epochs at the
# full rate without mining forget the mined hard negatives (FA/h at threshold 0.5 on held-aside home
# audio 12 -> 122); one mining round restores them but takes 60-250 s and leaves that home at 14 FA/h;
# this recipe takes 20-60 s (as other jobs load the CPU) and halves it (12 -> 6), clean recall
# unchanged (docs/adapt.md).
ADAPT_RECIPE = {"strategy": "head", "mining_rounds": 0, "head_epochs": 4, "head_lr": 5e-4}


def feedback_sources(folders: list[Path]) -> tuple[list[Source], dict]:
    """What the daemon kept, as training sources.

    A detection marked false becomes a "false_accept" negative and one marked true a "user" positive
    (split like the takes), each cut to end where the detector fired: the window it scored. Ambient
    snippets become "ambient" negatives although nobody labelled them: a few seconds of a room picked
    when nothing fired almost never hold the wake word, and they are the room, microphone and voices
    the model is deployed to. Each snippet is cut into segment-long pieces, so all of it is used.
    Unlabelled detections are left out.

    False accepts and ambient audio each form one group, so all of them train (split_by_group holds
    out nothing of a kind with one group): they are few, and validation (early stopping, and the
    threshold's calibration) stays the data the model was first validated on.
    """
    from wakeword import feedback

    sources: list[Source] = []
    info = {"folders": len(folders), "false_accepts": 0, "true_detections": 0, "unlabelled": 0}
    for folder in folders:
        for kept in feedback.read_detections(folder):
            if kept.label is None or not kept.has_audio:
                info["unlabelled"] += kept.label is None
                continue
            audio = feedback.load_clip(kept)
            fired_at = round(float(kept.record.get("detection_at_s", len(audio) / SAMPLE_RATE)) * SAMPLE_RATE)
            clip = audio[: max(1, fired_at)]
            positive = kept.label == "true"
            kind, group = ("user", f"feedback:{kept.id}") if positive else ("false_accept", "false_accept")
            sources.append(Source(clip, int(positive), kind, group, origin=str(kept.wav_path)))
            info["true_detections" if positive else "false_accepts"] += 1
    pieces: list[Source] = []
    snippets = 0
    for path in sorted((p for folder in folders for p in feedback.ambient_files(folder)), key=lambda p: p.name):
        audio = load_audio(path)
        snippets += 1
        for start in range(0, len(audio) - SEGMENT_SAMPLES // 2, SEGMENT_SAMPLES):
            pieces.append(Source(audio[start : start + SEGMENT_SAMPLES], 0, "ambient", "ambient", origin=str(path)))
    sources += pieces[-MAX_AMBIENT_SEGMENTS:]
    info.update(ambient_snippets=snippets, ambient_segments=min(len(pieces), MAX_AMBIENT_SEGMENTS))
    return sources, info


def collect_sources(config: TrainConfig, rng: np.random.Generator) -> tuple[list[Source], dict]:
    sources: list[Source] = []
    user = user_sources(config.clips) if config.clips else []
    if config.clips and len(user) < MIN_USER_CLIPS:
        raise WakewordError(
            f"{config.clips}: {len(user)} usable take(s), training needs at least {MIN_USER_CLIPS} "
            "(see the warnings above; or train synthetic-only without --clips)"
        )
    if user and not config.negatives and not config.feedback:
        log.warning(NO_NEGATIVES_WARNING)
    sources += user
    kept, kept_info = feedback_sources(config.feedback)  # before the partials: a confirmed detection gets them too
    sources += kept
    synthetic, info = tts_sources(config, rng)
    sources += [s for s in synthetic if s.kind != "speech"]
    sources += partial_sources([s for s in sources if s.label == 1], config.seed)
    sources += scrambled_sources(user, config.seed)
    recorded = read_audio_dirs(config.negatives, "speech", 0)
    speech = recorded + [s for s in synthetic if s.kind == "speech"]
    sources += as_streams(speech)
    sources += isolated_sources(speech, config.isolated_negatives, config.seed)
    noise = read_audio_dirs(config.noise, "noise", 0)
    sources += noise
    silent = np.zeros(SEGMENT_SAMPLES, np.float32)  # the augmenter turns these into pure noise segments
    n_noise = config.noise_segments // 2  # two augmented copies each
    sources += [Source(silent, 0, "noise", f"synthetic-noise:{i % 50}", key=f"silence:{i}") for i in range(n_noise)]
    info["user_clips"] = len(user)
    # What decides whether the model knows real talk from the phrase (docs/takes_only.md).
    info["negative_recordings"] = len(recorded)
    info["negative_recording_minutes"] = round(sum(len(s.audio) for s in recorded) / SAMPLE_RATE / 60, 1)
    if config.feedback:
        info["feedback"] = kept_info
    return sources, info


# --------------------------------------------------------------------------------------- 2-3. split, features


def split_sources(sources: list[Source], config: TrainConfig) -> tuple[list[Source], list[Source]]:
    user = [s for s in sources if s.kind == "user"]
    rest = [s for s in sources if s.kind != "user"]
    train, val = [], []
    for kind in sorted({s.kind for s in rest}):  # kind by kind, as split_by_group orders them
        share = config.speech_val_fraction if kind == "speech" else config.val_fraction
        kind_train, kind_val = split_by_group([s for s in rest if s.kind == kind], share, config.seed)
        train += kind_train
        val += kind_val
    # Leave-some-out of the real takes when there are 4 or more: the only honest check on real voice.
    n_val = max(1, len(user) // 4) if len(user) >= 4 else 0
    order = sorted(range(len(user)), key=lambda i: stable_hash(config.seed, user[i].key))  # stable as takes are added
    val += [user[i] for i in order[:n_val]]
    train += [user[i] for i in order[n_val:]]
    # A partial or scrambled take goes with its full take.
    val_groups = {s.group for s in val if s.label == 1}
    derived = ("partial", "scrambled")
    moved = [s for s in train if s.kind in derived and s.group in val_groups]
    train = [s for s in train if not (s.kind in derived and s.group in val_groups)]
    return train, val + moved


def build_data(config: TrainConfig, encoder: SpeechEmbedding, device: str) -> Data:
    from wakeword.augment import Augmenter

    rng = np.random.default_rng(config.seed)
    sources, info = collect_sources(config, rng)
    # Decided here, not after: 'full' trains the bottom, so it needs each example's log-mel as well.
    info["strategy"] = choose_strategy(config.strategy, info["user_clips"])
    train_src, val_src = split_sources(sources, config)
    noises = load_folder_audio(config.noise)
    rirs = load_folder_audio(config.rirs)
    cache = ArrayCache(config.cache_dir)
    n_pos = sum(s.label for s in train_src)
    n_user = sum(s.kind == "user" for s in train_src)
    n_speech = max(1, sum(s.kind == "speech" for s in train_src))
    speech_copies = max(1, min(config.speech_copies, round(config.speech_segments / n_speech)))
    scrambled_copies = max(1, config.user_copies // 4)
    copies = {
        "user": config.user_copies,
        "scrambled": scrambled_copies,
        "tts": config.tts_copies,
        "speech": speech_copies,
        "noise": 2,
        "false_accept": scrambled_copies,  # a few real false alarms: several augmented copies of each
    }
    # Real takes count user_weight times a synthetic one in total, however few they are.
    user_w = config.user_weight * max(1, n_pos - n_user) / max(1, n_user * config.user_copies) if n_user else 1.0
    # Scrambled takes stand for everything else the user says: together they weigh as much as the takes.
    scrambled_w = user_w * config.user_copies / (2 * scrambled_copies)
    weights = {"user": user_w, "scrambled": scrambled_w, "near_miss": config.near_miss_weight, "partial": 1.0}
    weights["false_accept"] = FALSE_ACCEPT_WEIGHT
    parts = []
    for name, src, seed in (("train", train_src, config.seed), ("val", val_src, config.seed + 1)):
        # One segment seed for both sides: a source's segments (and cached features) do not depend on
        # which side of the split it lands.
        segments = make_segments(src, copies, weights, config.seed)
        # Other talk under the phrase (a TV, a second person): this side's negative speech, never the other's.
        babble = [s.audio for s in src if s.kind == "speech"]
        augment = Augmenter(noises, rirs, device=device, seed=seed, babble=babble)
        masks = config.spec_augment_p if name == "train" else 0.0
        parts.append(
            featurize(
                segments,
                encoder,
                augment,
                cache,
                device,
                augment_tag=augment.tag,
                progress=f"features ({name})",
                spec_augment_p=masks,
                keep_mels=info["strategy"] == "full",
            )
        )
    info.update(
        {
            "train_sources": counts(train_src),
            "val_sources": counts(val_src),
            "train_examples": len(parts[0]),
            "val_examples": len(parts[1]),
            "noise_files": len(noises),
            "rir_files": len(rirs),
            "cache_hits": cache.hits,
            "cache_misses": cache.misses,
        }
    )
    return Data(parts[0], parts[1], train_src, val_src, info)


# -------------------------------------------------------------------------------------------- 4-6. training


def balanced_weights(features: Features, negative_share: float = 0.5) -> torch.Tensor:
    """Example weights with the negatives summing to negative_share of the total, positives the rest."""
    w = features.weights.clone()
    pos = features.labels > 0.5
    w[pos] *= (1 - negative_share) / w[pos].sum().clamp_min(1e-8)
    w[~pos] *= negative_share / w[~pos].sum().clamp_min(1e-8)
    return w * len(w)


def focal_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, gamma: float = 0.0) -> torch.Tensor:
    """Weighted BCE, optionally focal (gamma > 0: easy examples count less). Measured on the 'computer'
    development run: gamma 2 left training positives at a median 0.57 where plain BCE (gamma 0) reached
    0.92 on the same epochs, so plain BCE is the default."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    p_true = torch.exp(-bce)
    return (weights * (1 - p_true) ** gamma * bce).mean()


def recall_at_low_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.005) -> float:
    """Validation metric: positives caught at the threshold that lets 0.5% of negative windows through."""
    neg, pos = scores[labels < 0.5], scores[labels > 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return 0.0
    threshold = np.quantile(neg, 1 - fpr)
    return float((pos > threshold).mean())


@torch.no_grad()
def embeddings_of(top: nn.Module, acts: torch.Tensor, device: str, batch: int = 1024) -> torch.Tensor:
    out = [top(acts[i : i + batch].to(device).float())[:, -HEAD_STEPS:].cpu() for i in range(0, len(acts), batch)]
    return torch.cat(out)


def fit(
    net: WakeWordNet,
    data: Data,
    device: str,
    epochs: int,
    lr: float,
    train_top: bool,
    config: TrainConfig,
    desc: str,
    train_bottom: bool = False,
) -> dict:
    """Train the head (and the top, if train_top; and the model's own bottom, if train_bottom) with early
    stopping on validation recall.

    The pull (L2-SP) is toward the weights the phase starts from: the pretrained ones on a first run
    (phase 3 starts the top where phase 2 left it, itself pulled toward the pretrained top; a resumed
    model is pulled toward itself). pull_to_pretrained for the top, the stronger pull_bottom for the
    bottom. Training the bottom runs on log-mel (data.*.mels): a random full_examples_per_epoch of the
    training set per epoch, and a fixed full_val_examples of the validation set (see TrainConfig)."""
    from tqdm import tqdm

    torch.manual_seed(optimisation_seed(config))
    net.to(device)
    labels, weights = data.train.labels, balanced_weights(data.train, config.negative_share)
    val_labels = data.val.labels
    per_epoch = len(labels)
    if train_bottom:
        if net.bottom is None or data.train.mels is None or data.val.mels is None:
            raise ValueError("training the bottom needs a model with its own bottom and log-mel features")
        train_top = True
        pretrained = [p.detach().clone() for p in net.top.parameters()]
        bottom = bottom_parameters(net.bottom)
        pretrained_bottom = [p.detach().clone() for p in bottom]
        for p in bottom:
            p.requires_grad_(True)
        params = [
            {"params": net.top.parameters(), "lr": lr},
            {"params": net.head.parameters(), "lr": lr * 3},
            # No decay toward zero here: the pull toward the pretrained weights is this group's regulariser.
            {"params": bottom, "lr": lr, "weight_decay": 0.0},
        ]
        picked = validation_draw(val_labels, config.full_val_examples, config.seed)
        train_x, val_x, val_labels = data.train.mels, data.val.mels[picked], val_labels[picked]
        per_epoch = min(per_epoch, config.full_examples_per_epoch)
    elif train_top:
        pretrained = [p.detach().clone() for p in net.top.parameters()]
        params = [{"params": net.top.parameters(), "lr": lr}, {"params": net.head.parameters(), "lr": lr * 3}]
        train_x, val_x = data.train.acts, data.val.acts
    else:
        for p in net.top.parameters():
            p.requires_grad_(False)
        params = [{"params": net.head.parameters(), "lr": lr}]
        # Phase 1 trains on embeddings computed once: the encoder is frozen, so they never change.
        train_x = embeddings_of(net.top, data.train.acts, device)
        val_x = embeddings_of(net.top, data.val.acts, device)
    optimizer = torch.optim.AdamW(params, weight_decay=1e-2)
    inputs = "mels" if train_bottom else "acts" if train_top else "embeddings"
    use_amp = device == "cuda"
    best, best_state, stale, history = -1.0, None, 0, []
    kept: list[tuple[float, dict]] = []  # (validation recall, weights) of the average_best best epochs
    bar = tqdm(range(epochs), desc=desc, unit="epoch", leave=False)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(labels))[:per_epoch]
        total = 0.0
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            x = train_x[idx].to(device).float()
            with torch.autocast(device_type="cuda", enabled=use_amp):
                logits = forward_as(net, x, inputs)
                loss = focal_bce(logits.float(), labels[idx].to(device), weights[idx].to(device))
                if train_top:
                    pull = sum(((p - p0) ** 2).sum() for p, p0 in zip(net.top.parameters(), pretrained, strict=True))
                    loss = loss + config.pull_to_pretrained * pull
                if train_bottom:
                    pull = sum(((p - p0) ** 2).sum() for p, p0 in zip(bottom, pretrained_bottom, strict=True))
                    loss = loss + config.pull_bottom * pull
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scores = predict(net, val_x, device, inputs)
        metric = recall_at_low_fpr(scores, val_labels.numpy())
        history.append({"epoch": epoch, "loss": total / len(order), "val_recall_at_0.5pct_fpr": metric})
        bar.set_postfix(loss=f"{total / len(order):.4f}", val=f"{metric:.3f}")
        improved = metric > best + 1e-4
        state = copy.deepcopy(net.state_dict()) if improved or config.average_best > 1 else None
        if config.average_best > 1:
            kept.append((metric, state))
            kept = sorted(kept, key=lambda pair: -pair[0])[: config.average_best]  # ties: the earlier epoch
        if improved:
            best, best_state, stale = metric, state, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    bar.close()
    for p in net.top.parameters():
        p.requires_grad_(True)
    if len(kept) > 1:
        best_state = average_states([state for _, state in kept])
    if best_state is not None:
        net.load_state_dict(best_state)
    return {
        "best_val_recall_at_0.5pct_fpr": best,
        "epochs_run": len(history),
        "epochs_averaged": max(1, len(kept)),
        "history": history,
    }


def average_states(states: list[dict]) -> dict:
    """The element-wise mean of state dicts of one network. Integer buffers, and tensors that no epoch
    changed (the frozen layers), are taken from the first as they are: the mean of three equal floats
    is not always that float, and a frozen encoder must stay bit-exact the pretrained one."""
    out = {}
    for name, first in states[0].items():
        same = all(torch.equal(first, state[name]) for state in states[1:])
        if first.is_floating_point() and not same:
            out[name] = torch.stack([state[name] for state in states]).mean(dim=0)
        else:
            out[name] = first.clone()
    return out


def forward_as(net: WakeWordNet, x: torch.Tensor, inputs: str) -> torch.Tensor:
    """Logits from what a phase trains on: "embeddings" (phase 1), "acts" (phase 2), "mels" (phase 3)."""
    if inputs == "mels":
        return net.forward_features(x)
    return net(x) if inputs == "acts" else net.forward_embeddings(x)


@torch.no_grad()
def predict(net: WakeWordNet, x: torch.Tensor, device: str, inputs: str, batch: int = 1024) -> np.ndarray:
    net.eval()
    out = []
    batch = 128 if inputs == "mels" else batch  # the whole encoder on 2 s of log-mel: keep memory bounded
    for i in range(0, len(x), batch):
        logits = forward_as(net, x[i : i + batch].to(device).float(), inputs)
        out.append(torch.sigmoid(logits).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def validation_draw(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Indices of a fixed random draw of `size` validation examples, positives first (up to half of it):
    recall at a low false-positive rate needs both many negatives and enough positives."""
    generator = torch.Generator().manual_seed(seed)
    positives = torch.nonzero(labels > 0.5).flatten()
    negatives = torch.nonzero(labels <= 0.5).flatten()
    positives = positives[torch.randperm(len(positives), generator=generator)][: size // 2]
    negatives = negatives[torch.randperm(len(negatives), generator=generator)][: size - len(positives)]
    return torch.sort(torch.cat([positives, negatives])).values


@torch.no_grad()
def bottom_distance(net: WakeWordNet, encoder: SpeechEmbedding) -> dict[str, float]:
    """How far a model's own bottom moved from the pretrained one: L2 distance, and relative to the weights' norm."""
    moved = bottom_parameters(net.bottom)
    start = [p.to(moved[0].device) for p in bottom_parameters(encoder)]
    distance = float(torch.sqrt(sum(((p - p0) ** 2).sum() for p, p0 in zip(moved, start, strict=True))))
    norm = float(torch.sqrt(sum((p0**2).sum() for p0 in start)))
    return {"l2": distance, "relative": distance / norm}


def mine_hard_negatives(
    net: WakeWordNet, encoder: SpeechEmbedding, data: Data, config: TrainConfig, device: str
) -> list[Source]:
    """Score every 80 ms of the training negatives as one stream; the windows that score highest
    become new negative sources (the model's own false alarms).

    The stream is clean. Mining it a second time under the training noise (each 10 s at 0-20 dB)
    was measured (tools/bench_accuracy.py --quick, seeds 0-1, against the same code without): FRR at
    0.5 FA/h clean went 14.5 -> 27.6 % (worse for 5 of 6 word-seeds, hey chatterbox 43 -> 86 %) and
    at 10 dB 29.0 -> 35.1 %, for 80 s more per model; not kept."""
    negatives = [
        s
        for s in data.train_sources
        if s.label == 0 and s.kind in ("speech", "isolated", "near_miss", "partial", "scrambled")
    ]
    if not negatives:
        return []
    gaps = {"isolated": np.zeros(SAMPLE_RATE, np.float32)}  # heard alone, as in training
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    stream = np.concatenate([np.concatenate([s.audio, gaps.get(s.kind, gap)]) for s in negatives])
    net.eval()
    scores = score_audio(net, encoder.to(device), stream)
    order = np.argsort(scores)[::-1]
    picked, taken = [], np.zeros(len(scores), bool)
    for step in order:
        if len(picked) >= config.hard_negatives or scores[step] < 0.05:
            break
        if taken[max(0, step - 5) : step + 6].any():  # one window per false alarm, not its neighbours
            continue
        taken[step] = True
        end = (step + 1) * 1280
        if end >= SEGMENT_SAMPLES:
            picked.append(Source(stream[end - SEGMENT_SAMPLES : end].copy(), 0, "hard", f"hard:{step}"))
    return picked


def add_hard_negatives(
    net: WakeWordNet, encoder: SpeechEmbedding, data: Data, config: TrainConfig, device: str, round_: int
) -> bool:
    """One mining round: the model's own false alarms, augmented and featurised, join the training set.
    False when it found none."""
    from wakeword.augment import Augmenter

    hard = mine_hard_negatives(net, encoder, data, config, device)
    if not hard:
        return False
    segments = make_segments(hard, {"hard": 1}, {"hard": 2.0}, config.seed + 2 + round_)
    augment = Augmenter(device=device, seed=3 + round_)
    extra = featurize(
        segments,
        encoder,
        augment,
        None,
        device,
        progress=f"hard negatives ({round_ + 1})",
        keep_mels=data.train.mels is not None,
    )
    data.train = Features.concat([data.train, extra])
    data.train_sources += hard
    return True


# ------------------------------------------------------------------------------------------- 7. calibration


MAX_THRESHOLD = 0.9995
# Below this much held-aside speech the tail's extrapolation is a guess from a few minutes (or seconds)
# of audio, while the held-aside positives are measured: where the guess would reject more than
# MAX_EXTRAPOLATED_FRR of them, the threshold stops at the score that rejects that share, but never at
# or below a false alarm the held-aside speech showed (tail_fit's floor). Without it, the demo's quick
# recipe (42 s of held-aside TTS speech, highest peak 0.06) extrapolated to the 0.9995 cap and missed 5
# of its 6 phrases. With real negative speech (a quarter hour held aside on the development benchmark)
# the tail is the better guess: capped there, 'computer' and 'athena' (seed 1) fell from thresholds of
# 0.984 and 0.994 to 0.973 and 0.957, and 6.5 and 1.2 false accepts an hour on the test speech.
MIN_TAIL_HOURS = 0.1
MAX_EXTRAPOLATED_FRR = 0.1
TAIL_PEAKS = 20  # highest negative peaks the tail fit uses


def calibration_streams(val_sources: list[Source]):
    """Held-aside general speech as one negative stream, held-aside positives as another (with their times),
    and the kind of each positive clip (a take, a synthetic voice) in that stream's order.

    FA/h is a rate on everyday audio, so only "speech" (the user's negatives, TTS sentences, as
    running talk and as words said alone) makes the negative stream. Near-misses are generated to be
    as close to the phrase as possible, many per minute: in the stream they would stand for a TV that
    says "combuter" every few seconds and push the threshold far past what the target asks. They are
    measured apart (near_miss_accepts).
    """
    from wakeword.evaluate import build_negative_stream, build_positive_stream

    rng = np.random.default_rng(1)
    neg = [s.audio for s in val_sources if s.label == 0 and s.kind in ("speech", "isolated")]
    pos = [s for s in val_sources if s.label == 1]
    noise = rng.normal(0, 1e-3, SAMPLE_RATE * 60).astype(np.float32)
    neg_stream = build_negative_stream(neg, noise=noise, snr_db=30.0, seed=1) if neg else None
    pos_stream = build_positive_stream([s.audio for s in pos], background=noise, snr_db=30.0, seed=1) if pos else None
    return neg_stream, pos_stream, [s.kind for s in pos]  # the kinds in the positive stream's order


# How the validation FRR splits by where the positives came from. From 5 takes, one is held out beside
# about 25 synthetic clips, so the pooled FRR is mostly the synthetic voices'; trained on real takes and real
# negatives, the model can score those voices far lower than real speakers (tools/bench_train.py --negatives:
# a pooled 96 % for 'athena').
VALIDATION_ORIGINS = {"your held-out takes": ("user",), "synthetic voices": ("tts",)}


def missed_by_origin(scores: np.ndarray, stream: Stream, kinds: list[str], threshold: float) -> dict[str, dict]:
    """{origin: {"clips": n, "missed": m}} for each VALIDATION_ORIGINS entry with clips in the stream."""
    from wakeword.evaluate import Stream, false_reject_rate

    out = {}
    for origin, wanted in VALIDATION_ORIGINS.items():
        targets = [t for t, kind in zip(stream.targets, kinds, strict=True) if kind in wanted]
        if targets:
            part = Stream(stream.audio, targets, f"{stream.name} ({origin})")
            missed = round(false_reject_rate(scores, part, threshold) * len(targets))
            out[origin] = {"clips": len(targets), "missed": missed}
    return out


def negative_peaks(scores: np.ndarray, refractory_steps: int = 25) -> np.ndarray:
    """The highest score of each would-be false alarm, highest first (peaks closer than the refractory merge)."""
    peaks, taken = [], np.zeros(len(scores), bool)
    for step in np.argsort(scores)[::-1]:
        if len(peaks) >= TAIL_PEAKS:
            break
        if not taken[max(0, step - refractory_steps) : step + refractory_steps + 1].any():
            peaks.append(scores[step])
        taken[step] = True
    return np.asarray(peaks, np.float64)


def tail_fit(peaks: np.ndarray, hours: float, target_fa_per_hour: float) -> dict:
    """The score at which false alarms fall to the target rate, from the highest held-aside negative peaks.

    The rule, in logit space (peaks sorted highest first, k of them, from `hours` of audio):
      1. The data first: the audio may show m = floor(target x hours) false alarms, so the threshold is
         never at or below the (m + 1)-th highest peak (at the usual quarter hour, m = 0: above the
         highest one). If even the k-th peak is rarer than the target, the data say enough: the k-th peak.
      2. Past the data, the peaks over the k-th are taken as exponential (peaks over threshold); the
         maximum-likelihood scale is their mean excess over the k-th, and the rate falls by e per scale
         above it, from k / hours, to the target.
    The threshold is the higher of the two. How far step 2 extrapolates, ln(k / (hours x target))
    scales, is what more held-aside hours buy (TrainConfig.speech_val_fraction).
    """
    peaks = np.sort(np.asarray(peaks, np.float64))[::-1]
    out = {"peaks_used": len(peaks), "hours": hours, "target_fa_per_hour": target_fa_per_hour}
    if len(peaks) == 0 or hours <= 0:
        return out | {"threshold": 0.5, "scale": None, "floor": None}
    allowed = int(np.floor(target_fa_per_hour * hours + 1e-9))  # false alarms the audio may show at the target
    if allowed >= len(peaks):
        return out | {"threshold": float(peaks[-1]), "scale": None, "floor": float(peaks[-1])}
    # An event fires at score >= threshold: just above the first peak that would be one too many.
    floor = float(np.nextafter(peaks[allowed], np.inf))
    logits = np.log(np.clip(peaks, 1e-7, 1 - 1e-7) / np.clip(1 - peaks, 1e-7, None))
    k = len(logits)
    scale = max(float(np.mean(logits[:-1] - logits[-1])) if k > 1 else 0.0, 0.25)
    logit = logits[-1] + scale * np.log(k / (hours * target_fa_per_hour))
    threshold = max(floor, float(1 / (1 + np.exp(-logit))))
    return out | {"threshold": threshold, "scale": scale, "floor": floor}


def tail_threshold(peaks: np.ndarray, hours: float, target_fa_per_hour: float) -> float:
    """tail_fit's threshold."""
    return tail_fit(peaks, hours, target_fa_per_hour)["threshold"]


def positive_cap(det_rows: list[dict], max_frr: float) -> float:
    """The highest threshold at which the held-aside positives' FRR is still at most max_frr."""
    ok = [r["threshold"] for r in det_rows if r["frr"] <= max_frr]
    return float(max(ok)) if ok else 0.0


def calibrated_threshold(fit: dict, cap: float, hours: float) -> float:
    """tail_fit's threshold; from under MIN_TAIL_HOURS of held-aside speech, no higher than the
    positives' cap unless its floor (a false alarm the data showed) says so."""
    chosen = fit["threshold"]
    if fit["floor"] is not None and hours < MIN_TAIL_HOURS:
        chosen = max(fit["floor"], min(chosen, cap))
    return float(min(MAX_THRESHOLD, max(0.5, chosen)))


def near_miss_accepts(
    net: WakeWordNet, encoder: SpeechEmbedding, val_sources: list[Source], threshold: float, smoothing: int = 1
) -> dict[str, float]:
    """Share of held-aside near-miss, partial and scrambled clips that would fire at the threshold."""
    from wakeword.evaluate import build_positive_stream, false_reject_rate, smooth_scores

    out = {}
    for kind in ("near_miss", "partial", "scrambled"):
        clips = [s.audio for s in val_sources if s.kind == kind]
        if clips:  # laid out like positives, so "fired on clip i" is "detected clip i"
            stream = build_positive_stream(clips, seed=2)
            scores = smooth_scores(score_audio(net, encoder, stream.audio), smoothing)
            out[kind] = 1.0 - false_reject_rate(scores, stream, threshold)
    return out


def calibrate(net: WakeWordNet, encoder: SpeechEmbedding, val_sources: list[Source], config: TrainConfig, device: str):
    """Threshold for the target FA/h on the held-aside speech stream, and the validation DET curve, both on
    the score the deployed decision sees (smoothed over config.smoothing steps)."""
    from wakeword.evaluate import det_curve, false_accepts_per_hour, false_reject_rate, smooth_scores

    neg_stream, pos_stream, pos_kinds = calibration_streams(val_sources)
    if neg_stream is None or pos_stream is None:
        return 0.5, {}, []
    neg_scores = smooth_scores(score_audio(net, encoder, neg_stream.audio), config.smoothing)
    pos_scores = smooth_scores(score_audio(net, encoder, pos_stream.audio), config.smoothing)
    rows = det_curve(pos_scores, pos_stream, neg_scores, neg_stream.hours)
    peaks = negative_peaks(neg_scores)
    fit = tail_fit(peaks, neg_stream.hours, config.target_fa_per_hour)
    cap = positive_cap(rows, MAX_EXTRAPOLATED_FRR)
    capped = neg_stream.hours < MIN_TAIL_HOURS
    threshold = calibrated_threshold(fit, cap, neg_stream.hours)
    summary = {
        "threshold": threshold,
        "negative_hours": neg_stream.hours,
        "positives": len(pos_stream.targets),
        "frr_at_threshold": false_reject_rate(pos_scores, pos_stream, threshold),
        "missed_at_threshold": missed_by_origin(pos_scores, pos_stream, pos_kinds, threshold),
        "fa_per_hour_at_threshold": false_accepts_per_hour(neg_scores, neg_stream.hours, threshold),
        "highest_negative_score": float(peaks[0]) if len(peaks) else 0.0,
        "negative_peaks": [round(float(p), 5) for p in peaks],  # the evidence the threshold rests on
        "tail_scale_logit": fit["scale"],
        "tail_threshold": fit["threshold"],
        "positive_cap": cap,
        "threshold_rule": f"tail_fit: the higher of just above negative peak "
        f"#{int(config.target_fa_per_hour * neg_stream.hours + 1e-9) + 1} and the exponential (logit) tail of the "
        f"{len(peaks)} highest peaks in {neg_stream.hours:.2f} h of held-aside speech extrapolated to "
        f"{config.target_fa_per_hour} FA/h"
        + (
            f", the tail no higher than the score that misses {MAX_EXTRAPOLATED_FRR:.0%} of the held-aside "
            f"positives (under {MIN_TAIL_HOURS} h of held-aside speech)"
            if capped
            else ""
        )
        + f"; within [0.5, {MAX_THRESHOLD}]",
        "accepted_at_threshold": near_miss_accepts(net, encoder, val_sources, threshold, config.smoothing),
    }
    return threshold, summary, rows


# ---------------------------------------------------------------------------------------------- 8. saving


def save(net: WakeWordNet, out: Path, card: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": net.state_dict(),
        "head": net.head_kind,
        "own_bottom": net.bottom is not None,
        "feature_version": FEATURE_VERSION,
    }
    torch.save(checkpoint, out / CHECKPOINT)
    (out / CARD).write_text(json.dumps(card, indent=2, default=float) + "\n")
    if rows:
        plot_det(rows, out / "det.png", card["phrase"])


def plot_det(rows: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib missing: no DET plot")
        return
    fa = np.array([max(r["fa_per_hour"], 1e-2) for r in rows])
    frr = np.array([r["frr"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fa, frr * 100, marker=".")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (held-aside negatives)")
    ax.set_ylabel("false rejects (%)")
    ax.set_title(f"'{title}' validation DET")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig) -> dict:
    """Everything above, in order. Returns the card written to config.out."""
    from wakeword.phrases import normalize_phrase

    start = time.time()
    config.phrase = normalize_phrase(config.phrase)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    encoder = load_encoder().to(device)
    for p in encoder.parameters():
        p.requires_grad_(False)

    check_strategy(config.strategy)
    data = build_data(config, encoder, device)
    strategy = data.info["strategy"]
    head = "linear" if strategy == "features" else config.head
    if config.train_seed is not None:  # another head init on the same data (unset: as the seed left it)
        torch.manual_seed(config.train_seed)
    net = WakeWordNet(encoder, head=head, own_bottom=strategy == "full").to(device)
    if config.resume:  # a warm start: the previous model already knows the phrase
        previous, _ = load_model(config.out)
        if previous.head_kind != head:
            raise WakewordError(f"{config.out}: has a {previous.head_kind} head, this run would train a {head} head")
        if previous.bottom is not None and net.bottom is None:
            # Its head reads its own bottom's activations; this run's features come from the shared one.
            raise WakewordError(
                f"{config.out}: carries its own encoder bottom (trained with --strategy full); a '{strategy}' "
                "run trains on the shared bottom's features and cannot start from it: train it again with "
                "--strategy full, or train a new model"
            )
        state = previous.state_dict()
        if net.bottom is not None and previous.bottom is None:  # going 'full': the bottom starts pretrained
            state |= {f"bottom.{name}": value for name, value in net.bottom.state_dict().items()}
        net.load_state_dict(state)
    seconds = {"features": round(time.time() - start, 1)}
    phase_start = time.time()
    phase1 = fit(net, data, device, config.head_epochs, config.head_lr, False, config, "phase 1 (head)")

    for round_ in range(config.mining_rounds):
        if not add_hard_negatives(net, encoder, data, config, device, round_):
            break
        phase1 = fit(
            net, data, device, config.head_epochs, config.head_lr, False, config, f"phase 1 (+hard {round_ + 1})"
        )

    seconds["phase1_and_mining"] = round(time.time() - phase_start, 1)
    phase_start = time.time()
    phase2 = phase3 = None
    if strategy in ("top", "full"):
        phase1_state = copy.deepcopy(net.state_dict())
        phase2 = fit(net, data, device, config.top_epochs, config.top_lr, True, config, "phase 2 (top)")
        worse = phase2["best_val_recall_at_0.5pct_fpr"] < phase1["best_val_recall_at_0.5pct_fpr"]
        if worse and phase2_guarded(config.strategy, data.info["user_clips"]):
            log.info("phase 2 did not improve validation recall; keeping phase 1")
            net.load_state_dict(phase1_state)
            phase2["kept"] = False
        else:
            phase2["kept"] = True
        seconds["phase2"] = round(time.time() - phase_start, 1)
    if strategy == "full":
        phase_start = time.time()
        phase3 = fit(
            net, data, device, config.full_epochs, config.full_lr, True, config, "phase 3 (full)", train_bottom=True
        )
        phase3["bottom_distance"] = bottom_distance(net, encoder)
        seconds["phase3"] = round(time.time() - phase_start, 1)

    net.eval()
    phase_start = time.time()
    threshold, calibration, rows = calibrate(net, encoder, data.val_sources, config, device)
    seconds["calibration"] = round(time.time() - phase_start, 1)
    encoder_card = json.loads((MODELS_DIR / CARD_FILE).read_text())
    card = {
        "phrase": config.phrase,
        "wakeword_version": __version__,
        "feature_version": FEATURE_VERSION,
        "threshold": threshold,
        "target_fa_per_hour": config.target_fa_per_hour,
        "decision": {"smoothing": config.smoothing},  # the runtime's defaults (Detector); the threshold is on it
        "head": head,
        "strategy": strategy,
        "strategy_requested": config.strategy,
        "device": device,
        "training_seconds": round(time.time() - start, 1),
        "data": data.info,
        "augmentation": "speed 0.85-1.15, pitch +-2 st, reverb (real + simulated rooms), noise 0-20 dB SNR "
        "(real + coloured), telephone/cheap-mic band-limiting, gain -18..+6 dB, clipping; SpecAugment masks on "
        f"{config.spec_augment_p:.0%} of training examples",
        "phase1": {k: v for k, v in phase1.items() if k != "history"},
        "phase2": {k: v for k, v in phase2.items() if k != "history"} if phase2 else None,
        "phase3": {k: v for k, v in phase3.items() if k != "history"} if phase3 else None,
        "phase_seconds": seconds,
        # False: this model runs its own encoder bottom (bottom.onnx), computed apart from other wake words'.
        "bottom_shared": net.bottom is None,
        "validation": calibration,
        "encoder": {
            "name": encoder_card["name"],
            "weights_sha256": encoder_card["weights"]["sha256"],
            "source": encoder_card["source"],
        },
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    card["config"]["negatives"] = [str(p) for p in config.negatives]
    card["config"]["noise"] = [str(p) for p in config.noise]
    card["config"]["rirs"] = [str(p) for p in config.rirs]
    card["config"]["feedback"] = [str(p) for p in config.feedback]
    if config.resume:
        keep_previous(config.out)
    save(net.cpu(), config.out, card, rows)
    return card


def keep_previous(model_dir: Path) -> None:
    """Move a model folder's files into model_dir/previous/ (replacing an older copy there)."""
    import shutil

    backup = model_dir / "previous"
    shutil.rmtree(backup, ignore_errors=True)
    backup.mkdir()
    for path in model_dir.iterdir():
        if path.is_file():
            path.rename(backup / path.name)


def resume_config(model_dir: Path, **overrides) -> TrainConfig:
    """The config a model was trained with, to train it again (e.g. with more takes)."""
    _, card = load_model(model_dir)  # refuses another feature version: never mix two front ends
    if not isinstance(card.get("config"), dict):
        raise WakewordError(
            f"{model_dir}: its card has no training config (written by wakeword "
            f"{card.get('wakeword_version', 'of another version')}); train it again instead of resuming"
        )
    values = dict(card["config"])
    for key in ("out", "clips", "cache_dir"):
        values[key] = Path(values[key]) if values.get(key) not in (None, "None") else None
    for key in ("negatives", "noise", "rirs", "feedback"):
        values[key] = [Path(p) for p in values.get(key, [])]
    known = set(TrainConfig.__dataclass_fields__)
    values = {k: v for k, v in values.items() if k in known}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.update(out=model_dir, resume=True)
    return TrainConfig(**values)


def load_model(model_dir: Path) -> tuple[WakeWordNet, dict]:
    """A trained model and its card; refuses models from another feature version."""
    card_path, ckpt_path = model_dir / CARD, model_dir / CHECKPOINT
    if not card_path.exists() or not ckpt_path.exists():
        raise WakewordError(f"{model_dir}: not a model folder (needs {CARD} and {CHECKPOINT})")
    card = json.loads(card_path.read_text())
    if card.get("feature_version") != FEATURE_VERSION:
        raise WakewordError(
            f"{model_dir}: trained with feature version {card.get('feature_version')}, this wakeword uses "
            f"{FEATURE_VERSION}; retrain it"
        )
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    net = WakeWordNet(load_encoder(), head=checkpoint["head"], own_bottom=checkpoint.get("own_bottom", False))
    net.load_state_dict(checkpoint["state_dict"])
    return net.eval(), card
