"""`wakeword feedback DIR`: the detections a daemon kept (`wakeword listen --keep DIR`), and their labels.

A label says what the user heard: "true" (the phrase was said), "false" (a false accept), or null (not
reviewed yet). `wakeword train --resume MODEL --feedback DIR` learns from the labelled ones and from the
ambient snippets (wakeword.train.feedback_sources). Torch-free; the command line lives in wakeword.cli.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wakeword.keep import AMBIENT, DETECTIONS, LABELS, KeepError, read_json, write_atomic

CLEAR = "none"  # --mark ID none: back to unreviewed


class FeedbackError(KeepError):
    """An id that is unknown or whose audio was not kept, or a label that is not one."""


@dataclass
class Kept:
    """One kept detection: its record (<id>.json) and whether its audio (<id>.wav) is there."""

    record: dict[str, Any]
    json_path: Path
    has_audio: bool

    @property
    def id(self) -> str:
        return str(self.record.get("id") or self.json_path.stem)

    @property
    def label(self) -> str | None:
        label = self.record.get("label")
        return label if label in LABELS else None

    @property
    def wav_path(self) -> Path:
        return self.json_path.with_suffix(".wav")

    def as_dict(self) -> dict[str, Any]:
        return {**self.record, "id": self.id, "label": self.label, "audio": self.has_audio}


def check_folder(folder: Path) -> None:
    if not (folder / DETECTIONS).is_dir() and not (folder / AMBIENT).is_dir():
        raise KeepError(
            f"{folder}: not a keep folder (no {DETECTIONS}/ or {AMBIENT}/ in it; "
            "the daemon writes one with 'wakeword listen MODEL --keep DIR')"
        )


def read_detections(folder: Path) -> list[Kept]:
    """Every kept detection, oldest first (ids are times). Unreadable records are skipped."""
    check_folder(folder)
    kept = []
    for path in sorted((folder / DETECTIONS).glob("*.json")):
        record = read_json(path)
        if record is not None:
            kept.append(Kept(record, path, path.with_suffix(".wav").exists()))
    return kept


def ambient_files(folder: Path) -> list[Path]:
    check_folder(folder)
    return sorted((folder / AMBIENT).glob("*.wav"))


def find(detections: list[Kept], ref: str) -> Kept:
    """The detection named `ref`: its id, or the start of exactly one id."""
    exact = [d for d in detections if d.id == ref]
    matches = exact or [d for d in detections if d.id.startswith(ref)]
    if not matches:
        raise FeedbackError(f"no detection {ref!r} in this folder (list them with 'wakeword feedback DIR')")
    if len(matches) > 1:
        raise FeedbackError(f"{ref!r} matches {len(matches)} detections ({matches[0].id}, ...): give more of the id")
    return matches[0]


def check_label(label: str) -> str | None:
    if label == CLEAR:
        return None
    if label not in LABELS:
        raise FeedbackError(f"label {label!r}: use true (the phrase was said), false (it was not) or {CLEAR}")
    return label


def mark(folder: Path, marks: list[tuple[str, str]]) -> list[Kept]:
    """Set the label of each (id, label); every one is checked before any is written.

    A detection whose audio is gone (deleted under the disk cap) cannot teach anything: refused, so a
    user never believes a correction was learnt that was not.
    """
    detections = read_detections(folder)
    changes: dict[str, tuple[Kept, str | None]] = {}
    for ref, label in marks:
        value = check_label(label)
        detection = find(detections, ref)
        if not detection.has_audio:
            raise FeedbackError(
                f"{detection.id}: its audio was not kept (deleted under the --keep-mb cap, or never written), "
                "so there is nothing to learn from; nothing was marked"
            )
        changes[detection.id] = (detection, value)
    for detection, value in changes.values():
        detection.record = {**detection.record, "label": value}
        write_atomic(detection.json_path, (json.dumps(detection.record, indent=1) + "\n").encode())
    return [d for d, _ in changes.values()]


def unlabelled(folder: Path) -> list[Kept]:
    """Detections with audio and no label yet, oldest first."""
    return [d for d in read_detections(folder) if d.label is None and d.has_audio]


def summary(folder: Path) -> dict[str, Any]:
    detections = read_detections(folder)
    ambient = ambient_files(folder)
    return {
        "detections": len(detections),
        "true": sum(d.label == "true" for d in detections),
        "false": sum(d.label == "false" for d in detections),
        "unlabelled": sum(d.label is None for d in detections),
        "without_audio": sum(not d.has_audio for d in detections),
        "ambient_snippets": len(ambient),
    }


def table(detections: list[Kept]) -> str:
    """The listing: one row per detection, newest last (as a log reads)."""
    rows = [("id", "time", "phrase", "score", "label")]
    for d in detections:
        label = d.label or "-"
        if not d.has_audio:
            label += " (no audio)"
        time_text = str(d.record.get("time", ""))[:19].replace("T", " ")
        score = d.record.get("score")
        score_text = f"{score:.3f}" if isinstance(score, (int, float)) else "?"
        rows.append((d.id, time_text, str(d.record.get("phrase", "")), score_text, label))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def load_clip(detection: Kept) -> np.ndarray:
    """The kept audio, 16 kHz mono float32."""
    from wakeword.audio import load_audio

    return load_audio(detection.wav_path)
