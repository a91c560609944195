"""Question vectors worked out ahead of their question.

Twenty citizens asking at once are twenty embedding-model calls of one short text each; one
call with all twenty costs little more than one (measured in bench/load.py). So the bot hands
a burst of questions to `Service.prepare`, which embeds them in one batch into this memo, and
each question's retrieval then finds its vector here instead of running the model again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

MEMO_SIZE = 1024  # vectors kept (questions and their words); a larger burst embeds again


class VectorMemo:
    """The last `size` texts' vectors, safe to use from many threads."""

    def __init__(self, size: int = MEMO_SIZE):
        self._size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: Sequence[str]) -> np.ndarray | None:
        """The vectors of `texts` (one row each) when every one is remembered, else None."""
        if not texts or len(texts) > self._size:
            return None
        with self._lock:
            rows = [self._vectors.get(t) for t in texts]
            if any(r is None for r in rows):
                return None
            for t in texts:
                self._vectors.move_to_end(t)
        return np.stack(rows)  # type: ignore[arg-type]

    def remember(self, texts: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> None:
        """Embed, in one call, those of `texts` not remembered yet, and keep their vectors."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
            for t in texts:  # wanted again soon: the last to be forgotten
                if t in self._vectors:
                    self._vectors.move_to_end(t)
        missing = missing[-self._size:]
        if not missing:
            return
        vectors = embed(missing)
        with self._lock:
            for text, vector in zip(missing, vectors, strict=True):
                self._vectors[text] = vector
                self._vectors.move_to_end(text)
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
