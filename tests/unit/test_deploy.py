"""What a deployer reads and runs stays in step with the code: the Dockerfile installs like the
README, its HEALTHCHECK asks the health server for a path it serves, the compose example
configures keys that exist, and the README's configuration reference covers
config.example.toml. (No Docker engine runs here: these are the honest checks.)

`python tests/unit/test_deploy.py` prints the configuration reference table for the README."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

import yaml  # noqa: E402 - PyYAML is in the dev extra (Synapse needs it too)

from civicbot import config as config_mod  # noqa: E402
from civicbot import health  # noqa: E402


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins, args in _dockerfile():
        if ins == "FROM":
            stages.append([])
        stages[-1].append((ins, args))
    return stages


def _json_or_words(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


# -- Dockerfile ------------------------------------------------------------------------------


def test_the_image_is_built_with_the_readme_install_script_and_extras_mechanism():
    build = _stages()[0]
    runs = [args for ins, args in build if ins == "RUN"]
    installs = [r for r in runs if "scripts/install.sh" in r]
    assert len(installs) == 1, runs
    # the same script as `scripts/start.sh`, chosen extras through CIVICBOT_EXTRAS
    assert re.search(r"CIVICBOT_EXTRAS=\w+ (\w+=\S+ )*scripts/install.sh", installs[0])
    extra = re.search(r"CIVICBOT_EXTRAS=(\w+)", installs[0]).group(1)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert extra in pyproject["project"]["optional-dependencies"]
    assert "CIVICBOT_EXTRAS" in (ROOT / "scripts" / "install.sh").read_text()
    assert "scripts/install.sh" in (ROOT / "scripts" / "start.sh").read_text()
    assert not any("pip install" in r for r in runs)  # no second install path
    # everything install.sh needs is copied in before it runs
    copied = " ".join(args for ins, args in build if ins == "COPY")
    for needed in ("pyproject.toml", "scripts", "civicbot"):
        assert needed in copied


def test_apt_packages_come_from_the_shared_list_when_there_is_one():
    listed = ROOT / "scripts" / "apt-packages.txt"
    assert listed.exists(), "scripts/apt-packages.txt lists the system packages (Tesseract)"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "apt-packages.txt" in dockerfile
    packages = [p for line in listed.read_text().splitlines()
                if (p := line.split("#", 1)[0].strip())]
    runtime = " ".join(args for ins, args in _stages()[-1] if ins in ("RUN", "COPY"))
    # the runtime image needs them too (e.g. tesseract for OCR), from the same list
    assert "apt-packages.txt" in runtime or all(p in runtime for p in packages)


def test_the_image_runs_as_a_user_that_is_not_root():
    users = [args for ins, args in _stages()[-1] if ins == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_healthcheck_asks_for_the_path_the_health_server_serves():
    final = _stages()[-1]
    checks = [args for ins, args in final if ins == "HEALTHCHECK"]
    assert len(checks) == 1
    assert health.HEALTH_PATH in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0]  # not in the slim image
    env = " ".join(args for ins, args in final if ins == "ENV")
    port = re.search(r"CIVICBOT_HEALTH_PORT=(\d+)", env)
    assert "CIVICBOT_HEALTH_ENABLED=true" in env and port
    exposed = [args for ins, args in final if ins == "EXPOSE"]
    assert exposed == [port.group(1)]
    cmd = _json_or_words([args for ins, args in final if ins == "CMD"][-1])
    assert cmd[:2] == ["civicbot", "start"]


def test_volumes_and_port_are_the_documented_ones():
    final = _stages()[-1]
    volumes = {v for ins, args in final if ins == "VOLUME" for v in _json_or_words(args)}
    assert volumes == {"/app/config", "/app/corpus", "/app/index", "/app/data"}
    docker = _readme_section("Docker")
    for v in volumes:
        assert v in docker, v
    port = [args for ins, args in final if ins == "EXPOSE"][0]
    assert port in docker
    # the volumes are the default config's folders, relative to /app where the config is
    defaults = config_mod.build({}, env={}, base_dir="/app")
    assert {str(defaults.resolve(p)) for p in defaults.corpus.paths} == {"/app/corpus"}
    assert str(defaults.resolve(defaults.index.path)) == "/app/index"
    assert str(defaults.resolve(defaults.matrix.data_dir)) == "/app/data"


def test_a_config_reached_through_a_symlink_keeps_paths_relative_to_the_link(tmp_path):
    # The image links /app/config.toml to config/config.toml in the config volume.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text('[index]\npath = "idx"\n')
    (tmp_path / "config.toml").symlink_to("config/config.toml")
    cfg = config_mod.load(tmp_path / "config.toml", env={})
    assert cfg.resolve(cfg.index.path) == tmp_path / "idx"


# -- docker-compose.example.yml ---------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.example.yml").read_text())


def _config_key(env_name: str) -> tuple[str, str]:
    sections = config_mod._section_types(config_mod.Config)
    rest = env_name.removeprefix("CIVICBOT_").lower()
    for section in sections:
        if rest.startswith(section + "_"):
            return section, rest[len(section) + 1:]
    raise AssertionError(f"{env_name}: no config section of that name")


def test_compose_runs_the_bot_image_against_a_synapse_service():
    services = _compose()["services"]
    synapse = [n for n, s in services.items() if "matrixdotorg/synapse" in s.get("image", "")]
    assert len(synapse) == 1
    bot = services["civicbot"]
    assert bot.get("build") in (".", {"context": "."})
    env = bot["environment"]
    homeserver = env["CIVICBOT_MATRIX_HOMESERVER"]
    assert re.fullmatch(rf"https?://{synapse[0]}:\d+", homeserver)
    assert synapse[0] in bot.get("depends_on", {})


def test_compose_environment_names_real_config_keys_with_valid_values():
    env = _compose()["services"]["civicbot"]["environment"]
    sections = config_mod._section_types(config_mod.Config)
    for name in env:
        assert name.startswith("CIVICBOT_"), name
        section, key = _config_key(name)
        assert key in config_mod._section_types(sections[section]), name
    # compose's ${VAR:-default} / ${VAR:?message} substitutions, resolved as compose would
    concrete = {k: re.sub(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}",
                          lambda m: m.group(2) if m.group(2) is not None else "value", str(v))
                for k, v in env.items()}
    cfg = config_mod.build({}, env=concrete)
    assert cfg.matrix.homeserver and cfg.matrix.user_id.startswith("@")
    assert cfg.health.host == "0.0.0.0"  # scraped from the compose network


def test_compose_mounts_the_image_volumes_and_publishes_the_health_port_on_loopback():
    bot = _compose()["services"]["civicbot"]
    targets = {str(v).split(":")[1] for v in bot["volumes"]}
    final = _stages()[-1]
    volumes = {v for ins, args in final if ins == "VOLUME" for v in _json_or_words(args)}
    assert targets == volumes
    port = [args for ins, args in final if ins == "EXPOSE"][0]
    assert any(str(p) == f"127.0.0.1:{port}:{port}" for p in bot.get("ports", []))
    assert "docker-compose.example.yml" in _readme_section("Docker")


# -- README configuration reference -------------------------------------------------------------


def reference_rows() -> list[tuple[str, str, str]]:
    """(section.key, default as written, its comment) for every key of config.example.toml."""
    rows: list[tuple[str, str, str]] = []
    section, comment = "", []
    for line in (ROOT / "config.example.toml").read_text().splitlines():
        if m := re.match(r"^\[(\w+)\]\s*$", line):
            section, comment = m.group(1), []
        elif line.startswith("#"):
            comment.append(line.lstrip("# ").strip())
        elif m := re.match(r"^(\w+)\s*=\s*(.*)$", line):
            if section:
                rows.append((f"{section}.{m.group(1)}", m.group(2).strip(), " ".join(comment)))
            comment = []
        else:
            comment = []
    return rows


def reference_table() -> str:
    lines = ["| key | default | what it does |", "|---|---|---|"]
    for key, default, what in reference_rows():
        what = what.replace("|", r"\|")
        lines.append(f"| `{key}` | `{default}` | {what} |")
    return "\n".join(lines)


def test_readme_configuration_reference_covers_every_key_with_its_default():
    readme = _readme_section("Configuration")
    documented = dict(re.findall(r"^\| `([\w.]+)` \| `(.*?)` \|", readme, re.M))
    parsed = tomllib.loads((ROOT / "config.example.toml").read_text())
    missing = []
    for key, _, _ in reference_rows():
        if key not in documented:
            missing.append(key)
            continue
        section, name = key.split(".", 1)
        # the README shows the example's value, read as TOML (so the two cannot differ)
        assert tomllib.loads(f"v = {documented[key]}")["v"] == parsed[section][name], key
    assert not missing, ("the README's configuration reference lacks " + ", ".join(missing)
                         + "; `python tests/unit/test_deploy.py` prints the full table")
    stale = set(documented) - {k for k, _, _ in reference_rows()}
    assert not stale, f"the README documents keys that no longer exist: {sorted(stale)}"


if __name__ == "__main__":
    print(reference_table())
