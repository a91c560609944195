"""The Docker image's install path without a Docker engine: the build stage of the Dockerfile
replayed as plain shell commands. Its COPY lines are copied into a fresh folder standing in
for /app, its RUN lines are run there in order (the system packages of the first RUN are the
build tools, present on any machine that runs this suite), and what the image would start
with is checked: the `civicbot` command, the embedded models, no test extras, the config
link into the config volume, and `civicbot start`'s first step working from that folder."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_deploy import _stages

pytestmark = pytest.mark.slow


def test_the_build_stage_of_the_dockerfile_installs_a_working_civicbot(tmp_path: Path):
    app = tmp_path / "app"
    app.mkdir()
    build = _stages()[0]
    commands = []
    for ins, args in build:
        if ins == "COPY":
            *sources, dest = shlex.split(args)
            for src in sources:
                target = app / dest / Path(src).name if dest.endswith("/") else app / dest
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / src, target)
        elif ins == "RUN" and not args.startswith("apt-get"):
            commands.append(args)
    assert any("scripts/install.sh" in c for c in commands), commands
    env = {k: v for k, v in os.environ.items()
           if k != "VIRTUAL_ENV" and not k.startswith("CIVICBOT_")}
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=app, env=env, capture_output=True,
                              text=True, timeout=40 * 60)
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])

    civicbot = app / ".venv" / "bin" / "civicbot"
    version = subprocess.run([str(civicbot), "--version"], capture_output=True, text=True,
                             check=True)
    assert version.stdout.startswith("civicbot ")
    # the image is for running, not testing: the docker extra (Synapse), not the dev one
    python = str(app / ".venv" / "bin" / "python")
    assert subprocess.run([python, "-c", "import synapse"], capture_output=True).returncode == 0
    assert subprocess.run([python, "-c", "import pytest"], capture_output=True).returncode != 0
    models = subprocess.run([str(civicbot), "models"], cwd=app, capture_output=True, text=True,
                            env=env, check=True).stdout
    placed = dict(line.split(": ", 1) for line in models.strip().splitlines())
    llm = (app / placed["language model"]).resolve()  # relative to /app, the working dir
    assert llm.is_file() and llm.parent == (app / "models").resolve()
    assert Path(placed["embedding model"]).resolve().is_relative_to((app / ".venv").resolve())
    # /app/config.toml points into the config volume; with a config there, relative paths
    # mean /app/...
    assert (app / "config.toml").is_symlink() and os.readlink(app / "config.toml") == (
        "config/config.toml")
    (app / "config" / "config.toml").write_text("[retrieval]\ncrosslingual = false\n")
    (app / "corpus" / "uren.md").write_text("# Openingstijden\n\nHet stadhuis is op woensdag "
                                            "open tot 20.00 uur.\n")
    ingest = subprocess.run([str(civicbot), "ingest"], cwd=app, capture_output=True,
                            text=True, env=env, timeout=600)
    assert ingest.returncode == 0, ingest.stderr
    assert "✓ uren.md: added" in ingest.stdout
    assert (app / "index").is_dir() and any((app / "index").iterdir())
