"""Text normalisation for extracted pages: pure functions, no I/O."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u00ad\ufffe\uffff]")
# A word broken at a line end: "risico-\ngebaseerde" -> "risicogebaseerde". Only when the next
# line starts in lower case, so list dashes are left alone; after a capital the hyphen is part
# of the word and stays: "AI-\nverordening" -> "AI-verordening".
_HYPHENATED = re.compile(r"(?<=[a-zß-ÿ])-[ \t]*\n[ \t]*(?=[a-zà-ÿ])")
_HYPHEN_AFTER_CAPITAL = re.compile(r"(?<=[A-ZÀ-Þ0-9])-[ \t]*\n[ \t]*(?=[a-zà-ÿ])")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_DIGITS = re.compile(r"\d+")
_LEADERS = re.compile(r"(?:\s?\.){4,}|(?:\s?…){2,}|_{4,}")  # dot leaders of a table of contents


def normalise(text: str) -> str:
    """NFKC (ligatures, compatibility forms), no control characters, words rejoined where they
    were hyphenated at a line end, runs of spaces collapsed, lines stripped."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _HYPHENATED.sub("", text)
    text = _HYPHEN_AFTER_CAPITAL.sub("-", text)
    text = _LEADERS.sub(" ", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(lines).strip()


_HEADING = re.compile(r"^(artikel|article|hoofdstuk|chapter|vraag|question)\s+#", re.I)


def _edge_lines(text: str, n: int = 3) -> list[tuple[int, str]]:
    """The first and last `n` lines with their position (0, 1, 2 from the top; -1, -2, -3
    from the bottom): a running header sits in the same place on every page."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    return [(i, ln) for i, ln in enumerate(lines[:n])] + [
        (-1 - i, ln) for i, ln in enumerate(reversed(lines[-n:]))]


def _shape(line: str) -> str:
    """A line with its numbers blanked, so "5662/24 RB/ek 2" and "5662/24 RB/ek 3" match."""
    return _DIGITS.sub("#", line.strip().lower())


def running_lines(pages: list[str], min_share: float = 0.5) -> set[str]:
    """Shapes of lines that repeat at the top or bottom of at least `min_share` of the pages
    (running headers and footers, page numbers). Needs three pages to say anything."""
    if len(pages) < 3:
        return set()
    counts: Counter[tuple[int, str]] = Counter()
    for page in pages:
        counts.update({(pos, _shape(ln)) for pos, ln in _edge_lines(page)})
    need = max(3, int(len(pages) * min_share))
    # Headings such as "Artikel 12" may open every page of a law: they are content.
    found = {shape for (_, shape), c in counts.items() if c >= need and not _HEADING.match(shape)}
    return (found - {""}) | {"#"}


def strip_running_lines(page: str, shapes: set[str]) -> str:
    """Remove the header and footer lines (and bare page numbers) found by `running_lines`."""
    if not shapes:
        return page
    lines = page.split("\n")
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    edges = set(nonblank[:3] + nonblank[-3:])  # a header may shift by a line on some pages
    kept = [ln for i, ln in enumerate(lines) if not (i in edges and _shape(ln) in shapes)]
    return "\n".join(kept).strip()
