"""Enrollment: the user's own takes of the phrase, recorded or imported, checked and trimmed.

    take (any file or the microphone) -> check_take() -> trim -> OUT/<name>.trimmed.wav + OUT/enroll.json

A take is refused, with the reason, when it is silent, too quiet, clipped or too long. Originals are
never changed: recorded takes are kept as recorded, imported files stay where they are, and the
trimmed copies are new files (numbered after whatever OUT already holds, so nothing is overwritten).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wakeword.audio import SAMPLE_RATE, load_audio, to_mono_16k, write_wav
from wakeword.errors import AudioError, WakewordError

log = logging.getLogger(__name__)

FRAME = 320  # 20 ms energy frames
MARGIN_S = 0.15  # silence kept around the speech when trimming
SPEECH_ABOVE_FLOOR_DB = 12.0  # a frame is speech if this far above the take's noise floor (or half-way to the peak)...
SPEECH_BELOW_PEAK_DB = 35.0  # ...and within this of its loudest frame
MIN_PEAK_DBFS = -70.0  # below: nothing but 16-bit noise
MIN_SPEECH_DBFS = -60.0  # quiet but clean takes are fine (training normalises level); below this they are not
MIN_SNR_DB = 8.0  # loudest frame vs noise floor
MIN_SPEECH_S = 0.2
MAX_SPEECH_S = 3.0  # wake phrases are short; longer means two phrases or a sentence
CLIP_LEVEL = 0.999
MAX_CLIPPED_FRACTION = 0.01  # over 1% of samples at full scale: audibly distorted (a peak or two is fine)
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".oga", ".opus", ".aiff", ".aif"}
MANIFEST = "enroll.json"


@dataclass
class TakeCheck:
    ok: bool
    reason: str  # "" when ok
    speech_start_s: float
    speech_end_s: float
    speech_dbfs: float
    noise_floor_dbfs: float

    @property
    def speech_seconds(self) -> float:
        return self.speech_end_s - self.speech_start_s


def frame_dbfs(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME
    if n == 0:
        return np.full(1, -120.0)
    power = np.square(audio[: n * FRAME].reshape(n, FRAME), dtype=np.float64).mean(axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def check_take(audio: np.ndarray) -> TakeCheck:
    """Find the speech in a take and say whether it is usable (reason empty) or why not."""
    levels = frame_dbfs(audio)
    # The floor is the quietest 5% of frames: takes are short and mostly speech, so a median would sit in it.
    floor, peak = float(np.percentile(levels, 5)), float(levels.max())
    above = min(SPEECH_ABOVE_FLOOR_DB, (peak - floor) / 2)
    speech = (levels > floor + above) & (levels > peak - SPEECH_BELOW_PEAK_DB)
    frames = np.flatnonzero(speech)
    start = frames[0] * FRAME / SAMPLE_RATE if len(frames) else 0.0
    end = (frames[-1] + 1) * FRAME / SAMPLE_RATE if len(frames) else 0.0
    speech_db = float(10 * np.log10(np.mean(10 ** (levels[frames] / 10)))) if len(frames) else -120.0
    check = TakeCheck(True, "", float(start), float(end), speech_db, floor)
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if len(audio) else 0.0
    if peak < MIN_PEAK_DBFS or peak - floor < MIN_SNR_DB or check.speech_seconds < MIN_SPEECH_S:
        check.ok, check.reason = False, f"no speech found (loudest {peak:.0f} dBFS, noise floor {floor:.0f} dBFS)"
    elif speech_db < MIN_SPEECH_DBFS:
        check.ok, check.reason = False, f"too quiet (speech at {speech_db:.0f} dBFS; speak up or move closer)"
    elif clipped > MAX_CLIPPED_FRACTION:
        check.ok, check.reason = False, f"clipped ({clipped:.1%} of samples at full scale; turn the gain down)"
    elif check.speech_seconds > MAX_SPEECH_S:
        check.ok, check.reason = False, f"too long ({check.speech_seconds:.1f} s of speech; say the phrase once)"
    return check


def trim(audio: np.ndarray, check: TakeCheck, margin_s: float = MARGIN_S) -> np.ndarray:
    start = max(0, int((check.speech_start_s - margin_s) * SAMPLE_RATE))
    end = min(len(audio), int((check.speech_end_s + margin_s) * SAMPLE_RATE))
    return audio[start:end]


def audio_files(folder: Path) -> list[Path]:
    """Audio files directly in folder, sorted, without the trimmed copies enrollment wrote."""
    if not folder.is_dir():
        raise WakewordError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and ".trimmed" not in p.name)


def next_index(out: Path) -> int:
    taken = [
        int(p.stem.split("_")[1].split(".")[0]) for p in out.glob("take_*.wav") if p.stem.split("_")[1][:3].isdigit()
    ]
    return max(taken, default=0) + 1


@dataclass
class EnrolledTake:
    source: str
    trimmed: str | None
    ok: bool
    reason: str
    speech_seconds: float
    speech_dbfs: float


def save_manifest(out: Path, phrase: str, takes: list[EnrolledTake]) -> None:
    path = out / MANIFEST
    previous = json.loads(path.read_text()).get("takes", []) if path.exists() else []
    path.write_text(json.dumps({"phrase": phrase, "takes": previous + [asdict(t) for t in takes]}, indent=2) + "\n")


def enroll_audio(audio: np.ndarray, source: str, out: Path, stem: str) -> EnrolledTake:
    check = check_take(audio)
    trimmed = None
    if check.ok:
        trimmed_path = out / f"{stem}.trimmed.wav"
        write_wav(trimmed_path, trim(audio, check))
        trimmed = str(trimmed_path)
    return EnrolledTake(
        source, trimmed, check.ok, check.reason, round(check.speech_seconds, 3), round(check.speech_dbfs, 1)
    )


def import_takes(phrase: str, source_dir: Path, out: Path) -> list[EnrolledTake]:
    """--from: check and trim existing recordings (any format/rate); originals are left untouched."""
    files = audio_files(source_dir)
    if not files:
        raise WakewordError(f"{source_dir}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    out.mkdir(parents=True, exist_ok=True)
    takes, index = [], next_index(out)
    for path in files:
        try:
            audio = load_audio(path)
        except AudioError as exc:
            takes.append(EnrolledTake(str(path), None, False, str(exc), 0.0, -120.0))
            continue
        takes.append(enroll_audio(audio, str(path), out, f"take_{index:03d}.{path.stem}"))
        index += 1
    save_manifest(out, phrase, takes)
    return takes


def level_bar(dbfs: float, width: int = 30) -> str:
    filled = int(np.clip((dbfs + 60.0) / 60.0, 0.0, 1.0) * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {dbfs:5.0f} dBFS"


def record_take(seconds: float, device: int | str | None) -> np.ndarray:
    """Record from the microphone at its native rate, showing a live level meter on stderr."""
    from wakeword.microphone import open_input_stream

    chunks: list[np.ndarray] = []
    with open_input_stream(device) as (stream, rate):
        block = int(rate * 0.05)  # 50 ms per meter update; a blocking read of a real stream takes that long
        for _ in range(round(seconds / 0.05)):
            data, _overflowed = stream.read(block)
            chunks.append(data.copy())
            level = 10 * np.log10(max(float(np.mean(np.square(data, dtype=np.float64))), 1e-12))
            print("\r  " + level_bar(level), end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    return to_mono_16k(np.concatenate(chunks), rate, name="microphone")


def record_takes(phrase: str, out: Path, count: int, device: int | str | None, seconds: float) -> list[EnrolledTake]:
    """Prompt for each take; a refused take is explained and asked again (at most 3 tries per take)."""
    from wakeword.microphone import resolve_device

    resolve_device(device)  # no microphone: say so before the first prompt
    out.mkdir(parents=True, exist_ok=True)
    takes, index = [], next_index(out)
    for number in range(1, count + 1):
        for attempt in range(3):
            print(f"Take {number}/{count}: say '{phrase}' once, now ({seconds:.0f} s)", file=sys.stderr)
            audio = record_take(seconds, device)
            stem = f"take_{index:03d}"
            write_wav(out / f"{stem}.wav", audio)  # the original, kept whatever the check says
            take = enroll_audio(audio, str(out / f"{stem}.wav"), out, stem)
            index += 1
            takes.append(take)
            if take.ok:
                print(f"  ok: {take.speech_seconds:.2f} s of speech at {take.speech_dbfs:.0f} dBFS", file=sys.stderr)
                break
            print(f"  refused: {take.reason}" + ("; again" if attempt < 2 else "; skipping"), file=sys.stderr)
    save_manifest(out, phrase, takes)
    return takes
