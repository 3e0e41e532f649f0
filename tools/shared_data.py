"""Where ../shared/data is and how to pick clips from its manifest (for tools and tests, not the package).

The folder sits beside the checkout (CI has it too). WAKEWORD_SHARED_DATA overrides the location.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("WAKEWORD_SHARED_DATA", ROOT.parent / "shared" / "data"))
MISSING_REASON = f"real-audio set not found at {DATA_DIR} (set WAKEWORD_SHARED_DATA)"


@dataclass(frozen=True)
class Clip:
    path: Path
    source: str
    role: str  # positive | negative | noise | rir
    label: str
    speaker: str
    seconds: float


def available() -> bool:
    return (DATA_DIR / "manifest.csv").exists()


def manifest() -> list[Clip]:
    with open(DATA_DIR / "manifest.csv", newline="") as f:
        return [
            Clip(DATA_DIR / r["path"], r["source"], r["role"], r["label"], r["speaker"], float(r["seconds"]))
            for r in csv.DictReader(f)
        ]


def parity_clips(seed: int = 0) -> list[Clip]:
    """A fixed, varied selection: 60 Speech Commands clips from 60 different speakers, 8 clips of each
    Precise wake word and near-miss folder (several voices and rooms), and every noise file."""
    rng = np.random.default_rng(seed)
    clips = manifest()
    chosen: list[Clip] = []
    sc = [c for c in clips if c.source.startswith("speech_commands")]
    by_speaker: dict[str, list[Clip]] = {}
    for c in sc:
        by_speaker.setdefault(c.speaker, []).append(c)
    speakers = sorted(by_speaker)
    for i in rng.choice(len(speakers), 60, replace=False):
        group = by_speaker[speakers[i]]
        chosen.append(group[rng.integers(len(group))])
    precise = [c for c in clips if c.source.startswith("mycroft") and c.role in ("positive", "negative")]
    folders = sorted({c.path.parent for c in precise})
    for folder in folders:
        group = [c for c in precise if c.path.parent == folder]
        for i in rng.choice(len(group), min(8, len(group)), replace=False):
            chosen.append(group[i])
    chosen += [c for c in clips if c.role == "noise"]
    return chosen


def relative(path: Path) -> str:
    """A data file as the reports name it: its path under DATA_DIR (no machine paths in tracked files)."""
    try:
        return str(Path(path).relative_to(DATA_DIR))
    except ValueError:
        return Path(path).name


def shown_command(script: str, argv: list[str]) -> str:
    """The command line as a report shows it: without --out/--json/--work paths, which are this machine's,
    with a --model folder written as MODEL_DIR and the files after --merge as RUN1/<name>, RUN2/<name>, ..."""
    shown, skip, placeholder, merged = [], False, False, 0
    for arg in argv:
        if merged and not arg.startswith("--"):
            shown.append(f"RUN{merged}/{Path(arg).name}")
            merged += 1
            continue
        merged = 1 if arg == "--merge" else 0
        if placeholder:
            placeholder = False
            shown.append("MODEL_DIR")
            continue
        if arg == "--model":
            placeholder = True
        if skip:
            skip = False
            continue
        if arg in ("--out", "--json", "--work"):
            skip = True
            continue
        if arg.startswith(("--out=", "--json=", "--work=")):
            continue
        if arg.startswith("--model="):
            arg = "--model=MODEL_DIR"
        shown.append(arg)
    return " ".join(["python", script, *shown])


def git_revision() -> str:
    """The checkout's short commit for a report, '+changes' when the tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


@contextmanager
def work_folder(path: str | None, prefix: str) -> Iterator[Path]:
    """A benchmark's scratch folder: `path` if given (kept afterwards, for inspection), else a temporary
    folder removed at the end, whatever happens."""
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
