"""Adapting a model's input to a microphone and room from unlabelled audio (no takes, no training).

A microphone's frequency response and a room's colouring multiply the spectrum, so in log-mel
features they add a fixed amount per mel band: a cheap microphone's thin low end and dull top are a
band-by-band offset. The encoder was pretrained, and every head trained, on speech as broadband
microphones record it. So:

    reference  per-band mean of the features over the louder half of frames of broad speech
               (models/speech_reference.json: tools/make_speech_reference.py, many speakers and devices)
    target     the same statistic over unlabelled audio from the deployment (the daemon's ambient
               snippets, any recording of the room with people talking in it)
    offset     reference - target per band, its mean over bands removed (level is not the channel, and
               training already varies it), limited to +MAX_BOOST_DB / -MAX_CUT_DB

adapt_model() writes the offset into the model's card ("input_adaptation"); the runtime adds it to
every feature frame before the encoder; reset_adaptation() removes it.

Measured (tools/bench_channel.py, docs/channel.md), it does not earn a place in the CLI: on
"computer" through a reverberant room and a 350 Hz-2.8 kHz microphone, FRR at 0.5 FA/h went 63.5 % ->
71.2 % with boosts up to 6 dB (raising the bands the microphone lost raises their noise and
reverberation, not speech) and 63.5 % -> 61.5 % with cuts only (one positive: noise), while false
accepts at the model's threshold rose. So boosts are off by default, and the module stays an API and
a benchmark: a measured negative result, kept so that the next idea (e.g. training-time channel
augmentation from the deployment's audio) is measured against it.

numpy and the runtime only: no torch.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from wakeword.errors import ModelError, WakewordError
from wakeword.frontend import FEATURE_SCALE, N_MELS, log_mel
from wakeword.runtime import ADAPTATION_KEY as KEY

REFERENCE_FILE = "speech_reference.json"
MAX_BOOST_DB = 0.0  # see above: boosting lost bands made things worse
MAX_CUT_DB = 12.0
MIN_FRAMES = 3000  # 30 s of audio, half of it loud: fewer and the band means are mostly who spoke
CARD = "card.json"


def loud_frames(features: np.ndarray) -> np.ndarray:
    """The louder half of a recording's frames (by mean over bands): speech rather than pauses."""
    if len(features) == 0:
        return features
    level = features.mean(axis=1)
    return features[level >= np.median(level)]


def band_means(recordings: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """(32,) mean features over the loud frames of every recording, and how many frames that is."""
    total, count = np.zeros(N_MELS, np.float64), 0
    for audio in recordings:
        frames = loud_frames(log_mel(np.asarray(audio, np.float32)))
        total += frames.sum(axis=0)
        count += len(frames)
    if count == 0:
        raise WakewordError("no audio to adapt to (every recording was shorter than one frame)")
    return (total / count).astype(np.float32), count


def load_reference() -> np.ndarray:
    path = Path(str(importlib.resources.files("wakeword.models"))) / REFERENCE_FILE
    values = np.asarray(json.loads(path.read_text())["band_means"], np.float32)
    if values.shape != (N_MELS,):
        raise ModelError(f"{path}: band_means must hold {N_MELS} numbers")
    return values


def channel_offset(
    target: np.ndarray, reference: np.ndarray, max_boost_db: float = MAX_BOOST_DB, max_cut_db: float = MAX_CUT_DB
) -> np.ndarray:
    """(32,) feature offset that moves the target's band means onto the reference's shape."""
    offset = reference - target
    offset = offset - offset.mean()  # the shape of the response, not the level
    return np.clip(offset, -max_cut_db * FEATURE_SCALE, max_boost_db * FEATURE_SCALE).astype(np.float32)


def adapt_model(
    model_dir: Path,
    recordings: list[np.ndarray],
    sources: list[str],
    max_boost_db: float = MAX_BOOST_DB,
    max_cut_db: float = MAX_CUT_DB,
) -> dict:
    """Measure the deployment's band means on `recordings` and write the offset into the model's card."""
    card_path = Path(model_dir) / CARD
    if not card_path.exists():
        raise ModelError(f"{model_dir}: no {CARD}; is this a model folder made by 'wakeword train'?")
    target, frames = band_means(recordings)
    if frames < MIN_FRAMES:
        raise WakewordError(
            f"only {frames / 100:.0f} s of loud audio to adapt to; give at least {MIN_FRAMES / 100:.0f} s "
            "(a few minutes of the room with people talking is better)"
        )
    offset = channel_offset(target, load_reference(), max_boost_db, max_cut_db)
    card = json.loads(card_path.read_text())
    card[KEY] = {
        "mel_offset": [round(float(v), 5) for v in offset],
        "loud_frames": frames,
        "sources": sources[:20] + ([f"... {len(sources) - 20} more"] if len(sources) > 20 else []),
        "max_boost_db": max_boost_db,
        "max_cut_db": max_cut_db,
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card[KEY]


def reset_adaptation(model_dir: Path) -> bool:
    """Remove the offset from the card; whether there was one."""
    card_path = Path(model_dir) / CARD
    if not card_path.exists():
        raise ModelError(f"{model_dir}: no {CARD}; is this a model folder made by 'wakeword train'?")
    card = json.loads(card_path.read_text())
    had = card.pop(KEY, None) is not None
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return had
