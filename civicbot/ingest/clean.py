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


# A table of contents is a list of headings with the pages they start on. It holds every
# heading of the document, so it matches broad questions better than any passage and answers
# none of them: "Vanaf wanneer gelden de regels voor AI-modellen voor algemene doeleinden?" was
# answered by quoting "AI-modellen voor algemene doeleinden met een systeemrisico 15 5." from a
# guide's contents page. An entry is a line with a letter that ends in a page number.
_CONTENTS_HEADING = re.compile(
    r"^(inhoud|inhoudsopgave|inhoudstafel|contents|table of contents)\s*:?$", re.I)
MIN_ENTRIES = 4


def _entry(line: str) -> tuple[str, int] | None:
    """(title, page) of a line that may be a contents entry: words with a letter, then a
    number of at most four digits. Split, not matched with a pattern: a pattern for it
    backtracked in quadratic time on a long line (a page of 8,000 words without a break took
    27 s)."""
    parts = line.rsplit(None, 1)
    if len(parts) == 2 and parts[1].isdigit() and len(parts[1]) <= 4 \
            and any(ch.isalpha() for ch in parts[0]):
        return parts[0], int(parts[1])
    return None


def drop_contents(page: str, number: int, page_count: int) -> str:
    """Remove a table of contents from page `number`: a run of at least `MIN_ENTRIES` lines
    that end in page numbers of this document, in order and reaching past this page, most of
    them headings of two words or more (a cover page's list of codes and counts, "COSI 6", is
    not a table of contents; nor is a law's text citing "Article 5" on page 100). One line
    without a number between entries is taken as an entry's title wrapped onto two lines, or
    with the page number on the next line."""
    lines = page.split("\n")
    drop: set[int] = set()
    run: list[int] = []  # lines of the run so far, wrapped titles included
    entries: list[str] = []
    last = 0
    pending: int | None = None  # a line without a number that may be a wrapped title

    def close() -> None:
        if len(entries) >= MIN_ENTRIES and last >= number and \
                sum(len(t.split()) >= 2 for t in entries) * 2 >= len(entries):
            drop.update(run)
            first = run[0] - 1
            while first >= 0 and not lines[first].strip():
                first -= 1
            if first >= 0 and _CONTENTS_HEADING.match(lines[first].strip()):
                drop.add(first)

    for i, line in enumerate(lines):
        text = line.strip()
        if not text:
            continue
        m = _entry(text)
        target = m[1] if m else 0
        if m is None and text.isdigit() and pending is not None and run \
                and last <= int(text) <= page_count:  # the page number on a line of its own
            run.extend((pending, i))
            entries.append(lines[pending].strip())
            last, pending = int(text), None
        elif m and last <= target <= page_count:
            if pending is not None and run:
                run.append(pending)
            run.append(i)
            entries.append(m[0])
            last, pending = target, None
        elif pending is None and run and not m:
            pending = i
        else:
            close()
            run, entries, last, pending = [], [], 0, None
            if m and 0 < target <= page_count:
                run, entries, last = [i], [m[0]], target
    close()
    if not drop:
        return page
    return "\n".join(ln for i, ln in enumerate(lines) if i not in drop).strip()
