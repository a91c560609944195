"""Shared fixtures. The real corpus and benchmarks are read from ../shared (never copied)."""

from __future__ import annotations

import os
import subprocess
import tempfile
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
    _stop_background(session.config)
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


# ---- long benchmarks overlap the rest of the run ---------------------------------------------
# A test marked `background(command, timeout=...)` measures what a long command prints (the
# LegalQA-NL benchmark embeds 4,653 law articles: ten minutes or more on two cores). Its command
# starts when collection ends, at the lowest CPU priority, and the test runs last and waits for
# it: the benchmark uses the cores the rest of the suite leaves idle while it waits on the
# homeserver, subprocesses and sockets, instead of adding its whole time to the run. The
# benchmark itself is unchanged and runs in full every time.

_BACKGROUND = pytest.StashKey[dict]()


def _lowest_priority() -> None:
    os.nice(19)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    late = [item for item in items if item.get_closest_marker("background")]
    if not late:
        return
    items[:] = [item for item in items if item not in late] + late
    if config.option.collectonly:
        return
    running = config.stash.setdefault(_BACKGROUND, {})
    for item in late:
        marker = item.get_closest_marker("background")
        out = tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [str(part) for part in marker.args[0]], stdout=out, stderr=err, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=_lowest_priority)
        running[item.nodeid] = (proc, out, err, marker.kwargs.get("timeout", 1800))


@pytest.fixture
def background(request: pytest.FixtureRequest) -> subprocess.CompletedProcess:
    """The finished command of this test's `background` marker (see above)."""
    proc, out, err, timeout = request.config.stash[_BACKGROUND][request.node.nodeid]
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args} did not finish within {timeout} s")
    out.seek(0)
    err.seek(0)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       out.read().decode("utf-8", "replace"),
                                       err.read().decode("utf-8", "replace"))


def _stop_background(config: pytest.Config) -> None:
    for proc, out, err, _ in config.stash.get(_BACKGROUND, {}).values():
        if proc.poll() is None:  # the run stopped early (-x, Ctrl-C): do not leave it behind
            proc.kill()
            proc.wait()
        out.close()
        err.close()
