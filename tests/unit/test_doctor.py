"""`civicbot doctor` on small setups in a temporary folder: a tiny index made with the hashing
embedder, model files written by the test, an unreachable port. The real homeserver, models
and corpus are in tests/integration/test_doctor.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fakes import NO_CROSSLINGUAL, HashingEmbedder

from civicbot import config as config_mod
from civicbot import doctor, doctor_facts, doctor_local, doctor_network
from civicbot.cli import main
from civicbot.config import DEFAULT_GGUF_NAME
from civicbot.corpus import Corpus
from civicbot.homeserver import free_port
from civicbot.index.embed import DEFAULT_EMBEDDING
from civicbot.index.store import IndexStore


def _setup(tmp_path: Path, **sections) -> doctor_facts.Doctor:  # type: ignore[no-untyped-def]
    data = {"retrieval": {"crosslingual": False}, **sections}
    return doctor_facts.Doctor(config_mod.build(data, env={}, base_dir=str(tmp_path)))


def _by_check(d: doctor_facts.Doctor, check) -> doctor_facts.Result:  # type: ignore[no-untyped-def]
    result = check(d)
    assert result is not None
    return result


def _index(tmp_path: Path, files: dict[str, str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for name, text in files.items():
        (corpus / name).write_text(text)
    past = time.time() - 60  # older than the index: there at the ingest
    for f in corpus.iterdir():
        os.utime(f, (past, past))
    Corpus(IndexStore(tmp_path / "index"), HashingEmbedder(), NO_CROSSLINGUAL).ingest(
        [corpus], prune_folders=[corpus])


TEXTS = {"parking.md": "# Parking\n\nA resident permit costs 120 euros a year in zone A.\n",
         "waste.md": "# Waste\n\nHousehold waste is collected every Tuesday morning.\n"}


def test_an_index_built_with_another_embedding_model_is_reported_with_the_rebuild_fix(tmp_path):
    _index(tmp_path, TEXTS)
    result = _by_check(_setup(tmp_path), doctor_local.check_index_models)
    assert not result.ok
    assert "test:hashing-64" in result.what and DEFAULT_EMBEDDING in result.what
    assert "civicbot ingest --rebuild" in result.fix
    same = _setup(tmp_path, embedding={"model": "test:hashing-64"})
    assert _by_check(same, doctor_local.check_index_models).ok
    loads = _by_check(same, doctor_local.check_index_loads)
    assert loads.ok and "2 documents" in loads.what


def test_no_index_yet_says_to_ingest(tmp_path):
    d = _setup(tmp_path)
    result = _by_check(d, doctor_local.check_index_models)
    assert not result.ok and "civicbot ingest" in result.fix
    assert doctor_local.check_index_loads(d) is None  # not reported twice


def test_files_added_changed_and_removed_since_the_last_ingest_are_named(tmp_path):
    _index(tmp_path, TEXTS)
    d = _setup(tmp_path, embedding={"model": "test:hashing-64"})
    assert _by_check(d, doctor_local.check_index_matches_corpus).ok
    corpus = tmp_path / "corpus"
    (corpus / "new.md").write_text("# New\n\nThe library opens at nine.\n")
    (corpus / "waste.md").write_text("# Waste\n\nCollected on Wednesdays now.\n")
    (corpus / "parking.md").unlink()
    result = _by_check(_setup(tmp_path, embedding={"model": "test:hashing-64"}),
                       doctor_local.check_index_matches_corpus)
    assert not result.ok
    assert "1 added (new.md)" in result.what
    assert "1 changed (waste.md)" in result.what
    assert "1 removed (parking.md)" in result.what
    assert "civicbot ingest" in result.fix


def test_a_file_left_out_at_the_last_ingest_is_mentioned_but_not_a_failure(tmp_path):
    _index(tmp_path, {**TEXTS, "empty.md": ""})  # rejected: no text
    result = _by_check(_setup(tmp_path, embedding={"model": "test:hashing-64"}),
                       doctor_local.check_index_matches_corpus)
    assert result.ok and "1 file(s) left out" in result.what


def test_a_missing_default_model_says_run_civicbot_models(tmp_path):
    result = _by_check(_setup(tmp_path), doctor_local.check_language_model)
    assert not result.ok and str(tmp_path / "models" / DEFAULT_GGUF_NAME) in result.what
    assert "civicbot models" in result.fix


def test_a_damaged_default_model_is_caught_by_its_hash(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / DEFAULT_GGUF_NAME).write_bytes(b"GGUF" + b"\0" * 100)
    result = _by_check(_setup(tmp_path), doctor_local.check_language_model)
    assert not result.ok and "damaged" in result.what
    assert "delete it and run `civicbot models`" in result.fix


def test_an_own_model_must_exist_and_be_gguf(tmp_path):
    missing = _by_check(_setup(tmp_path, llm={"model_path": "big.gguf"}),
                        doctor_local.check_language_model)
    assert not missing.ok and "model_path" in missing.fix
    (tmp_path / "big.gguf").write_bytes(b"not a model")
    wrong = _by_check(_setup(tmp_path, llm={"model_path": "big.gguf"}),
                      doctor_local.check_language_model)
    assert not wrong.ok and "not a GGUF" in wrong.what
    (tmp_path / "big.gguf").write_bytes(b"GGUF" + b"\1" * 64)
    fine = _by_check(_setup(tmp_path, llm={"model_path": "big.gguf"}),
                     doctor_local.check_language_model)
    assert fine.ok and "sha256" in fine.what


def test_an_unreachable_homeserver_is_reported_and_login_is_not_tried(tmp_path):
    d = _setup(tmp_path, matrix={"homeserver": f"http://127.0.0.1:{free_port()}",
                                 "access_token": "syt_x"})
    result = _by_check(d, doctor_network.check_homeserver)
    assert not result.ok and "unreachable" in result.what
    assert "[matrix] homeserver" in result.fix
    assert doctor_network.check_login(d) is None and doctor_network.check_rooms(d) is None


def test_a_homeserver_without_credentials_is_a_config_problem(tmp_path):
    result = _by_check(_setup(tmp_path, matrix={"homeserver": "https://matrix.example.org"}),
                       doctor_local.check_config)
    assert not result.ok and "matrix.access_token" in result.fix


def test_a_broken_glossary_file_is_a_config_problem(tmp_path):
    (tmp_path / "terms.tsv").write_text("Omgevingswet without a tab\n", encoding="utf-8")
    result = _by_check(_setup(tmp_path, retrieval={"glossary": "terms.tsv"}),
                       doctor_local.check_config)
    assert not result.ok and "line 1" in result.what and "glossary" in result.fix
    (tmp_path / "terms.tsv").write_text("Omgevingswet\tEnvironment and Planning Act\n",
                                        encoding="utf-8")
    assert _by_check(_setup(tmp_path, retrieval={"glossary": "terms.tsv"}),
                     doctor_local.check_config).ok


def test_without_a_homeserver_the_embedded_one_is_described(tmp_path):
    d = _setup(tmp_path)
    result = _by_check(d, doctor_network.check_homeserver)
    assert result.ok and "civicbot start" in result.what
    assert doctor_network.check_login(d) is None


def test_memory_rule_grows_with_the_model_and_its_context():
    small = doctor_local.memory_needed(100_000_000, 2048)
    assert small < doctor_local.memory_needed(4_500_000_000, 2048) < doctor_local.memory_needed(
        4_500_000_000, 8192)
    assert small > 100_000_000  # the rest of civicbot counts too


def test_a_crashing_check_is_a_failed_check_and_rendering_shows_fixes(tmp_path):
    def check_boom(d):  # type: ignore[no-untyped-def]
        raise RuntimeError("kaput")

    results = doctor.run_checks(_setup(tmp_path), [
        check_boom, lambda d: doctor_facts.Result(True, "fine"), lambda d: None,
        lambda d: doctor_facts.Result(False, "broken", "mend it")])
    assert [r.ok for r in results] == [False, True, False]
    text = doctor.render(results)
    assert "✗ boom: the check failed (RuntimeError: kaput)" in text
    assert "✓ fine" in text and "✗ broken\n    fix: mend it" in text
    assert text.endswith("2 of 3 checks failed.")


def test_cli_reports_a_broken_config_as_a_failed_check(tmp_path, capsys):
    bad = tmp_path / "config.toml"
    bad.write_text("[index]\npaht = 'x'\n")
    assert main(["--config", str(bad), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ configuration: index.paht: unknown key" in out and "fix:" in out


@pytest.mark.parametrize("healthy", [False, True])
def test_cli_exit_code_follows_the_checks(tmp_path, capsys, monkeypatch, healthy):
    calls = []

    def check(d):  # type: ignore[no-untyped-def]
        calls.append(d.cfg)
        return doctor_facts.Result(healthy, "the one check", "" if healthy else "do this")

    monkeypatch.setattr(doctor, "CHECKS", [check])
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nn_ctx = 1024\n")
    assert main(["--config", str(config), "doctor"]) == (0 if healthy else 1)
    assert calls[0].llm.n_ctx == 1024
    out = capsys.readouterr().out
    assert ("All 1 checks passed." if healthy else "1 of 1 checks failed.") in out


def test_a_damaged_index_is_reported_with_the_rebuild_fix(tmp_path):
    _index(tmp_path, TEXTS)
    store = IndexStore(tmp_path / "index")
    (store.current_generation() / "dense.faiss").write_bytes(b"garbage")
    d = _setup(tmp_path, embedding={"model": "test:hashing-64"})
    result = _by_check(d, doctor_local.check_index_loads)
    assert not result.ok and "cannot be loaded" in result.what
    assert "civicbot ingest --rebuild" in result.fix
    assert doctor_local.check_index_matches_corpus(d) is None


# -- [llm] backend = "server" ----------------------------------------------------------------


def test_inference_servers_that_cannot_be_reached_are_reported_with_how_to_start_one(tmp_path):
    port = free_port()
    d = _setup(tmp_path, llm={"backend": "server", "servers": [f"http://127.0.0.1:{port}/v1"],
                              "timeout_s": 2.0})
    result = _by_check(d, doctor_network.check_inference_servers)
    assert not result.ok and f"127.0.0.1:{port} is unreachable" in result.what
    assert "llama_cpp.server" in result.fix
    # The model runs elsewhere: no local model file is asked for.
    assert doctor_local.check_language_model(d) is None
    assert doctor_network.check_inference_servers(_setup(tmp_path)) is None  # local: not applicable


def test_a_missing_api_key_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCTOR_TEST_KEY", raising=False)
    d = _setup(tmp_path, llm={"backend": "server", "servers": ["http://127.0.0.1:9/v1"],
                              "api_key_env": "DOCTOR_TEST_KEY"})
    result = _by_check(d, doctor_network.check_inference_servers)
    assert not result.ok and "DOCTOR_TEST_KEY" in result.what


def test_a_server_on_the_public_internet_is_a_warning_that_names_it(tmp_path):
    own = _setup(tmp_path, llm={"backend": "server", "servers": [
        "http://127.0.0.1:8080/v1", "http://10.0.0.5:8080/v1", "http://[fd00::5]:8080/v1"]})
    result = _by_check(own, doctor_network.check_servers_are_own)
    assert result.ok and not result.warning and "own network" in result.what
    public = _setup(tmp_path, llm={"backend": "server", "servers": [
        "http://10.0.0.5:8080/v1", "https://8.8.8.8/v1"]})
    result = _by_check(public, doctor_network.check_servers_are_own)
    assert result.ok and result.warning  # a warning: it may be the deployer's own machine
    assert "8.8.8.8" in result.what and "10.0.0.5" not in result.what
    assert "external AI provider" in result.fix
    shown = doctor.render([result])
    assert shown.startswith("⚠ ") and "fix:" in shown and "All 1 checks passed." in shown


def test_with_servers_memory_is_counted_without_the_model(tmp_path):
    d = _setup(tmp_path, llm={"backend": "server", "servers": ["http://127.0.0.1:9/v1"]})
    result = doctor_local.check_memory(d)
    if result is not None:  # None off Linux
        assert "inference servers" in result.what
        assert f"about {doctor_facts._size(doctor_local.memory_needed(0, 0))} needed" in result.what
