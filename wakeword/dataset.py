"""Training data for one wake word, from a few clips: sources -> segments -> augmented features.

    user takes, TTS phrase, near-misses, speech, noise   (Source: audio + label + group)
      -> make_segments()    1.98 s examples, the phrase ending 0-250 ms before the end
      -> featurize()        augmented on the torch device, log-mel, frozen encoder bottom
      -> Features           split activations (fp16) per example, cached on disk by content

Validation never sees a training source: sources are split by group (a speaker, a voice, a text, a
file) before any augmentation, and every augmented copy stays on its source's side.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wakeword.audio import SAMPLE_RATE
from wakeword.cache import ArrayCache, content_key
from wakeword.encoder import SpeechEmbedding
from wakeword.frontend import N_MELS, log_mel
from wakeword.model import SEGMENT_FRAMES, SEGMENT_SAMPLES, SPLIT_POSITIONS

log = logging.getLogger(__name__)

END_JITTER_S = (0.0, 0.25)  # where a phrase ends before the segment's end (when scores should be high)
PARTIAL_RANGE = (0.35, 0.75)  # a "partial" negative keeps this fraction of a positive take
PRECEDING_SPEECH_P = 0.3  # chance that a phrase follows other talk in its segment
PRECEDING_SPEECH_DB = (-25.0, -8.0)


@dataclass
class Source:
    """One recording the examples are cut from."""

    audio: np.ndarray
    label: int  # 1: the wake phrase, 0: anything else
    kind: str  # user | tts | near_miss | partial | scrambled | speech | isolated | noise | hard
    group: str  # what must not straddle train/validation: a speaker, a voice, a text, a file
    key: str = ""  # content hash, part of the feature cache key
    origin: str = ""  # where it came from: a voice id, a file (for reports)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = content_key("source", self.audio, self.label, self.kind)


@dataclass
class Segments:
    audio: np.ndarray  # (n, SEGMENT_SAMPLES) float32
    labels: np.ndarray  # (n,) float32
    weights: np.ndarray  # (n,) float32
    kinds: list[str]
    keys: list[str]  # cache key per example: source key + copy index + placement


@dataclass
class Features:
    acts: torch.Tensor  # (n, 96, 38, 2) float16, split activations of the frozen bottom
    labels: torch.Tensor  # (n,)
    weights: torch.Tensor  # (n,)
    kinds: list[str] = field(default_factory=list)
    # (n, 198, 32) float16: the augmented log-mel the acts were made from, kept only when the bottom
    # itself is trained (the 'full' strategy); None otherwise.
    mels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def concat(parts: Sequence[Features]) -> Features:
        parts = [p for p in parts if len(p)]
        with_mels = all(p.mels is not None for p in parts)
        return Features(
            torch.cat([p.acts for p in parts]),
            torch.cat([p.labels for p in parts]),
            torch.cat([p.weights for p in parts]),
            [k for p in parts for k in p.kinds],
            torch.cat([p.mels for p in parts]) if with_mels and parts else None,
        )


def stable_hash(seed: int, name: str) -> int:
    """A 64-bit number fixed by (seed, name) alone, whatever else is in the run."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def source_rng(seed: int, source: Source) -> np.random.Generator:
    """The random stream of one source's segments.

    Seeded by the source's content key, not drawn from one stream over all sources: a second run
    with one more take (or one source moved across the split) then cuts every other source exactly
    as before, so the feature cache keyed by segment content still hits.
    """
    return np.random.default_rng(stable_hash(seed, source.key))


def split_by_group(sources: Sequence[Source], fraction: float, seed: int) -> tuple[list[Source], list[Source]]:
    """(train, validation): about `fraction` of each kind's groups go to validation, whole groups only.

    Groups are ranked by a hash of their content (their sources' keys; not their names, which hold
    file paths), so the split is the same from any folder, and adding a group (a new take) leaves
    every other group on its side (only the count at the boundary can move one)."""
    train, val = [], []
    for kind in sorted({s.kind for s in sources}):
        members: dict[str, list[str]] = {}
        for s in sources:
            if s.kind == kind:
                members.setdefault(s.group, []).append(s.key)
        content = {g: "|".join(sorted(keys)) for g, keys in members.items()}
        groups = sorted(members, key=lambda g: (stable_hash(seed, content[g]), g))
        n_val = round(len(groups) * fraction) if len(groups) > 1 else 0
        held = set(groups[:n_val])
        for s in sources:
            if s.kind == kind:
                (val if s.group in held else train).append(s)
    return train, val


def place_end(clip: np.ndarray, end: int, background: np.ndarray) -> np.ndarray:
    """Put clip into a copy of background so that it ends at sample `end` (cropping its start if needed)."""
    out = background.copy()
    start = end - len(clip)
    if start < 0:
        clip, start = clip[-start:], 0
    out[start:end] += clip
    return out


def phrase_segment(clip: np.ndarray, rng: np.random.Generator, talk: Sequence[Source]) -> np.ndarray:
    """A short clip (phrase, near-miss, partial) ending 0-250 ms before the segment ends; sometimes after talk."""
    end = SEGMENT_SAMPLES - int(rng.uniform(*END_JITTER_S) * SAMPLE_RATE)
    background = np.zeros(SEGMENT_SAMPLES, dtype=np.float32)
    start = end - len(clip)
    if talk and start > SAMPLE_RATE // 4 and rng.random() < PRECEDING_SPEECH_P:
        other = talk[rng.integers(len(talk))].audio
        gap = int(rng.uniform(0.05, 0.3) * SAMPLE_RATE)
        length = min(len(other), max(0, start - gap))
        if length > 0:
            offset = rng.integers(0, len(other) - length + 1)
            gain = 10 ** (rng.uniform(*PRECEDING_SPEECH_DB) / 20) * peak_level(clip) / max(peak_level(other), 1e-6)
            background[start - gap - length : start - gap] = other[offset : offset + length] * gain
    return place_end(clip, end, background)


def peak_level(audio: np.ndarray) -> float:
    return float(np.abs(audio).max()) if len(audio) else 0.0


def crop_segment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random 1.98 s stretch of a longer recording (zero-padded at the start if shorter)."""
    if len(audio) <= SEGMENT_SAMPLES:
        return place_end(audio, SEGMENT_SAMPLES, np.zeros(SEGMENT_SAMPLES, dtype=np.float32))
    start = rng.integers(0, len(audio) - SEGMENT_SAMPLES + 1)
    return audio[start : start + SEGMENT_SAMPLES].astype(np.float32)


def make_segments(sources: Sequence[Source], copies: dict[str, int], weights: dict[str, float], seed: int) -> Segments:
    """Cut `copies[kind]` examples from every source. Short kinds are end-aligned, long ones cropped."""
    talk = [s for s in sources if s.kind == "speech"]
    audio, labels, wts, kinds, keys = [], [], [], [], []
    for source in sources:
        rng = source_rng(seed, source)
        for copy in range(copies.get(source.kind, 1)):
            if source.kind in ("speech", "noise", "hard") and len(source.audio) > SEGMENT_SAMPLES // 2:
                segment = crop_segment(source.audio, rng)
            else:
                segment = phrase_segment(source.audio, rng, talk)
            audio.append(segment)
            labels.append(source.label)
            wts.append(weights.get(source.kind, 1.0))
            kinds.append(source.kind)
            keys.append(content_key("segment", source.key, copy, segment))
    if not audio:
        empty = np.zeros((0, SEGMENT_SAMPLES), np.float32)
        return Segments(empty, np.zeros(0, np.float32), np.zeros(0, np.float32), [], [])
    return Segments(np.stack(audio), np.array(labels, np.float32), np.array(wts, np.float32), kinds, keys)


def partial_sources(positives: Iterable[Source], seed: int) -> list[Source]:
    """The phrase cut short ("hey no-" for "hey nova"): must not fire before the phrase is complete."""
    out = []
    for s in positives:
        rng = source_rng(seed, s)
        keep = int(len(s.audio) * rng.uniform(*PARTIAL_RANGE))
        out.append(Source(s.audio[:keep], 0, "partial", s.group))
    return out


ISOLATED_S = (0.4, 1.4)  # length of an isolated negative cut from a longer recording
FADE_SAMPLES = 160  # 10 ms: a cut mid-word must not click, or the click is what the model learns


def voiced_span(audio: np.ndarray, frame: int = 320, floor_db: float = -35.0) -> np.ndarray:
    """The audio from its first to its last frame within floor_db of its loudest 20 ms frame."""
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = (audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (floor_db / 10))
    return audio[loud[0] * frame : (loud[-1] + 1) * frame] if len(loud) else audio


def isolated_sources(speech: Sequence[Source], limit: int, seed: int) -> list[Source]:
    """Other speech said alone, framed like the phrase: a short recording as it is, or a 0.4-1.4 s cut.

    Negative speech otherwise reaches training only as crops of running talk (as_streams), so the only
    real voice ever heard alone between silences is the user's takes, and a model learns "a real voice
    saying one word" as the phrase: the development models scored isolated Speech Commands words
    0.97-0.996. These give it the same framing without the phrase. Off by default
    (TrainConfig.isolated_negatives): the development benchmark showed no gain beyond its spread.
    """
    if limit <= 0:
        return []
    picked = sorted(speech, key=lambda s: stable_hash(seed, "isolated:" + s.key))[:limit]
    out = []
    for s in picked:
        rng = source_rng(seed, s)
        audio = voiced_span(s.audio)
        if len(audio) > ISOLATED_S[1] * SAMPLE_RATE:
            length = int(rng.uniform(*ISOLATED_S) * SAMPLE_RATE)
            start = int(rng.integers(0, len(audio) - length + 1))
            audio = audio[start : start + length].copy()
            ramp = np.linspace(0.0, 1.0, FADE_SAMPLES, dtype=np.float32)
            audio[:FADE_SAMPLES] *= ramp
            audio[-FADE_SAMPLES:] *= ramp[::-1]
        out.append(Source(audio.astype(np.float32), 0, "isolated", s.group, key=f"isolated:{s.key}"))
    return out


def scrambled_sources(takes: Iterable[Source], seed: int) -> list[Source]:
    """The user's takes played backwards and with their halves swapped: the user's voice, microphone
    and room, but not the phrase.

    With only a few real takes, the cheapest way for a model to tell them from synthetic negatives is
    the speaker or the channel, and then it fires on anything the user says. Measured on the
    development benchmark ("computer", K = 5): before these, the speaker's other wake word ("athena")
    made 93 of the 100 highest-scoring negatives.
    """
    out = []
    for s in takes:
        rng = source_rng(seed, s)
        cut = int(len(s.audio) * rng.uniform(0.35, 0.65))
        out.append(Source(s.audio[::-1].copy(), 0, "scrambled", s.group, key=f"reversed:{s.key}"))
        swapped = np.concatenate([s.audio[cut:], s.audio[:cut]])
        out.append(Source(swapped, 0, "scrambled", s.group, key=f"swapped:{s.key}"))
    return out


@torch.no_grad()
def featurize(
    segments: Segments,
    encoder: SpeechEmbedding,
    augment,  # wakeword.augment.Augmenter | None (imported lazily: torchaudio stays behind augment.py)
    cache: ArrayCache | None,
    device: str = "cpu",
    batch_size: int = 128,
    augment_tag: str = "",
    progress: str | None = None,
    spec_augment_p: float = 0.0,
    seed: int = 0,
    keep_mels: bool = False,
) -> Features:
    """Augment, log-mel (SpecAugment-masked for a spec_augment_p share) and run the frozen bottom on
    every segment; cached per example key.

    keep_mels: also return (and cache, keyed like the acts) the log-mel each example's acts were made
    from, for training the bottom itself. An example whose acts are cached but whose log-mel is not is
    computed again, both together, so that the two always come from the same augmentation draw."""
    n = len(segments.labels)
    acts = torch.zeros((n, 96, SPLIT_POSITIONS, 2), dtype=torch.float16)
    mels = torch.zeros((n, SEGMENT_FRAMES, N_MELS), dtype=torch.float16) if keep_mels else None
    keys = [content_key("acts", k, augment_tag, spec_augment_p) for k in segments.keys]
    mel_keys = [content_key("mels", k, augment_tag, spec_augment_p) for k in segments.keys]
    generator = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache else None
        mel_hit = cache.get(mel_keys[i]) if cache and keep_mels and hit is not None else None
        if hit is None or (keep_mels and mel_hit is None):
            todo.append(i)
        else:
            acts[i] = torch.from_numpy(hit)
            if mels is not None:
                mels[i] = torch.from_numpy(mel_hit)
    encoder = encoder.to(device).eval()
    batches = range(0, len(todo), batch_size)
    if progress and todo:
        from tqdm import tqdm

        batches = tqdm(batches, desc=progress, unit="batch", leave=False)
    for b in batches:
        idx = todo[b : b + batch_size]
        audio = torch.from_numpy(segments.audio[idx]).to(device)
        if augment is not None:
            audio = augment(audio)
        feats = torch.from_numpy(np.stack([log_mel(a) for a in audio.cpu().numpy()])).to(device)
        masked = torch.as_tensor(np.flatnonzero(rng.random(len(idx)) < spec_augment_p), device=device)
        if len(masked):
            from wakeword.augment import spec_augment

            feats[masked] = spec_augment(feats[masked], generator)
        out = encoder.forward_bottom(feats).to(torch.float16).cpu()
        acts[idx] = out
        if mels is not None:
            mels[idx] = feats.to(torch.float16).cpu()
        if cache:
            for j, i in enumerate(idx):
                cache.put(keys[i], out[j].numpy())
                if mels is not None:
                    cache.put(mel_keys[i], mels[i].numpy())
    labels, weights = torch.from_numpy(segments.labels), torch.from_numpy(segments.weights)
    return Features(acts, labels, weights, segments.kinds, mels)


def counts(sources: Iterable[Source]) -> dict[str, int]:
    return dict(Counter(s.kind for s in sources))


def read_audio_dirs(dirs: Sequence[str | Path], kind: str, label: int, max_files: int | None = None) -> list[Source]:
    """Every readable audio file under the folders (recursively); unreadable ones are skipped with a warning."""
    from wakeword.audio import load_audio
    from wakeword.enroll import AUDIO_SUFFIXES
    from wakeword.errors import AudioError

    sources = []
    for folder in dirs:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        for path in files[:max_files]:
            try:
                sources.append(Source(load_audio(path), label, kind, f"file:{path}", origin=str(path)))
            except AudioError as exc:
                log.warning("skipping %s", exc)
    return sources
