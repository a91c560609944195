"""`civicbot models pull URL` against a real HTTP server on loopback that serves a file with
Range support and can cut a download off midway."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from civicbot.cli import main
from civicbot.errors import ModelError
from civicbot.models import pull, use_model

BODY = b"GGUF" + bytes(range(256)) * 2000  # a file with the GGUF header, about 0.5 MB
SHA = hashlib.sha256(BODY).hexdigest()


class FileServer(http.server.ThreadingHTTPServer):
    """Serves BODY at any path ending in .gguf. `cut_after`: the next full or ranged response
    stops after that many bytes (the connection drops), once. Records the Range headers."""

    body = BODY
    cut_after: int | None = None
    ranges: list[str | None]


class Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.body
        if not self.path.split("?")[0].endswith(".gguf"):
            self.send_error(404)
            return
        asked = self.headers.get("Range")
        self.server.ranges.append(asked)
        start = 0
        if asked and (m := re.fullmatch(r"bytes=(\d+)-", asked)):
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        rest = body[start:]
        if self.server.cut_after is not None:
            rest, self.server.cut_after = rest[: self.server.cut_after], None
            self.wfile.write(rest)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(rest)


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer(("127.0.0.1", 0), Handler)
    srv.ranges = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: FileServer, name: str = "Tiny-Model-Q4_K_M.gguf") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/org/repo/resolve/main/{name}?download=1"


def test_a_cut_download_is_resumed_and_never_sits_under_the_final_name(server, tmp_path: Path):
    server.cut_after = 100_000
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="cut off after 0.1 MB.*again"):
        pull(_url(server), models, SHA)
    assert not (models / "Tiny-Model-Q4_K_M.gguf").exists()
    part = models / ".Tiny-Model-Q4_K_M.gguf.part"
    assert part.stat().st_size == 100_000
    seen: list[tuple[int, int]] = []
    path = pull(_url(server), models, SHA, progress=lambda done, total: seen.append((done, total)))
    assert path == models / "Tiny-Model-Q4_K_M.gguf" and path.read_bytes() == BODY
    assert server.ranges == [None, "bytes=100000-"]  # only the rest was asked for
    assert seen[0][0] > 100_000 and seen[-1] == (len(BODY), len(BODY))
    assert not part.exists()


def test_a_wrong_sha256_is_refused_and_nothing_is_left(server, tmp_path: Path):
    models = tmp_path / "models"
    with pytest.raises(ModelError, match="expected 000000000000…; it was deleted"):
        pull(_url(server), models, "0" * 64)
    assert list(models.iterdir()) == []


def test_a_file_that_is_not_gguf_is_refused(server, tmp_path: Path):
    server.body = b"<html>not found</html>"
    with pytest.raises(ModelError, match="not a GGUF"):
        pull(_url(server), tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize("url", ["ftp://example.org/a.gguf", "http://127.0.0.1/model.bin",
                                 "http://127.0.0.1/..%2F..%2Fetc.gguf",
                                 "http://127.0.0.1/.hidden.gguf"])
def test_addresses_that_name_no_plain_gguf_file_are_refused(url: str, tmp_path: Path):
    with pytest.raises(ModelError):
        pull(url, tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_command_prints_the_setting_or_sets_it_with_use(server, tmp_path: Path, capsys,
                                                             monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('# my settings\n[llm]\n# a comment kept\nmodel_path = "old.gguf"\n'
                      'n_ctx = 4096\n\n[bot]\nqueue_size = 3\n')
    monkeypatch.chdir(tmp_path)
    assert main(["--config", str(config), "models", "pull", _url(server), "--sha256", SHA]) == 0
    out = capsys.readouterr().out
    assert 'model_path = "models/Tiny-Model-Q4_K_M.gguf"' in out and SHA in out
    assert 'model_path = "old.gguf"' in config.read_text()  # without --use: unchanged
    assert main(["--config", str(config), "models", "pull", _url(server), "--use"]) == 0
    text = config.read_text()
    assert 'model_path = "models/Tiny-Model-Q4_K_M.gguf"' in text
    assert "# a comment kept" in text and "n_ctx = 4096" in text and "queue_size = 3" in text
    from civicbot import config as config_mod

    cfg = config_mod.load(config)
    assert cfg.resolve(cfg.llm.model_path).read_bytes() == BODY
    assert main(["--config", str(config), "models", "pull", _url(server), "--sha256",
                 "1" * 64]) == 1  # already there with another hash: said, not replaced
    assert "another sha256" in capsys.readouterr().err


def test_use_adds_an_llm_section_when_there_is_none(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('[bot]\nqueue_size = 3\n')
    use_model(config, "models/x.gguf")
    assert config.read_text() == '[bot]\nqueue_size = 3\n\n[llm]\nmodel_path = "models/x.gguf"\n'
