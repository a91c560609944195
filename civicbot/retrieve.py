"""Hybrid ranking: BM25 and dense similarity, fused by weighted z-scores over the candidates.

Why this fusion (docs/retrieval.md): on Dutch text the small English embedder is much weaker
than language-aware BM25, and reciprocal-rank fusion then drags good lexical rankings down.
Z-scores keep the size of each signal's margin, and a small dense weight lets the embedder
break ties and rescue paraphrases without outvoting exact term matches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from civicbot.index.lexical import analyse
from civicbot.index.store import Snapshot
from civicbot.model import Hit
from civicbot.protocols import Embedder

CANDIDATES = 100


def _z(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


@dataclass
class Retriever:
    snapshot: Snapshot
    embedder: Embedder
    dense_weight: float = 0.2

    def search(self, query: str, k: int = 10, docs: set[str] | None = None) -> list[Hit]:
        """The `k` best passages for `query`, optionally only from the documents `docs`."""
        chunks = self.snapshot.chunks
        if not chunks or not query.strip():
            return []
        lexical = self.snapshot.lexical.scores(query)
        dense = (self.snapshot.dense.scores(self.embedder.embed([query])[0])
                 if self.dense_weight > 0 else np.zeros(len(chunks), np.float32))
        if docs is not None:
            mask = np.array([c.doc in docs for c in chunks])
            lexical = np.where(mask, lexical, -np.inf)
            dense = np.where(mask, dense, -np.inf)
        n = min(CANDIDATES, len(chunks))
        candidates = np.union1d(np.argsort(-lexical)[:n], np.argsort(-dense)[:n])
        candidates = candidates[np.isfinite(lexical[candidates])]
        if len(candidates) == 0:
            return []
        fused = ((1 - self.dense_weight) * _z(lexical[candidates])
                 + self.dense_weight * _z(dense[candidates]))
        order = candidates[np.argsort(-fused)][:k]
        score = dict(zip(candidates.tolist(), fused.tolist(), strict=True))
        titles = self.snapshot.titles
        return [Hit(chunk=chunks[i], title=titles.get(chunks[i].doc, chunks[i].doc),
                    score=score[i], lexical=float(lexical[i]), dense=float(dense[i]))
                for i in order.tolist()]


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
