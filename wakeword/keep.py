"""What the daemon keeps, opt-in (`wakeword listen --keep DIR`): the audio around each detection and a
bounded rolling sample of ambient audio, for `wakeword feedback` and `wakeword train --feedback`.

    DIR/detections/<id>.wav   16 kHz mono int16, from BEFORE_S before the detection to AFTER_S after it
    DIR/detections/<id>.json  id, time, epoch, phrase, score, model, label (null until `wakeword feedback`)
    DIR/ambient/<id>.wav      AMBIENT_S of audio with no detection in or near it, one every --ambient-every s

The total size of DIR never goes above the cap: before each write, room is made by dropping the oldest
ambient snippets first, then the oldest unlabelled detections; labelled detections (the user's own
work) only when nothing else is left. Ids are local times, so names sort oldest first.

Torch-free (numpy and soundfile): it runs inside the daemon, on the worker thread, never in the
PortAudio callback.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from wakeword.audio import SAMPLE_RATE
from wakeword.errors import WakewordError

log = logging.getLogger(__name__)

DETECTIONS, AMBIENT = "detections", "ambient"
BEFORE_S = 2.0  # the model's window (1.98 s) ends at the detection: all of what made it fire
AFTER_S = 0.5  # the end of the phrase, for a listener to judge it
AMBIENT_S = 4.0
# An ambient snippet ends this long before the newest audio, so a detection of a phrase that overlaps
# it (reported up to a window's length after the phrase began) is already known when it is taken.
AMBIENT_GUARD_S = 2.0
DEFAULT_CAP_MB = 200.0
DEFAULT_AMBIENT_EVERY_S = 60.0
LABELS = ("true", "false")  # "true": the phrase was said; "false": a false accept


class KeepError(WakewordError):
    """A keep folder that cannot be used: not writable, or not one the daemon wrote."""


def detection_id(epoch: float, phrase: str = "") -> str:
    """'20261122-143012-345-hey_nova': local time to the millisecond (sorts oldest first), then the phrase."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(epoch)) + f"-{int(epoch * 1000) % 1000:03d}"
    slug = re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
    return f"{stamp}-{slug}" if slug else stamp


def wav_bytes(audio: np.ndarray) -> bytes:
    """16 kHz mono int16 WAV, in memory (its size must be known before room is made for it)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename: a reader (or a killed daemon) never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def folder_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile (a temp file renamed)
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class AudioRing:
    """The newest `seconds` of 16 kHz audio, addressed by timeline index (0 = the first sample heard)."""

    def __init__(self, seconds: float) -> None:
        self.buffer = np.zeros(round(seconds * SAMPLE_RATE), np.float32)
        self.end = 0  # timeline index one past the newest sample

    @property
    def start(self) -> int:
        """Timeline index of the oldest sample still held."""
        return max(0, self.end - len(self.buffer))

    def append(self, audio: np.ndarray) -> None:
        audio = np.asarray(audio, np.float32)
        size = len(self.buffer)
        tail = audio[-size:]  # a block longer than the ring leaves only its newest samples
        first = (self.end + len(audio) - len(tail)) % size
        n = min(len(tail), size - first)
        self.buffer[first : first + n] = tail[:n]
        self.buffer[: len(tail) - n] = tail[n:]
        self.end += len(audio)

    def span(self, start: int, stop: int) -> tuple[np.ndarray, int]:
        """Samples [start, stop) of the timeline, clipped to what is held; and the index they start at."""
        start, stop = max(start, self.start), min(stop, self.end)
        if stop <= start:
            return np.zeros(0, np.float32), start
        size = len(self.buffer)
        index = np.arange(start, stop) % size
        return self.buffer[index].copy(), start


class KeepFolder:
    """The files of one keep folder, and the cap on their total size."""

    def __init__(self, root: Path, cap_bytes: int) -> None:
        self.root = Path(root)
        self.cap_bytes = int(cap_bytes)
        self.detections = self.root / DETECTIONS
        self.ambient = self.root / AMBIENT

    def create(self) -> None:
        """Make the folders and check they are writable (KeepError, at start, not on the first detection)."""
        try:
            for folder in (self.detections, self.ambient):
                folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.root / ".write-test", b"")
            (self.root / ".write-test").unlink()
        except OSError as exc:
            raise KeepError(f"--keep {self.root}: cannot write there ({exc.strerror or exc})") from None

    def write_detection(self, record: dict[str, Any], audio: np.ndarray) -> bool:
        """<id>.wav then <id>.json (a json never names audio that is not there yet); False if not written."""
        wav = wav_bytes(audio)
        meta = (json.dumps(record, indent=1) + "\n").encode()
        if not self.make_room(len(wav) + len(meta)):
            return False
        write_atomic(self.detections / f"{record['id']}.wav", wav)
        write_atomic(self.detections / f"{record['id']}.json", meta)
        return True

    def write_ambient(self, name: str, audio: np.ndarray) -> bool:
        wav = wav_bytes(audio)
        if not self.make_room(len(wav), evict_detections=False):  # a new snippet is worth less than any detection
            return False
        write_atomic(self.ambient / f"{name}.wav", wav)
        return True

    def free_id(self, wanted: str) -> str:
        """`wanted`, or wanted-2, -3, ... if a detection of that id is already there."""
        name, n = wanted, 1
        while (self.detections / f"{name}.json").exists() or (self.detections / f"{name}.wav").exists():
            n += 1
            name = f"{wanted}-{n}"
        return name

    def make_room(self, incoming: int, evict_detections: bool = True) -> bool:
        """Delete the least valuable files until `incoming` more bytes fit under the cap; False if they cannot.

        Oldest ambient snippets first, then (for a detection, not for a snippet) the oldest unlabelled
        detections, and labelled ones only when nothing else is left.
        """
        if incoming > self.cap_bytes:
            log.warning(
                "--keep: a %d-byte file is larger than the whole cap (%d bytes); not kept", incoming, self.cap_bytes
            )
            return False
        excess = folder_bytes(self.root) + incoming - self.cap_bytes
        if excess <= 0:
            return True
        for path in sorted(self.ambient.glob("*.wav")):  # oldest first: ids are times
            excess -= remove(path)
            if excess <= 0:
                return True
        if not evict_detections:
            return False
        # A wav without its json (a daemon killed between the two writes) goes first: nothing names it.
        detections = sorted(p.stem for p in self.detections.glob("*.wav") if not p.with_suffix(".json").exists())
        detections += sorted(p.stem for p in self.detections.glob("*.json"))
        labelled = []
        for stem in detections:
            record = read_json(self.detections / f"{stem}.json")
            if record is not None and record.get("label") in LABELS:
                labelled.append(stem)
                continue
            excess -= remove(self.detections / f"{stem}.wav") + remove(self.detections / f"{stem}.json")
            if excess <= 0:
                return True
        for stem in labelled:
            log.warning(
                "--keep: cap of %.0f MB reached with only labelled detections left; deleting %s",
                self.cap_bytes / 2**20,
                stem,
            )
            excess -= remove(self.detections / f"{stem}.wav") + remove(self.detections / f"{stem}.json")
            if excess <= 0:
                return True
        log.warning(
            "--keep: %s holds other files over the %.0f MB cap; nothing more kept", self.root, self.cap_bytes / 2**20
        )
        return False


def remove(path: Path) -> int:
    """Delete a file; the bytes it freed (0 if it was not there)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


@dataclass
class Pending:
    """A detection whose audio is written once AFTER_S more has been heard."""

    record: dict[str, Any]
    end: int  # timeline index of the end of the firing step


class Keeper:
    """Fed what the detector hears and what it detected; writes detections and ambient snippets.

    Call `detected()` for each detection, then `hear()` with the block it came from (in that order, as
    the daemon's worker does): the ring buffer holds the newest audio, a detection is written when
    AFTER_S of audio after it has arrived, and an ambient snippet is taken every `ambient_every_s`
    seconds of audio, from a stretch with no detection in or near it.
    """

    def __init__(
        self,
        folder: KeepFolder,
        ambient_every_s: float = DEFAULT_AMBIENT_EVERY_S,
        ambient_s: float = AMBIENT_S,
        before_s: float = BEFORE_S,
        after_s: float = AFTER_S,
    ) -> None:
        self.folder = folder
        self.before, self.after = round(before_s * SAMPLE_RATE), round(after_s * SAMPLE_RATE)
        self.ambient_len = round(ambient_s * SAMPLE_RATE)
        self.guard = round(AMBIENT_GUARD_S * SAMPLE_RATE)
        self.ambient_every = round(ambient_every_s * SAMPLE_RATE)  # 0: no ambient audio
        # The ring must hold a whole detection clip and a whole ambient snippet with its guard, plus the
        # blocks that arrive before a pending clip is complete.
        held = max(self.before + self.after, self.ambient_len + self.guard) / SAMPLE_RATE + 2.0
        self.ring = AudioRing(held)
        self.pending: list[Pending] = []
        self.detection_ends: list[int] = []  # recent detections, for the ambient check
        self.next_ambient = self.ambient_every
        self.last_epoch: float | None = None  # wall clock of the newest sample
        self.kept_detections = self.kept_ambient = self.failed = 0

    def detected(
        self, end: int, epoch: float, phrase: str, score: float, model: str = "", stream_s: float | None = None
    ) -> str:
        """Register a detection whose firing step ends at timeline index `end`; returns the id it is kept as."""
        ids = {p.record["id"] for p in self.pending}
        wanted = detection_id(epoch, phrase)
        name, n = wanted, 1
        while name in ids:
            n += 1
            name = f"{wanted}-{n}"
        name = self.folder.free_id(name)
        record = {
            "id": name,
            "time": datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds"),
            "epoch": round(epoch, 3),
            "phrase": phrase,
            "score": round(float(score), 4),
            "model": model,
            "stream_s": round(end / SAMPLE_RATE if stream_s is None else stream_s, 3),
            "label": None,
        }
        self.pending.append(Pending(record, end))
        self.detection_ends.append(end)
        return name

    def hear(self, audio: np.ndarray, end_epoch: float | None = None) -> None:
        """The next block of 16 kHz audio; `end_epoch` is the wall-clock time of its last sample."""
        self.ring.append(audio)
        self.last_epoch = time.time() if end_epoch is None else end_epoch
        self._write_ready(final=False)
        self._take_ambient()

    def flush(self) -> None:
        """Write the pending detections with what has been heard (the daemon is stopping)."""
        self._write_ready(final=True)

    def _epoch_at(self, index: int) -> float:
        assert self.last_epoch is not None
        return self.last_epoch - (self.ring.end - index) / SAMPLE_RATE

    def _write_ready(self, final: bool) -> None:
        waiting = []
        for p in self.pending:
            if not final and p.end + self.after > self.ring.end:
                waiting.append(p)
                continue
            audio, start = self.ring.span(p.end - self.before, p.end + self.after)
            record = {**p.record, "seconds": round(len(audio) / SAMPLE_RATE, 3)}
            # Where in the clip the firing step ends: training takes the window that ends there.
            record["detection_at_s"] = round((p.end - start) / SAMPLE_RATE, 3)
            if self._write(self.folder.write_detection, record, audio):
                self.kept_detections += 1
        self.pending = waiting

    def _take_ambient(self) -> None:
        if not self.ambient_every or self.ring.end < self.next_ambient:
            return
        stop = self.ring.end - self.guard
        start = stop - self.ambient_len
        if start < self.ring.start:
            return
        self.detection_ends = [e for e in self.detection_ends if e >= self.ring.start]
        if any(start <= e <= self.ring.end for e in self.detection_ends):
            return  # a phrase may be in it: try again with the next block
        audio, _ = self.ring.span(start, stop)
        self.next_ambient = self.ring.end + self.ambient_every
        wanted = name = detection_id(self._epoch_at(stop))
        n = 1
        while (self.folder.ambient / f"{name}.wav").exists():
            n += 1
            name = f"{wanted}-{n}"
        if self._write(self.folder.write_ambient, name, audio):
            self.kept_ambient += 1

    def _write(self, write: Callable[..., bool], *args: Any) -> bool:
        # A full or read-only disk must not stop the daemon: log it and go on listening.
        try:
            return write(*args)
        except (OSError, sf.LibsndfileError) as exc:
            self.failed += 1
            log.error("--keep: cannot write to %s: %s", self.folder.root, exc)
            return False
