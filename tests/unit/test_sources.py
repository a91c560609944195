"""Public sources and watched folders, fast: a real HTTP server on loopback (conditional
requests, errors), the hashing fake embedder, text documents."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from civicbot import config
from civicbot.audit import AuditLog
from civicbot.corpus import Corpus
from civicbot.curator import Curator
from civicbot.index.store import IndexStore
from civicbot.sources import SourceFailed, fetch, name_from_url, safe_file_name
from civicbot.sync import Syncer
from tests.fakes import NO_CROSSLINGUAL, HashingEmbedder

TEXT = ("Het college stelt een afvalplan vast. Grof huishoudelijk afval wordt op afspraak "
        "opgehaald en restafval elke dinsdag. ") * 8


@dataclass
class Site:
    """What the loopback server serves, and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)  # forced answers, e.g. 404, 500
    log: list[tuple[str, str, int]] = field(default_factory=list)  # (path, If-None-Match, status)
    url: str = ""

    def etag(self, name: str) -> str:
        return '"' + hashlib.sha256(self.files[name]).hexdigest()[:16] + '"'

    def answers(self, name: str) -> list[int]:
        return [status for path, _, status in self.log if path == "/" + name]


@contextlib.contextmanager
def serving(site: Site) -> Iterator[Site]:
    """An HTTP server on loopback in a thread, answering conditional GETs with 304."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            name = self.path.lstrip("/")
            condition = self.headers.get("If-None-Match", "")
            if name in site.status:
                code = site.status[name]
            elif name not in site.files:
                code = 404
            elif condition and condition == site.etag(name):
                code = 304
            else:
                code = 200
            site.log.append((self.path, condition, code))
            if code != 200:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = site.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", site.etag(name))
            self.send_header("Last-Modified", "Tue, 01 Jul 2025 10:00:00 GMT")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


def make_syncer(tmp_path, sources, embedder=None, **sync) -> Syncer:
    cfg = config.build({"matrix": {"data_dir": str(tmp_path / "data")},
                        "corpus": {"paths": [str(tmp_path / "corpus")]},
                        "index": {"path": str(tmp_path / "index")},
                        "sync": {"timeout_s": 10.0, **sync},
                        "sources": sources}, env={})
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    corpus = Corpus(IndexStore(tmp_path / "index"), embedder or HashingEmbedder(),
                    NO_CROSSLINGUAL)
    curator = Curator(corpus, AuditLog(tmp_path / "data" / "audit.jsonl"), [folder],
                      tmp_path / "data" / "attic")
    return Syncer(curator, cfg)


def test_file_names_from_users_and_urls_are_made_safe():
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("..\\..\\boot.ini") == "boot.ini"
    assert safe_file_name(".bashrc") == "bashrc"
    assert safe_file_name("a\x00b\nc.pdf") == "abc.pdf"
    assert safe_file_name("..") is None and safe_file_name("/") is None
    long = safe_file_name("x" * 300 + ".pdf")
    assert long is not None and len(long) <= 120 and long.endswith(".pdf")
    assert name_from_url("https://a.example/dir/Beleid%20plan.pdf?x=1") == "Beleid plan.pdf"


def test_sources_sync_conditionally_and_keep_the_last_good_copy(tmp_path):
    with serving(Site(files={"afval.txt": TEXT.encode()})) as site:
        syncer = make_syncer(tmp_path, [{"url": f"{site.url}/afval.txt"}])
        corpus = syncer.curator.corpus

        reports, notices = syncer.fetch_sources()
        assert [r.status for r in reports] == ["added"] and notices == []
        info = corpus.documents()["afval.txt"]
        assert info.source == f"{site.url}/afval.txt" and info.added_by == "sync"

        # unchanged: a conditional request, answered 304, nothing downloaded or re-read
        reports, _ = syncer.fetch_sources()
        assert [r.status for r in reports] == ["not-modified"]
        assert site.log[-1] == ("/afval.txt", site.etag("afval.txt"), 304)

        # changed: downloaded and re-ingested
        site.files["afval.txt"] = (TEXT + "Vanaf 2026 ook op vrijdag.").encode()
        reports, _ = syncer.fetch_sources()
        assert [r.status for r in reports] == ["replaced"]
        good_sha = corpus.documents()["afval.txt"].sha256

        # failing: the last good copy keeps serving; the editors are told once
        site.status["afval.txt"] = 500
        reports, notices = syncer.fetch_sources()
        assert reports[0].status == "failed" and "500" in reports[0].message
        assert len(notices) == 1 and "500" in notices[0] and "last good copy" in notices[0]
        site.status["afval.txt"] = 404
        reports, notices = syncer.fetch_sources()
        assert reports[0].status == "failed" and notices == []  # still failing: no repeat
        assert corpus.documents()["afval.txt"].sha256 == good_sha

        del site.status["afval.txt"]
        reports, notices = syncer.fetch_sources()
        assert reports[0].status == "not-modified" and notices == [
            f"✓ Source afval.txt ({site.url}/afval.txt) works again."]

    # the notices survive a restart: a new Syncer does not repeat an old failure
    assert make_syncer(tmp_path, []).state.sources[f"{site.url}/afval.txt"]["failing"] is False
    actions = [(r.action, r.by) for r in syncer.curator.history()]
    assert actions == [("added", "sync"), ("replaced", "sync")]


def test_a_sha256_mismatch_is_refused(tmp_path):
    with serving(Site(files={"afval.txt": TEXT.encode()})) as site:
        wrong = "0" * 64
        syncer = make_syncer(tmp_path, [{"url": f"{site.url}/afval.txt", "sha256": wrong}])
        reports, notices = syncer.fetch_sources()
        assert reports[0].status == "failed" and "sha256" in reports[0].message
        assert notices and "no earlier copy" in notices[0]
        assert syncer.curator.corpus.documents() == {}
        assert not (tmp_path / "data" / "sources" / "afval.txt").exists()
        syncer.fetch_sources()  # the same refused version is recorded once
        refused = [r for r in syncer.curator.history() if r.action == "rejected"]
        assert len(refused) == 1 and refused[0].reason.startswith("sha256-mismatch")

        right = hashlib.sha256(TEXT.encode()).hexdigest()
        syncer = make_syncer(tmp_path, [{"url": f"{site.url}/afval.txt", "sha256": right}])
        assert [r.status for r in syncer.fetch_sources()[0]] == ["added"]


def test_size_limit_and_unreachable_server(tmp_path):
    with serving(Site(files={"big.txt": b"x" * 2_000_001})) as site:
        with pytest.raises(SourceFailed, match="limit of 1 MB"):
            fetch(f"{site.url}/big.txt", tmp_path / "big.txt", max_bytes=1_000_000)
        assert list(tmp_path.iterdir()) == []  # no partial file left
        port = site.url.rsplit(":", 1)[1]
    with pytest.raises(SourceFailed) as info:
        fetch(f"http://127.0.0.1:{port}/big.txt", tmp_path / "big.txt", timeout=5)
    assert info.value.reason == "network"


def test_watched_folders_apply_new_changed_and_deleted_files(tmp_path):
    syncer = make_syncer(tmp_path, [])
    folder = tmp_path / "corpus"
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.pdf").write_bytes(b"not a pdf")
    reports = syncer.watch_folders()
    assert sorted((r.name, r.status) for r in reports) == [("a.txt", "added"),
                                                           ("b.pdf", "rejected")]
    assert syncer.watch_folders() == []  # nothing changed, the rejected file is not re-read
    (folder / "a.txt").write_text(TEXT + " Gewijzigd.")
    assert [(r.name, r.status) for r in syncer.watch_folders()] == [("a.txt", "replaced")]
    (folder / "a.txt").unlink()
    assert [(r.name, r.status) for r in syncer.watch_folders()] == [("a.txt", "removed")]
    assert syncer.curator.corpus.documents() == {}
    history = [(r.action, r.name, r.by) for r in syncer.curator.history()]
    assert history == [("added", "a.txt", "folder"), ("rejected", "b.pdf", "folder"),
                       ("replaced", "a.txt", "folder"), ("removed", "a.txt", "folder")]


def test_the_example_sources_load_and_match_the_shared_corpus_hashes():
    import tomllib

    from tests.conftest import CORPUS, ROOT

    data = tomllib.loads((ROOT / "corpus" / "sources.example.toml").read_text())
    cfg = config.build(data, env={})
    assert len(cfg.sources) >= 3
    listed = (CORPUS / "SOURCES.md").read_text()
    for src in cfg.sources:
        assert src.url.startswith("https://raw.githubusercontent.com/")
        assert f"**sha256**: `{src.sha256}`" in listed, src.name  # the same bytes as ../shared
        assert f"`{src.name}`" in listed


def test_starter_sources_fill_an_empty_corpus_until_the_deployer_adds_their_own(
    tmp_path, capsys
):
    from civicbot.cli import _adopt_starter_sources
    from civicbot.sync import starter_sources

    with serving(Site(files={"afval.txt": TEXT.encode()})) as site:
        starter = tmp_path / "starter.toml"
        starter.write_text(f'[[sources]]\nurl = "{site.url}/afval.txt"\n'
                           f'sha256 = "{hashlib.sha256(TEXT.encode()).hexdigest()}"\n')
        syncer = make_syncer(tmp_path, [], starter_sources=str(starter))

        class Service:  # what cmd_start hands over: a config, a curator and a corpus
            cfg = syncer.cfg
            curator = syncer.curator
            corpus = syncer.curator.corpus

        service = Service()
        cfg = _adopt_starter_sources(syncer.cfg, service)
        assert [s.url for s in cfg.sources] == [f"{site.url}/afval.txt"]
        # the bot runs with the returned config, so its schedule keeps them current; the
        # service keeps the config its corpus and curator were built from
        assert service.cfg is syncer.cfg
        assert list(service.corpus.documents()) == ["afval.txt"]
        assert "fetching 1 starter documents" in capsys.readouterr().out

        # the next start: still only starter documents, so they stay the configured sources
        assert starter_sources(syncer.cfg, service.corpus.documents()) == cfg.sources
        # the deployer's own document: starter sources are no longer used
        (tmp_path / "corpus" / "eigen.txt").write_text(TEXT + " Eigen document.")
        syncer.watch_folders()
        assert starter_sources(syncer.cfg, service.corpus.documents()) == ()
        # configured [[sources]] always win
        own = config.build({"sources": [{"url": f"{site.url}/x.pdf"}],
                            "sync": {"starter_sources": str(starter)}}, env={})
        assert starter_sources(own, {}) == ()


def test_starter_sources_without_internet_say_so_and_carry_on(tmp_path, capsys):
    from civicbot.cli import _adopt_starter_sources

    with serving(Site()) as site:
        dead = site.url  # the server stops when the block ends: nothing listens there
    starter = tmp_path / "starter.toml"
    starter.write_text(f'[[sources]]\nurl = "{dead}/afval.pdf"\n')
    syncer = make_syncer(tmp_path, [], starter_sources=str(starter), timeout_s=5.0)

    class Service:
        cfg = syncer.cfg
        curator = syncer.curator
        corpus = syncer.curator.corpus

    cfg = _adopt_starter_sources(syncer.cfg, Service())
    out = capsys.readouterr().out
    assert "could not be fetched (no internet access?)" in out and "✗ afval.pdf" in out
    assert Service.corpus.documents() == {} and len(cfg.sources) == 1


def test_a_broken_starter_file_is_a_clear_configuration_error(tmp_path):
    from civicbot.errors import ConfigError
    from civicbot.sync import starter_sources

    bad = tmp_path / "starter.toml"
    bad.write_text('[[sources]]\nurl = "ftp://nope"\n')
    cfg = config.build({"sync": {"starter_sources": str(bad)}}, env={})
    with pytest.raises(ConfigError, match=r"starter.toml: sources\[0\].url"):
        starter_sources(cfg, {})


def test_sync_state_saves_from_many_threads_at_once(tmp_path):
    """The bot fetches each source in a thread of its own and each saves the state: saves
    racing each other used to fail ('.sync-state.json.tmp' renamed away by another thread)."""
    import json
    import threading

    from civicbot.sources import SyncState

    state = SyncState(tmp_path / "data" / "sync-state.json")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                state.source(f"https://example.org/{n}.pdf")["etag"] = f"{n}-{i}"
                state.files[f"file-{n}-{i}"] = [i, i, "sha"]
                state.save()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    saved = json.loads((tmp_path / "data" / "sync-state.json").read_text(encoding="utf-8"))
    assert len(saved["sources"]) == 6 and len(saved["files"]) == 300
    assert not list((tmp_path / "data").glob(".*.tmp"))
    assert SyncState(tmp_path / "data" / "sync-state.json").source(
        "https://example.org/3.pdf")["etag"] == "3-49"


def test_file_names_are_never_hidden_and_fit_in_bytes():
    assert safe_file_name(" .  .x.pdf") == "x.pdf"
    assert safe_file_name(". . .. plan.pdf ") == "plan.pdf"
    # 119 three-byte characters fit 120 characters but not 255 bytes with the attic's prefix
    long = safe_file_name("€" * 300 + ".pdf")
    assert long is not None and long.endswith(".pdf") and set(long[:-4]) == {"€"}
    assert len(long.encode()) <= 200 and len(f"20261201T230000123456Z-{long}".encode()) <= 255
    odd = safe_file_name("a" + "😀" * 100)  # no extension: cut at a whole character
    assert odd is not None and len(odd.encode()) <= 200 and odd.encode().decode() == odd


def test_symbolic_links_out_of_a_corpus_folder_are_not_followed(tmp_path):
    from civicbot.corpus import expand

    syncer = make_syncer(tmp_path, [])
    folder = tmp_path / "corpus"
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text(TEXT + " Geheim.")
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.txt").symlink_to(folder / "a.txt")  # a link inside the folder is fine
    assert [p.name for p in expand([folder])] == ["a.txt", "b.txt"]
    reports = syncer.watch_folders()
    assert sorted(r.name for r in reports) == ["a.txt", "b.txt"]
    assert "link.txt" not in syncer.curator.corpus.documents()
