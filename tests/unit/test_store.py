"""The index store with a small honest embedder: incremental, atomic, one model."""

from dataclasses import replace

import pytest

import civicbot.corpus as corpus_module
from civicbot.corpus import Corpus
from civicbot.errors import DocumentError, IndexUnusable, ModelMismatch
from civicbot.index.store import IndexStore
from civicbot.retrieve import Retriever
from tests.fakes import NO_CROSSLINGUAL, HashingEmbedder
from tests.unit.test_crosslingual import BilingualEmbedder


def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write(folder, "huur.md", "# Huurtoeslag\n\nDe huurtoeslag is een bijdrage in de huur "
           "voor mensen met een laag inkomen. Je vraagt huurtoeslag aan bij de Belastingdienst.")
    _write(folder, "parking.txt", "Parking permits are issued by the municipality. A resident "
           "permit costs a yearly fee and is valid in one zone of the city.")
    _write(folder, "page.html", "<html><head><title>Woo-verzoek</title><script>x()</script>"
           "</head><body><nav>menu</nav><h1>Woo-verzoek indienen</h1><p>Een Woo-verzoek "
           "dient u in bij het bestuursorgaan dat de informatie heeft. Het besluit volgt "
           "binnen vier weken.</p></body></html>")
    _write(folder, "empty.txt", "   \n\n  ")
    _write(folder, "README.md", "# This folder\n\nPut the documents the bot should know here.")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return folder


def test_ingest_search_skip_replace_remove(tmp_path, docs):
    embedder = HashingEmbedder()
    corpus = Corpus(IndexStore(tmp_path / "index"), embedder, use=BilingualEmbedder())
    reports = {r.name: r for r in corpus.ingest([docs], prune_folders=[docs])}
    assert {n for n, r in reports.items() if r.status == "added"} == {
        "huur.md", "parking.txt", "page.html"}
    assert "README.md" not in reports  # a folder's README explains the folder
    assert reports["empty.txt"].reason == "no-text" and reports["bad.pdf"].reason == "corrupt"
    assert corpus.documents()["page.html"].title == "Woo-verzoek"

    snapshot = IndexStore(tmp_path / "index").load(embedder.name)
    hits = Retriever(snapshot, embedder, use=corpus.use).search("Waar vraag ik huurtoeslag aan?", 2)
    assert hits[0].chunk.doc == "huur.md"
    assert "menu" not in " ".join(c.text for c in snapshot.chunks)  # navigation left out

    embedded = embedder.texts_embedded
    again = corpus.ingest([docs], prune_folders=[docs])
    assert {r.status for r in again if r.ok} == {"unchanged"}
    assert embedder.texts_embedded == embedded

    _write(docs, "parking.txt", "Bike parking is free at the station for 24 hours.")
    (docs / "huur.md").unlink()
    statuses = {r.name: r.status for r in corpus.ingest([docs], prune_folders=[docs])}
    assert statuses["parking.txt"] == "replaced" and statuses["huur.md"] == "removed"
    assert embedder.texts_embedded == embedded + 1  # only the changed document
    assert set(corpus.documents()) == {"parking.txt", "page.html"}

    assert [r.status for r in corpus.remove(["page.html", "nope.pdf"])] == ["rejected", "removed"]
    assert set(corpus.documents()) == {"parking.txt"}


def test_index_refuses_another_embedding_model(tmp_path, docs):
    Corpus(IndexStore(tmp_path / "index"), HashingEmbedder(), NO_CROSSLINGUAL).ingest([docs])

    class Other(HashingEmbedder):
        name = "test:other"

    with pytest.raises(ModelMismatch, match="civicbot ingest --rebuild"):
        IndexStore(tmp_path / "index").load(Other.name)
    reports = Corpus(IndexStore(tmp_path / "index"), Other(), NO_CROSSLINGUAL).ingest(
        [docs], rebuild=True)
    assert IndexStore(tmp_path / "index").load(Other.name).docs.keys() == {
        r.name for r in reports if r.status == "added"}


def test_failed_commit_leaves_the_previous_generation(tmp_path, docs, monkeypatch):
    store = IndexStore(tmp_path / "index")
    embedder = HashingEmbedder()
    Corpus(store, embedder, NO_CROSSLINGUAL).ingest([docs])
    before = (tmp_path / "index" / "CURRENT").read_text()
    _write(docs, "new.md", "Een nieuw document over afvalinzameling en containers.")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("civicbot.index.store.DenseIndex.save", crash)
    with pytest.raises(OSError):
        Corpus(store, embedder, NO_CROSSLINGUAL).ingest([docs])
    assert (tmp_path / "index" / "CURRENT").read_text() == before
    assert "new.md" not in store.load(embedder.name).docs


def test_crosslingual_vectors_are_cached_per_document(tmp_path, docs):
    store = IndexStore(tmp_path / "index")
    use = BilingualEmbedder()
    corpus = Corpus(store, HashingEmbedder(), use=use)
    corpus.ingest([docs], prune_folders=[docs])
    snapshot = store.load(crosslingual_model=use.name)
    assert snapshot.crosslingual is not None and snapshot.crosslingual.model == use.name
    assert snapshot.crosslingual.passages == len(snapshot.chunks)
    assert "huurtoeslag" in snapshot.crosslingual.vocabulary["nl"]
    embedded, calls = use.texts_embedded, use.calls

    assert {r.status for r in corpus.ingest([docs], prune_folders=[docs]) if r.ok} == {
        "unchanged"}
    assert use.calls == calls  # nothing changed: no commit, nothing embedded

    _write(docs, "parking.txt", "Bike parking is free at the station for 24 hours.")
    corpus.ingest([docs], prune_folders=[docs])
    # only the new document's one window: no other document's windows, and no word of the
    # vocabulary again (its vectors come from the previous generation)
    assert use.texts_embedded - embedded == 1
    snapshot = store.load(crosslingual_model=use.name)
    assert snapshot.crosslingual.passages == len(snapshot.chunks)
    hits = Retriever(snapshot, HashingEmbedder(), use=use).search("huur", 1)
    assert hits[0].chunk.doc == "huur.md"


def test_an_index_without_the_crosslingual_model_is_refused_then_upgraded(tmp_path, docs):
    store = IndexStore(tmp_path / "index")
    embedder = HashingEmbedder()
    Corpus(store, embedder, NO_CROSSLINGUAL).ingest([docs])
    assert store.load(embedder.name).crosslingual is None
    use = BilingualEmbedder()
    with pytest.raises(ModelMismatch, match="ingest --rebuild"):
        store.load(embedder.name, crosslingual_model=use.name)

    texts = embedder.texts_embedded
    reports = Corpus(store, embedder, use=use).ingest([docs])
    assert {r.status for r in reports if r.ok} == {"unchanged"}
    assert embedder.texts_embedded == texts  # passages are not embedded again, only windows
    snapshot = store.load(embedder.name, crosslingual_model=use.name)
    assert snapshot.crosslingual is not None
    assert snapshot.crosslingual.passages == len(snapshot.chunks)


def test_an_upgraded_chunker_re_reads_documents_it_needs(tmp_path, docs, monkeypatch):
    """After an upgrade changes the chunker version, adding one document re-reads the others
    from their files instead of failing; a document whose file is gone gets a clear error."""
    store = IndexStore(tmp_path / "index")
    Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL).ingest([docs])
    monkeypatch.setattr("civicbot.index.store.CHUNKER_VERSION", "c-next")
    # the new version also reads titles differently: re-read documents get the new title
    monkeypatch.setattr("civicbot.ingest.reader.guess_title", lambda page, fallback: "Nieuw")
    _write(docs, "new.md", "Een nieuw document over afvalinzameling en containers.")
    corpus = Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL)
    assert [r.status for r in corpus.ingest([docs / "new.md"])] == ["added"]
    assert {"huur.md", "new.md"} <= set(corpus.documents())
    assert IndexStore(tmp_path / "index").load(HashingEmbedder.name).docs["huur.md"].title == (
        "Nieuw")

    monkeypatch.setattr("civicbot.index.store.CHUNKER_VERSION", "c-later")
    (docs / "huur.md").unlink()
    _write(docs, "newer.md", "Nog een document, nu over straatverlichting en lantaarnpalen.")
    with pytest.raises(IndexUnusable, match="huur.md.*--rebuild"):
        corpus.ingest([docs / "newer.md"])
    assert "newer.md" not in IndexStore(tmp_path / "index").load(HashingEmbedder.name).docs


def test_an_upgrade_reaches_the_index_at_the_next_ingest_even_when_nothing_changed(
        tmp_path, docs, monkeypatch, caplog):
    """An upgrade that reads titles differently (issue 19: a long title keeps the act's name)
    reaches the index at the next `civicbot ingest` or start, not only once an editor
    changes something; a document that cannot be read again leaves the index serving."""
    store = IndexStore(tmp_path / "index")
    Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL).ingest([docs])
    serving = store.current_generation()
    monkeypatch.setattr("civicbot.index.store.CHUNKER_VERSION", "c-next")
    monkeypatch.setattr("civicbot.ingest.reader.guess_title", lambda page, fallback: "Nieuw")
    seen: list[str] = []
    corpus = Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL)
    reports = corpus.ingest([docs], progress=lambda name, done, total: seen.append(name))
    assert {r.status for r in reports} == {"unchanged", "rejected"}  # empty.txt, as before
    assert store.current_generation() != serving
    titles = {n: d.title for n, d in store.load(HashingEmbedder.name).docs.items()}
    assert titles["huur.md"] == titles["parking.txt"] == "Nieuw"
    assert "huur.md (read again after an upgrade)" in seen
    # The librarian's report says so, and it stays no change for the audit log.
    by_name = {r.name: r for r in reports}
    assert by_name["huur.md"].reread and by_name["huur.md"].status == "unchanged"
    assert by_name["huur.md"].describe() == "· huur.md: unchanged, read again after an upgrade"
    assert not by_name["empty.txt"].reread
    again = store.current_generation()
    later = corpus.ingest([docs])  # read once: the next ingest that changes nothing commits nothing
    assert store.current_generation() == again
    assert not any(r.reread for r in later)

    monkeypatch.setattr("civicbot.index.store.CHUNKER_VERSION", "c-later")
    (docs / "huur.md").rename(tmp_path / "huur.md")
    with caplog.at_level("WARNING", logger="civicbot.corpus"):
        failed = corpus.ingest([docs / "parking.txt"])
    assert store.current_generation() == again
    assert not any(r.reread for r in failed)  # nothing was read again into the index
    assert "huur.md" in store.load(HashingEmbedder.name).docs
    assert "keeps serving as it was" in caplog.text and "huur.md" in caplog.text


def test_a_changed_passage_size_cuts_the_documents_again(tmp_path):
    """`[retrieval] chunk_words` is part of the cache key: set to another size, the next
    ingest cuts the documents again (it found the passages of the old size in the cache
    before, even with --rebuild), and the default size finds its own cache again."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write(folder, "lang.md", " ".join(f"Zin {i} gaat over de begroting van de gemeente."
                                       for i in range(60)))
    store = IndexStore(tmp_path / "index")
    embedder = HashingEmbedder()
    Corpus(store, embedder, NO_CROSSLINGUAL).ingest([folder])
    default = store.load(embedder.name).docs["lang.md"].chunks

    short = replace(NO_CROSSLINGUAL, chunk_words=60, overlap_words=10)
    reports = Corpus(store, embedder, short).ingest([folder], rebuild=True)
    assert [r.status for r in reports] == ["added"]
    passages = store.load(embedder.name).chunks
    assert len(passages) > default
    assert all(len(c.text.split()) <= 60 for c in passages)

    before = embedder.texts_embedded
    Corpus(store, embedder, NO_CROSSLINGUAL).ingest([folder], rebuild=True)
    assert store.load(embedder.name).docs["lang.md"].chunks == default
    assert embedder.texts_embedded == before  # the default size's passages were cached


def test_a_document_that_fails_to_be_read_again_is_named_and_the_index_kept(tmp_path, docs,
                                                                            monkeypatch):
    """Re-reading after a chunker upgrade goes through the reader's limits like any upload:
    a document that now fails them (a lower size limit, a reader that dies on it) stops the
    change with an error naming it, and the index serving before stays as it was."""
    store = IndexStore(tmp_path / "index")
    Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL).ingest([docs])
    before = set(store.load(HashingEmbedder.name).docs)
    monkeypatch.setattr("civicbot.index.store.CHUNKER_VERSION", "c-next")
    _write(docs, "new.md", "Een nieuw document over afvalinzameling en containers.")
    corpus = Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL)
    real = corpus_module.read_document

    def failing(path, **kw):
        if path.name == "huur.md":
            raise DocumentError("huur.md", "the file is larger than the limit of 1 MB")
        return real(path, **kw)

    monkeypatch.setattr(corpus_module, "read_document", failing)
    with pytest.raises(IndexUnusable, match=r"huur\.md.*larger than the limit.*--rebuild"):
        corpus.ingest([docs / "new.md"])
    assert set(IndexStore(tmp_path / "index").load(HashingEmbedder.name).docs) == before


def test_the_document_list_comes_from_the_manifest_alone(tmp_path, docs):
    store = IndexStore(tmp_path / "index")
    assert store.documents() == {}
    corpus = Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL)
    corpus.ingest([docs])
    listed = corpus.documents()
    assert listed == store.load(HashingEmbedder.name).docs and listed
    gen = store.current_generation()
    assert gen is not None
    for heavy in ("chunks.jsonl", "dense.faiss"):  # not read for the list
        (gen / heavy).unlink()
    assert corpus.documents() == listed
    with pytest.raises(ModelMismatch, match="civicbot ingest --rebuild"):
        store.documents("test:other")  # the same checks as a full load
