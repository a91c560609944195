"""Shared fixtures. The real corpus and benchmarks are read from ../shared (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CIVICBOT_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
# Two small real documents for tests that build their own index.
MOTIE = "nl_tk_kamerstuk_32545-143_motie.pdf"  # 1 page
TOZO = "nl_tk_aanhangsel_handelingen_2020-2021_3235_kamervragen_tozo.pdf"  # 3 pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared material is missing: {SHARED} (it must sit beside the repo)")
    return SHARED
