"""OCR of the real scans in ../shared/corpus with the real Tesseract, pypdfium2, embedder and
index (the session's `corpus_index` is built with the default configuration, OCR on).

The phrases below were chosen by looking at the rendered page images, not at OCR output.
Tesseract is part of the installation (scripts/install.sh installs it as root, as CI runs):
without it the OCR tests fail with the reason and the fix, they are not skipped. The last
test checks what a machine without Tesseract does: the same ingest, reporting the pages it
had to leave out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from civicbot.corpus import Corpus
from civicbot.index.store import IndexStore
from civicbot.ingest import read_document
from civicbot.ingest.ocr import (
    MIN_WORD_CONFIDENCE,
    TesseractOcr,
    text_from_words,
    words_from_tsv,
)
from tests.conftest import CORPUS, ROOT
from tests.fakes import NO_CROSSLINGUAL

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def tesseract() -> None:
    problem = TesseractOcr().problem()
    if problem is not None:
        pytest.fail(f"Tesseract is needed for these tests: {problem} (run scripts/install.sh "
                    "as root, or apt-get install tesseract-ocr tesseract-ocr-nld "
                    "tesseract-ocr-eng)", pytrace=False)


needs_tesseract = pytest.mark.usefixtures("tesseract")

SCANNED = "nl_minvws_woo-deelbesluit_digitale_middelen_2022_SCANNED.pdf"
REDACTED = "nl_lnv_nota_nitraatrichtlijn_2021_SCANNED-REDACTED.pdf"
TEXT_AS_IMAGE = "nl_minbzk_ai-geletterdheid_vereisten_TEXT-AS-IMAGE.pdf"
GARBLED = "nl_ezk_adviescommissie_nobian_loi_2023_GARBLED-ENCODING.pdf"
MIXED = "nl_rvo_woo-besluit_2023-035_MIXED-TEXT-AND-SCANNED.pdf"
# Typographic tokens that are not junk although they hold no letter or digit.
_SYMBOLS = {"•", "-", "–", "—", "&", "+", "=", "/", "%", "€", "§", "*", ":", "(", ")"}
_SCRIBBLE = set("|[]{}~^<>\\")


def junk_tokens(text: str) -> list[str]:
    """What scribbles, stamps and the edges of redaction blocks turn into: tokens without a
    letter or digit ("/)", "}") or with bars and brackets in them ("|", "[yer")."""
    return [t for t in text.split()
            if (t not in _SYMBOLS and not any(ch.isalnum() for ch in t))
            or any(ch in _SCRIBBLE for ch in t)]


def _pages(chunks):
    return {p for c in chunks for p in range(c.page_start, c.page_end + 1)}


@needs_tesseract
@pytest.mark.parametrize(("doc", "pages"), [
    (SCANNED, 10), (REDACTED, 2), (TEXT_AS_IMAGE, 4), (GARBLED, 11), (MIXED, 20)])
def test_scanned_pages_are_indexed_with_their_page_numbers(corpus_index, doc, pages):
    report = next(r for r in corpus_index.reports if r.name == doc)
    info = corpus_index.snapshot.docs[doc]
    chunks = [c for c in corpus_index.snapshot.chunks if c.doc == doc]
    assert report.status == "added" and info.page_count == pages
    assert _pages(chunks) == set(range(1, pages + 1))  # every page, nothing beyond
    assert info.skipped == ()
    scanned = set(range(8, 21)) if doc == MIXED else set(range(1, pages + 1))
    assert set(info.ocr_pages) == scanned and set(report.ocr_pages) == scanned
    # A passage is marked when any of its pages was read by OCR (one may join pages 7 and 8).
    assert _pages(c for c in chunks if c.ocr) >= scanned
    assert all(c.ocr == bool(scanned & _pages([c])) for c in chunks)
    assert "text recognised from scans (OCR)" in report.describe()


@needs_tesseract
def test_mixed_document_text_pages_come_from_the_text_layer(corpus_index):
    doc = read_document(CORPUS / MIXED, ocr=TesseractOcr(max_pages_per_document=0))
    layer = {p.number: p.text for p in doc.pages}
    assert set(layer) == set(range(1, 8))
    chunks = [c for c in corpus_index.snapshot.chunks if c.doc == MIXED and not c.ocr]
    for c in chunks:  # passages of pages 1-7 are verbatim slices of the text layer
        if c.page_start == c.page_end:
            assert layer[c.page_start][c.char_start:c.char_end] == c.text


@needs_tesseract
@pytest.mark.parametrize(("query", "doc", "page"), [
    # Page 3 of the scanned Woo decision: "Ik heb de e-mail boxen van managementteamleden en
    # hoger bij de inventarisatie van documenten betrokken."
    ("e-mailboxen van managementteamleden bij de inventarisatie betrokken", SCANNED, 3),
    # Page 8 of the mixed file, the first scanned one: "Het definitieve bedrag van de
    # heffingsvermindering bedraagt €3.250.000,00."
    ("definitieve bedrag van de heffingsvermindering investeringsverklaring", MIXED, 8),
    # Page 1 of the LNV nota, beside the handwritten note and the redactions.
    ("Tweeminutendebat mestbeleid wijzigingsvoorstellen 7e Actieprogramma Nitraatrichtlijn",
     REDACTED, 1),
])
def test_a_phrase_on_a_scanned_page_is_found_by_civicbot_search(corpus_index, query, doc,
                                                                  page):
    out = subprocess.run(
        [sys.executable, "-m", "civicbot.cli", "--index", str(corpus_index.path), "search",
         query, "-k", "5", "--json"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    found = [r for r in rows if r["doc"] == doc and r["page_start"] <= page <= r["page_end"]]
    assert found, [(r["doc"], r["page_start"]) for r in rows]
    assert found[0]["ocr"] is True


@needs_tesseract
def test_redactions_and_handwriting_do_not_become_passages(corpus_index):
    ocr_chunks = [c for c in corpus_index.snapshot.chunks if c.ocr]
    assert len(ocr_chunks) > 40
    for c in ocr_chunks:
        words = c.text.split()
        junk = junk_tokens(c.text)
        assert len(junk) <= max(1, 0.02 * len(words)), (c.doc, c.page_start, junk)
    nota = " ".join(c.text for c in ocr_chunks if c.doc == REDACTED)
    assert "Aan de Minister" in nota and "Kamerbrief over aangenomen moties" in nota
    # What the handwritten "akkoord/Dank!" and the redaction edges are read as.
    for fragment in ("phir", "A!", "__pga-pav/", "[yer", "L!", "/)"):
        assert fragment not in nota


@needs_tesseract
def test_the_confidence_filter_is_what_removes_the_scribbles():
    """Tesseract's raw words of the nota's first page hold the scribbles; the filter keeps
    the printed text and drops them."""
    ocr = TesseractOcr()
    image = next(ocr._render(CORPUS / REDACTED, [1]))[1]
    done = subprocess.run([ocr.command, "-", "-", "-l", "nld+eng", "--dpi", str(ocr.dpi),
                           "tsv"], input=image, capture_output=True, timeout=300, check=True)
    words = words_from_tsv(done.stdout.decode())
    kept = text_from_words(words)
    confident = {w.text for w in words if w.confidence >= MIN_WORD_CONFIDENCE}
    # The handwritten "akkoord/Dank!" and the redaction edges, as Tesseract reads them
    # ("phir", "A!", "__pga-pav/", ...): unsure words that are no printed word of the page.
    scribbles = {w.text for w in words
                 if w.confidence < MIN_WORD_CONFIDENCE and len(w.text) > 1} - confident
    assert len(scribbles) >= 3
    assert not scribbles & set(kept.split())
    assert junk_tokens(kept) == []
    printed = re.sub(r"\s+", " ", kept)
    assert "Naar aanleiding van het Tweeminutendebat mestbeleid" in printed


@needs_tesseract
def test_page_cap_leaves_later_pages_out_and_says_so(tmp_path):
    ocr = TesseractOcr(max_pages_per_document=2, dpi=150)
    corpus = Corpus(IndexStore(tmp_path / "index"), _embedder(), NO_CROSSLINGUAL, ocr=ocr)
    (report,) = corpus.ingest([CORPUS / SCANNED])
    assert report.ocr_pages == (1, 2)
    assert [(s.number, s.reason) for s in report.skipped] == [
        (n, "ocr-page-cap") for n in range(3, 11)]
    assert "beyond the OCR page limit (ocr.max_pages_per_document): pages 3–10" in (
        report.describe())


def _embedder():
    from civicbot.index.embed import make_embedder

    return make_embedder()


def test_without_tesseract_the_same_ingest_reports_the_skipped_pages(tmp_path):
    """A machine without Tesseract (here: [ocr] command names a program that does not
    exist): the CLI ingest keeps every text page, and says which pages it left out and how
    to read them."""
    files = [CORPUS / n for n in (SCANNED, REDACTED, TEXT_AS_IMAGE, GARBLED, MIXED)]
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               CIVICBOT_OCR_COMMAND=str(tmp_path / "no-tesseract-here"))
    out = subprocess.run(
        [sys.executable, "-m", "civicbot.cli", "--index", str(tmp_path / "index"), "ingest",
         *map(str, files)], capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert out.returncode == 1, out.stderr  # the scans without any text layer are rejected
    lines = {line.split(":")[0][2:]: line for line in out.stdout.splitlines() if ":" in line}
    fix = "sudo apt-get install tesseract-ocr tesseract-ocr-nld tesseract-ocr-eng"
    for name in (SCANNED, REDACTED):
        assert lines[name].startswith(f"✗ {name}: rejected (no-text)")
        assert "not installed" in lines[name] and fix in lines[name]
    assert lines[GARBLED].startswith(f"✗ {GARBLED}: rejected (garbled)") and fix in lines[GARBLED]
    assert lines[MIXED].startswith(f"✓ {MIXED}: added, 20 pages")
    assert ("scanned, not read because OCR (Tesseract) is not installed: pages 8–20"
            in lines[MIXED]) and fix in lines[MIXED]
    assert "pages 1–3" in lines[TEXT_AS_IMAGE] and fix in lines[TEXT_AS_IMAGE]

    snapshot = IndexStore(tmp_path / "index").load()
    assert set(snapshot.docs) == {MIXED, TEXT_AS_IMAGE}
    assert _pages(c for c in snapshot.chunks if c.doc == MIXED) == set(range(1, 8))
    assert not any(c.ocr for c in snapshot.chunks)
