"""The content-addressed cache: atomic writes, corruption detection, locking, full disk."""

import errno
import json
import os
import threading
import time

import pytest

from pytest_editeval.data.cache import DEFERRED, Cache, cache_key
from pytest_editeval.errors import CacheWriteError


def test_round_trip_and_key_is_content_addressed(tmp_path):
    cache = Cache(tmp_path)
    key = cache_key({"model": "m", "images": ["a"]})
    assert key == cache_key({"images": ["a"], "model": "m"})  # order of fields does not matter
    assert key != cache_key({"model": "m", "images": ["b"]})
    assert cache.get("verdicts", key) is None
    cache.put("verdicts", key, {"scores": [7.0, 8.0]})
    assert cache.get("verdicts", key) == {"scores": [7.0, 8.0]}
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_text(p.read_text()[:-20]),  # truncated
    lambda p: p.write_text(p.read_text().replace("7.0", "9.0")),  # altered payload: checksum mismatch
    lambda p: p.write_bytes(b"\x00\xff garbage"),
    lambda p: p.write_text("[]"),
])
def test_corrupt_entries_are_detected_and_recomputed(tmp_path, damage):
    cache = Cache(tmp_path)
    key = cache_key({"x": 1})
    cache.put("verdicts", key, {"scores": [7.0, 8.0]})
    damage(cache.path("verdicts", key))
    assert cache.get("verdicts", key) is None and cache.corrupt == 1
    assert cache.get_or_compute("verdicts", key, lambda: {"scores": [1.0]}) == {"scores": [1.0]}
    assert cache.get("verdicts", key) == {"scores": [1.0]}


def test_full_disk_gives_a_clear_error_and_leaves_no_entry(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    key = cache_key({"x": 2})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pytest_editeval.data.cache.os.fsync", no_space)
    with pytest.raises(CacheWriteError, match="No space left on device"):
        cache.put("verdicts", key, {"scores": [5.0]})
    assert not cache.path("verdicts", key).exists() and not list(tmp_path.rglob("*.tmp"))
    # computing still returns the good value; the error is kept for the summary
    assert cache.get_or_compute("verdicts", key, lambda: {"scores": [5.0]}) == {"scores": [5.0]}
    assert cache.write_errors and "--editeval-no-cache" in cache.write_errors[0]


def test_disabled_cache_never_touches_disk(tmp_path):
    cache = Cache(None)
    assert cache.get_or_compute("verdicts", "k", lambda: {"v": 1}) == {"v": 1}
    assert not cache.enabled


def test_refresh_ignores_older_entries_but_trusts_fresh_ones(tmp_path):
    key = cache_key({"x": 3})
    Cache(tmp_path).put("verdicts", key, {"v": "old"})
    refreshing = Cache(tmp_path, fresh_after=time.time() + 0.001)
    time.sleep(0.01)
    assert refreshing.get("verdicts", key) is None
    assert refreshing.get_or_compute("verdicts", key, lambda: {"v": "new"}) == {"v": "new"}
    assert refreshing.get("verdicts", key) == {"v": "new"}  # written during this run: trusted


def test_an_entry_is_computed_once_across_concurrent_callers(tmp_path):
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return {"v": 1}

    key = cache_key({"x": 4})
    results = []
    threads = [threading.Thread(target=lambda: results.append(Cache(tmp_path).get_or_compute("verdicts", key, slow)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"v": 1}] * 4 and len(calls) == 1


def test_non_blocking_claim_defers_while_another_computes(tmp_path):
    key = cache_key({"x": 5})
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(0.5)
        return {"v": 1}

    worker = threading.Thread(target=lambda: Cache(tmp_path).get_or_compute("verdicts", key, slow))
    worker.start()
    started.wait()
    assert Cache(tmp_path).get_or_compute("verdicts", key, lambda: {"v": 2}, blocking=False) is DEFERRED
    assert Cache(tmp_path).get_or_compute("verdicts", key, lambda: {"v": 2}) == {"v": 1}  # waits, then reads
    worker.join()


def test_entries_hold_no_secret_fields(tmp_path):
    cache = Cache(tmp_path)
    cache.put("verdicts", "ab" * 32, {"scores": [1.0]})
    entry = json.loads(cache.path("verdicts", "ab" * 32).read_text())
    assert set(entry) == {"format", "key", "created", "sha256", "payload"}
