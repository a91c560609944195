"""The audit log and the Curator: every corpus change is recorded once, with who and where
from; removed files leave the corpus folders; a damaged line does not hide the rest."""

from __future__ import annotations

import json

import pytest

from civicbot import config
from civicbot.audit import AuditLog, AuditRecord, Curator, RemovalRefused, records_for
from civicbot.cli import main
from civicbot.corpus import Corpus, IngestReport
from civicbot.index.store import IndexStore
from tests.fakes import HashingEmbedder

TEXT = ("De gemeente verleent subsidie voor het isoleren van woningen. Een aanvraag wordt "
        "binnen acht weken beoordeeld door het college van burgemeester en wethouders. ") * 8


def make(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    corpus = Corpus(IndexStore(tmp_path / "index"), HashingEmbedder(), crosslingual=False)
    log = AuditLog(tmp_path / "data" / "audit.jsonl")
    return folder, Curator(corpus, log, [folder], tmp_path / "data" / "attic")


def test_every_change_is_recorded_with_who_and_where(tmp_path):
    folder, curator = make(tmp_path)
    (folder / "isolatie.txt").write_text(TEXT)
    (folder / "kapot.pdf").write_bytes(b"this is not a pdf at all")
    reports = curator.ingest([folder], by="cli", prune_folders=[folder])
    assert {r.name: r.status for r in reports} == {"isolatie.txt": "added",
                                                  "kapot.pdf": "rejected"}
    # nothing changed: nothing recorded (the rejected file is reported but is no change twice)
    (folder / "kapot.pdf").unlink()
    curator.ingest([folder], by="cli", prune_folders=[folder])
    (folder / "isolatie.txt").write_text(TEXT + "Nieuw: de termijn is zes weken.")
    curator.ingest([folder / "isolatie.txt"], by="@editor:example.org", origin="upload")
    info = curator.corpus.documents()["isolatie.txt"]
    assert info.added_by == "@editor:example.org" and info.added_at

    removed = curator.remove(["isolatie.txt"], by="@editor:example.org")
    assert [r.status for r in removed] == ["removed"]
    assert not (folder / "isolatie.txt").exists()  # out of the folder, so no watcher re-adds it
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "data" / "attic").iterdir()] == [
        "isolatie.txt"]

    history = AuditLog(tmp_path / "data" / "audit.jsonl").records()  # survives a restart
    assert [(r.action, r.name, r.by) for r in history] == [
        ("added", "isolatie.txt", "cli"),
        ("rejected", "kapot.pdf", "cli"),
        ("replaced", "isolatie.txt", "@editor:example.org"),
        ("removed", "isolatie.txt", "@editor:example.org"),
    ]
    added, rejected, replaced, _ = history
    assert added.source == str(folder) and len(added.sha256) == 64
    assert replaced.source == "upload" and replaced.sha256 != added.sha256
    assert rejected.reason.startswith("corrupt") and rejected.sha256
    assert all(r.at.endswith("+00:00") for r in history)  # UTC


def test_unknown_names_and_url_documents_are_not_removed(tmp_path):
    folder, curator = make(tmp_path)
    (folder / "a.txt").write_text(TEXT)
    curator.ingest([folder / "a.txt"], by="sync", source=lambda _p: "https://example.org/a.txt")
    with pytest.raises(RemovalRefused, match=r"\[\[sources\]\]"):
        curator.remove(["a.txt"], by="@e:x")
    reports = curator.remove(["nope.pdf"], by="@e:x")
    assert reports[0].status == "rejected"
    assert "a.txt" in curator.corpus.documents()
    assert [r.action for r in curator.history()] == ["added", "rejected"]


def test_a_damaged_line_is_skipped_not_fatal(tmp_path, caplog):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(records_for([IngestReport("a.pdf", "added", sha256="1" * 64)], "cli"))
    with log.path.open("a") as fh:
        fh.write('{"at": "2024-01-01T00:00:00+00:00", "action": "add')  # torn write
        fh.write("\n")
    log.append([AuditRecord("2024-01-02T00:00:00+00:00", "removed", "a.pdf", by="cli")])
    assert [r.action for r in log.records()] == ["added", "removed"]
    assert "damaged" in caplog.text


def test_cli_docs_history(tmp_path, capsys, monkeypatch):
    folder, curator = make(tmp_path)
    (folder / "a.txt").write_text(TEXT)
    curator.ingest([folder], by="cli")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[matrix]\ndata_dir = "{tmp_path / "data"}"\n'
                   f'[index]\npath = "{tmp_path}/index"\n')
    assert config.load(cfg, env={}).matrix.data_dir == str(tmp_path / "data")
    assert main(["--config", str(cfg), "docs", "history", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["action"], r["name"], r["by"]) for r in rows] == [("added", "a.txt", "cli")]
    assert main(["--config", str(cfg), "docs", "history"]) == 0
    assert "added" in capsys.readouterr().out
