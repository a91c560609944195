"""OCR of pages without a usable text layer, fast: which pages are read, how Tesseract's words
become text, what the reports say. Tesseract itself is played by a small script that answers
like it (the real program reads the real scans in tests/integration/test_ocr_corpus.py)."""

from __future__ import annotations

import sys
import textwrap

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from civicbot.config import OcrConfig, build
from civicbot.corpus import Corpus
from civicbot.errors import GarbledText, NoUsableText
from civicbot.index.store import IndexStore
from civicbot.ingest import chunk_document, read_document
from civicbot.ingest.ocr import TesseractOcr, check, text_from_words, words_from_tsv
from civicbot.ingest.quality import page_problem
from civicbot.ingest.reader import OcrResult
from tests.fakes import NO_CROSSLINGUAL, HashingEmbedder

TEXT = ("De gemeenteraad heeft op 12 maart besloten dat de huurtoeslag voor inwoners met een "
        "laag inkomen wordt verhoogd. Het college voert dit besluit uit en informeert de raad "
        "over de gevolgen voor de begroting van het komende jaar. ")
SCANNED = ("Het college van burgemeester en wethouders besluit de aanvraag voor een "
           "omgevingsvergunning voor het bouwen van een woning aan de Dorpsstraat toe te "
           "kennen. Tegen dit besluit kunt u binnen zes weken bezwaar maken.")


def make_pdf(path, pages):
    """A PDF whose pages have the given text layer (None: a page without one, as a scan)."""
    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(595, 842)
        if text:
            font = DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                     NameObject("/Subtype"): NameObject("/Type1"),
                                     NameObject("/BaseFont"): NameObject("/Helvetica")})
            page[NameObject("/Resources")] = DictionaryObject(
                {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
            lines = " ".join(f"({line}) Tj T*" for line in textwrap.wrap(text, 80))
            stream = DecodedStreamObject()
            stream.set_data(f"BT /F1 10 Tf 12 TL 50 800 Td {lines} ET".encode("latin-1"))
            page.replace_contents(stream)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


class FakeOcr:
    """An honest stand-in for TesseractOcr: fixed results per page, and a record of what it
    was asked to read."""

    variant = "ocrfake"

    def __init__(self, results: dict[int, OcrResult], cover: float = 1.0,
                 missing: str | None = None):
        self.results = results
        self.cover = cover
        self.missing = missing
        self.asked: list[list[int]] = []

    def problem(self):
        return self.missing

    def available(self):
        return self.missing is None

    def image_cover(self, path, numbers):
        return {n: self.cover for n in numbers}

    def recognise(self, path, numbers, progress=None):
        self.asked.append(list(numbers))
        for i, _ in enumerate(numbers, 1):
            if progress:
                progress(i, len(numbers))
        return {n: self.results.get(n, OcrResult("ok", "")) for n in numbers}


def tsv(rows):
    """Tesseract TSV for (block, paragraph, line, confidence, word) rows."""
    head = ("level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\t"
            "height\tconf\ttext")
    lines = [head, "1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t"]
    for i, (b, p, ln, conf, word) in enumerate(rows):
        lines.append(f"5\t1\t{b}\t{p}\t{ln}\t{i}\t0\t0\t10\t10\t{conf}\t{word}")
    return "\n".join(lines) + "\n"


# ---- from Tesseract's words to text --------------------------------------------------------

def test_confident_words_make_the_text_and_scribbles_are_dropped():
    rows = [(1, 1, 1, 96, w) for w in "Aan de Minister".split()]
    # handwriting ("akkoord, Dank!") read as fragments: mostly unsure, so the line goes
    rows += [(1, 2, 1, 28, "wy"), (1, 2, 1, 80, "L!"), (1, 2, 1, 44, "L"), (1, 2, 1, 49, "/)")]
    rows += [(1, 2, 2, 90, "|")]  # the edge of a redaction block: no letters or digits
    # one unsure word in a good line: the word goes, the line stays
    rows += [(2, 1, 1, 95, "Het"), (2, 1, 1, 12, "xq~"), (2, 1, 1, 93, "besluit")]
    rows += [(2, 1, 2, 91, "e"), (2, 1, 2, 95, "Voorgelegde"), (2, 1, 2, 94, "voorstellen")]
    text = text_from_words(words_from_tsv(tsv(rows)))
    assert text == "Aan de Minister\n\nHet besluit\n• Voorgelegde voorstellen"


def test_tsv_without_words_gives_no_text():
    assert text_from_words(words_from_tsv(tsv([]))) == ""
    assert text_from_words(words_from_tsv("")) == ""


def test_recognised_text_keeps_tables_that_the_layer_gate_refuses():
    table = "\n".join(f"Boksdoornstraat {n} 6543 SC 25.000,00 25.000,00" for n in range(57, 90))
    assert page_problem(table) == "garbled"  # as a text layer it could be encoding garbage
    assert page_problem(table, recognised=True) is None
    assert page_problem("L! wy", recognised=True) == "no-text"


# ---- which pages are read, and what becomes of them ----------------------------------------

def test_scanned_pages_are_read_by_ocr_with_their_page_numbers(tmp_path):
    pdf = make_pdf(tmp_path / "besluit.pdf", [TEXT * 2, None, None, None])
    ocr = FakeOcr({2: OcrResult("ok", SCANNED), 3: OcrResult("ok", "L! wy /)"),
                   4: OcrResult("timeout")})
    seen = []
    doc = read_document(pdf, ocr=ocr, ocr_progress=lambda done, total: seen.append(done))
    assert ocr.asked == [[2, 3, 4]]  # only the pages without a usable text layer
    assert seen == [1, 2, 3]
    assert [(p.number, p.ocr) for p in doc.pages] == [(1, False), (2, True)]
    assert doc.pages[1].text.startswith("Het college van burgemeester")
    assert [(s.number, s.reason) for s in doc.skipped] == [(3, "ocr-no-text"), (4, "ocr-timeout")]
    assert doc.ocr_pages == (2,) and doc.ocr_variant == "ocrfake"
    chunks = chunk_document(doc, budget=40, overlap=5)
    assert {c.page_start for c in chunks if c.ocr} == {2}
    assert all(not c.ocr for c in chunks if c.page_end == 1)


def test_a_thin_text_layer_over_images_is_read_again(tmp_path):
    # Text drawn as images: the text layer holds a footnote only.
    pdf = make_pdf(tmp_path / "factsheet.pdf", ["Zie ook artikel 95 lid 2 en overweging 165"])
    ocr = FakeOcr({1: OcrResult("ok", SCANNED * 2 + "\nZie ook artikel 95 lid 2")})
    doc = read_document(pdf, ocr=ocr)
    assert doc.pages[0].ocr and "Dorpsstraat" in doc.pages[0].text
    # Without images on the page the thin layer is all there is: OCR is not asked.
    plain = FakeOcr({}, cover=0.0)
    assert not read_document(pdf, ocr=plain).pages[0].ocr and plain.asked == []
    # OCR that finds no more than the layer does not replace it.
    poor = FakeOcr({1: OcrResult("ok", "Zie ook artikel 95 lid 2")})
    assert not read_document(pdf, ocr=poor).pages[0].ocr


def test_without_tesseract_scanned_pages_are_reported_with_the_fix(tmp_path):
    pdf = make_pdf(tmp_path / "besluit.pdf", [TEXT * 2, None])
    ocr = FakeOcr({}, missing="the OCR program `tesseract` (Tesseract) is not installed")
    doc = read_document(pdf, ocr=ocr)
    assert [(s.number, s.reason) for s in doc.skipped] == [(2, "ocr-unavailable")]
    assert ocr.asked == [] and doc.ocr_variant == ""

    scan = make_pdf(tmp_path / "scan.pdf", [None, None])
    with pytest.raises(NoUsableText, match="apt-get install tesseract-ocr") as info:
        read_document(scan, ocr=ocr)
    assert "probably scanned" in str(info.value) and "not installed" in str(info.value)


def test_ocr_off_or_fruitless_says_so(tmp_path):
    scan = make_pdf(tmp_path / "scan.pdf", [None])
    with pytest.raises(NoUsableText, match=r"\[ocr\] enabled = true"):
        read_document(scan)
    with pytest.raises(NoUsableText, match="OCR found no readable text") as info:
        read_document(scan, ocr=FakeOcr({1: OcrResult("ok", "|| ~~")}))
    assert not isinstance(info.value, GarbledText)
    with pytest.raises(NoUsableText, match="ocr.max_pages_per_document"):
        read_document(scan, ocr=FakeOcr({1: OcrResult("page-cap")}))


def test_text_files_are_never_sent_to_ocr(tmp_path):
    note = tmp_path / "leeg.txt"
    note.write_text("  \n", encoding="utf-8")
    ocr = FakeOcr({})
    with pytest.raises(NoUsableText):
        read_document(note, ocr=ocr)
    assert ocr.asked == []


# ---- the Tesseract adapter, with a script in Tesseract's place -----------------------------

FAKE_TESSERACT = """#!{python}
import sys, time
args = sys.argv[1:]
if args == ["--version"]:
    print("tesseract 5.3.0 (fake)")
elif args == ["--list-langs"]:
    print('List of available languages in "/fake" (2):')
    print("eng")
    print("nld")
else:
    image = sys.stdin.buffer.read()
    assert image.startswith(b"P5\\n"), image[:20]
    mode = {mode!r}
    if mode == "slow":
        time.sleep(30)
    if mode == "fail":
        sys.exit("fake failure")
    sys.stdout.write(open({tsv!r}).read())
"""


def fake_tesseract(tmp_path, mode="ok"):
    data = tmp_path / "page.tsv"
    data.write_text(tsv([(1, 1, 1, 95, w) for w in SCANNED.split()]), encoding="utf-8")
    script = tmp_path / f"tesseract-{mode}"
    script.write_text(FAKE_TESSERACT.format(python=sys.executable, mode=mode, tsv=str(data)))
    script.chmod(0o755)
    return str(script)


def test_adapter_renders_reads_in_parallel_and_caps_pages(tmp_path):
    pdf = make_pdf(tmp_path / "scan.pdf", [None] * 5)
    ocr = TesseractOcr(command=fake_tesseract(tmp_path), dpi=72, workers=2,
                       max_pages_per_document=2)
    assert ocr.available() and ocr.variant.startswith("ocr")
    seen = []
    results = ocr.recognise(pdf, [1, 2, 3, 4, 5], lambda done, total: seen.append((done, total)))
    assert {n: r.status for n, r in results.items()} == {
        1: "ok", 2: "ok", 3: "page-cap", 4: "page-cap", 5: "page-cap"}
    assert results[2].text == SCANNED
    assert seen == [(1, 2), (2, 2)]
    doc = read_document(pdf, ocr=ocr)
    assert [p.number for p in doc.pages] == [1, 2] and all(p.ocr for p in doc.pages)
    assert [(s.number, s.reason) for s in doc.skipped] == [
        (3, "ocr-page-cap"), (4, "ocr-page-cap"), (5, "ocr-page-cap")]


def test_adapter_time_limit_and_failures(tmp_path):
    pdf = make_pdf(tmp_path / "scan.pdf", [None])
    slow = TesseractOcr(command=fake_tesseract(tmp_path, "slow"), dpi=72, page_time_limit_s=1)
    assert slow.recognise(pdf, [1]) == {1: OcrResult("timeout")}
    broken = TesseractOcr(command=fake_tesseract(tmp_path, "fail"), dpi=72)
    assert broken.recognise(pdf, [1]) == {1: OcrResult("failed")}


def test_missing_program_or_language_data(tmp_path):
    pdf = make_pdf(tmp_path / "scan.pdf", [None, None])
    missing = TesseractOcr(command=str(tmp_path / "no-such-tesseract"))
    assert "not installed" in missing.problem()
    assert missing.recognise(pdf, [1, 2]) == {1: OcrResult("unavailable"),
                                              2: OcrResult("unavailable")}
    german = TesseractOcr(command=fake_tesseract(tmp_path), languages=("nld", "deu"))
    assert "tesseract-ocr-deu" in german.problem()


def test_doctor_check_names_the_fix(tmp_path):
    assert check(OcrConfig(command=fake_tesseract(tmp_path))) is None
    problem = check(OcrConfig(command=str(tmp_path / "no-such-tesseract")))
    assert "not installed" in problem and "apt-get install tesseract-ocr" in problem
    assert "enabled = false" in check(OcrConfig(enabled=False))
    assert "ocr.dpi" in check(OcrConfig(dpi=5000))


def test_config_section():
    cfg = build({"ocr": {"languages": ["nld"], "dpi": 300, "workers": 1}}, env={})
    assert cfg.ocr.languages == ("nld",) and cfg.ocr.dpi == 300 and cfg.ocr.enabled
    off = build({}, env={"CIVICBOT_OCR_ENABLED": "false"})
    assert not off.ocr.enabled


# ---- the corpus: reports, and reading again once OCR can run -------------------------------

def test_reports_and_reading_again_when_tesseract_arrives(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    make_pdf(folder / "besluit.pdf", [TEXT * 2, None, None])
    store = IndexStore(tmp_path / "index")
    absent = FakeOcr({}, missing="the OCR program `tesseract` (Tesseract) is not installed")
    corpus = Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL, ocr=absent)
    (report,) = corpus.ingest([folder])
    assert report.status == "added" and report.ocr_pages == ()
    line = report.describe()
    assert "OCR (Tesseract) is not installed: pages 2–3" in line
    assert "apt-get install tesseract-ocr tesseract-ocr-nld tesseract-ocr-eng" in line
    (again,) = corpus.ingest([folder])
    assert again.status == "unchanged"  # still no Tesseract: nothing to gain

    present = FakeOcr({2: OcrResult("ok", SCANNED), 3: OcrResult("ok", "")})
    progress = []
    corpus = Corpus(store, HashingEmbedder(), NO_CROSSLINGUAL, ocr=present)
    (report,) = corpus.ingest([folder], progress=lambda *a: progress.append(a))
    assert report.status == "replaced" and report.ocr_pages == (2,)
    assert ("OCR 1/2 pages: besluit.pdf", 0, 1) in progress
    line = report.describe()
    assert "text recognised from scans (OCR): pages 2" in line
    assert "no readable text found" in line and "pages 3" in line
    snapshot = store.load(HashingEmbedder().name)
    info = snapshot.docs["besluit.pdf"]
    assert info.ocr_pages == (2,) and info.ocr_variant == "ocrfake"
    # A passage is marked when any of its pages was read by OCR (here one spans pp. 1-2).
    assert all(c.ocr == (c.page_end >= 2) for c in snapshot.chunks)
    assert any("Dorpsstraat" in c.text for c in snapshot.chunks if c.ocr)
    (again,) = corpus.ingest([folder])
    assert again.status == "unchanged" and again.ocr_pages == (2,)


def test_cli_answers_mark_citations_from_scans(capsys):
    from civicbot.cli import _answer_json, _print_answer
    from civicbot.records import Answer, Citation

    scan = Citation(1, "besluit.pdf", "Besluit", 3, 3, "citaat", "", ocr=True)
    text = Citation(2, "nota.pdf", "Nota", 1, 1, "citaat", "")
    for language, note in (("nl", "tekst herkend uit een scan — controleer het origineel"),
                           ("en", "text recognised from a scan — check the original")):
        answer = Answer("vraag", "Antwoord.", "extractive", language, [scan, text])
        _print_answer(answer)
        assert capsys.readouterr().out.count(note) == 1
        assert [c["ocr"] for c in _answer_json(answer)["citations"]] == [True, False]
