"""`civicbot doctor`'s memory and disk checks must be able to fail. They read the real
machine (/proc/meminfo, the file system's free space), so the tests make the need larger
than what this machine has, with sparse files: a model file and an index generation that
claim more bytes than there is memory or disk, without using either."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from civicbot import doctor_local
from civicbot.index.store import IndexStore
from tests.unit.test_doctor import TEXTS, _by_check, _index, _setup


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.write(b"GGUF")
        f.truncate(size)


def test_a_model_larger_than_the_memory_fails_with_the_fix(tmp_path):
    available = doctor_local._available_memory()
    assert available is not None, "this test runs on Linux (/proc/meminfo)"
    _sparse(tmp_path / "huge.gguf", available + 2**30)
    result = _by_check(_setup(tmp_path, llm={"model_path": "huge.gguf"}), doctor_local.check_memory)
    assert not result.ok
    assert "huge.gguf" in result.what and "available" in result.what
    assert "smaller model" in result.fix and "n_ctx" in result.fix
    # the same check passes for a model that fits
    _sparse(tmp_path / "small.gguf", 10 * 2**20)
    fits = _by_check(_setup(tmp_path, llm={"model_path": "small.gguf"}), doctor_local.check_memory)
    assert fits.ok and "small.gguf" in fits.what


def test_an_index_that_cannot_be_built_again_on_this_disk_fails_with_the_fix(tmp_path):
    _index(tmp_path, TEXTS)
    d = _setup(tmp_path, embedding={"model": "test:hashing-64"})
    assert _by_check(d, doctor_local.check_disk).ok
    # The serving generation grows past the free space: a new one built beside it would
    # not fit (the check needs room for a second copy).
    generation = IndexStore(tmp_path / "index").current_generation()
    assert generation is not None
    free = shutil.disk_usage(tmp_path).free
    _sparse(generation / "padding.bin", free + 2**30)
    try:
        result = _by_check(_setup(tmp_path, embedding={"model": "test:hashing-64"}),
                           doctor_local.check_disk)
    finally:
        os.unlink(generation / "padding.bin")
    assert not result.ok
    assert "free on" in result.what and "needed" in result.what
    assert "free at least" in result.fix and "[index] path" in result.fix
