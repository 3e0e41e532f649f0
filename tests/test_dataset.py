"""Training data assembly: no source straddles train and validation; segments end where phrases end."""

from __future__ import annotations

import numpy as np

from tests.conftest import SR
from wakeword.dataset import (
    ISOLATED_S,
    Source,
    isolated_sources,
    make_segments,
    partial_sources,
    place_end,
    scrambled_sources,
    split_by_group,
    voiced_span,
)
from wakeword.model import SEGMENT_SAMPLES


def fake_sources() -> list[Source]:
    rng = np.random.default_rng(0)
    out = []
    for speaker in range(10):
        for _take in range(5):
            out.append(Source(rng.normal(0, 0.1, SR // 2).astype(np.float32), 1, "tts", f"voice:{speaker}"))
    for text in range(30):
        out.append(Source(rng.normal(0, 0.1, SR).astype(np.float32), 0, "near_miss", f"text:{text}"))
    return out


def test_split_keeps_groups_whole_and_augmented_copies_follow():
    sources = fake_sources()
    train, val = split_by_group(sources, 0.2, seed=0)
    train_groups, val_groups = {s.group for s in train}, {s.group for s in val}
    assert not train_groups & val_groups
    assert len(val_groups & {f"voice:{i}" for i in range(10)}) == 2
    assert len(train) + len(val) == len(sources)
    # Copies are cut per source after the split: every validation example's key derives from a val source.
    segs_val = make_segments(val, {"tts": 3, "near_miss": 2}, {}, seed=1)
    segs_train = make_segments(train, {"tts": 3, "near_miss": 2}, {}, seed=1)
    assert not set(segs_val.keys) & set(segs_train.keys)
    val_audio = {s.audio.tobytes() for s in val}
    for s in train:
        assert s.audio.tobytes() not in val_audio


def test_phrase_ends_inside_the_last_250_ms():
    clip = np.ones(SR // 2, np.float32)
    segs = make_segments([Source(clip, 1, "tts", "g")], {"tts": 50}, {}, seed=0)
    assert segs.audio.shape == (50, SEGMENT_SAMPLES)
    ends = [np.flatnonzero(np.abs(a) > 0.5)[-1] + 1 for a in segs.audio]
    assert min(ends) >= SEGMENT_SAMPLES - 0.25 * SR - 1 and max(ends) <= SEGMENT_SAMPLES


def test_place_end_crops_long_clips_at_the_start():
    clip = np.arange(SEGMENT_SAMPLES + 100, dtype=np.float32)
    out = place_end(clip, SEGMENT_SAMPLES, np.zeros(SEGMENT_SAMPLES, np.float32))
    assert out[-1] == clip[-1] and out[0] == clip[100]


def test_partials_are_negative_and_shorter():
    pos = [Source(np.ones(SR, np.float32), 1, "user", "user:a")]
    (part,) = partial_sources(pos, seed=0)
    assert part.label == 0 and part.kind == "partial" and 0.3 * SR < len(part.audio) < 0.8 * SR
    assert part.group == "user:a"  # goes to the same side of the split as its take


def test_voiced_span_drops_the_silence_around_a_word():
    word = np.sin(np.arange(SR // 2) * 0.3).astype(np.float32)
    padded = np.concatenate([np.zeros(SR // 4, np.float32), word, np.zeros(SR // 3, np.float32)])
    span = voiced_span(padded)
    assert abs(len(span) - len(word)) <= 2 * 320  # to the 20 ms frame
    assert np.abs(span[:320]).max() > 0.5 and np.abs(span[-320:]).max() > 0.5


def test_isolated_negatives_are_short_speech_alone_from_the_same_group():
    rng = np.random.default_rng(0)
    silence = np.zeros(SR // 4, np.float32)
    short = Source(np.concatenate([silence, rng.normal(0, 0.1, SR // 2).astype(np.float32), silence]), 0, "speech", "a")
    long = Source(rng.normal(0, 0.1, 10 * SR).astype(np.float32), 0, "speech", "b")
    out = {s.group: s for s in isolated_sources([short, long], limit=10, seed=0)}
    assert all(s.label == 0 and s.kind == "isolated" for s in out.values())
    assert abs(len(out["a"].audio) - SR // 2) <= 2 * 320  # a short recording: its voiced part, whole
    assert ISOLATED_S[0] * SR <= len(out["b"].audio) <= ISOLATED_S[1] * SR  # a long one: a word-sized cut...
    assert out["b"].audio[0] == 0 and out["b"].audio[-1] == 0  # ...faded in and out, so no click marks it
    again = isolated_sources([short, long], limit=10, seed=0)  # the same cuts on every run (the feature cache)
    assert {s.key: s.audio.tobytes() for s in again} == {s.key: s.audio.tobytes() for s in out.values()}
    assert len(isolated_sources([short, long], limit=1, seed=0)) == 1


def test_scrambled_takes_are_the_same_voice_but_not_the_phrase():
    take = np.linspace(-1, 1, SR).astype(np.float32)
    (reversed_, swapped) = scrambled_sources([Source(take, 1, "user", "user:a", key="a")], seed=0)
    for s in (reversed_, swapped):
        assert s.label == 0 and s.kind == "scrambled" and s.group == "user:a" and len(s.audio) == SR
        assert sorted(s.audio.tolist()) == sorted(take.tolist())  # the same samples...
        assert not np.array_equal(s.audio, take)  # ...in another order
    assert np.array_equal(reversed_.audio, take[::-1])
    cut = int(np.argmin(swapped.audio))  # where the take's start now sits
    assert 0.3 * SR < cut < 0.7 * SR and np.array_equal(swapped.audio[cut:], take[: SR - cut])
    assert reversed_.key != swapped.key


def test_split_and_segments_do_not_depend_on_folder_names_or_on_other_sources():
    """The feature cache hits on a second run only if every source is cut the same way: from another
    folder (group names hold paths), and with one more take in the run."""
    sources = fake_sources()
    renamed = [Source(s.audio, s.label, s.kind, "elsewhere/" + s.group) for s in sources]
    train, _ = split_by_group(sources, 0.2, seed=0)
    train_renamed, _ = split_by_group(renamed, 0.2, seed=0)
    assert [s.key for s in train] == [s.key for s in train_renamed]
    copies = {"tts": 2, "near_miss": 2}
    alone = make_segments(train, copies, {}, seed=0)
    extra = Source(np.ones(SR // 2, np.float32), 1, "tts", "voice:new")
    with_extra = make_segments([extra, *train], copies, {}, seed=0)
    assert set(alone.keys) < set(with_extra.keys)
