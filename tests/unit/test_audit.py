"""The audit log and the Curator: every corpus change is recorded once, with who and where
from; removed files leave the corpus folders; a damaged line does not hide the rest."""

from __future__ import annotations

import json

import pytest

from civicbot import config
from civicbot.audit import AuditLog, AuditRecord, records_for
from civicbot.cli import main
from civicbot.corpus import Corpus, IngestReport
from civicbot.curator import Curator, RemovalRefused
from civicbot.index.store import IndexStore
from tests.fakes import NO_CROSSLINGUAL, HashingEmbedder

TEXT = ("De gemeente verleent subsidie voor het isoleren van woningen. Een aanvraag wordt "
        "binnen acht weken beoordeeld door het college van burgemeester en wethouders. ") * 8


def make(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    corpus = Corpus(IndexStore(tmp_path / "index"), HashingEmbedder(), NO_CROSSLINGUAL)
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


def staged(tmp_path, name: str, text: str):
    path = tmp_path / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_replaced_file_in_a_subfolder_goes_to_the_attic_and_the_watch_stays_quiet(tmp_path):
    from civicbot.sync import Syncer

    folder, curator = make(tmp_path)
    (folder / "wijk").mkdir()
    (folder / "wijk" / "plan.txt").write_text(TEXT)
    curator.ingest([folder], by="folder")
    assert curator.corpus.documents()["plan.txt"].source == str(folder / "wijk")

    new = TEXT + " Gewijzigd: de termijn is zes weken."
    report = curator.store(staged(tmp_path, "plan.txt", new), by="@e:x", replace=True)
    assert report.status == "replaced"
    # the new version lies where the old one lay; the old one is in the attic
    assert (folder / "wijk" / "plan.txt").read_text() == new
    assert not (folder / "plan.txt").exists()
    kept = list((tmp_path / "data" / "attic").iterdir())
    assert len(kept) == 1 and kept[0].read_text() == TEXT
    assert curator.corpus.documents()["plan.txt"].source == str(folder / "wijk")
    cfg = config.build({"matrix": {"data_dir": str(tmp_path / "data")}}, env={})
    syncer = Syncer(curator, cfg)
    assert syncer.watch_folders() == [] and syncer.watch_folders() == []  # no flipping


def test_only_indexed_non_source_documents_are_replaced_and_only_inside_the_folders(tmp_path):
    from civicbot.curator import OutsideCorpus

    folder, curator = make(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    report = curator.store(staged(tmp_path, "outside.txt", TEXT), by="@e:x", replace=True)
    assert report.status == "rejected" and report.reason == "unknown"
    assert outside.read_text() == "untouched"
    for name in ("../outside.txt", ".hidden.txt", "a/b.txt", ""):
        with pytest.raises(OutsideCorpus):
            curator.destination(folder, name)
    (folder / "link.txt").symlink_to(outside)
    with pytest.raises(OutsideCorpus):
        curator.destination(folder, "link.txt")

    (folder / "a.txt").write_text(TEXT)
    curator.ingest([folder / "a.txt"], by="sync", source=lambda _p: "https://example.org/a.txt")
    with pytest.raises(RemovalRefused, match=r"\[\[sources\]\]"):
        curator.store(staged(tmp_path, "a.txt", TEXT + " Anders."), by="@e:x", replace=True)
    assert curator.corpus.documents()["a.txt"].source == "https://example.org/a.txt"


def test_a_file_that_cannot_be_stored_leaves_the_index_and_the_folder_as_they_were(
        tmp_path, monkeypatch):
    import errno
    import shutil as shutil_mod

    folder, curator = make(tmp_path)
    (folder / "plan.txt").write_text(TEXT)
    curator.ingest([folder], by="cli")
    before = curator.corpus.documents()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil_mod, "copyfileobj", disk_full)
    new = TEXT + " Gewijzigd."
    report = curator.store(staged(tmp_path, "plan.txt", new), by="@e:x", replace=True)
    assert report.status == "rejected" and report.reason == "not-stored"
    assert "No space left" in report.message
    assert curator.corpus.documents() == before  # the index is as it was
    assert (folder / "plan.txt").read_text() == TEXT  # the old file is back in place
    assert [p.name for p in folder.iterdir()] == ["plan.txt"]  # no temporary file left
    report = curator.store(staged(tmp_path, "nieuw.txt", new), by="@e:x", replace=False)
    assert report.status == "rejected" and set(curator.corpus.documents()) == {"plan.txt"}
    assert [(r.action, r.name) for r in curator.history()] == [
        ("added", "plan.txt"), ("rejected", "plan.txt"), ("rejected", "nieuw.txt")]


def test_a_removal_whose_file_cannot_be_put_away_removes_nothing(tmp_path, monkeypatch):
    """When a file cannot be moved into the attic (disk full, a read-only attic), the index,
    the folder and the record stay as they were and the editor is told why."""
    folder, curator = make(tmp_path)
    (folder / "isolatie.txt").write_text(TEXT)
    (folder / "zonnepanelen.txt").write_text(TEXT.replace("isoleren van woningen",
                                                          "plaatsen van zonnepanelen"))
    curator.ingest([folder], by="cli")
    real = curator.put_away

    def full(path):
        if path.name == "zonnepanelen.txt":
            raise OSError(28, "No space left on device")
        return real(path)

    monkeypatch.setattr(curator, "put_away", full)
    with pytest.raises(RemovalRefused, match="No space left on device.*nothing was removed"):
        curator.remove(["isolatie.txt", "zonnepanelen.txt"], by="@editor:example.org")
    assert set(curator.corpus.documents()) == {"isolatie.txt", "zonnepanelen.txt"}
    assert (folder / "isolatie.txt").read_text() == TEXT  # moved back from the attic
    assert (folder / "zonnepanelen.txt").exists()
    assert [r.action for r in curator.history()] == ["added", "added"]
