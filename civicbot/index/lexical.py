"""Lexical search: BM25L over stemmed words, Dutch and English (PyStemmer's Snowball).

Why BM25L, no stop-word list, k1=0.9 and b=0.4 (measured on legalqa-nl, docs/retrieval.md):
- BM25L (Lv & Zhai 2011) adds a small bonus δ for each *distinct* question term a passage
  contains, which suits the long natural-language questions citizens ask. bm25s's "bm25l"
  also gives δ to passages *without* the term, which cancels exactly that bonus (0.636 vs
  0.702 nDCG@10), so the formula is implemented here on scipy sparse matrices.
- No stop words: idf already weighs frequent words down, and policy language turns on words
  that stop lists remove ("geen", "niet", "zonder"). Only the words that say who asks ("ik",
  "mijn", "our") are left out of a query (`lang.SPEAKER_WORDS`).
- k1=0.9, b=0.4 are Anserini's defaults, not tuned on the benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from civicbot.errors import IndexUnusable
from civicbot.lang import analyse, analyse_query, without_speaker

K1, B, DELTA = 0.9, 0.4, 0.5


class LexicalIndex:
    """BM25L weights of every (passage, term), one sparse column per term."""

    def __init__(self, weights: sp.csc_matrix, vocab: dict[str, int], df: np.ndarray):
        self._weights = weights
        self._vocab = vocab
        self._df = df
        self.size = weights.shape[0]

    @classmethod
    def build(cls, texts: Sequence[str], languages: Sequence[str]) -> LexicalIndex:
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for row, (text, language) in enumerate(zip(texts, languages, strict=True)):
            for token in analyse(text, language):
                cols.append(vocab.setdefault(token, len(vocab)))
                rows.append(row)
        n = len(texts)
        tf = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                           shape=(n, max(len(vocab), 1)))
        tf.sum_duplicates()
        length = np.asarray(tf.sum(axis=1)).ravel()
        df = np.bincount(tf.indices, minlength=tf.shape[1]).astype(np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        avg = max(float(length.mean()) if n else 1.0, 1e-9)
        norm = np.repeat(1 - B + B * length / avg, np.diff(tf.indptr))
        c = tf.data / norm
        w = (K1 + 1) * (c + DELTA) / (K1 + c + DELTA) * idf[tf.indices]
        weights = sp.csr_matrix((w.astype(np.float32), tf.indices, tf.indptr), shape=tf.shape)
        return cls(weights.tocsc(), vocab, df)

    def scores(self, query: str, language: str) -> np.ndarray:
        """BM25L score of every passage for `query`, written in `language` (each distinct
        term counted once; the words that only say who asks, "ik", "mijn", "our", are not
        searched for)."""
        ids = sorted({self._vocab[t] for t in analyse_query(without_speaker(query, language))
                      if t in self._vocab})
        if not ids or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._weights[:, ids].sum(axis=1), dtype=np.float32).ravel()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "weights.npz", self._weights)
        np.save(folder / "df.npy", self._df)
        (folder / "vocab.json").write_text(json.dumps(self._vocab, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        weights = sp.load_npz(folder / "weights.npz").tocsc()
        vocab = json.loads((folder / "vocab.json").read_text())
        index = cls(weights, vocab, np.load(folder / "df.npy"))
        if index.size != size:
            raise IndexUnusable(
                f"{folder} does not match its passages; run `civicbot ingest --rebuild`")
        return index
