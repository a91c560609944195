"""Untrusted files are parsed in a worker process with limits on CPU time and memory, so a
decompression bomb, an endless loop or a parser crash costs one rejected file, not the bot.

One long-lived worker (started on first use, with the `spawn` method so it inherits no
threads, locks or models of the bot) parses one file at a time: only the parsing runs there
(pypdf, the HTML and text readers, PDFium's page measuring and rendering for OCR); cleaning,
Tesseract, chunking and embedding stay in the calling process, whose models are never
loaded twice. Before each file the worker raises
its soft CPU limit to the time it has used plus `cpu_s`, so the limit counts per file; the
kernel ends it with SIGXCPU when a file takes longer. Memory is capped by RLIMIT_AS: an
allocation beyond it raises MemoryError in the worker. A worker that uses no CPU at all
for `stall_s` (a parser waiting forever) is stopped too. There is no limit on wall-clock
time as such: on a busy machine a large legitimate file may take many times its CPU time,
and rejecting it then would keep it out for good (a rejected version is not read again). A
worker that died or was killed is replaced on the next file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from civicbot import errors
from civicbot.errors import CorruptDocument, DocumentError

log = logging.getLogger(__name__)

# A 300-page policy PDF takes pypdf about 20 s of CPU here; these leave ample room.
CPU_SECONDS = 120
STALL_SECONDS = 120  # without any CPU progress
MEMORY_BYTES = 2 << 30  # address space of the worker (Python and pypdf need ~100 MB)


class WorkerLimit(Exception):
    """The worker was stopped by a limit (or died); `what` says which."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _serve(conn: Connection, cpu_s: int, memory_bytes: int) -> None:
    """The worker's loop: (function, args) in, ("ok", result) or an error description out."""
    import resource
    import signal

    # Ctrl-C reaches the whole process group: the parent decides when the worker ends (it is
    # a daemon, stopped with the parent), so the worker must not die with a traceback on
    # stderr in the middle of the parent's own (JSON) log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime) + cpu_s + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        try:
            out: tuple[Any, ...] = ("ok", fn(*args))
        except DocumentError as exc:
            out = ("document", type(exc).__name__, exc.name, exc.detail)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, not raised
            out = ("error", type(exc).__name__, str(exc)[:500])
        try:
            conn.send(out)
        except (OSError, ValueError):
            return


class Worker:
    """Runs functions in the limited worker process, one call at a time."""

    def __init__(self, cpu_s: int = CPU_SECONDS, stall_s: float = STALL_SECONDS,
                 memory_bytes: int = MEMORY_BYTES):
        self.cpu_s, self.stall_s, self.memory_bytes = cpu_s, stall_s, memory_bytes
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the worker (`fn` must be importable by name). A DocumentError there
        is raised here as itself; WorkerLimit when a limit stopped it; any other exception
        as a RuntimeError naming it."""
        with self._lock:
            conn = self._start()
            try:
                conn.send((fn, args))
                if not self._wait(conn):
                    self._stop()
                    raise WorkerLimit(f"it made no progress for {self.stall_s:g} s")
                reply = conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                code = None
                if self._proc is not None:
                    self._proc.join(5)  # reaped, so that its exit code says why
                    code = self._proc.exitcode
                self._stop()
                raise WorkerLimit(_death(code, self.cpu_s)) from None
            if reply[0] == "ok":
                return reply[1]
            if reply[0] == "document":
                _, kind, name, detail = reply
                cls = getattr(errors, kind, None)
                if not (isinstance(cls, type) and issubclass(cls, DocumentError)):
                    cls = CorruptDocument
                raise cls(name, detail)
            _, kind, message = reply
            if kind in ("MemoryError", "RecursionError"):
                self._stop()  # its state is not to be trusted after that
            raise RuntimeError(f"{kind}: {message}")

    def _wait(self, conn: Connection) -> bool:
        """Wait for the worker's answer while it keeps using CPU; False once it used none
        for `stall_s` (without /proc, once `stall_s` passed)."""
        step = min(5.0, self.stall_s)
        used, still_since = _cpu_seconds(self._proc.pid), time.monotonic()
        while not conn.poll(step):
            now_used = _cpu_seconds(self._proc.pid)
            if now_used is None or now_used <= (used or 0.0):
                if time.monotonic() - still_since >= self.stall_s:
                    return False
            else:
                used, still_since = now_used, time.monotonic()
        return True

    def _start(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(theirs, self.cpu_s, self.memory_bytes),
                                 name="civicbot-parser", daemon=True)
        self._proc.start()
        theirs.close()
        self._conn = ours
        return ours

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time a process has used (Linux /proc), None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _death(code: int | None, cpu_s: int) -> str:
    import signal

    if code == -signal.SIGXCPU:
        return f"it used more than {cpu_s} s of processor time"
    if code is not None and code < 0:
        return f"the reader crashed ({signal.Signals(-code).name})"
    return "the reader stopped unexpectedly"


_shared: Worker | None = None
_shared_lock = threading.Lock()


def shared() -> Worker:
    """The process's one parsing worker."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Worker()
        return _shared


def raw_pages(path: Path) -> tuple[list[str], str]:
    """The raw text of each page of `path` and an HTML title ("" otherwise), read in this
    process (the worker calls this)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from civicbot.ingest.pdf import pdf_pages

        return pdf_pages(path), ""
    if suffix in {".html", ".htm"}:
        from civicbot.ingest.text import html_pages

        return html_pages(path)
    from civicbot.ingest.text import text_pages

    return text_pages(path), ""


def parse(path: Path, worker: Worker | None = None) -> tuple[list[str], str]:
    """`raw_pages(path)` in the limited worker; every failure is a DocumentError (a limit or
    an unexpected reader error is a "corrupt" one)."""
    try:
        return (worker or shared()).run(raw_pages, path)
    except WorkerLimit as exc:
        log.warning("%s: parsing stopped: %s", path.name, exc.what)
        raise CorruptDocument(path.name, (
            f"reading it was stopped: {exc.what} (a damaged or hostile file?); open it in a "
            "viewer, save or export it again, and add the new file")) from exc
    except RuntimeError as exc:
        raise CorruptDocument(path.name, (
            f"the reader failed on it ({exc}); open it in a viewer, save or export it "
            "again, and add the new file")) from exc
