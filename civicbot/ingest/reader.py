"""From a file on disk to a Document: read, clean, gate, title, language."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from civicbot import lang
from civicbot.errors import DocumentTooLarge, GarbledText, NoUsableText, UnsupportedDocument
from civicbot.ingest.clean import normalise, running_lines, strip_running_lines
from civicbot.ingest.quality import page_problem
from civicbot.model import Document, Page, PageIssue

SUFFIXES = {".pdf", ".txt", ".md", ".markdown", ".html", ".htm"}

# Pages the text layer could not give us can be recognised later by an OCR step: it takes the
# file and a 1-based page number and returns text (or "" when it cannot).
PageOcr = Callable[[Path, int], str]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def _raw_pages(path: Path) -> tuple[list[str], str]:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from civicbot.ingest.pdf import pdf_pages

        return pdf_pages(path), ""
    if suffix in {".html", ".htm"}:
        from civicbot.ingest.text import html_pages

        return html_pages(path)
    if suffix in {".txt", ".md", ".markdown"}:
        from civicbot.ingest.text import text_pages

        return text_pages(path), ""
    raise UnsupportedDocument(
        path.name, f"files of type {suffix or '(none)'} are not supported; "
        f"use one of {', '.join(sorted(SUFFIXES))}"
    )


_TITLE_SKIP = re.compile(r"^(\W|\d)+$|^(pagina|page)\s+\d+", re.I)


def guess_title(first_page: str, fallback: str) -> str:
    """The first heading-like line(s) of the first page. PDF metadata titles are often wrong
    (the shared GenAI FAQ says "Factsheet Inkopers"), so we read the page instead."""
    lines = [ln.strip(" -•·|#*>") for ln in first_page.split("\n")[:20]]

    def title_like(line: str) -> bool:
        letters = sum(ch.isalpha() for ch in line)
        return (not _TITLE_SKIP.match(line) and letters >= 4
                and letters / max(1, len(line)) > 0.6 and not line.endswith((".", ";")))

    for i, line in enumerate(lines):
        if not title_like(line) or len(lang.words(line)) < 2:
            continue
        title = line
        # A heading set over several short lines ("Handreiking inventarisatie," / "...").
        for nxt in lines[i + 1 : i + 4]:
            if len(title) >= 60 or not title_like(nxt):
                break
            title = f"{title} {nxt}"
        return title[:150]
    return fallback


def _fallback_title(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip()


def read_document(
    path: Path, source: str = "", max_bytes: int | None = None, ocr: PageOcr | None = None
) -> Document:
    """Read one file. Raises a DocumentError subclass when nothing usable is in it; a document
    with some bad pages keeps its good pages and lists the others in `skipped`."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DocumentTooLarge(
            path.name, f"the file is {size / 1e6:.1f} MB, more than the limit of "
            f"{max_bytes / 1e6:.0f} MB (corpus.max_file_mb); split it or raise the limit"
        )
    raw, html_title = _raw_pages(path)
    cleaned = [normalise(p) for p in raw]
    shapes = running_lines(cleaned)
    cleaned = [strip_running_lines(p, shapes) for p in cleaned]

    pages: list[Page] = []
    skipped: list[PageIssue] = []
    for number, text in enumerate(cleaned, start=1):
        problem = page_problem(text)
        is_ocr = False
        if problem and ocr is not None:
            recognised = normalise(ocr(path, number))
            if recognised and page_problem(recognised) is None:
                text, problem, is_ocr = recognised, None, True
        if problem:
            skipped.append(PageIssue(number, problem))
        else:
            pages.append(Page(number, text, ocr=is_ocr))

    if not pages:
        reasons = sorted({s.reason for s in skipped}) or ["no-text"]
        if reasons == ["garbled"]:
            raise GarbledText(
                path.name, "the text in this file is unreadable garbage (an unusual font "
                "encoding); it needs OCR, or a copy with a proper text layer")
        elif "garbled" in reasons:
            why = "no page has readable text (some pages are garbled, others have no text)"
        else:
            why = ("no page has a text layer (it is probably scanned); it needs OCR, "
                   "or a copy with a text layer")
        raise NoUsableText(path.name, why)

    body = "\n".join(p.text for p in pages)
    first = pages[0].text if pages[0].number == 1 else ""
    title = html_title or guess_title(first, _fallback_title(path))
    return Document(
        name=path.name,
        title=title,
        sha256=file_sha256(path),
        page_count=len(cleaned),
        language=lang.detect(body),
        pages=tuple(pages),
        skipped=tuple(skipped),
        source=source,
    )
