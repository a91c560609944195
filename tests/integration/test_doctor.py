"""`civicbot doctor` against the real thing: a real Synapse, the real index of ../shared/corpus,
the real default models. A healthy setup is all green; each broken part is reported as the
one failed check, with its fix, and a non-zero exit."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from matrix_harness import new_user

from civicbot.cli import main
from civicbot.config import DEFAULT_GGUF_NAME
from civicbot.corpus import Corpus
from civicbot.homeserver import free_port
from civicbot.index.store import IndexStore
from tests.conftest import CORPUS, ROOT
from tests.fakes import NO_CROSSLINGUAL, HashingEmbedder

pytestmark = pytest.mark.slow


def _toml(value: object) -> str:
    return json.dumps(value)  # a JSON string or list of strings is valid TOML


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml(v)}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def healthy(homeserver, bot_account, corpus_index, tmp_path):  # type: ignore[no-untyped-def]
    """The sections of a healthy configuration (tests break one part of it)."""
    return {
        "corpus": {"paths": [str(CORPUS)]},
        "index": {"path": str(corpus_index.path)},
        "llm": {"model_path": str(ROOT / "models" / DEFAULT_GGUF_NAME)},
        "matrix": {"homeserver": homeserver.url, "user_id": bot_account["user_id"],
                   "access_token": bot_account["access_token"],
                   "data_dir": str(tmp_path / "data")},
    }


def doctor(tmp_path: Path, sections, capsys) -> tuple[int, str, list[str]]:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path / "config.toml", sections)
    code = main(["--config", str(config), "doctor"])
    out = capsys.readouterr().out
    return code, out, [line for line in out.splitlines() if line.startswith("✗")]


def test_a_healthy_setup_is_all_green(tmp_path, healthy, capsys):
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 0, out
    assert not failed
    assert "reachable" in out and "the bot logs in as @civicbot" in out
    assert "the bot is in no room yet" in out
    assert "sha256 b179c9523d0e… (the expected file)" in out
    assert "index built with the configured models" in out
    assert "index matches the corpus folders" in out
    assert out.rstrip().endswith("checks passed.")


def test_a_wrong_token_is_reported_with_how_to_get_a_new_one(tmp_path, healthy, capsys):
    healthy["matrix"]["access_token"] = "syt_" + secrets.token_hex(8)
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 1
    assert len(failed) == 1 and "does not accept matrix.access_token" in failed[0]
    assert "M_UNKNOWN_TOKEN" in failed[0]
    assert "CIVICBOT_MATRIX_ACCESS_TOKEN" in out.split(failed[0], 1)[1].splitlines()[1]


def test_a_missing_model_file_is_reported_with_civicbot_models(tmp_path, healthy, capsys):
    del healthy["llm"]  # the default model, expected in <config folder>/models: not there
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 1
    assert len(failed) == 1 and "is missing" in failed[0]
    assert str(tmp_path / "models" / DEFAULT_GGUF_NAME) in failed[0]
    assert "fix: run `civicbot models`" in out


def test_an_index_built_with_another_embedding_model_needs_a_rebuild(tmp_path, healthy, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("# Opening hours\n\nThe library opens at nine.\n")
    Corpus(IndexStore(tmp_path / "index"), HashingEmbedder(), NO_CROSSLINGUAL).ingest(
        [docs], prune_folders=[docs])
    healthy["corpus"]["paths"] = [str(docs)]
    healthy["index"]["path"] = str(tmp_path / "index")
    healthy["retrieval"] = {"crosslingual": False}
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 1
    assert len(failed) == 1 and "'test:hashing-64'" in failed[0]
    assert "fix: run `civicbot ingest --rebuild`" in out


def test_an_unreachable_homeserver_is_reported_with_what_to_check(tmp_path, healthy, capsys):
    healthy["matrix"]["homeserver"] = f"http://127.0.0.1:{free_port()}"
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 1
    assert len(failed) == 1 and "is unreachable" in failed[0]
    assert "fix: check [matrix] homeserver" in out
    assert "logs in" not in out  # not tried


def test_a_password_is_checked_without_leaving_a_device_behind(
    tmp_path, healthy, homeserver, capsys
):
    password = secrets.token_urlsafe(12)
    account = new_user(homeserver, "pwbot")
    homeserver.request("PUT", f"/_synapse/admin/v2/users/{account['user_id']}",
                       {"password": password, "logout_devices": False},
                       token=new_admin(homeserver))
    healthy["matrix"].update(user_id=account["user_id"], access_token="", password=password)
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 0, out
    assert f"the bot logs in as {account['user_id']} (with its password)" in out
    devices = homeserver.request("GET", "/_matrix/client/v3/devices",
                                 token=account["access_token"])["devices"]
    assert [d["device_id"] for d in devices] == [account["device_id"]]
    healthy["matrix"]["password"] = "wrong"
    code, out, failed = doctor(tmp_path, healthy, capsys)
    assert code == 1 and "cannot log in with matrix.user_id and matrix.password" in failed[0]


def new_admin(homeserver) -> str:  # type: ignore[no-untyped-def]
    name = "admin" + secrets.token_hex(4)
    return homeserver.register(name, secrets.token_urlsafe(12), admin=True)["access_token"]
