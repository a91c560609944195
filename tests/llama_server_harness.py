"""Real OpenAI-compatible inference servers on loopback for tests and benchmarks:
`python -m llama_cpp.server` (llama-cpp-python's server) with a GGUF file, on a free port,
stopped (or killed) by its owner."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from civicbot.homeserver import free_port

START_TIMEOUT_S = 120.0


class LlamaServer:
    """One `llama_cpp.server` process serving `model` on 127.0.0.1."""

    def __init__(self, model: Path, threads: int = 1, n_ctx: int = 2048):
        self.model, self.threads, self.n_ctx = Path(model), threads, n_ctx
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log",
                                                delete=False)

    @property
    def url(self) -> str:
        """The base URL civicbot's `[llm] servers` takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # see civicbot/answer/llm.py
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
             "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {START_TIMEOUT_S:.0f} s: "
                           f"{self.log_tail()}")

    def kill(self) -> None:
        """Die at once, as a crashed server does (SIGKILL: no goodbye to open connections)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
