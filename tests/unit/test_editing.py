"""The pure decisions of editing in Matrix: which events are uploads, which names and bytes
are acceptable, and the reports editors read."""

from __future__ import annotations

import pytest

from civicbot.corpus import IngestReport
from civicbot.matrix.editing import (
    UploadRefused,
    check_content,
    file_of,
    reply_target,
    report_text,
    upload_name,
)
from civicbot.records import PageIssue


def test_file_events_plain_and_encrypted():
    plain = {"type": "m.room.message", "event_id": "$f", "sender": "@e:x",
             "content": {"msgtype": "m.file", "body": "plan.pdf", "url": "mxc://x/abc",
                         "info": {"size": 12}}}
    ref = file_of("!r", plain)
    assert ref is not None and (ref.name, ref.url, ref.size, ref.encryption) == (
        "plan.pdf", "mxc://x/abc", 12, None)
    secret = {"url": "mxc://x/enc", "key": {"k": "K"}, "iv": "IV", "hashes": {"sha256": "H"}}
    encrypted = {"type": "m.room.message", "event_id": "$g", "sender": "@e:x",
                 "content": {"msgtype": "m.file", "body": "a.pdf", "file": secret}}
    ref = file_of("!r", encrypted)
    assert ref is not None and ref.url == "mxc://x/enc" and ref.encryption == secret
    assert file_of("!r", {"type": "m.room.message", "content": {"msgtype": "m.text",
                                                                 "body": "hi"}}) is None
    reply = {"content": {"m.relates_to": {"m.in_reply_to": {"event_id": "$f"}}}}
    assert reply_target(reply) == "$f" and reply_target({"content": {}}) is None


def test_upload_names_types_and_content():
    assert upload_name("../../../etc/cron.d/x.pdf") == "x.pdf"
    with pytest.raises(UploadRefused) as info:
        upload_name("virus.exe")
    assert info.value.key == "type"
    with pytest.raises(UploadRefused):
        upload_name("..")
    check_content("a.pdf", b"%PDF-1.7\n...", 100)
    for name, data, key in [("a.pdf", b"PK\x03\x04zip", "content"),
                            ("a.txt", b"text\x00binary", "content"),
                            ("a.pdf", b"%PDF-" + b"x" * 200, "too_large")]:
        with pytest.raises(UploadRefused) as info:
            check_content(name, data, 100)
        assert info.value.key == key


def test_reports_for_editors_in_both_languages():
    added = IngestReport("a.pdf", "added", 3, 5, "nl", "Afvalplan",
                         (PageIssue(2, "no-text"), PageIssue(3, "no-text")))
    assert report_text(added, "en").splitlines() == [
        "Added: a.pdf", "Title: Afvalplan", "Pages: 3, passages: 5, language: nl",
        "Left out: pages 2, 3 (no text layer, scanned?)"]
    assert report_text(added, "nl").startswith("Toegevoegd: a.pdf")
    rejected = IngestReport("b.pdf", "rejected", reason="corrupt", message="not a PDF")
    assert report_text(rejected, "nl") == (
        "b.pdf is niet toegevoegd (corrupt): not a PDF\nEr is niets gewijzigd.")


def test_the_ingest_line_counts_in_words_a_person_reads():
    one = IngestReport("motie.pdf", "added", 1, 1, "nl")
    assert one.describe() == "✓ motie.pdf: added, 1 page, 1 passage, language nl"
    many = IngestReport("plan.pdf", "added", 20, 28, "nl")
    assert many.describe() == "✓ plan.pdf: added, 20 pages, 28 passages, language nl"
