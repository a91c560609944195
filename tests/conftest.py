"""Shared fixtures. The real corpus and benchmarks are read from ../shared (never copied)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


# ---- long work overlaps the rest of the run ------------------------------------------------
# Two pieces of work take most of a run's time, and neither needs the cores all the time the
# rest of the suite runs: the shared corpus's index (OCR and embedding of 21 PDFs) and the
# LegalQA-NL benchmark (4,653 law articles embedded). Both start in background processes when
# collection ends, at a lower CPU priority than the tests, and use the cores the tests leave
# idle while they wait on the homeserver, subprocesses and sockets:
# - the tests that use `corpus_index` run after the others, and the fixture waits for the
#   index (tests/corpus_build.py builds it exactly as the fixture would);
# - a test marked `background(command, timeout=...)` runs last and reads what its command
#   printed, through the `background` fixture.
# The work itself is unchanged and done in full on every run.

_JOBS = pytest.StashKey[dict]()  # "corpus" or a test's node id -> _Job
_CORPUS_FOLDER = pytest.StashKey[Path]()


# The background jobs embed with the e5 engine's OpenMP threads beside the tests and each
# other, more threads than cores. By default a waiting OpenMP thread spins and takes a core
# from the thread it waits for; passive waiting gave the same vectors in 10-14% less time
# for two embedding jobs at once on 2 cores (two paired runs).
_SHARE_CORES = {"OMP_WAIT_POLICY": "PASSIVE"}


class _Job:
    """One background command, its output kept in temporary files until it is read."""

    def __init__(self, command: list, nice: int, timeout: float):
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [str(part) for part in command], stdout=self.out, stderr=self.err, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **_SHARE_CORES),
            preexec_fn=lambda: os.nice(nice))

    def finish(self) -> subprocess.CompletedProcess:
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"{self.proc.args} did not finish within {self.timeout} s")
        self.out.seek(0)
        self.err.seek(0)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode,
                                           self.out.read().decode("utf-8", "replace"),
                                           self.err.read().decode("utf-8", "replace"))

    def stop(self) -> None:
        if self.proc.poll() is None:  # the run stopped early (-x, Ctrl-C): do not leave it
            self.proc.kill()
            self.proc.wait()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("background"):
            return 2
        return 1 if "corpus_index" in getattr(item, "fixturenames", ()) else 0

    items.sort(key=order)  # stable: the order within each group is kept
    if config.option.collectonly:
        return
    jobs = config.stash.setdefault(_JOBS, {})
    if any(order(item) == 1 for item in items):
        folder = config.stash[_CORPUS_FOLDER] = Path(tempfile.mkdtemp(prefix="civicbot-corpus-"))
        # Above the benchmark's priority: the corpus tests wait for this one.
        jobs["corpus"] = _Job([sys.executable, "-m", "tests.corpus_build", folder, CORPUS],
                              10, 3600)
    for item in items:
        marker = item.get_closest_marker("background")
        if marker is not None:
            jobs[item.nodeid] = _Job(marker.args[0], 19, marker.kwargs.get("timeout", 1800))


def background_corpus(config: pytest.Config) -> tuple[Path, list] | None:
    """(index folder, ingest reports) of the background corpus build, or None when this run
    did not start one."""
    job = config.stash.get(_JOBS, {}).get("corpus")
    if job is None:
        return None
    done = job.finish()
    if done.returncode != 0:
        pytest.fail(f"building the corpus index failed ({done.returncode}):\n{done.stderr}")
    import pickle

    from tests.corpus_build import REPORTS

    folder = config.stash[_CORPUS_FOLDER]
    return folder / "index", pickle.loads((folder / REPORTS).read_bytes())


@pytest.fixture
def background(request: pytest.FixtureRequest) -> subprocess.CompletedProcess:
    """The finished command of this test's `background` marker (see above)."""
    return request.config.stash[_JOBS][request.node.nodeid].finish()


def _stop_background(config: pytest.Config) -> None:
    for job in config.stash.get(_JOBS, {}).values():
        job.stop()
        job.out.close()
        job.err.close()
    if _CORPUS_FOLDER in config.stash:
        shutil.rmtree(config.stash[_CORPUS_FOLDER], ignore_errors=True)
