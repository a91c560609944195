"""Plain data shared by every part of civicbot. No I/O, no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Page:
    """The cleaned text of one physical page (1-based, as a PDF viewer counts)."""

    number: int
    text: str
    ocr: bool = False


@dataclass(frozen=True)
class PageIssue:
    """A page that was left out, and why (e.g. `no-text`, `garbled`)."""

    number: int
    reason: str


@dataclass(frozen=True)
class Document:
    """A document as read from disk, before chunking."""

    name: str  # file name, the document's identity in the corpus
    title: str
    sha256: str
    page_count: int
    language: str  # "nl" or "en"
    pages: tuple[Page, ...]
    skipped: tuple[PageIssue, ...] = ()
    source: str = ""  # where it came from: a folder path or a public URL
    ocr_variant: str = ""  # with OCR'd pages: the OCR settings' key (part of the cache key)

    @property
    def ocr_pages(self) -> tuple[int, ...]:
        return tuple(p.number for p in self.pages if p.ocr)


@dataclass(frozen=True)
class Chunk:
    """A passage with exact provenance: `text` is `page_text[char_start:char_end]` of
    `page_start` when the chunk lies on one page; multi-page chunks join page slices."""

    doc: str
    chunk_no: int
    page_start: int
    page_end: int
    char_start: int  # offset into the cleaned text of page_start
    char_end: int  # offset into the cleaned text of page_end
    heading: str  # heading path, " > " separated
    text: str
    language: str
    ocr: bool = False


@dataclass(frozen=True)
class DocInfo:
    """What the index knows about a document (no page text)."""

    name: str
    title: str
    sha256: str
    page_count: int
    language: str
    chunks: int
    skipped: tuple[PageIssue, ...] = ()
    source: str = ""  # a folder path or a public URL (links and pruning use it)
    added_at: str = ""
    added_by: str = ""  # an editor's Matrix id, or "folder", "sync", "cli"
    ocr_pages: tuple[int, ...] = ()  # pages whose text was recognised from a scan
    ocr_variant: str = ""  # the OCR settings' key of those pages (part of the cache key)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and, for inspection, the parts."""

    chunk: Chunk
    title: str
    score: float
    lexical: float = 0.0
    dense: float = 0.0


@dataclass(frozen=True)
class Citation:
    number: int
    doc: str
    title: str
    page_start: int
    page_end: int
    quote: str
    link: str
    ocr: bool = False


@dataclass
class Answer:
    question: str
    text: str
    # "generated", "extractive", "partial" (the documents cover the topic, not the detail
    # asked: declined, with a quote of what they do say) or "refused"
    mode: str
    language: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    seconds: float = 0.0
    confidence: float = 0.0  # P(the documents answer), or the coverage confidence
    query: str = ""  # what was searched and quoted for (a follow-up joined with its context)

    @property
    def refused(self) -> bool:
        """Declined: refused, or only partly answered (counted as declining)."""
        return self.mode in ("refused", "partial")


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation: role is "user" or "assistant"."""

    role: str
    text: str
