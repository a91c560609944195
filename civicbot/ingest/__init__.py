"""Documents in: readers, text clean-up, the quality gate and chunking."""

from civicbot.ingest.chunk import chunk_document
from civicbot.ingest.reader import SUFFIXES, file_sha256, read_document, supported

__all__ = ["SUFFIXES", "chunk_document", "file_sha256", "read_document", "supported"]
