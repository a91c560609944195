import tomllib
import typing
from pathlib import Path

import pytest

from civicbot import config
from civicbot.cli import main
from civicbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_documents_every_key():
    example = ROOT / "config.example.toml"
    cfg = config.load(example, env={})
    assert cfg == config.build({}, env={}, base_dir=str(ROOT))  # the example shows the defaults
    data = tomllib.loads(example.read_text())
    for section in config._section_types(config.Config):
        if section == "base_dir":
            continue
        cls = config._section_types(config.Config)[section]
        if typing.get_origin(cls) is tuple:  # an array of tables: its example is commented out
            block = example.read_text().split(f"# [[{section}]]\n", 1)[1]
            keys = {line[2:].split(" =")[0] for line in block.splitlines() if " = " in line}
            assert keys == set(config._section_types(typing.get_args(cls)[0])), section
            continue
        assert set(data[section]) == set(config._section_types(cls)), section
    # every key has a comment above it
    lines = example.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"undocumented: {line}"


@pytest.mark.parametrize(("data", "message"), [
    ({"corpus": {"pathz": ["x"]}}, "corpus.pathz: unknown key"),
    ({"llm": {"n_ctx": "big"}}, "llm.n_ctx: expected a whole number"),
    ({"corpus": {"paths": "corpus"}}, "corpus.paths: expected a list"),
    ({"nonsense": {}}, "nonsense: unknown section"),
    ({"logging": {"format": "xml"}}, "logging.format: must be one of plain, json"),
    ({"sources": [{"url": "https://a.example/x.pdf"}, {"sha256": "ab"}]},
     r"sources\[1\].sha256: expected 64 hexadecimal"),
    ({"sources": [{"name": "x.pdf"}]}, r"sources\[0\].url: required"),
    ({"sources": [{"url": "https://a.example/x.pdf", "every": "daily"}]},
     r'sources\[0\].every: expected a duration like "30m"'),
    ({"sources": {"url": "https://a.example/x.pdf"}}, "sources: expected an array of tables"),
    ({"sync": {"watch_every": "0m"}}, "sync.watch_every: expected a duration"),
    ({"llm": {"backend": "cloud"}}, "llm.backend: must be one of local, server"),
    ({"llm": {"backend": "server"}}, "llm.servers: required with backend"),
    ({"llm": {"servers": ["10.0.0.5:8080"]}}, r"llm.servers: expected an http://"),
    ({"llm": {"api_key_env": "sk-12345"}}, "llm.api_key_env: expected the NAME"),
    ({"llm": {"max_concurrent": 0}}, "llm.max_concurrent: must be at least 1"),
    ({"bot": {"concurrent_answers": 0}}, "bot.concurrent_answers: must be at least 1"),
])
def test_wrong_config_is_refused_with_section_and_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config.build(data, env={})


def test_environment_overrides_every_key():
    cfg = config.build({"matrix": {"access_token": "file"}}, env={
        "CIVICBOT_MATRIX_ACCESS_TOKEN": "secret", "CIVICBOT_LLM_N_CTX": "4096",
        "CIVICBOT_CORPUS_PATHS": "a, b", "CIVICBOT_BOT_LOG_QUESTIONS": "true"})
    assert cfg.matrix.access_token == "secret" and cfg.llm.n_ctx == 4096
    assert cfg.corpus.paths == ("a", "b") and cfg.bot.log_questions is True
    with pytest.raises(ConfigError, match="llm.n_ctx"):
        config.build({}, env={"CIVICBOT_LLM_N_CTX": "lots"})


def test_cli_exits_2_on_config_errors(tmp_path, capsys):
    bad = tmp_path / "config.toml"
    bad.write_text("[index]\npaht = 'x'\n")
    assert main(["--config", str(bad), "docs", "list"]) == 2
    assert "index.paht: unknown key" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "docs", "list"]) == 2


def test_concurrent_answers_apply_to_servers_only():
    servers = {"backend": "server", "servers": ["http://127.0.0.1:8080/v1"]}
    assert config.build({"bot": {"concurrent_answers": 4}}, env={}).answer_workers == 1
    assert config.build({"bot": {"concurrent_answers": 4}, "llm": servers},
                        env={}).answer_workers == 4
    cfg = config.build({}, env={"CIVICBOT_LLM_BACKEND": "server",
                                "CIVICBOT_LLM_SERVERS": "http://a:1/v1, http://b:2/v1"})
    assert cfg.llm.servers == ("http://a:1/v1", "http://b:2/v1")


def test_paths_are_derived_once_from_the_config_folder(tmp_path):
    cfg = config.build({"matrix": {"data_dir": "state"}, "corpus": {"paths": ["a", "/abs"]},
                        "llm": {"model_path": "m/x.gguf"}}, env={}, base_dir=str(tmp_path))
    paths = cfg.paths
    assert paths.data == tmp_path / "state"
    assert paths.homeserver == tmp_path / "state" / "homeserver"
    assert paths.index == tmp_path / "index" and paths.corpus == (tmp_path / "a", Path("/abs"))
    assert paths.models == tmp_path / config.MODELS_DIR
    assert paths.llm_model == tmp_path / "m" / "x.gguf"
    assert config.build({}, env={}, base_dir=str(tmp_path)).paths.llm_model == (
        tmp_path / config.MODELS_DIR / config.DEFAULT_GGUF_NAME)
    # a copy with another setting derives its own paths; the original keeps its own
    moved = cfg.replace("index", path="/elsewhere")
    assert moved.paths.index == Path("/elsewhere") and cfg.paths.index == tmp_path / "index"
    assert moved.paths.data == paths.data
