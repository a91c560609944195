"""The install and test paths stay one: README, CI and the Dockerfile use the same scripts."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test.sh" in readme and "scripts/start.sh" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test.sh" in ci


def test_dockerfile_installs_with_the_readme_install_script():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "scripts/install.sh" in dockerfile
    assert "pip install" not in dockerfile  # no second, drifting install path
    start = (ROOT / "scripts" / "start.sh").read_text()
    assert "scripts/install.sh" in start


def test_no_third_party_documents_are_tracked():
    out = subprocess.run(["git", "ls-files", "corpus", "index"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    # The tests run in a clone of the repository (as CI does): outside one this cannot be
    # checked, and an unchecked promise fails rather than passes.
    assert out.returncode == 0, f"not a git checkout: {out.stderr.strip()}"
    tracked = out.stdout.split()
    assert all(Path(p).suffix in {".md", ".toml"} for p in tracked), tracked
