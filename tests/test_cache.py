"""The feature cache: keys follow content and settings, writes are atomic, bad entries are recomputed."""

from __future__ import annotations

import numpy as np

from wakeword.cache import ArrayCache, content_key


def test_keys_follow_content_not_names():
    a = np.arange(10, dtype=np.float32)
    assert content_key("x", a) == content_key("x", a.copy())
    assert content_key("x", a) != content_key("x", a + 1)
    assert content_key("x", a) != content_key("x", a.astype(np.float64))
    assert content_key("x", a, {"snr": 5}) != content_key("x", a, {"snr": 6})


def test_get_put_and_compute_once(tmp_path):
    cache = ArrayCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.ones(3)

    key = content_key("k")
    assert cache.get(key) is None
    np.testing.assert_array_equal(cache.get_or_compute(key, compute), np.ones(3))
    np.testing.assert_array_equal(cache.get_or_compute(key, compute), np.ones(3))
    assert len(calls) == 1 and cache.hits == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = ArrayCache(tmp_path)
    key = content_key("k")
    cache.put(key, np.zeros(4))
    path = next(tmp_path.rglob("*.npy"))
    path.write_bytes(b"\x93NUMPY garbage")
    assert cache.get(key) is None
