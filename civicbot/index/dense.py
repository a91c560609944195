"""The faiss adapter: the only module that imports faiss. Exact inner-product search: at the
size of a civic corpus (thousands to a few hundred thousand passages) an exact flat index is
fast enough on a CPU and needs no training, so results never depend on an approximation."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DenseIndex:
    def __init__(self, index, dimension: int):  # type: ignore[no-untyped-def]
        self._index = index
        self.dimension = dimension

    @classmethod
    def build(cls, vectors: np.ndarray, dimension: int) -> DenseIndex:
        import faiss

        index = faiss.IndexFlatIP(dimension)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, dimension)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of `query` (unit length) to every passage, by passage number."""
        n = self.size
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        sims, ids = self._index.search(np.ascontiguousarray(query.reshape(1, -1)), n)
        out = np.zeros(n, dtype=np.float32)
        out[ids[0]] = sims[0]
        return out

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        import faiss

        index = faiss.read_index(str(path))
        return cls(index, index.d)
