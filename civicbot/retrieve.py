"""Hybrid ranking: BM25, a dense embedder and, when the index has it, a cross-lingual model,
fused by weighted z-scores over the union of each signal's best candidates.

Why this fusion (docs/retrieval.md): on Dutch text the small English embedder is much weaker
than language-aware BM25, and reciprocal-rank fusion then drags good lexical rankings down.
Z-scores keep the size of each signal's margin. BM25 and the English embedder cannot see that
an English question and a Dutch passage say the same thing, so the cross-lingual model
(USE multilingual) weighs much more for passages in the other language than in the question's
own, and BM25 also scores other-language passages with a word-by-word translation of the
question. Finally a passage next to a strong passage of the same document is pulled up a
little: answers often straddle a passage boundary, and the neighbour carries the context."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from civicbot import lang
from civicbot.config import RetrievalConfig
from civicbot.glossary import Glossary, builtin
from civicbot.index.crosslingual import shared_use, surface_words
from civicbot.index.lexical import analyse
from civicbot.index.store import Snapshot
from civicbot.model import Hit
from civicbot.protocols import Embedder

CANDIDATES = 100  # per signal; the union is fused
TRANSLATION_WEIGHT = 0.5  # a translated match is weaker evidence than the question's own words


def _z(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


def neighbour_boost(scores: np.ndarray, docs: np.ndarray, weight: float) -> np.ndarray:
    """max(f, (1 - weight) f + weight max(f[prev], f[next])) where prev and next are the
    adjacent passages of the same document; -inf (not a candidate) stays -inf and never
    lifts a neighbour."""
    if weight <= 0 or len(scores) < 2:
        return scores
    same_doc = docs[1:] == docs[:-1]
    nxt = np.full(len(scores), -np.inf)
    prv = np.full(len(scores), -np.inf)
    nxt[:-1] = np.where(same_doc, scores[1:], -np.inf)
    prv[1:] = np.where(same_doc, scores[:-1], -np.inf)
    best = np.maximum(nxt, prv)
    lifted = np.where(np.isfinite(best), (1 - weight) * scores + weight * best, scores)
    return np.where(np.isfinite(scores), np.maximum(scores, lifted), scores)


@dataclass
class Retriever:
    """Searches one snapshot. The cross-lingual signals are used when `crosslingual` is on
    and the snapshot was built with them; otherwise ranking is BM25 plus the embedder."""

    snapshot: Snapshot
    embedder: Embedder
    dense_weight: float = 0.4
    crosslingual: bool = True
    # Weight of the cross-lingual model for passages in the question's language and in the
    # other language (where BM25 and the English embedder see little).
    crosslingual_weight_same: float = 0.3
    crosslingual_weight_other: float = 1.0
    neighbour_weight: float = 0.3
    use: Embedder | None = None  # the cross-lingual model; None: the shared USE
    glossary: Glossary = field(default_factory=builtin)

    @classmethod
    def from_config(cls, snapshot: Snapshot, embedder: Embedder, cfg: RetrievalConfig,
                    glossary: Glossary | None = None) -> Retriever:
        """A retriever with the weights of the [retrieval] section; `glossary` is the
        built-in one with the deployer's (see `Service.glossary`)."""
        return cls(snapshot, embedder, dense_weight=cfg.dense_weight,
                   crosslingual=cfg.crosslingual,
                   crosslingual_weight_same=cfg.crosslingual_weight_same_language,
                   crosslingual_weight_other=cfg.crosslingual_weight,
                   neighbour_weight=cfg.neighbour_weight,
                   glossary=glossary or builtin())

    def search(self, query: str, k: int = 10, docs: set[str] | None = None) -> list[Hit]:
        """The `k` best passages for `query`, optionally only from the documents `docs`."""
        chunks = self.snapshot.chunks
        if not chunks or not query.strip():
            return []
        n_chunks = len(chunks)
        languages = np.array([c.language for c in chunks])
        lexical = self.snapshot.lexical.scores(query)
        dense = (self.snapshot.dense.scores(self.embedder.embed([query])[0])
                 if self.dense_weight > 0 else np.zeros(n_chunks, np.float32))
        cross = None
        if self.crosslingual and self.snapshot.crosslingual is not None:
            question_language = lang.detect(query)
            lexical, cross = self._crosslingual(query, question_language, lexical, languages)
        if docs is not None:
            mask = np.array([c.doc in docs for c in chunks])
            lexical, dense = (np.where(mask, s, -np.inf) for s in (lexical, dense))
            cross = None if cross is None else np.where(mask, cross, -np.inf)
        signals = [lexical, *([dense] if self.dense_weight > 0 else []),
                   *([cross] if cross is not None else [])]
        n = min(CANDIDATES, n_chunks)
        candidates = np.unique(np.concatenate([np.argsort(-s)[:n] for s in signals]))
        candidates = candidates[np.isfinite(lexical[candidates])]
        if len(candidates) == 0:
            return []
        fused = np.full(n_chunks, -np.inf)
        fused[candidates] = ((1 - self.dense_weight) * _z(lexical[candidates])
                             + self.dense_weight * _z(dense[candidates]))
        if cross is not None:
            weight = np.where(languages[candidates] == question_language,
                              self.crosslingual_weight_same, self.crosslingual_weight_other)
            fused[candidates] += weight * _z(cross[candidates])
        fused = neighbour_boost(fused, np.array([c.doc for c in chunks]), self.neighbour_weight)
        order = candidates[np.argsort(-fused[candidates], kind="stable")][:k]
        titles = self.snapshot.titles
        return [Hit(chunk=chunks[i], title=titles.get(chunks[i].doc, chunks[i].doc),
                    score=float(fused[i]), lexical=float(lexical[i]), dense=float(dense[i]))
                for i in order.tolist()]

    def neighbours(self, hits: list[Hit]) -> list[Hit]:
        """The passages next to `hits` that are not among them, each scored as the hit it
        neighbours: where a sentence is cut by a passage boundary, or a list's items run on
        into the next passage, the answer is there."""
        seen = {(h.chunk.doc, h.chunk.chunk_no) for h in hits}
        titles = self.snapshot.titles
        out = []
        for hit in hits:
            for chunk in self.snapshot.neighbours(hit.chunk):
                if (chunk.doc, chunk.chunk_no) not in seen:
                    seen.add((chunk.doc, chunk.chunk_no))
                    out.append(Hit(chunk, titles.get(chunk.doc, chunk.doc), hit.score))
        return out

    def translations(self, query: str) -> dict[str, str]:
        """The question translated into each other language of the corpus: the glossary's
        terms as the glossary gives them, the other words word by word through the
        cross-lingual model's shared space; empty without that model."""
        index = self.snapshot.crosslingual
        if not self.crosslingual or index is None:
            return {}
        question_language = lang.detect(query)
        out = {}
        for language in index.vocabulary:
            if language == question_language:
                continue
            known, rest = self.glossary.translate(query, question_language, language)
            words = list(dict.fromkeys(surface_words(rest)))
            translated = (index.translate((self.use or shared_use()).embed(words), language)
                          if words else [])
            if known or translated:
                out[language] = " ".join(known + translated)
        return out

    def _crosslingual(self, query: str, question_language: str, lexical: np.ndarray,
                      languages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BM25 with other-language passages also scored on the question translated word by
        word into their language, and the cross-lingual model's passage scores."""
        index = self.snapshot.crosslingual
        assert index is not None
        for language, translated in self.translations(query).items():
            glossed = TRANSLATION_WEIGHT * self.snapshot.lexical.scores(translated)
            lexical = np.where(languages == language, np.maximum(lexical, glossed), lexical)
        query_vector = (self.use or shared_use()).embed([query])[0]
        return lexical, index.passage_scores(query_vector)


def coverage(question: str, hit: Hit, snapshot: Snapshot) -> float:
    """How much of the question a passage covers: the idf-weighted share of the question's
    terms (analysed in the passage's language) that occur in the passage. Rare terms weigh
    most, and terms the corpus has never seen count fully against it, so a question about
    something the documents don't mention scores low however well its common words match."""
    language = hit.chunk.language
    terms = list(dict.fromkeys(analyse(question, language)))
    if not terms:
        return 0.0
    weights = snapshot.lexical.idf(terms)
    have = set(analyse(f"{hit.chunk.heading}\n{hit.chunk.text}", language))
    total = sum(weights)
    if not total:
        return 0.0
    return sum(w for t, w in zip(terms, weights, strict=True) if t in have) / total
