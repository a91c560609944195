"""Small honest implementations of civicbot's protocols for fast unit tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from civicbot.config import RetrievalConfig
from civicbot.lang import words

# A Corpus built with this indexes without the cross-lingual USE model (fast unit tests).
NO_CROSSLINGUAL = RetrievalConfig(crosslingual=False)


class HashingEmbedder:
    """Bag of words hashed into 64 dimensions: texts sharing words are similar."""

    name = "test:hashing-64"
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dimension] += 1
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


class ScriptedGenerator:
    """Writes a fixed reply in small pieces, the way a streaming model does; records prompts."""

    name = "test:scripted"
    context_size = 2048

    def __init__(self, reply: str):
        self.reply = reply
        self.prompts: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def stream(self, messages, max_tokens=None):  # type: ignore[no-untyped-def]
        self.prompts.append(messages)
        for i in range(0, len(self.reply), 7):
            yield self.reply[i : i + 7]
