"""A content-addressed array cache on disk: synthesis and features are computed once per content.

    key = content_key(what, audio bytes, settings, FEATURE_VERSION, ...)  ->  <root>/<ab>/<abcdef...>.npy

Keys hash the content and every setting that changes the result (and the feature version), never
file names, so a second training run with one more clip only computes what is new, and a cache
written by another feature version is never read (its keys differ).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wakeword import FEATURE_VERSION

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    base = (
        os.environ.get("WAKEWORD_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wakeword"
    )
    return Path(base)


def content_key(*parts: object) -> str:
    """SHA-256 over the parts: arrays by dtype, shape and bytes; everything else by repr."""
    digest = hashlib.sha256(f"feature-version={FEATURE_VERSION}".encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(repr(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class ArrayCache:
    """get/put numpy arrays by key. Writes are atomic (temp file + rename), so a killed run leaves no half file."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self.hits = self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError):  # truncated or foreign file: recompute rather than fail
            log.warning("cache entry %s unreadable, recomputing", path)
            self.misses += 1
            return None
        self.hits += 1
        return array

    def put(self, key: str, array: np.ndarray) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        array = self.get(key)
        if array is None:
            array = compute()
            self.put(key, array)
        return array
