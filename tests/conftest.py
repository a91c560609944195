"""Shared fixtures. The real corpus and benchmarks are read from ../shared (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CIVICBOT_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
# Two small real documents for tests that build their own index.
MOTIE = "nl_tk_kamerstuk_32545-143_motie.pdf"  # 1 page
TOZO = "nl_tk_aanhangsel_handelingen_2020-2021_3235_kamervragen_tozo.pdf"  # 3 pages

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared material is missing: {SHARED} (it must sit beside the repo)")
    return SHARED


# ---- no silent skips ---------------------------------------------------------------------
# Every test stands for a promise of the README; a skipped one is a promise nobody checked.
# A run that skipped anything therefore fails (exit status 1) and says so in its last line;
# scripts/test.sh (and so CI) passes that status on. A run that collected no tests at all
# exits 5, which fails too.


def _skipped(config: pytest.Config) -> list:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return list(reporter.stats.get("skipped", [])) if reporter is not None else []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped(session.config) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    # After the summary line, so that this is the last line of the run.
    skipped = _skipped(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if skipped and reporter is not None:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped (reasons above, under "
                            "'short test summary info'); skips are not allowed: install what "
                            "is missing (scripts/install.sh) or fix the test.", red=True,
                            bold=True)
