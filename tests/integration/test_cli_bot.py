"""`civicbot start` and `civicbot run` as processes against the session's real Synapse, with
the real models. `start` on a first run (empty corpus, no [[sources]]) fetches the starter
documents, here from a local HTTP server standing in for the internet, then serves; with
`[logging] format = "json"` every log line is one JSON object, with no question text in it.
`run` then serves the same index with the token from the environment. A citizen asks both."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from matrix_harness import citizen, eventually, new_user, run, wait_membership
from workspace import SMALL_DOCS, make_workspace

from tests.conftest import ROOT
from tests.unit.test_sources import Site, serving

pytestmark = pytest.mark.slow

MOTIE, _ = SMALL_DOCS
QUESTION = "Wat vraagt de motie van Van Dijk en Grinwis over negatieve spaarrente?"


class Process:
    """`python -m civicbot.cli ARGS` in its own process group, output collected."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "civicbot.cli", *args], cwd=cwd, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, to), daemon=True)
                         for s, to in ((self.proc.stdout, self.out),
                                       (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            into.append(line.rstrip("\n"))

    def stop(self) -> int:
        """Ctrl-C, as a terminal sends it; killed if it does not stop in a minute."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for t in self._threads:
            t.join(10)
        return self.proc.returncode


def _env(token: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1",
               CIVICBOT_MATRIX_ACCESS_TOKEN=token, **more)
    return env


def _log_lines(stderr: list[str]) -> list[str]:
    """The log lines of a process's stderr: Python's own warnings (`file:line: XWarning:
    ...` and the source line under it) are not log records and are left out."""
    out, skip_source = [], False
    for line in stderr:
        if skip_source and line.startswith(" "):
            skip_source = False
            continue
        skip_source = bool(re.match(r"^\S+:\d+: \w*Warning: ", line))
        if not skip_source and line.strip():
            out.append(line)
    return out


async def _ask(hs, bot_id: str) -> dict:  # type: ignore[no-untyped-def]
    async with citizen(hs) as c:
        room = await c.create_room([bot_id], direct=True)
        # the process may still be loading its models: it joins after its first sync
        await wait_membership(c, room, bot_id, "join", timeout=300)
        _, _, final = await c.ask(room, QUESTION, bot_id, timeout=240)
        return final


def test_first_start_fetches_the_starter_documents_then_run_serves_them(
    homeserver, shared, tmp_path
):
    account = new_user(homeserver, "civicbot")
    body = (shared / "corpus" / MOTIE).read_bytes()
    site = Site(files={"motie.pdf": body})
    ws = make_workspace(tmp_path / "ws", [])
    with serving(site):
        (ws.root / "starter.toml").write_text(
            f'[[sources]]\nurl = "{site.url}/motie.pdf"\n'
            f'sha256 = "{hashlib.sha256(body).hexdigest()}"\nname = "{MOTIE}"\n')
        ws.config.write_text(ws.config.read_text()
                             + '[sync]\nstarter_sources = "starter.toml"\n')
        # the homeserver and the account from the environment (the token as the README
        # recommends: never in a file)
        env = _env(account["access_token"], CIVICBOT_MATRIX_HOMESERVER=homeserver.url,
                   CIVICBOT_MATRIX_USER_ID=account["user_id"],
                   CIVICBOT_MATRIX_ENCRYPTION="false", CIVICBOT_LOGGING_FORMAT="json")
        started = Process(["--config", str(ws.config), "start"], ws.root, env)
        try:
            run(eventually(lambda: any("documents in the index" in line
                                       for line in started.out) or started.proc.poll(),
                           timeout=600, what="the first start's ingest"), timeout=660)
            assert started.proc.poll() is None, "\n".join(started.out + started.err)
            out = "\n".join(started.out)
            assert "fetching 1 starter documents" in out
            assert f"✓ {MOTIE} ({site.url}/motie.pdf): added" in out
            assert "1 documents in the index." in out
            final = run(_ask(homeserver, account["user_id"]), timeout=300)
            # answered from the starter document, cited at its public address
            assert f"{site.url}/motie.pdf#page=1" in final["formatted_body"], final
        finally:
            started.stop()
    # fetched once; the bot's schedule then asks again with a conditional request
    answers = site.answers("motie.pdf")
    assert answers[0] == 200 and set(answers[1:]) <= {304}, answers
    logs = _log_lines(started.err)
    assert logs, "the bot logs what it does"
    for line in logs:
        entry = json.loads(line)  # one JSON object per line, nothing else
        assert {"time", "level", "logger", "message"} <= entry.keys()
        assert "spaarrente" not in line.lower(), line  # no question text
        assert "@citizen" not in line, line  # no citizen's user id
    assert any("question" in json.loads(line)["message"] for line in logs)

    # `civicbot run`: the same folder, now served as configured (plain logs); the starter
    # document stays while nothing else was added
    env = _env(account["access_token"], CIVICBOT_MATRIX_HOMESERVER=homeserver.url,
               CIVICBOT_MATRIX_USER_ID=account["user_id"], CIVICBOT_MATRIX_ENCRYPTION="false")
    served = Process(["--config", str(ws.config), "run"], ws.root, env)
    try:
        final = run(_ask(homeserver, account["user_id"]), timeout=300)
        assert "/motie.pdf#page=1" in final["formatted_body"], final
    finally:
        code = served.stop()
    assert code in (0, 130, -signal.SIGINT), "\n".join(served.err)
