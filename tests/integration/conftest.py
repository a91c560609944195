"""Fixtures for integration tests: the real corpus index and one Synapse, each built once per
test session. The Matrix harness (nio, synapse) is imported inside the Matrix fixtures and by
the Matrix test modules only: a missing package fails those tests, it never skips them, and it
does not take the ingest, answer or eval tests down with it."""

import dataclasses
import sys
from pathlib import Path

import pytest

# tests/ is not a package: make its helper modules importable however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclasses.dataclass
class CorpusIndex:
    path: Path
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

            def embed_query(self, texts):
                Counting.texts_embedded += len(texts)
                return real.embed_query(texts)

        return Counting()


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder, loaded once for the whole session."""
    from civicbot.index.embed import make_embedder

    return make_embedder()


@pytest.fixture(scope="session")
def corpus_index(request, tmp_path_factory, shared, embedder):
    """The shared corpus ingested with the default configuration, once per session: by the
    background process tests/conftest.py starts when collection ends (the tests that need it
    run after the others), or here when there is none."""
    from civicbot.index.store import IndexStore
    from civicbot.retrieve import Retriever
    from tests.conftest import background_corpus

    built = background_corpus(request.config)
    if built is not None:
        path, reports = built
    else:
        from tests.corpus_build import build

        path = tmp_path_factory.mktemp("corpus-index") / "index"
        reports = build(path, shared / "corpus", embedder)
    snapshot = IndexStore(path).load(embedder.name)
    return CorpusIndex(path, embedder, reports, snapshot, Retriever(snapshot, embedder))


# ---- Matrix: one real Synapse for the whole session -------------------------------------


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory):
    """One Synapse (default room version, relaxed rate limits) for the whole session."""
    import matrix_harness  # noqa: F401 - nio and synapse must be importable, or this fails

    from civicbot.homeserver import Homeserver

    hs = Homeserver(tmp_path_factory.mktemp("synapse"))
    hs.start()
    try:
        yield hs
    finally:
        hs.stop()


@pytest.fixture
def bot_account(homeserver):
    from matrix_harness import new_user

    return new_user(homeserver, "civicbot")


@pytest.fixture
def answerer():
    from matrix_harness import WordLookupAnswerer

    return WordLookupAnswerer()


# ---- a small real index: two short documents of ../shared/corpus -------------------------


@pytest.fixture(scope="session")
def small_workspace(tmp_path_factory, shared, embedder):
    """Two short real documents ingested with the default configuration (the real embedder
    and multilingual model): for tests of the CLI and the answer path that need a real index
    but not the whole corpus. Read-only: tests that change it copy it first."""
    from workspace import SMALL_DOCS, make_workspace

    from civicbot.service import Service

    ws = make_workspace(tmp_path_factory.mktemp("small"),
                        [shared / "corpus" / name for name in SMALL_DOCS])
    service = Service(ws.load(), embedder=embedder)
    reports = service.curator.ingest(list(service.cfg.paths.corpus), by="cli",
                                     prune_folders=list(service.cfg.paths.corpus))
    assert [r.ok for r in reports] == [True, True], [r.describe() for r in reports]
    return ws
