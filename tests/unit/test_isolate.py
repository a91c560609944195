"""Untrusted files are parsed in a limited worker process: a reader that raises anything, a
file that loops, or one that eats memory costs one rejected file, never the batch or the bot."""

from __future__ import annotations

import time

import pytest

from civicbot.audit import AuditLog
from civicbot.corpus import Corpus
from civicbot.curator import Curator
from civicbot.errors import CorruptDocument
from civicbot.index.store import IndexStore
from civicbot.ingest.isolate import Worker, WorkerLimit, parse
from tests.conftest import CORPUS, MOTIE
from tests.fakes import NO_CROSSLINGUAL, HashingEmbedder
from tests.unit.isolate_tasks import answer, burn, eat_memory, nap, spin, spin_pages


def certificate_encrypted_pdf() -> bytes:
    """A well-formed little PDF encrypted for a certificate holder (/Adobe.PubSec): pypdf
    raises NotImplementedError while opening it, which the reader did not expect."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>",
               b"<< /Filter /Adobe.PubSec /SubFilter /adbe.pkcs7.s5 /V 4 /R 4 >>"]
    out = bytearray(b"%PDF-1.6\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 3 0 R /ID [<00> <00>] >>\n"
            b"startxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return bytes(out)


def test_a_reader_exception_rejects_one_file_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a-odd.pdf").write_bytes(certificate_encrypted_pdf())
    (folder / MOTIE).write_bytes((CORPUS / MOTIE).read_bytes())
    corpus = Corpus(IndexStore(tmp_path / "index"), HashingEmbedder(), NO_CROSSLINGUAL)
    curator = Curator(corpus, AuditLog(tmp_path / "audit.jsonl"), [folder], tmp_path / "attic")
    reports = {r.name: r for r in curator.ingest([folder], by="cli")}
    assert reports["a-odd.pdf"].status == "rejected"
    assert reports["a-odd.pdf"].reason == "corrupt"
    assert "NotImplementedError" in reports["a-odd.pdf"].message
    assert reports[MOTIE].status == "added"
    assert list(corpus.documents()) == [MOTIE]
    assert [(r.action, r.name) for r in curator.history()] == [
        ("rejected", "a-odd.pdf"), ("added", MOTIE)]


def test_a_worker_stopped_by_its_cpu_limit_is_replaced():
    worker = Worker(cpu_s=1, stall_s=60)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerLimit, match="more than 1 s of processor time"):
            worker.run(spin)
        assert time.monotonic() - started < 30
        assert worker.run(answer) == 42  # a fresh worker takes the next file
    finally:
        worker.close()


def test_memory_limit_and_a_stalled_worker():
    worker = Worker(cpu_s=30, stall_s=1, memory_bytes=1 << 30)
    try:
        with pytest.raises(RuntimeError, match="MemoryError"):
            worker.run(eat_memory)
        with pytest.raises(WorkerLimit, match="no progress for 1 s"):
            worker.run(nap, 30)
        assert worker.run(nap, 0) == "awake"
    finally:
        worker.close()


def test_the_cpu_limit_counts_per_file_not_per_worker():
    worker = Worker(cpu_s=2, stall_s=60)
    try:
        for _ in range(3):  # 3 × 1 s of CPU in one worker, each file under its 2 s
            assert worker.run(burn, 1.0) == "done"
    finally:
        worker.close()


def test_a_looping_parse_is_a_corrupt_document(tmp_path, monkeypatch):
    from civicbot.ingest import isolate

    path = tmp_path / "loop.pdf"
    path.write_bytes(b"%PDF-1.4\n")
    worker = Worker(cpu_s=1, stall_s=60)
    monkeypatch.setattr(isolate, "raw_pages", spin_pages)  # pickled by name: the worker
    try:                                                    # imports the looping one
        with pytest.raises(CorruptDocument, match="processor time"):
            parse(path, worker)
    finally:
        worker.close()


def test_ocr_rendering_runs_in_the_worker_and_a_stuck_page_fails_alone(tmp_path, monkeypatch):
    import shutil

    from civicbot.ingest import isolate, ocr
    from civicbot.ingest.reader import OcrResult
    from tests.unit.isolate_tasks import spin_render

    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed")
    worker = Worker(cpu_s=1, stall_s=60)
    monkeypatch.setattr(isolate, "_shared", worker)
    monkeypatch.setattr(ocr, "render_page", spin_render)
    path = tmp_path / "scan.pdf"
    path.write_bytes((CORPUS / MOTIE).read_bytes())
    try:
        started = time.monotonic()
        results = ocr.TesseractOcr().recognise(path, [1, 2, 3])
        # the first page stopped the worker; the others are not tried
        assert results == {n: OcrResult("failed") for n in (1, 2, 3)}
        assert time.monotonic() - started < 30
    finally:
        worker.close()
