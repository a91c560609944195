"""Chunking that follows the document's structure: headings, numbered articles and FAQ
questions start a new passage; a word budget with overlap bounds its size. Every chunk keeps
the page span and character offsets into the cleaned page text, so a citation can quote the
source verbatim (see `Chunk`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from civicbot.records import Chunk, Document

_CHAPTER = re.compile(
    r"^(hoofdstuk|chapter|afdeling|section|titel|title|paragraaf|bijlage|annex|deel|part)"
    r"\s+([0-9]+|[ivxlc]+)\b", re.I)
_ARTICLE = re.compile(r"^(artikel|article|art\.)\s+\d+[a-z]?\b", re.I)
_NUMBERED = re.compile(r"^\d{1,2}(\.\d{1,2}){0,3}\.?\s+[A-ZÀ-Ý]")
_QUESTION = re.compile(r"^(vraag|question)\s+\d+\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=[A-ZÀ-Ý0-9(\"'‘“])")


@dataclass
class _Line:
    page: int
    start: int
    end: int
    text: str
    words: int
    level: int  # 0 chapter, 1 article/numbered heading, 2 question, 3 body


def _level(text: str) -> int:
    short = len(text) <= 160
    if short and _CHAPTER.match(text):
        return 0
    if _ARTICLE.match(text) and len(text) <= 200:
        return 1
    if short and _NUMBERED.match(text) and not text.endswith((".", ",", ";")):
        return 1
    if _QUESTION.match(text) or (short and text.endswith("?") and text[:1].isupper()):
        return 2
    return 3


def _lines(doc: Document, max_words: int) -> list[_Line]:
    out: list[_Line] = []
    for page in doc.pages:
        pos = 0
        for raw in page.text.split("\n"):
            start, end = pos, pos + len(raw)
            pos = end + 1
            if not raw.strip():
                continue
            pieces = [(start, end)]
            if len(raw.split()) > max_words:  # an unbroken paragraph: split at sentences
                pieces, piece_start = [], start
                for m in _SENTENCE_END.finditer(raw):
                    cut = start + m.start()
                    if len(page.text[piece_start:cut].split()) >= max_words // 2:
                        pieces.append((piece_start, cut))
                        piece_start = start + m.end()
                pieces.append((piece_start, end))
            for a, b in pieces:
                text = page.text[a:b]
                out.append(_Line(page.number, a, b, text, len(text.split()), _level(text)))
    return out


def _make_chunk(doc: Document, lines: list[_Line], number: int, heading: str) -> Chunk:
    by_page: dict[int, list[_Line]] = {}
    for ln in lines:
        by_page.setdefault(ln.page, []).append(ln)
    pages = {p.number: p for p in doc.pages}
    parts = [pages[n].text[ls[0].start : ls[-1].end] for n, ls in by_page.items()]
    return Chunk(
        doc=doc.name,
        chunk_no=number,
        page_start=lines[0].page,
        page_end=lines[-1].page,
        char_start=lines[0].start,
        char_end=lines[-1].end,
        heading=heading,
        text="\n".join(parts),
        language=doc.language,
        ocr=any(pages[n].ocr for n in by_page),
    )


def chunk_document(doc: Document, budget: int = 180, overlap: int = 40) -> list[Chunk]:
    """Split a document into passages of about `budget` words; a heading starts a new passage
    once the current one has a third of its budget; budget splits carry `overlap` words."""
    chunks: list[Chunk] = []
    current: list[_Line] = []
    words = 0
    path: dict[int, str] = {}
    heading_at_start = ""

    def heading_now() -> str:
        return " > ".join(path[k][:100] for k in sorted(path))

    def flush(keep: int) -> None:
        nonlocal current, words, heading_at_start
        if current:
            chunks.append(_make_chunk(doc, current, len(chunks), heading_at_start))
        carried: list[_Line] = []
        total = 0
        for ln in reversed(current if keep else []):
            if total + ln.words > keep or len(carried) + 1 >= len(current):
                break
            carried.insert(0, ln)
            total += ln.words
        current, words = carried, total
        heading_at_start = heading_now()

    for ln in _lines(doc, budget):
        if ln.level < 3:
            if current and words >= budget // 3:
                flush(keep=0)
            path = {k: v for k, v in path.items() if k < ln.level}
            path[ln.level] = ln.text
            if not current:
                heading_at_start = heading_now()
        if current and words + ln.words > budget:
            flush(keep=overlap)
        if not current:
            heading_at_start = heading_now()
        current.append(ln)
        words += ln.words
    flush(keep=0)
    return chunks
