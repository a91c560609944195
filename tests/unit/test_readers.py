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
