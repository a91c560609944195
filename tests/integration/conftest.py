"""Fixtures for integration tests: the Matrix harness (a session-wide Synapse and friends)."""

import sys
from pathlib import Path

# tests/ is not a package: make its helper modules importable however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ---- the real corpus index, built once per test session ----------------------------------
import dataclasses as _dc  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

import pytest as _pytest  # noqa: E402
from matrix_harness import answerer, bot_account, homeserver  # noqa: E402, F401


@_dc.dataclass
class CorpusIndex:
    path: _Path
    embedder: object
    reports: list
    snapshot: object
    retriever: object

    def counting_embedder(self):
        """The real embedder, counting what it embeds."""
        real = self.embedder

        class Counting:
            name = real.name
            dimension = real.dimension
            texts_embedded = 0

            def embed(self, texts):
                Counting.texts_embedded += len(texts)
                return real.embed(texts)

        return Counting()


@_pytest.fixture(scope="session")
def embedder():
    """The real default embedder, loaded once for the whole session."""
    from civicbot.index.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@_pytest.fixture(scope="session")
def corpus_index(tmp_path_factory, shared, embedder):
    from civicbot.config import OcrConfig
    from civicbot.corpus import Corpus
    from civicbot.index.store import IndexStore
    from civicbot.ingest.ocr import TesseractOcr
    from civicbot.retrieve import Retriever

    path = tmp_path_factory.mktemp("corpus-index") / "index"
    store = IndexStore(path)
    # As `civicbot ingest` with the default configuration: scanned pages are read by OCR
    # when Tesseract is installed (tests/integration/test_ocr_corpus.py), left out otherwise.
    ocr = TesseractOcr.from_config(OcrConfig())
    reports = Corpus(store, embedder, ocr=ocr).ingest(sorted((shared / "corpus").glob("*.pdf")))
    snapshot = store.load(embedder.name)
    return CorpusIndex(path, embedder, reports, snapshot, Retriever(snapshot, embedder))
