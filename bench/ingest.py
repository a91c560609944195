"""Ingestion speed over ../shared/corpus: civicbot's whole pipeline (read, clean, gate, chunk,
embed, index) against plain pypdf text extraction of the same files, measured in one run.

    .venv/bin/python bench/ingest.py [--corpus DIR]

Prints pages per second for both and their ratio. The machine is shared: compare ratios."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plain_pypdf(files: list[Path]) -> tuple[int, float]:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)

    pages = 0
    started = time.perf_counter()
    for f in files:
        try:
            for page in PdfReader(f).pages:
                page.extract_text()
                pages += 1
        except Exception:  # the corrupt fixture: plain pypdf just fails on it
            continue
    return pages, time.perf_counter() - started


def civicbot_reading(files: list[Path]) -> tuple[int, float]:
    """Reading, cleaning, the quality gate and chunking, without embedding."""
    from civicbot.errors import DocumentError
    from civicbot.ingest import chunk_document, read_document

    pages = 0
    started = time.perf_counter()
    for f in files:
        try:
            doc = read_document(f)
        except DocumentError:
            continue
        chunk_document(doc)
        pages += doc.page_count
    return pages, time.perf_counter() - started


def civicbot_ingest(files: list[Path]) -> tuple[int, int, dict[str, float]]:
    from civicbot.corpus import Corpus
    from civicbot.index.embed import SentenceTransformerEmbedder
    from civicbot.index.store import IndexStore

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm-up"])  # model loading is not ingestion
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Corpus(IndexStore(Path(tmp) / "index"), embedder)
        started = time.perf_counter()
        reports = corpus.ingest(files)
        seconds = time.perf_counter() - started
    pages = sum(r.pages for r in reports if r.ok)
    chunks = sum(r.chunks for r in reports if r.ok)
    return pages, chunks, {"total": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    files = sorted(args.corpus.glob("*.pdf"))
    base_pages, base_s = plain_pypdf(files)
    read_pages, read_s = civicbot_reading(files)
    pages, chunks, t = civicbot_ingest(files)
    print(f"files: {len(files)}")
    print(f"plain pypdf extraction: {base_pages} pages in {base_s:.1f} s = "
          f"{base_pages / base_s:.1f} pages/s")
    print(f"civicbot reading+chunking (no embedding): {read_pages} pages in {read_s:.1f} s = "
          f"{read_pages / read_s:.1f} pages/s (ratio to plain pypdf "
          f"{(read_pages / read_s) / (base_pages / base_s):.2f})")
    print(f"civicbot ingest:        {pages} pages, {chunks} passages in {t['total']:.1f} s = "
          f"{pages / t['total']:.1f} pages/s")
    print(f"ratio civicbot/plain pypdf: {(pages / t['total']) / (base_pages / base_s):.2f}")


if __name__ == "__main__":
    main()
