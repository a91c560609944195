"""Documents in, documents out: reading, chunking and embedding files into a new index
generation. Changes go through `civicbot.curator.Curator`, which records each in the audit
log; this module does the work and keeps no record."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from civicbot.config import CorpusConfig, RetrievalConfig
from civicbot.errors import DocumentError, IndexUnusable
from civicbot.index.crosslingual import chunk_windows, shared_use
from civicbot.index.store import IndexStore, cache_key, new_docinfo, passage_text
from civicbot.ingest import chunk_document, file_sha256, read_document, supported
from civicbot.ingest.reader import OCR_INSTALL_HINT, PageOcr
from civicbot.protocols import Embedder
from civicbot.records import Chunk, DocInfo, Document, PageIssue

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (file name, done, total)


@dataclass(frozen=True)
class IngestReport:
    """What happened to one file: added, replaced, unchanged, removed or rejected."""

    name: str
    status: str
    pages: int = 0
    chunks: int = 0
    language: str = ""
    title: str = ""
    skipped: tuple[PageIssue, ...] = ()
    reason: str = ""  # for rejected files: a short tag (corrupt, encrypted, no-text, ...)
    message: str = ""  # for rejected files: what happened and what to do
    sha256: str = ""  # of the file read (empty when it could not be read)
    source: str = ""  # where the document came from (a folder path or a public URL)
    ocr_pages: tuple[int, ...] = ()  # pages whose text was recognised from a scan
    # An unchanged file read again because this civicbot prepares documents differently from
    # the one that indexed it (Corpus._refresh): still no change to the collection.
    reread: bool = False

    @property
    def ok(self) -> bool:
        return self.status != "rejected"

    def describe(self) -> str:
        """One line for a person."""
        if self.status == "rejected":
            return f"✗ {self.name}: rejected ({self.reason}): {self.message}"
        if self.reread:
            return f"· {self.name}: unchanged, read again after an upgrade"
        if self.status in ("unchanged", "removed"):
            return f"· {self.name}: {self.status}"
        line = (f"✓ {self.name}: {self.status}, {_count(self.pages, 'page')}, "
                f"{_count(self.chunks, 'passage')}, language {self.language}")
        if self.ocr_pages:
            line += f" — text recognised from scans (OCR): pages {_ranges(list(self.ocr_pages))}"
        if self.skipped:
            by_reason: dict[str, list[int]] = {}
            for issue in self.skipped:
                by_reason.setdefault(issue.reason, []).append(issue.number)
            parts = [f"{_REASONS.get(r, r)}: pages {_ranges(p)}" for r, p in by_reason.items()]
            line += " — left out " + "; ".join(parts)
            if "ocr-unavailable" in by_reason:
                line += f" — to read the scanned pages, {OCR_INSTALL_HINT}"
            elif by_reason.keys() & {"no-text", "garbled"}:
                line += " — OCR is off: set [ocr] enabled = true to read scanned pages"
        return line


_REASONS = {
    "no-text": "no text layer (scanned?)",
    "garbled": "garbled text",
    # The reasons of pages that needed OCR (docs/ocr.md).
    "ocr-unavailable": "scanned, not read because OCR (Tesseract) is not installed",
    "ocr-no-text": "scanned, no readable text found (blank, redacted or handwritten?)",
    "ocr-garbled": "scanned, the recognised text is not running text (a table or a drawing?)",
    "ocr-page-cap": "scanned, beyond the OCR page limit (ocr.max_pages_per_document)",
    "ocr-timeout": "scanned, OCR took longer than ocr.page_time_limit_s",
    "ocr-failed": "scanned, OCR failed",
}
# Pages left out for these reasons may be read when OCR can run now.
_OCR_WOULD_READ = {"no-text", "garbled", "ocr-unavailable"}


def _count(n: int, thing: str) -> str:
    """"1 page", "20 pages"."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [-1]:
        if n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}–{prev}")
        start = prev = n
    return ", ".join(out)


def _ocr_progress(progress: Progress | None, name: str, done: int,
                  total: int) -> Callable[[int, int], None] | None:
    """OCR's page progress shown through the ingest's file progress."""
    if progress is None:
        return None
    return lambda page, pages: progress(f"OCR {page}/{pages} pages: {name}", done, total)


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files to ingest: the supported files in folders (recursively) and files named directly."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            # A folder's README explains the folder (corpus/README.md does); it is not a
            # document. Named on its own it is ingested like any file. A symbolic link that
            # leads out of the folder is not followed: a corpus folder holds what it holds.
            inside = path.resolve()
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and supported(p)
                                and not p.name.lower().startswith("readme.")
                                and p.resolve().is_relative_to(inside)))
        else:
            files.append(path)
    return files


def _passage_key(words: int, overlap: int) -> str:
    """The part of a cache key that says how long the passages are: without it, a changed
    `[retrieval] chunk_words` or `overlap_words` found the passages cut at the old size in
    the cache and changed nothing, even with `ingest --rebuild`. Empty for the default size,
    so the caches written before the size was part of the key stay valid."""
    default = RetrievalConfig()
    return ("" if (words, overlap) == (default.chunk_words, default.overlap_words)
            else f"w{words}o{overlap}")


class Corpus:
    """Adds, replaces and removes documents in the index, incrementally and atomically."""

    def __init__(self, store: IndexStore, embedder: Embedder,
                 retrieval: RetrievalConfig | None = None, limits: CorpusConfig | None = None,
                 ocr: PageOcr | None = None, use: Embedder | None = None):
        """`retrieval` gives the passage size and whether to build the cross-lingual index,
        `limits` the largest file; both default to the config's defaults."""
        retrieval = retrieval or RetrievalConfig()
        limits = limits or CorpusConfig()
        self.store = store
        self.embedder = embedder
        self.chunk_words = retrieval.chunk_words
        self.overlap_words = retrieval.overlap_words
        self._passages = _passage_key(self.chunk_words, self.overlap_words)
        self.max_bytes = limits.max_file_mb * 1_000_000
        self.ocr = ocr
        # The cross-lingual model (docs/retrieval.md), or None to build indexes without it.
        self.use: Embedder | None = (use or shared_use()) if retrieval.crosslingual else None

    @property
    def crosslingual_model(self) -> str | None:
        """The cross-lingual model the indexes are built with (None: without one)."""
        return self.use.name if self.use is not None else None

    def documents(self) -> dict[str, DocInfo]:
        """The documents in the index (its manifest only: cheap enough for every sync round)."""
        return self.store.documents(self.embedder.name)

    def ingest(
        self,
        paths: Sequence[Path],
        prune_folders: Sequence[Path] = (),
        source: Callable[[Path], str] | None = None,
        progress: Progress | None = None,
        rebuild: bool = False,
        by: str = "",
    ) -> list[IngestReport]:
        """Bring the index in line with `paths`. Documents that came from one of
        `prune_folders` and are no longer there are removed. One new generation is
        committed at the end; a crash before that leaves the index as it was. `rebuild`
        starts from an empty index (the old one keeps serving until the new one is done).
        `by` says who made the change (DocInfo.added_by)."""
        files = expand(paths)
        reports: list[IngestReport] = []
        with self.store.writer_lock():
            current = {} if rebuild else self.documents()
            wanted = dict(current)
            seen: dict[str, Path] = {}
            for done, path in enumerate(files):
                if progress:
                    progress(path.name, done, len(files))
                report, info = self._one(path, current.get(path.name), seen,
                                         source(path) if source else str(path.parent), by,
                                         _ocr_progress(progress, path.name, done, len(files)))
                reports.append(report)
                if info is not None:
                    wanted[info.name] = info
            folders = {str(f.resolve()) for f in prune_folders}
            for name, info in current.items():
                gone = info.source and str(Path(info.source).resolve()) in folders
                if gone and name not in seen:
                    del wanted[name]
                    reports.append(IngestReport(name, "removed", title=info.title,
                                                sha256=info.sha256, source=info.source))
            if progress:
                progress("", len(files), len(files))
            # An index built with another cross-lingual setting is brought in line, embedding
            # the windows of documents that lack them (and only those).
            switched = bool(current) and (
                self.store.built_with().get("crosslingual_model") != self.crosslingual_model)
            if wanted != current or rebuild or switched:
                self._commit(list(wanted.values()))
            else:
                reread = self._refresh(list(wanted.values()), progress)
                reports = [dataclasses.replace(r, reread=True) if r.status == "unchanged"
                           and r.name in reread else r for r in reports]
        return reports

    def _refresh(self, docs: list[DocInfo], progress: Progress | None) -> set[str]:
        """After an upgrade that prepares documents differently (`CHUNKER_VERSION`: the
        chunker or the title rules changed), an ingest that changes nothing still reads the
        documents again and commits, so new passages and titles reach the index without a
        --rebuild. A document that cannot be read again (its file moved) leaves the index
        serving as it was: no change was asked for, so the error is logged, not raised; the
        next change to the collection raises it (`_ensure_cached`). Returns the names of the
        documents read again (none when the index kept serving as it was)."""
        outdated = {info.name for info in docs
                    if not self.store.is_cached(self._key(info), self.embedder.name)}
        if not outdated:
            return set()
        log.info("reading %d document(s) again: this civicbot prepares passages differently "
                 "from the one that indexed them", len(outdated))
        fresh: list[DocInfo] = []
        try:
            # Read here rather than in `_commit`, to show progress; `_commit` then finds
            # every document in the cache.
            for info in docs:
                if info.name in outdated and progress:
                    progress(f"{info.name} (read again after an upgrade)", len(fresh),
                             len(docs))
                fresh.append(self._ensure_cached(info))
            self._commit(fresh)
        except IndexUnusable as exc:
            log.warning("the index keeps serving as it was: %s", exc)
            return set()
        finally:
            if progress:
                progress("", len(docs), len(docs))
        return outdated

    def _commit(self, docs: list[DocInfo]) -> None:
        docs = [self._ensure_cached(info) for info in docs]
        if self.use is not None:
            for info in docs:
                key = self._key(info)
                chunks = self.store.cached_chunks(key)
                if chunks is not None:
                    self._cache_windows(key, chunks)
        self.store.commit(docs, self.embedder, self.use, self._passages)

    def _key(self, version: DocInfo | Document) -> str:
        """The cache key of a document version's passages at this corpus's passage size."""
        return cache_key(version.sha256, version.ocr_variant, self._passages)

    def _ensure_cached(self, info: DocInfo) -> DocInfo:
        """Passages and vectors of a document already in the index can be missing from the
        cache after an upgrade changed the chunker (its version is part of the cache key):
        read the document again from where it came from."""
        if self.store.is_cached(self._key(info), self.embedder.name):
            return info
        path = Path(info.source) / info.name
        if not path.is_file() or file_sha256(path) != info.sha256:
            raise IndexUnusable(
                f"{info.name}: this civicbot prepares passages differently from the one that "
                f"indexed it, and the original file is no longer at {path}; put it back, or "
                "run `civicbot ingest --rebuild` with the corpus folders")
        log.info("re-reading %s: the index was built by another version", info.name)
        try:
            doc = read_document(path, source=info.source, max_bytes=self.max_bytes,
                                ocr=self.ocr)
        except Exception as exc:  # noqa: BLE001 - the same file can fail now: lower limits
            detail = exc.detail if isinstance(exc, DocumentError) else type(exc).__name__
            raise IndexUnusable(
                f"{info.name}: this civicbot prepares passages differently from the one that "
                f"indexed it, and reading {path} again failed ({detail}); remove the document "
                "or run `civicbot ingest --rebuild` with the corpus folders") from exc
        chunks = self._prepare(doc)
        # OCR may read the pages differently now (installed, removed, other settings), and
        # the title may be read differently.
        return dataclasses.replace(info, title=doc.title, chunks=len(chunks), skipped=doc.skipped,
                                   ocr_pages=doc.ocr_pages, ocr_variant=doc.ocr_variant)

    def _prepare(self, doc: Document) -> list[Chunk]:
        """Chunk and embed a document version unless the cache already has it."""
        key = self._key(doc)
        chunks = self.store.cached_chunks(key)
        vectors = self.store.cached_vectors(key, self.embedder.name)
        if chunks is None or vectors is None:
            chunks = chunk_document(doc, self.chunk_words, self.overlap_words)
            vectors = self.embedder.embed([passage_text(c) for c in chunks])
            self.store.cache_document(key, chunks, vectors, self.embedder.name)
        self._cache_windows(key, chunks)
        return chunks

    def _cache_windows(self, sha256: str, chunks: Sequence[Chunk]) -> None:
        """Embed a document version's cross-lingual windows unless they are cached."""
        if self.use is None or self.store.cached_windows(sha256, self.use.name) is not None:
            return
        texts, owner = chunk_windows(chunks)
        self.store.cache_windows(sha256, self.use.embed(texts), owner, self.use.name)

    def _one(self, path: Path, before: DocInfo | None, seen: dict[str, Path],
             source: str, by: str = "", on_ocr: Callable[[int, int], None] | None = None,
             ) -> tuple[IngestReport, DocInfo | None]:
        name = path.name
        if name in seen:
            return IngestReport(name, "rejected", reason="duplicate-name", message=(
                f"another file with this name was already taken from {seen[name].parent}; "
                "rename one of them")), None
        seen[name] = path
        sha = ""
        try:
            if not path.exists():
                return IngestReport(name, "rejected", reason="missing",
                                    message="the file does not exist"), None
            sha = file_sha256(path)
            if before is not None and before.sha256 == sha and not self._ocr_would_read(before):
                return IngestReport(name, "unchanged", before.page_count, before.chunks,
                                    before.language, before.title, before.skipped,
                                    ocr_pages=before.ocr_pages), None
            doc = read_document(path, source=source, max_bytes=self.max_bytes, ocr=self.ocr,
                                ocr_progress=on_ocr)
        except DocumentError as exc:
            log.info("rejected %s: %s", name, exc.detail)
            return IngestReport(name, "rejected", reason=exc.reason, message=exc.detail,
                                sha256=sha, source=source), None
        except OSError as exc:
            return IngestReport(name, "rejected", reason="unreadable",
                                message=f"the file cannot be read ({exc.strerror})",
                                source=source), None
        except Exception as exc:  # noqa: BLE001 - one odd file must not abort a batch
            log.warning("rejected %s: the reader failed (%s: %s)", name, type(exc).__name__,
                        exc)
            return IngestReport(name, "rejected", reason="corrupt", message=(
                f"this file cannot be read ({type(exc).__name__}); open it in a viewer, save "
                "or export it again, and add the new file"), sha256=sha, source=source), None

        chunks = self._prepare(doc)
        info = new_docinfo(name, doc.title, doc.sha256, doc.page_count, doc.language,
                           len(chunks), doc.skipped, doc.source, by)
        info = dataclasses.replace(info, ocr_pages=doc.ocr_pages, ocr_variant=doc.ocr_variant)
        status = "replaced" if before is not None else "added"
        report = IngestReport(name, status, doc.page_count, len(chunks), doc.language,
                              doc.title, doc.skipped, sha256=doc.sha256, source=doc.source,
                              ocr_pages=doc.ocr_pages)
        return report, info

    def _ocr_would_read(self, info: DocInfo) -> bool:
        """An unchanged file is read again when it has pages OCR could not read before
        (Tesseract was missing, or OCR off) and OCR can read them now."""
        return (self.ocr is not None and any(s.reason in _OCR_WOULD_READ for s in info.skipped)
                and self.ocr.available())

    def restore(self, docs: Mapping[str, DocInfo]) -> None:
        """Make `docs` (an earlier `documents()`) the index again: undoes an ingest whose
        file could not be stored. Their passages and vectors are still in the cache."""
        with self.store.writer_lock():
            self._commit(list(docs.values()))

    def remove(self, names: Sequence[str]) -> list[IngestReport]:
        """Take documents out of the index by file name."""
        with self.store.writer_lock():
            current = self.documents()
            missing = [n for n in names if n not in current]
            reports = [IngestReport(n, "rejected", reason="unknown", message=(
                "no document by this name is in the index; `civicbot docs list` shows them"))
                for n in missing]
            keep = [info for name, info in current.items() if name not in names]
            if len(keep) != len(current):
                self._commit(keep)
                reports += [IngestReport(n, "removed", title=current[n].title,
                                         sha256=current[n].sha256, source=current[n].source)
                            for n in names if n in current]
        return reports
