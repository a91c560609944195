"""From a file on disk to a Document: read, clean, gate, title, language."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from civicbot import lang
from civicbot.errors import DocumentTooLarge, GarbledText, NoUsableText, UnsupportedDocument
from civicbot.ingest.clean import drop_contents, normalise, running_lines, strip_running_lines
from civicbot.ingest.quality import page_problem
from civicbot.records import Document, Page, PageIssue
from civicbot.titles import clip_title

SUFFIXES = {".pdf", ".txt", ".md", ".markdown", ".html", ".htm"}

OCR_INSTALL_HINT = (
    "install Tesseract with its Dutch and English data (Debian/Ubuntu: `sudo apt-get install "
    "tesseract-ocr tesseract-ocr-nld tesseract-ocr-eng`, or run scripts/install.sh as root), "
    "then run `civicbot ingest` again")
# A text layer this thin (letters) over a page mostly drawn by images is what is left around
# text drawn as images (footnotes, bullets): the page is read by OCR too, and the OCR text is
# taken when it is much richer (../shared/corpus has such a factsheet).
THIN_LAYER_LETTERS = 300
IMAGE_COVER = 0.2


@dataclass(frozen=True)
class OcrResult:
    """What OCR made of one page: status "ok" with the text, or why there is no text
    ("unavailable", "page-cap", "timeout", "failed")."""

    status: str
    text: str = ""


class PageOcr(Protocol):
    """Reads pages without a usable text layer (civicbot.ingest.ocr.TesseractOcr)."""

    @property
    def variant(self) -> str:
        """A short key of everything the recognised text depends on (program, settings)."""
        ...

    def available(self) -> bool: ...

    def problem(self) -> str | None: ...

    def image_cover(self, path: Path, numbers: Sequence[int]) -> dict[int, float]: ...

    def recognise(self, path: Path, numbers: Sequence[int],
                  progress: Callable[[int, int], None] | None = None) -> dict[int, OcrResult]: ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def _raw_pages(path: Path) -> tuple[list[str], str]:
    """The raw page texts (and an HTML title), parsed in the limited worker process
    (civicbot/ingest/isolate.py)."""
    if path.suffix.lower() not in SUFFIXES:
        raise UnsupportedDocument(
            path.name, f"files of type {path.suffix.lower() or '(none)'} are not supported; "
            f"use one of {', '.join(sorted(SUFFIXES))}"
        )
    from civicbot.ingest.isolate import parse

    return parse(path)


# Not a title: numbers and marks, page marks, file codes ("TELECOM 22", "JAI 98").
_TITLE_SKIP = re.compile(r"^(\W|\d)+$|^(pagina|page)\s+\d+|^(?-i:[A-Z]{2,}( [A-Z]+)?) \d+$", re.I)
# A letter or an official document says what it is about on its subject line.
_SUBJECT = re.compile(r"^(subject|betreft|onderwerp)\b\s*:?\s*(.*)$", re.I)
_LABEL = re.compile(r"^[\w .'-]{2,30}:", re.I)  # "Datum:", "Our ref.:" (ends a subject)
# Letterheads and cover-page furniture name who wrote a document, not what it is: an
# institution, a ministry (whose name is often set over two lines), a return address, an
# author box, a classification.
_LETTERHEAD = re.compile(
    r"^(council of the|european union|europese unie|het europees parlement|de raad$|"
    r"european (commission|parliament)$|europese commissie$|"
    r"(tweede|eerste) kamer der staten-generaal|vergaderjaar\b|ministerie van\b|"
    r"(volksgezondheid, )?welzijn en sport$|(landbouw, )?natuur en voedselkwaliteit$|"
    r"economische zaken( en klimaat)?$|binnenlandse zaken( en koninkrijksrelaties)?$|"
    r"sociale zaken en werkgelegenheid$|infrastructuur en waterstaat$|justitie en veiligheid$|"
    r"onderwijs, cultuur en wetenschap$|rijksdienst voor\b|ondernemend nederland$|"
    r"directoraat-generaal\b|directie\b|aan de (minister|staatssecretaris)\b|"
    r"ter (beslissing|informatie|kennisname)$|"
    r"retouradres\b|postbus\b|>|author:|auteur:|members' research service|briefing$|"
    r"limite$|interinstitutional file|brussels?,|datum\b|date\b|pe-cons\b|"
    r".*\bvan (de )?verzoeker\b)", re.I)  # an anonymised Woo requester's name and address
TITLE_CHARS = 150


def _subject(lines: list[str]) -> str | None:
    """The text of a "Subject:" / "Betreft" / "Onderwerp:" line and the lines that continue
    it, or None when there is none (or it is an empty form field)."""
    for i, line in enumerate(lines):
        m = _SUBJECT.match(line)
        if not m:
            continue
        parts = [m.group(2)] if m.group(2) else []
        for nxt in lines[i + 1 : i + 6]:
            if not nxt or _LABEL.match(nxt) or sum(len(p) for p in parts) >= 3 * TITLE_CHARS:
                break
            parts.append(nxt)
        subject = " ".join(parts)
        if len(lang.words(subject)) >= 3:
            return clip_title(subject, TITLE_CHARS)
    return None


def guess_title(first_page: str, fallback: str) -> str:
    """What the first page says the document is: its subject line when it has one, else its
    first heading-like line(s) that are not letterhead. PDF metadata titles are often wrong
    (the shared GenAI FAQ says "Factsheet Inkopers"), so we read the page instead."""
    lines = [ln.strip(" -•·|#*") for ln in first_page.split("\n")[:80]]
    subject = _subject(lines)
    if subject:
        return subject
    lines = lines[:20]

    def title_like(line: str) -> bool:
        letters = sum(ch.isalpha() for ch in line)
        return (not _TITLE_SKIP.match(line) and not _LETTERHEAD.match(line) and letters >= 4
                and letters / max(1, len(line)) > 0.6 and not line.endswith((".", ";")))

    for i, line in enumerate(lines):
        # A title starts with a capital or a digit ("en Voedselkwaliteit" ends a letterhead).
        if not title_like(line) or len(lang.words(line)) < 2 or line[:1].islower():
            continue
        title = line
        # A heading set over several short lines ("Handreiking inventarisatie," / "..."),
        # or a sentence that runs on to the next line (which then starts in lower case);
        # not a one-word heading after it ("SUMMARY").
        for nxt in lines[i + 1 : i + 4]:
            runs_on = nxt[:1].islower()
            if ((len(title) >= 60 and not runs_on) or not title_like(nxt)
                    or (len(nxt.split()) == 1 and nxt.isupper())):
                break
            title = f"{title} {nxt}"
        return clip_title(title, TITLE_CHARS)
    return fallback


def _fallback_title(path: Path) -> str:
    return re.sub(r"[_\-]+", " ", path.stem).strip()


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def read_document(
    path: Path, source: str = "", max_bytes: int | None = None, ocr: PageOcr | None = None,
    ocr_progress: Callable[[int, int], None] | None = None,
) -> Document:
    """Read one file. Raises a DocumentError subclass when nothing usable is in it; a document
    with some bad pages keeps its good pages and lists the others in `skipped`. With `ocr`,
    PDF pages without a usable text layer are read by OCR (`ocr_progress(done, total)`)."""
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
    problems = {n: page_problem(text) for n, text in enumerate(cleaned, start=1)}

    recognised: dict[int, OcrResult] = {}
    is_pdf = path.suffix.lower() == ".pdf"
    if ocr is not None and is_pdf and ocr.available():
        failing = [n for n, problem in problems.items() if problem]
        thin = [n for n, problem in problems.items()
                if not problem and _letters(cleaned[n - 1]) < THIN_LAYER_LETTERS]
        if thin:
            cover = ocr.image_cover(path, thin)
            thin = [n for n in thin if cover.get(n, 0.0) >= IMAGE_COVER]
        if failing or thin:
            recognised = ocr.recognise(path, failing + thin, ocr_progress)
    elif ocr is not None and is_pdf:
        recognised = {n: OcrResult("unavailable") for n, problem in problems.items() if problem}
    ocr_texts = {n: normalise(r.text) for n, r in recognised.items() if r.status == "ok"}
    ocr_shapes = running_lines(list(ocr_texts.values()))  # "Pagina 3 van 10" on scans too
    ocr_texts = {n: strip_running_lines(t, ocr_shapes) for n, t in ocr_texts.items()}

    pages: list[Page] = []
    skipped: list[PageIssue] = []
    for number, text in enumerate(cleaned, start=1):
        problem = problems[number]
        result = recognised.get(number)
        if result is None:
            pass
        elif result.status != "ok":
            problem = problem and f"ocr-{result.status}"
        elif problem:
            # The recognised text passes the same gate as a text layer would.
            ocr_problem = page_problem(ocr_texts[number], recognised=True)
            if ocr_problem is None:
                text, problem = ocr_texts[number], None
                pages.append(Page(number, text, ocr=True))
                continue
            problem = f"ocr-{ocr_problem}"
        elif (page_problem(ocr_texts[number], recognised=True) is None
              and _letters(ocr_texts[number]) >= 2 * _letters(text) + 100):
            pages.append(Page(number, ocr_texts[number], ocr=True))
            continue
        if problem:
            skipped.append(PageIssue(number, problem))
        else:
            pages.append(Page(number, text))

    if not pages:
        raise _nothing_usable(path.name, problems, skipped, ocr)
    # After the quality gate and OCR: a contents page left empty is not a page to read again.
    pages = [replace(p, text=drop_contents(p.text, p.number, len(cleaned))) for p in pages]

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
        ocr_variant=ocr.variant if ocr is not None and any(p.ocr for p in pages) else "",
    )


def _nothing_usable(name: str, problems: dict[int, str | None], skipped: list[PageIssue],
                    ocr: PageOcr | None) -> NoUsableText:
    """The error for a file of which no page could be used: what, and what to do."""
    layer = sorted({p for p in problems.values() if p}) or ["no-text"]
    reasons = {s.reason for s in skipped}
    if layer == ["garbled"]:
        why = ("the text in this file is unreadable garbage (an unusual font encoding)")
    elif "garbled" in layer:
        why = "no page has readable text (some pages are garbled, others have no text)"
    else:
        why = "no page has a text layer (it is probably scanned)"
    if "ocr-unavailable" in reasons:
        missing = ocr.problem() if ocr is not None else None
        fix = (f"; it needs OCR, which cannot run here ({missing or 'Tesseract is missing'}): "
               f"{OCR_INSTALL_HINT}")
    elif reasons & {"ocr-page-cap", "ocr-timeout", "ocr-failed"}:
        fix = ("; OCR did not finish within its limits (ocr.max_pages_per_document, "
               "ocr.page_time_limit_s): raise them, or add a copy with a text layer")
    elif any(r.startswith("ocr-") for r in reasons):
        fix = ("; OCR found no readable text either (blank, redacted or handwritten pages?); "
               "a copy with a text layer is needed")
    elif ocr is None:
        fix = "; it needs OCR (turn it on with [ocr] enabled = true), or a copy with a text layer"
    else:
        fix = "; it needs OCR, or a copy with a text layer"
    error = GarbledText if layer == ["garbled"] else NoUsableText
    return error(name, why + fix)
