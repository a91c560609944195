"""The sentence-transformers adapter: the only module that imports it."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from civicbot.errors import ModelError
from civicbot.index.memo import VectorMemo

DEFAULT_EMBEDDING = "packaged:all-MiniLM-L6-v2"


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or folder; loaded lazily and once."""

    def __init__(self, model: str = "", batch_size: int = 32):
        self.name = model or DEFAULT_EMBEDDING
        self._batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._memo = VectorMemo()

    def _location(self) -> str:
        if self.name == DEFAULT_EMBEDDING:
            from civicbot.models import default_embedding_path

            return default_embedding_path()
        return self.name

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                # Weights must come with a package or a folder: never from a hub at run time.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer

                location = self._location()
                try:
                    self._model = SentenceTransformer(location, device="cpu")
                except Exception as exc:
                    raise ModelError(
                        f"cannot load the embedding model {location!r} ({exc}); set "
                        "[embedding] model to a sentence-transformers folder on this machine"
                    ) from exc
        return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        getter = (getattr(model, "get_embedding_dimension", None)
                  or model.get_sentence_embedding_dimension)
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        remembered = self._memo.get(texts)
        if remembered is not None:
            return remembered
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def remember(self, texts: Sequence[str]) -> None:
        """Embed `texts` in one batch now; `embed` then answers them from memory
        (civicbot/index/memo.py)."""
        self._memo.remember(texts, self.embed)
