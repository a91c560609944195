"""Ingestion speed over ../shared/corpus: civicbot's whole pipeline (read, clean, gate, chunk,
embed, index) against plain pypdf text extraction of the same files, measured in one run.
OCR of scanned pages (Tesseract, when installed) is measured on its own, in pages per second.

    .venv/bin/python bench/ingest.py [--corpus DIR] [--no-ocr]

Prints pages per second for each and their ratio to plain pypdf. The machine is shared:
compare ratios."""

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


class TimedOcr:
    """The OCR reader, timed: seconds spent in Tesseract's part of the ingest (rendering and
    reading the pages without a usable text layer) and the pages it read."""

    def __init__(self, ocr):  # type: ignore[no-untyped-def]
        self.ocr = ocr
        self.pages = 0
        self.seconds = 0.0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.ocr, name)

    def recognise(self, path, numbers, progress=None):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        results = self.ocr.recognise(path, numbers, progress)
        self.seconds += time.perf_counter() - started
        self.pages += sum(r.status in ("ok", "timeout", "failed") for r in results.values())
        return results


def civicbot_reading(files: list[Path]) -> tuple[int, float]:
    """Reading, cleaning, the quality gate and chunking, without embedding (and OCR)."""
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


def civicbot_ingest(files: list[Path], ocr) -> tuple[int, int, dict[str, float]]:  # type: ignore[no-untyped-def]
    from civicbot.corpus import Corpus
    from civicbot.index.embed import make_embedder
    from civicbot.index.store import IndexStore

    embedder = make_embedder()
    embedder.embed(["warm-up"])  # model loading is not ingestion
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Corpus(IndexStore(Path(tmp) / "index"), embedder, ocr=ocr)
        started = time.perf_counter()
        reports = corpus.ingest(files)
        seconds = time.perf_counter() - started
    pages = sum(r.pages for r in reports if r.ok)
    chunks = sum(r.chunks for r in reports if r.ok)
    return pages, chunks, {"total": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--no-ocr", action="store_true", help="ingest without OCR")
    args = parser.parse_args()
    from civicbot.config import OcrConfig
    from civicbot.ingest.ocr import TesseractOcr

    ocr = None if args.no_ocr else TimedOcr(TesseractOcr.from_config(OcrConfig()))
    files = sorted(args.corpus.glob("*.pdf"))
    base_pages, base_s = plain_pypdf(files)
    read_pages, read_s = civicbot_reading(files)
    pages, chunks, t = civicbot_ingest(files, ocr)
    print(f"files: {len(files)}")
    print(f"plain pypdf extraction: {base_pages} pages in {base_s:.1f} s = "
          f"{base_pages / base_s:.1f} pages/s")
    print(f"civicbot reading+chunking (no embedding): {read_pages} pages in {read_s:.1f} s = "
          f"{read_pages / read_s:.1f} pages/s (ratio to plain pypdf "
          f"{(read_pages / read_s) / (base_pages / base_s):.2f})")
    print(f"civicbot ingest (OCR included): {pages} pages, {chunks} passages in "
          f"{t['total']:.1f} s = {pages / t['total']:.1f} pages/s")
    print(f"ratio civicbot/plain pypdf: {(pages / t['total']) / (base_pages / base_s):.2f}")
    if ocr is None:
        print("OCR: not measured (--no-ocr)")
    elif not ocr.available():
        print(f"OCR: not measured ({ocr.problem()})")
    else:
        n, seconds = ocr.pages, max(ocr.seconds, 1e-9)
        print(f"OCR (dpi {ocr.dpi}, {ocr.workers} workers): {n} pages in {seconds:.1f} s = "
              f"{n / seconds:.2f} pages/s (ratio to plain pypdf "
              f"{(n / seconds) / (base_pages / base_s):.4f})")


if __name__ == "__main__":
    main()
