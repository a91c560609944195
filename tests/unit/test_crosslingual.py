"""The cross-lingual side of retrieval, with a toy bilingual embedder instead of USE."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from civicbot.errors import IndexUnusable
from civicbot.index.crosslingual import (
    CrossLingualIndex,
    UseEmbedder,
    build_vocabulary,
    chunk_windows,
    surface_words,
    translate,
    window_starts,
    windows,
)
from civicbot.index.dense import DenseIndex
from civicbot.index.lexical import LexicalIndex
from civicbot.index.store import Snapshot, lexical_text
from civicbot.lang import words
from civicbot.records import Chunk
from civicbot.retrieve import Retriever, centred_by_language, neighbour_boost
from tests.fakes import HashingEmbedder


class BilingualEmbedder(HashingEmbedder):
    """A toy shared vector space: Dutch words are read as their English translation, then
    hashed, so "huur" and "rent" get one vector, as they would (nearly) in USE."""

    name = "test:bilingual"
    dictionary = {"huur": "rent", "huurtoeslag": "rent allowance", "toeslag": "allowance",
                  "inkomen": "income", "laag": "low", "parkeren": "parking",
                  "vergunning": "permit"}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return super().embed([" ".join(self.dictionary.get(w, w) for w in words(t))
                              for t in texts])


def _chunk(doc: str, text: str, language: str, number: int = 0, heading: str = "") -> Chunk:
    return Chunk(doc=doc, chunk_no=number, page_start=1, page_end=1, char_start=0,
                 char_end=len(text), heading=heading, text=text, language=language)


def test_windows_cover_the_text_with_overlap_and_end_at_its_end():
    text = " ".join(f"w{i}" for i in range(50))
    got = windows(text, size=30, stride=15)
    assert [w.split()[0] for w in got] == ["w0", "w15", "w20"]
    assert all(len(w.split()) == 30 for w in got) and got[-1].endswith("w49")
    assert windows("kort stukje tekst") == ["kort stukje tekst"]
    assert windows("") == [""]  # every passage has a window, so every passage has a score


def test_chunk_windows_name_their_chunk():
    chunks = [_chunk("a", " ".join(["x"] * 40), "nl"), _chunk("a", "kort", "nl", 1)]
    texts, owner = chunk_windows(chunks)
    assert len(texts) == 3 and owner.tolist() == [0, 0, 1]


def test_vocabulary_is_per_language_folded_and_frequent_only():
    chunks = [_chunk("a", "Financiële steun, financiele steun in 2024 en 2024", "nl",
                     heading="Steun"),
              _chunk("b", "Financial support and support", "en")]
    vocab = build_vocabulary(chunks)
    assert vocab["nl"] == ["financiele", "steun"]  # "en" occurs once, "in" is short, no digits
    assert vocab["en"] == ["support"]
    assert surface_words("De Wmo-toeslag (2024) is €12") == ["wmo", "toeslag"]


def test_translation_keeps_only_close_words():
    use = BilingualEmbedder()
    vocabulary = ["huur", "vergunning"]
    got = translate(use.embed(["rent", "permit", "banana"]), vocabulary, use.embed(vocabulary))
    assert got == ["huur", "vergunning"]
    assert translate(use.embed(["rent"]), [], np.zeros((0, 64), np.float32)) == []


def test_passage_score_is_its_best_window_and_the_index_round_trips(tmp_path):
    vectors = np.eye(3, dtype=np.float32)
    index = CrossLingualIndex("m", vectors, np.array([0, 0, 1]), {"nl": ["huur"]},
                              {"nl": np.ones((1, 3), np.float32)})
    assert index.passage_scores(np.array([0, 1, 0], np.float32)).tolist() == [1.0, 0.0]
    index.save(tmp_path / "x")
    loaded = CrossLingualIndex.load(tmp_path / "x", passages=2)
    assert loaded.model == "m" and loaded.vocabulary == {"nl": ["huur"]}
    assert np.array_equal(loaded.window_vectors, vectors)
    with pytest.raises(IndexUnusable, match="ingest --rebuild"):
        CrossLingualIndex.load(tmp_path / "x", passages=3)


def test_neighbour_boost_lifts_passages_next_to_strong_ones_in_the_same_document():
    scores = np.array([-np.inf, 1.0, 5.0, 0.0])
    got = neighbour_boost(scores, np.array(["a", "a", "a", "b"]), 0.3)
    assert got[0] == -np.inf and got[1] == pytest.approx(0.7 * 1 + 0.3 * 5)
    assert got[2] == 5.0 and got[3] == 0.0  # a stronger passage is not pulled down


def test_keyword_scores_are_centred_on_their_own_language():
    """A Dutch question's BM25 for English passages comes through a half-weight translation,
    so it is low for all of them: pooled, the best English passage scores below the average
    Dutch one; centred per language, it stands above as far as it stands above its own."""
    scores = np.array([10.0, 8.0, 6.0, 3.0, 1.0, 1.0])
    languages = np.array(["nl", "nl", "nl", "en", "en", "en"])
    pooled = (scores - scores.mean()) / scores.std()
    centred = centred_by_language(scores, languages)
    assert pooled[3] < 0 < centred[3]
    # The spread stays the pooled one: within each language the gaps are as before.
    assert centred[0] - centred[2] == pytest.approx(pooled[0] - pooled[2])
    assert centred[3] - centred[4] == pytest.approx(pooled[3] - pooled[4])
    # One language: plain z-scores; no spread: all zero.
    assert centred_by_language(scores, np.array(["nl"] * 6)) == pytest.approx(pooled)
    assert not centred_by_language(np.ones(3), np.array(["nl", "en", "en"])).any()


def _snapshot(chunks: list[Chunk], use: BilingualEmbedder) -> Snapshot:
    dense = HashingEmbedder()
    vectors = dense.embed([c.text for c in chunks])
    lexical = LexicalIndex.build([lexical_text(c.doc, c) for c in chunks],
                                 [c.language for c in chunks])
    return Snapshot(Path("."), dense.name, {}, chunks, DenseIndex.build(vectors, dense.dimension),
                    lexical, "", CrossLingualIndex.build(chunks, use))


CORPUS = [
    _chunk("huur.md", "De huurtoeslag is een bijdrage in de huur voor mensen met een laag "
           "inkomen. Huurtoeslag vraagt u aan bij de Belastingdienst; de huur telt mee.", "nl"),
    _chunk("parkeren.md", "Een vergunning voor parkeren in de binnenstad kost jaarlijks geld. "
           "De vergunning geldt voor een zone.", "nl"),
    _chunk("bins.md", "Waste bins are emptied every week by the city; the schedule is "
           "published online every year.", "en"),
]


def test_an_english_question_finds_a_dutch_passage():
    use = BilingualEmbedder()
    snapshot = _snapshot(CORPUS, use)
    question = "Who can get a rent allowance with a low income?"
    hits = Retriever(snapshot, HashingEmbedder(), use=use).search(question, k=3)
    assert hits[0].chunk.doc == "huur.md"
    assert hits[0].lexical > 0  # BM25 matched the question translated into Dutch
    plain = Retriever(snapshot, HashingEmbedder(), crosslingual=False).search(question, k=3)
    assert next(h for h in plain if h.chunk.doc == "huur.md").lexical == 0
    only = Retriever(snapshot, HashingEmbedder(), use=use).search(question, 3, docs={"bins.md"})
    assert [h.chunk.doc for h in only] == ["bins.md"]


def test_each_window_of_a_passage_is_scored_where_it_starts():
    """The quote chooser's view of the text around a sentence (Retriever.windows): the
    windows' first words as `windows` cuts them, each with its cosine to the question."""
    long_text = " ".join(["huur"] * 20 + ["vergunning"] * 20 + ["parkeren"] * 10)
    assert window_starts(50) == [0, 15, 20] and window_starts(10) == [0]
    assert windows(long_text) == [" ".join(long_text.split()[s:s + 30]) for s in (0, 15, 20)]
    chunks = [_chunk("a.md", "De huur telt mee.", "nl"), _chunk("b.md", long_text, "nl", 1)]
    use = BilingualEmbedder()
    snapshot = _snapshot(chunks, use)
    assert snapshot.crosslingual is not None
    query = use.embed(["rent"])[0]
    assert snapshot.crosslingual.window_scores(0, query).shape == (1,)
    retriever = Retriever(snapshot, HashingEmbedder(), use=use)
    hit = next(h for h in retriever.search("rent", k=2) if h.chunk.doc == "b.md")
    got = retriever.windows("rent", hit)
    assert [w for w, _ in got] == [0, 15, 20]
    cosines = [c for _, c in got]
    assert cosines[0] > cosines[1] > cosines[2]  # "huur" fills the first window, none of the last
    assert np.allclose(cosines, snapshot.crosslingual.window_scores(1, query))
    without = dataclasses.replace(snapshot, crosslingual=None)
    assert Retriever(without, HashingEmbedder(), use=use).windows("rent", hit) == ()


def test_use_embedder_loads_lazily():
    use = UseEmbedder()
    assert use.embed([]).shape == (0, 512) and use._model is None


def test_the_windows_of_every_hit_cost_no_embedding_beyond_the_search():
    class Counting(BilingualEmbedder):
        texts: list[str] = []

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            Counting.texts.extend(texts)
            return super().embed(texts)

    use = Counting()
    retriever = Retriever(_snapshot(CORPUS, use), HashingEmbedder(), use=use)
    question = "Who can get a rent allowance with a low income?"
    hits = retriever.search(question, k=3)
    embedded = len(Counting.texts)
    assert Counting.texts.count(question) == 1
    assert all(retriever.windows(question, h) for h in hits)
    assert len(Counting.texts) == embedded
