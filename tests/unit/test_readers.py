"""Readers on small files made here: encrypted and corrupt PDFs, text, Markdown, HTML."""

import pytest
from pypdf import PdfWriter

from civicbot.errors import CorruptDocument, EncryptedDocument, NoUsableText, UnsupportedDocument
from civicbot.ingest import read_document


def _blank_pdf(path, password=None):
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    if password:
        writer.encrypt(user_password=password, owner_password="owner")
    with open(path, "wb") as fh:
        writer.write(fh)


def test_password_protected_pdf_is_reported_as_such(tmp_path):
    path = tmp_path / "secret.pdf"
    _blank_pdf(path, password="geheim")
    with pytest.raises(EncryptedDocument, match="protected with a password"):
        read_document(path)


def test_pdf_without_text_is_reported_as_scanned(tmp_path):
    path = tmp_path / "scan.pdf"
    _blank_pdf(path)
    with pytest.raises(NoUsableText, match="probably scanned"):
        read_document(path)


def test_corrupt_and_unsupported_files(tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    with pytest.raises(CorruptDocument, match="not a readable PDF"):
        read_document(bad)
    other = tmp_path / "sheet.xlsx"
    other.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedDocument, match="not supported"):
        read_document(other)


def test_markdown_title_language_and_hash(tmp_path):
    path = tmp_path / "afval.md"
    path.write_text("# Afvalkalender 2026\n\nHet restafval wordt elke twee weken opgehaald in "
                    "alle wijken van de gemeente, behalve op feestdagen.", encoding="utf-8")
    doc = read_document(path, source="corpus")
    assert doc.title == "Afvalkalender 2026" and doc.language == "nl"
    assert doc.page_count == 1 and len(doc.sha256) == 64 and doc.source == "corpus"


def test_size_limit(tmp_path):
    from civicbot.errors import DocumentTooLarge

    path = tmp_path / "big.txt"
    path.write_text("woord " * 1000)
    with pytest.raises(DocumentTooLarge, match="corpus.max_file_mb"):
        read_document(path, max_bytes=100)


def test_titles_come_from_the_subject_line_or_the_first_heading_past_the_letterhead():
    from civicbot.ingest.reader import guess_title

    letter = ("> Retouradres Postbus 40219 8004 DE Zwolle\n\nDatum 29 maart 2023\n"
              "Betreft Beslissing op verzoek Woo/2023/035\n\nPagina 1 van 7\n")
    assert guess_title(letter, "x") == "Beslissing op verzoek Woo/2023/035"
    council = ("Council of the\nEuropean Union\n\nBrussels, 26 January 2024\n(OR. en)\n5662/24\n"
               "TELECOM 22\nJAI 98\nInterinstitutional File:\n2021/0106(COD)\nNOTE\n"
               "From: Presidency\nTo: Permanent Representatives Committee\n"
               "Subject: Proposal for a Regulation laying down harmonised rules on\n"
               "artificial intelligence (Artificial Intelligence Act)\n\nI. INTRODUCTION\n")
    assert guess_title(council, "x") == ("Proposal for a Regulation laying down harmonised "
                                         "rules on artificial intelligence (Artificial "
                                         "Intelligence Act)")
    briefing = ("BRIEFING\n\nAuthor: Marie Lecerf\nMembers' Research Service\n"
                "Understanding EU policies for people\nwith disabilities\nSUMMARY\n"
                "The EU and its Member States have signed the Convention.")
    assert guess_title(briefing, "x") == "Understanding EU policies for people with disabilities"
    ministry = ("Ministerie van Landbouw,\nNatuur en Voedselkwaliteit\n\nDirectoraat-generaal "
                "Agro\nAan de Minister\nTER BESLISSING\nDatum\n12 november 2021\n"
                "Kamerbrief over aangenomen moties\n")
    assert guess_title(ministry, "x") == "Kamerbrief over aangenomen moties"
    # An empty form field is no subject; a heading over two short lines is joined.
    assert guess_title("Betreft:\n\nHandreiking inventarisatie,\nclassificatie AI-systemen\n",
                       "x") == "Handreiking inventarisatie, classificatie AI-systemen"
    long = "Subject: " + "a very long subject line " * 12
    assert len(guess_title(long, "x")) <= 150 and guess_title(long, "x").endswith("…")


def test_a_long_title_keeps_the_name_in_brackets_that_people_use():
    """An EU act's subject line ends in its short name; cut at 150 characters it lost
    "(General Data Protection Regulation)", the words a question names it by."""
    from civicbot.ingest.reader import guess_title

    gdpr = ("LEGISLATIVE ACTS AND OTHER INSTRUMENTS\n"
            "Subject: Position of the Council at first reading with a view to the adoption of a\n"
            "REGULATION OF THE EUROPEAN PARLIAMENT AND OF THE\n"
            "COUNCIL on the protection of natural persons with regard to the\n"
            "processing of personal data and on the free movement of such data, and\n"
            "repealing Directive 95/46/EC (General Data Protection Regulation)\n"
            "REGULATION (EU) 2016/...\n")
    title = guess_title(gdpr, "x")
    assert title.startswith("Position of the Council at first reading")
    assert title.endswith(" … (General Data Protection Regulation)") and len(title) <= 150
    # The cut falls inside the name: the title ends after it.
    act = ("Subject: Proposal for a Regulation of the European Parliament and of the Council\n"
           "laying down harmonised rules on artificial intelligence (Artificial Intelligence\n"
           "Act) and amending certain Union legislative acts\n"
           "- Analysis of the final compromise text with a view to agreement\n")
    assert guess_title(act, "x").endswith("artificial intelligence (Artificial Intelligence "
                                          "Act) …")
    # A bracket that is no name ("(EU)", a number, one word) is cut like any other text.
    omnibus = ("Betreft: VERORDENING VAN HET EUROPEES PARLEMENT EN DE RAAD tot wijziging van de "
               "Verordeningen (EU) 2024/1689, (EU) 2018/1139 en (EU) 2023/1230 wat betreft "
               "vereenvoudiging van de uitvoering (2025/0359) (Omnibus)\n")
    assert guess_title(omnibus, "x").endswith("wat betreft …")
    for no_name in ("(Voor de EER relevante tekst)", "(hierna: de minister)"):
        assert guess_title(omnibus.replace("(Omnibus)", no_name), "x").endswith("wat betreft …")
    omnibus = omnibus.replace("(Omnibus)", "(digitale omnibus inzake AI)")
    assert guess_title(omnibus, "x").endswith(" … (digitale omnibus inzake AI)")
