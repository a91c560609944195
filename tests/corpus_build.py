"""Ingest the shared corpus as `civicbot ingest` does with the default configuration: the index
that the integration tests' `corpus_index` fixture serves. Run as a program, it builds the index
in a folder and pickles the ingest reports beside it, so the test session can build it in a
background process while the tests that do not need it run (tests/conftest.py)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

REPORTS = "reports.pickle"


def build(path: Path, corpus: Path, embedder: object) -> list:
    """Ingest every PDF of `corpus` into a new index at `path`; the ingest reports."""
    from civicbot.config import OcrConfig
    from civicbot.corpus import Corpus
    from civicbot.index.store import IndexStore
    from civicbot.ingest.ocr import TesseractOcr

    # Scanned pages are read by OCR, as with the default configuration (Tesseract is part of
    # the installation; tests/integration/test_ocr_corpus.py fails without it).
    ocr = TesseractOcr.from_config(OcrConfig())
    return Corpus(IndexStore(path), embedder, ocr=ocr).ingest(sorted(corpus.glob("*.pdf")))


def main(folder: str, corpus: str) -> None:
    from civicbot.index.embed import make_embedder

    out = Path(folder)
    reports = build(out / "index", Path(corpus), make_embedder())
    (out / REPORTS).write_bytes(pickle.dumps(reports))


if __name__ == "__main__":
    main(*sys.argv[1:])
