"""Who changed what the bot knows, and when: an append-only audit log (every corpus change
is recorded here by `civicbot.curator.Curator`, the one place such changes go through).

The log is JSON lines in the data folder (`audit.jsonl`), one record per change, fsync'd
before the change is reported. Editors' Matrix ids are recorded on purpose: editors act in a
public role and the log is their accountability record. Citizens never appear in it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from civicbot.corpus import IngestReport

log = logging.getLogger(__name__)

ACTIONS = ("added", "replaced", "removed", "rejected")
AUDIT_FILE = "audit.jsonl"


@dataclass(frozen=True)
class AuditRecord:
    """One change of the corpus."""

    at: str  # UTC, ISO 8601
    action: str  # added, replaced, removed or rejected
    name: str
    title: str = ""
    sha256: str = ""
    by: str = ""  # an editor's Matrix id, or "folder", "sync", "cli"
    source: str = ""  # "upload", a folder path or a public URL
    reason: str = ""  # for rejections: the reason tag and what to do

    def describe(self) -> str:
        """One line for a person."""
        what = f"{self.at}  {self.action:8}  {self.name}"
        if self.title and self.title != self.name:
            what += f" ({self.title})"
        what += f"  by {self.by or '?'}"
        if self.source:
            what += f"  from {self.source}"
        if self.sha256:
            what += f"  sha256 {self.sha256[:12]}"
        if self.reason:
            what += f"  — {self.reason}"
        return what


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class AuditLog:
    """The append-only log. Safe to append from several threads and processes."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, records: Iterable[AuditRecord]) -> None:
        lines = "".join(json.dumps(dataclasses.asdict(r), ensure_ascii=False) + "\n"
                        for r in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND plus an exclusive lock: lines of two writers never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, lines.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[AuditRecord]:
        """Every record, oldest first. A damaged line (e.g. a torn write after a power
        failure) is skipped with a warning rather than hiding the rest of the log."""
        if not self.path.exists():
            return []
        out: list[AuditRecord] = []
        fields = {f.name for f in dataclasses.fields(AuditRecord)}
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    out.append(AuditRecord(**{k: v for k, v in data.items() if k in fields}))
                except (ValueError, TypeError):
                    log.warning("%s line %d is damaged; skipped", self.path, number)
        return out


def records_for(reports: Sequence[IngestReport], by: str,
                origin: str | None = None) -> list[AuditRecord]:
    """Audit records for the changes among `reports` ("unchanged" is no change)."""
    at = now()
    out = []
    for r in reports:
        if r.status not in ACTIONS:
            continue
        reason = f"{r.reason}: {r.message}" if r.status == "rejected" else ""
        out.append(AuditRecord(at, r.status, r.name, r.title, r.sha256, by,
                               origin if origin is not None else r.source, reason))
    return out
