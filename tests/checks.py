"""Checks of the requirement behind an answer, not of today's heuristics: a citation's quote
stands on the page it names (read from the PDF itself with pypdf, not from civicbot's
index), and the quote holds the fact the question asks for."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pypdf import PdfReader


def _letters(text: str) -> str:
    """Letters and digits only: line breaks, hyphenation and spacing of the PDF's text
    layer differ from civicbot's cleaned text, the words do not."""
    return re.sub(r"[^0-9a-zà-ÿ]", "", text.lower())


@functools.cache
def _page_letters(pdf: Path, page: int) -> str:
    return _letters(PdfReader(pdf).pages[page - 1].extract_text() or "")


def quote_on_page(pdf: Path, page_start: int, page_end: int, quote: str) -> bool:
    """Whether `quote` (a citation's, perhaps shortened with " …") is on the cited pages."""
    wanted = _letters(quote.removesuffix("…"))
    assert len(wanted) >= 15, f"too short a quote to check: {quote!r}"
    pages = "".join(_page_letters(pdf, p) for p in range(page_start, page_end + 1))
    return wanted in pages


def assert_cited_on_page(citation, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    """The citation's quote is in its document on the page(s) it names."""
    pdf = corpus / citation.doc if hasattr(citation, "doc") else corpus / citation["doc"]
    get = (lambda k: getattr(citation, k)) if hasattr(citation, "doc") else citation.__getitem__
    assert quote_on_page(pdf, get("page_start"), get("page_end"), get("quote")), (
        f"the quote is not on {get('doc')} p. {get('page_start')}-{get('page_end')}: "
        f"{get('quote')!r}")
