"""The quality gate: is the text of a page real language, or nothing, or glyph garbage?"""

from __future__ import annotations

import re

from civicbot.lang import stopwords, words

MIN_LETTERS = 15  # fewer letters than this: the page has no usable text layer
_URL = re.compile(r"https?://\S+|www\.\S+")


def page_problem(text: str, recognised: bool = False) -> str | None:
    """None when the page has usable text, else "no-text" or "garbled".

    Garbage from odd font encodings ("/1/2/3/4...") or random glyph letters passes a length
    check, so we also ask that letters dominate and that common function words of Dutch or
    English occur, as they do in any real running text.

    `recognised` text comes from OCR and holds only words Tesseract was confident of
    (civicbot/ingest/ocr.py drops the rest, and lines that are mostly the rest): it cannot
    hold encoding garbage, so the letter-share and function-word rules, which would also
    refuse a scanned table of addresses and amounts, are not applied to it."""
    visible = "".join(_URL.sub("", text).split())
    letters = sum(ch.isalpha() for ch in visible)
    if not recognised and len(visible) >= 100 and letters / len(visible) < 0.5:
        return "garbled"
    if letters < MIN_LETTERS:
        return "no-text"
    tokens = words(text)
    real = [t for t in tokens if t.isalpha()]
    if not real:
        return "no-text"
    if recognised:
        return "garbled" if sum(len(t) > 25 for t in real) / len(real) > 0.2 else None
    stop = sum(t in stopwords() for t in real)
    long_words = sum(len(t) > 25 for t in real)
    if len(real) >= 30 and stop / len(real) < 0.04:
        return "garbled"
    if long_words / len(real) > 0.2:
        return "garbled"
    return None
