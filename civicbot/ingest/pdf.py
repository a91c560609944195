"""The pypdf adapter: the only module that imports pypdf. Raw page texts out, errors named."""

from __future__ import annotations

import logging
from pathlib import Path

from civicbot.errors import CorruptDocument, EncryptedDocument

log = logging.getLogger(__name__)


def pdf_pages(path: Path) -> list[str]:
    """The extracted text of every page, in order (page n is item n-1)."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns per odd object; we report
    name = path.name
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many "encrypted" PDFs only carry an owner password and open with an empty one.
            try:
                if not reader.decrypt(""):
                    raise EncryptedDocument(name, _ENCRYPTED)
            except (FileNotDecryptedError, NotImplementedError) as exc:
                raise EncryptedDocument(name, _ENCRYPTED) from exc
        texts = []
        for page in reader.pages:
            try:
                texts.append(page.extract_text() or "")
            except Exception as exc:  # a single broken page must not sink the document
                log.warning("%s: a page could not be read (%s)", name, exc)
                texts.append("")
        return texts
    except (EncryptedDocument, CorruptDocument):
        raise
    except FileNotDecryptedError as exc:
        raise EncryptedDocument(name, _ENCRYPTED) from exc
    except Exception as exc:  # noqa: BLE001 - any reader failure (IndexError, RecursionError,
        # MemoryError, ...) means the same to the editor: this file cannot be read
        raise CorruptDocument(
            name, f"this is not a readable PDF ({type(exc).__name__}: {exc}); "
            "open it in a PDF viewer, save or export it again, and add the new file"
        ) from exc


_ENCRYPTED = (
    "the PDF is protected with a password; ask the publisher for an unprotected copy, "
    "or remove the protection and add the file again"
)
