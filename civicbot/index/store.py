"""The index on disk, and how it changes safely.

Layout (see docs/index-format.md):

    index/
      CURRENT                 name of the generation that serves, replaced atomically
      gen-000042/             one complete, immutable generation
        manifest.json         format, embedding model, documents (DocInfo)
        chunks.jsonl          passages; line i is row i of both indexes
        dense.faiss           faiss IndexFlatIP of the passage vectors
        lexical/              BM25L weights of the analysed passage texts
        crosslingual/         USE window vectors, their passages, vocabulary per language
      docs/<sha256>.json      chunks of one document version (content-addressed cache)
      docs/<sha256>.<model>.npy  their vectors for one embedding model
      docs/<sha256>.<model>.<windowing>.npz  their USE window vectors and window owners
      .lock                   one writer at a time

A change writes a new generation beside the old one and then points CURRENT at it with an
atomic rename, so a crash at any moment leaves the last good generation serving. Per-document
chunks and vectors (and USE window vectors) are cached by content hash: adding, replacing or
removing one document re-embeds only that document. The vocabulary of the cross-lingual word
translation depends on the whole corpus, so it is rebuilt with each generation; its word
vectors are taken from the serving generation where it already has them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from civicbot.errors import IndexUnusable, ModelMismatch
from civicbot.index.crosslingual import (
    WINDOWING,
    CrossLingualIndex,
    build_vocabulary,
)
from civicbot.index.dense import DenseIndex
from civicbot.index.lexical import LexicalIndex
from civicbot.protocols import Embedder
from civicbot.records import Chunk, DocInfo, PageIssue

FORMAT = 1
# Bump when cleaning, chunking or titles change, so cached passages are rebuilt (the next
# ingest reads every document again, `Corpus._refresh`). c3: titles from the subject line,
# past letterheads; c4: a long title keeps the name in brackets it would lose; c5: tables of
# contents are left out.
CHUNKER_VERSION = "c5"
_GEN = re.compile(r"^gen-(\d{6})$")


def passage_text(chunk: Chunk) -> str:
    """What is embedded for a passage: its heading path gives context the text lacks.
    (Unchanged since the first index, so cached vectors stay valid.)"""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


def lexical_text(title: str, chunk: Chunk) -> str:
    """What BM25 indexes for a passage: the document title too, because questions often name
    the subject of the document ("the Tozo scheme") rather than words of the passage."""
    return f"{title}\n{chunk.heading}\n{chunk.text}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _model_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:12]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _info_from_json(d: dict[str, Any]) -> DocInfo:
    d = dict(d)
    d["skipped"] = tuple(PageIssue(**s) for s in d.get("skipped", ()))
    d["ocr_pages"] = tuple(d.get("ocr_pages", ()))
    return DocInfo(**d)


def cache_key(sha256: str, ocr_variant: str = "", passages: str = "") -> str:
    """The key of a document version's cached passages and vectors: its content, for a
    document with OCR'd pages also the OCR settings (docs/ocr.md), because the same file read
    with or without Tesseract (or at another dpi) gives other passages, and `passages`, the
    passage size when it is not the default (civicbot/corpus.py, `_passage_key`)."""
    return "-".join(part for part in (sha256, ocr_variant, passages) if part)


@dataclass
class Snapshot:
    """One loaded generation: immutable, safe to search from many threads."""

    path: Path
    embedding_model: str
    docs: dict[str, DocInfo]
    chunks: list[Chunk]
    dense: DenseIndex
    lexical: LexicalIndex
    created: str
    crosslingual: CrossLingualIndex | None = None

    @property
    def titles(self) -> dict[str, str]:
        return {name: info.title for name, info in self.docs.items()}

    @functools.cached_property
    def _positions(self) -> dict[tuple[str, int], int]:
        return {(c.doc, c.chunk_no): i for i, c in enumerate(self.chunks)}

    def position(self, chunk: Chunk) -> int | None:
        """The passage number of `chunk` in this snapshot (None if it is not in it)."""
        return self._positions.get((chunk.doc, chunk.chunk_no))

    def neighbours(self, chunk: Chunk) -> list[Chunk]:
        """The passages just before and just after `chunk` in its document."""
        return [self.chunks[i] for i in (self._positions.get((chunk.doc, chunk.chunk_no + d))
                                         for d in (-1, 1)) if i is not None]


class IndexStore:
    """Reads and writes the index folder. Readers take snapshots; one writer at a time."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.docs_dir = self.root / "docs"

    # ---- reading ---------------------------------------------------------------------------

    def current_generation(self) -> Path | None:
        pointer = self.root / "CURRENT"
        if not pointer.exists():
            return None
        name = pointer.read_text().strip()
        path = self.root / name
        if not _GEN.match(name) or not (path / "manifest.json").exists():
            raise IndexUnusable(
                f"the index at {self.root} points at a missing generation {name!r}; "
                "run `civicbot ingest --rebuild` to build it again"
            )
        return path

    def exists(self) -> bool:
        return (self.root / "CURRENT").exists()

    def load(self, embedding_model: str | None = None,
             crosslingual_model: str | None = None) -> Snapshot:
        """The serving generation. With `embedding_model`, refuse an index built with another;
        with `crosslingual_model`, refuse one built without that cross-lingual model."""
        gen = self.current_generation()
        if gen is None:
            return self.empty(embedding_model or "")
        manifest = self._manifest(gen, embedding_model, crosslingual_model)
        docs = {d["name"]: _info_from_json(d) for d in manifest["docs"]}
        with (gen / "chunks.jsonl").open(encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh]
        return Snapshot(
            path=gen,
            embedding_model=manifest["embedding_model"],
            docs=docs,
            chunks=chunks,
            dense=DenseIndex.load(gen / "dense.faiss"),
            lexical=LexicalIndex.load(gen / "lexical", len(chunks)),
            created=manifest["created"],
            crosslingual=(CrossLingualIndex.load(gen / "crosslingual", len(chunks))
                          if manifest.get("crosslingual_model") else None),
        )

    def documents(self, embedding_model: str | None = None) -> dict[str, DocInfo]:
        """The documents of the serving generation, read from its manifest alone (no
        passages, no vectors), with the same checks as `load`."""
        gen = self.current_generation()
        if gen is None:
            return {}
        manifest = self._manifest(gen, embedding_model)
        return {d["name"]: _info_from_json(d) for d in manifest["docs"]}

    def _manifest(self, gen: Path, embedding_model: str | None = None,
                  crosslingual_model: str | None = None) -> dict[str, Any]:
        """The manifest of `gen`, refused when this civicbot cannot serve it as asked."""
        manifest: dict[str, Any] = json.loads((gen / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise IndexUnusable(
                f"the index at {self.root} has format {manifest.get('format')}, this civicbot "
                f"reads format {FORMAT}; run `civicbot ingest --rebuild`"
            )
        built_with = manifest["embedding_model"]
        if embedding_model is not None and built_with != embedding_model:
            raise ModelMismatch(
                f"the index at {self.root} was built with the embedding model {built_with!r}, "
                f"but the configuration asks for {embedding_model!r}; vectors of different "
                "models cannot be mixed. Rebuild it with `civicbot ingest --rebuild`, or set "
                f"[embedding] model = {built_with!r}"
            )
        crosslingual = manifest.get("crosslingual_model")
        if crosslingual_model is not None and crosslingual != crosslingual_model:
            built = f"with {crosslingual!r}" if crosslingual else "without it"
            raise ModelMismatch(
                f"the configuration asks for cross-lingual search with {crosslingual_model!r}, "
                f"but the index at {self.root} was built {built}. Rebuild it with `civicbot "
                "ingest --rebuild` (or run `civicbot ingest`, which adds what is missing), or "
                "set [retrieval] crosslingual = false"
            )
        return manifest

    def built_with(self) -> dict[str, str | None]:
        """The models the serving generation was built with ({} when there is none)."""
        gen = self.current_generation()
        if gen is None:
            return {}
        manifest = json.loads((gen / "manifest.json").read_text())
        return {"embedding_model": manifest["embedding_model"],
                "crosslingual_model": manifest.get("crosslingual_model")}

    def empty(self, embedding_model: str, dimension: int = 1) -> Snapshot:
        return Snapshot(self.root, embedding_model, {}, [], DenseIndex.build(
            np.zeros((0, dimension), np.float32), dimension), LexicalIndex.build([], []), "")

    # ---- per-document cache ----------------------------------------------------------------

    def _chunks_path(self, sha256: str) -> Path:
        return self.docs_dir / f"{sha256}.{CHUNKER_VERSION}.json"

    def _vectors_path(self, sha256: str, model: str) -> Path:
        return self.docs_dir / f"{sha256}.{CHUNKER_VERSION}.{_model_key(model)}.npy"

    def is_cached(self, sha256: str, model: str) -> bool:
        """Whether a document version's passages and vectors of `model` are in the cache
        under this version of the chunker (cheap: no file is read)."""
        return self._chunks_path(sha256).exists() and self._vectors_path(sha256, model).exists()

    def cached_chunks(self, sha256: str) -> list[Chunk] | None:
        path = self._chunks_path(sha256)
        if not path.exists():
            return None
        return [Chunk(**c) for c in json.loads(path.read_text(encoding="utf-8"))]

    def cached_vectors(self, sha256: str, model: str) -> np.ndarray | None:
        path = self._vectors_path(sha256, model)
        return np.load(path) if path.exists() else None

    def _windows_path(self, sha256: str, model: str) -> Path:
        return self.docs_dir / f"{sha256}.{CHUNKER_VERSION}.{_model_key(model)}.{WINDOWING}.npz"

    def cached_windows(self, sha256: str, model: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A document version's window vectors for the cross-lingual `model`, and the chunk
        number (within the document) of each window."""
        path = self._windows_path(sha256, model)
        if not path.exists():
            return None
        with np.load(path) as data:
            return data["vectors"], data["owner"]

    def cache_windows(self, sha256: str, vectors: np.ndarray, owner: np.ndarray,
                      model: str) -> None:
        """Store a document version's window vectors (written atomically, never changed)."""
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        path = self._windows_path(sha256, model)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, vectors=vectors.astype(np.float32), owner=owner.astype(np.int64))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def cache_document(
        self, sha256: str, chunks: Sequence[Chunk], vectors: np.ndarray, model: str
    ) -> None:
        """Store a document version's chunks and vectors (written atomically, never changed)."""
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        rows = [dataclasses.asdict(c) for c in chunks]
        _write_atomic(self._chunks_path(sha256),
                      json.dumps(rows, ensure_ascii=False).encode())
        # fsync'd like every other file the index relies on: a power cut after the commit
        # must not leave a generation pointing at an empty cache file.
        tmp = self.docs_dir / f".{sha256}.{os.getpid()}.npy"
        with tmp.open("wb") as fh:
            np.save(fh, vectors.astype(np.float32))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._vectors_path(sha256, model))

    # ---- writing ---------------------------------------------------------------------------

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time across processes (ingest, sync, the bot's uploads)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def commit(self, docs: Sequence[DocInfo], embedder: Embedder,
               crosslingual: Embedder | None = None, passages: str = "") -> Path:
        """Write a new generation holding exactly `docs` (whose chunks and vectors, and with
        `crosslingual` their window vectors, must be in the cache under the passage size
        `passages`, see `cache_key`) and make it the serving one. Call while holding
        `writer_lock`."""
        chunks: list[Chunk] = []
        vectors: list[np.ndarray] = []
        window_vectors: list[np.ndarray] = []
        window_owner: list[np.ndarray] = []
        infos: list[DocInfo] = []
        for info in sorted(docs, key=lambda d: d.name):
            key = cache_key(info.sha256, info.ocr_variant, passages)
            cached = self.cached_chunks(key)
            vecs = self.cached_vectors(key, embedder.name)
            if cached is None or vecs is None or len(vecs) != len(cached):
                raise IndexUnusable(f"{info.name}: cached passages are missing; ingest it again")
            if crosslingual is not None:
                wins = self.cached_windows(key, crosslingual.name)
                if wins is None:
                    raise IndexUnusable(f"{info.name}: cached cross-lingual vectors are missing; "
                                      "ingest it again")
                window_vectors.append(wins[0])
                window_owner.append(wins[1] + len(chunks))
            chunks.extend(dataclasses.replace(c, doc=info.name) for c in cached)
            vectors.append(vecs)
            infos.append(dataclasses.replace(info, chunks=len(cached)))
        dim = vectors[0].shape[1] if vectors else embedder.dimension
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
        crosslingual_index = None
        if crosslingual is not None:
            vocabulary = build_vocabulary(chunks)
            known = self._known_word_vectors(crosslingual.name)
            crosslingual_index = CrossLingualIndex(
                crosslingual.name,
                (np.concatenate(window_vectors) if window_vectors
                 else np.zeros((0, crosslingual.dimension), np.float32)),
                (np.concatenate(window_owner) if window_owner else np.zeros(0, np.int64)),
                vocabulary,
                {lang: _word_vectors(words, known, crosslingual)
                 for lang, words in vocabulary.items()})

        titles = {d.name: d.title for d in infos}
        number = self._next_number()
        final = self.root / f"gen-{number:06d}"
        building = self.root / f".building-{number:06d}-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        with (building / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(dataclasses.asdict(c), ensure_ascii=False) + "\n")
        DenseIndex.build(matrix, dim).save(building / "dense.faiss")
        LexicalIndex.build([lexical_text(titles[c.doc], c) for c in chunks],
                           [c.language for c in chunks]).save(building / "lexical")
        if crosslingual_index is not None:
            crosslingual_index.save(building / "crosslingual")
        manifest = {
            "format": FORMAT,
            "created": _now(),
            "embedding_model": embedder.name,
            "dimension": int(dim),
            "crosslingual_model": crosslingual.name if crosslingual is not None else None,
            "crosslingual_windows": WINDOWING if crosslingual is not None else None,
            "docs": [dataclasses.asdict(d) for d in infos],
        }
        (building / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        for f in building.rglob("*"):
            if f.is_file():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
        os.rename(building, final)
        _fsync_dir(self.root)
        _write_atomic(self.root / "CURRENT", final.name.encode())
        _fsync_dir(self.root)
        self._collect_garbage(keep={final.name})
        return final

    def _known_word_vectors(self, model: str) -> dict[str, np.ndarray]:
        """Word vectors of the serving generation's vocabulary (when made by `model`): most
        words of the next vocabulary are already there, so a commit embeds only new ones."""
        try:
            gen = self.current_generation()
            if gen is None or not (gen / "crosslingual").is_dir():
                return {}
            index = CrossLingualIndex.load(gen / "crosslingual", _passages(gen))
        except (OSError, ValueError, KeyError, IndexUnusable):
            return {}  # only a cache: a damaged old generation costs some embedding, no more
        if index.model != model:
            return {}
        return {w: v for lang, words in index.vocabulary.items()
                for w, v in zip(words, index.vocabulary_vectors[lang], strict=True)}

    def _next_number(self) -> int:
        numbers = [int(m.group(1)) for p in self.root.iterdir() if (m := _GEN.match(p.name))]
        return max(numbers, default=0) + 1

    def _collect_garbage(self, keep: set[str]) -> None:
        """Remove old generations (keeping the previous one for readers that still hold it)
        and interrupted builds. Cached documents stay: a re-added version needs no work."""
        gens = sorted(p.name for p in self.root.iterdir() if _GEN.match(p.name))
        keep = keep | set(gens[-2:])
        for p in self.root.iterdir():
            # Writers hold the lock, so any other build folder is left by a killed run.
            if (_GEN.match(p.name) and p.name not in keep) or p.name.startswith(".building-"):
                shutil.rmtree(p, ignore_errors=True)


def _passages(gen: Path) -> int:
    with (gen / "chunks.jsonl").open(encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def _word_vectors(words: Sequence[str], known: dict[str, np.ndarray],
                  embedder: Embedder) -> np.ndarray:
    """Vectors of `words`, embedding only those not in `known`."""
    missing = [w for w in words if w not in known]
    fresh = dict(zip(missing, embedder.embed(missing), strict=True)) if missing else {}
    if not words:
        return np.zeros((0, embedder.dimension), np.float32)
    return np.stack([known[w] if w in known else fresh[w] for w in words]).astype(np.float32)


def new_docinfo(name: str, title: str, sha256: str, page_count: int, language: str,
                chunks: int, skipped: Sequence[PageIssue], source: str,
                added_by: str = "") -> DocInfo:
    return DocInfo(name=name, title=title, sha256=sha256, page_count=page_count,
                   language=language, chunks=chunks, skipped=tuple(skipped), source=source,
                   added_at=_now(), added_by=added_by)
