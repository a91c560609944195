"""The one place that changes what civicbot knows: every corpus change (ingest, sync,
upload, removal) is made by `Corpus`, recorded in the audit log (civicbot/audit.py) and
serialised with the other changes of this process. Removed and replaced files are kept in
the attic."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from civicbot.audit import AuditLog, AuditRecord, records_for
from civicbot.corpus import Corpus, IngestReport, Progress
from civicbot.errors import CivicbotError
from civicbot.records import DocInfo

log = logging.getLogger(__name__)


class RemovalRefused(CivicbotError):
    """A document cannot be removed this way (e.g. it comes from a configured source)."""


class OutsideCorpus(CivicbotError):
    """A file name that would not land directly in a corpus folder (a path, a hidden name,
    a symbolic link out of the folder)."""


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class Curator:
    """Every change of the corpus goes through here: it is made (by `Corpus`), recorded in
    the audit log, and serialised with the other changes of this process (uploads, the
    folder watcher and scheduled sources run in worker threads; the index's own file lock
    keeps other processes out)."""

    def __init__(self, corpus: Corpus, audit: AuditLog, folders: Sequence[Path],
                 attic: Path):
        self.corpus = corpus
        self.audit = audit
        self.folders = [Path(f) for f in folders]
        self.attic = Path(attic)  # removed and replaced corpus files are kept here
        self.lock = threading.RLock()

    def ingest(self, paths: Sequence[Path], by: str, origin: str | None = None,
               prune_folders: Sequence[Path] = (),
               source: Callable[[Path], str] | None = None,
               progress: Progress | None = None, rebuild: bool = False) -> list[IngestReport]:
        """`Corpus.ingest`, recorded: `by` who, `origin` from where (default: each
        document's source)."""
        with self.lock:
            reports = self.corpus.ingest(paths, prune_folders=prune_folders, source=source,
                                         progress=progress, rebuild=rebuild, by=by)
            self.audit.append(records_for(reports, by, origin))
        return reports

    def remove(self, names: Sequence[str], by: str) -> list[IngestReport]:
        """Take documents out of the index and their files out of the corpus folders (into
        the attic, so that the folder watcher does not bring them back), recorded."""
        with self.lock:
            current = self.corpus.documents()
            for name in names:
                self._not_a_source(name, current.get(name), "take it out of [[sources]] in "
                                   "the configuration to remove it")
            reports = self.corpus.remove(names)
            try:
                self._put_away_all([Path(current[r.name].source) / r.name
                                    for r in reports if r.status == "removed"])
            except OSError as exc:
                # A file left in its folder would come back with the next folder sync: the
                # index as it was (the files are back already), and say so.
                log.error("removing %s: a file could not be moved to the attic: %s",
                          ", ".join(names), exc)
                self.corpus.restore(current)
                raise RemovalRefused(
                    f"the file could not be moved out of the corpus folder into {self.attic} "
                    f"({exc.strerror or exc}), so nothing was removed; free some space or ask "
                    "the administrator") from exc
            self.audit.append(records_for(reports, by))
        return reports

    @staticmethod
    def _not_a_source(name: str, info: DocInfo | None, fix: str) -> None:
        if info is not None and _is_url(info.source):
            raise RemovalRefused(f"{name} comes from the configured source {info.source}; {fix}")

    def store(self, staged: Path, by: str, replace: bool,
              origin: str = "upload") -> IngestReport:
        """Ingest the file `staged` (in a staging folder, under its document name) and only
        once it is accepted put it in a corpus folder: where the document it replaces lies,
        else in the first folder; the replaced file goes to the attic. `replace` must name
        a document of the index that is not one of `[[sources]]` (RemovalRefused); without it
        the name must be new. Recorded when the file is in place. When it cannot be put there
        (disk full, ...), the index goes back to what it was and the report says so: never a
        document indexed and recorded without its file."""
        name = staged.name
        with self.lock:
            before = self.corpus.documents()
            old = before.get(name)
            if replace:
                if old is None:
                    return IngestReport(name, "rejected", reason="unknown", message=(
                        "no document by this name is in the index"))
                self._not_a_source(name, old, "change it at its source, or take it out of "
                                   "[[sources]] in the configuration")
            folder = self._home(old)
            dest = self.destination(folder, name)
            if not replace and (old is not None or dest.exists()):
                return IngestReport(name, "rejected", reason="exists", message=(
                    "a document by this name is already there; use !replace"))
            report = self.corpus.ingest([staged], source=lambda _p: str(folder), by=by)[0]
            if report.ok and report.status != "unchanged":
                try:
                    self._put_in_place(staged, dest, old)
                except OSError as exc:
                    log.error("%s could not be stored in %s: %s", name, folder, exc)
                    self.corpus.restore(before)
                    report = IngestReport(name, "rejected", reason="not-stored", message=(
                        f"the file could not be stored in the corpus folder "
                        f"({exc.strerror or exc}); free some space or ask the administrator"),
                        sha256=report.sha256)
            self.audit.append(records_for([report], by, origin))
        return report

    def _home(self, old: DocInfo | None) -> Path:
        """The corpus folder of a document's file (the first folder for a new document, or
        one whose file is elsewhere)."""
        if old is not None and old.source and not _is_url(old.source):
            place = Path(old.source)
            if self.in_folders(place / old.name):
                return place
        return self.folders[0]

    def destination(self, folder: Path, name: str) -> Path:
        """`folder / name`, checked: a plain file name (no path, not hidden), landing in a
        corpus folder and not through a symbolic link; else OutsideCorpus."""
        from civicbot.sources import safe_file_name

        path = folder / name
        if (safe_file_name(name) != name or path.parent != folder or path.is_symlink()
                or not self.in_folders(path)):
            raise OutsideCorpus(f"{name!r} is not a file name in a corpus folder")
        return path

    def _put_in_place(self, staged: Path, dest: Path, old: DocInfo | None) -> None:
        """Move the replaced file to the attic and the new one to `dest` (complete, fsync'd),
        or on an OSError leave the folder as it was."""
        earlier = {dest, *([Path(old.source) / old.name] if old and old.source
                           and not _is_url(old.source) else [])}
        kept = self._put_away_all(sorted(earlier))
        part = dest.with_name(f".{uuid.uuid4().hex}.part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with staged.open("rb") as src, part.open("xb") as out:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, dest)
        except OSError:
            part.unlink(missing_ok=True)
            self._put_back(kept)
            raise

    def in_folders(self, path: Path) -> bool:
        """Whether `path` lies in one of the corpus folders."""
        resolved = path.resolve()
        return any(resolved.is_relative_to(f.resolve()) for f in self.folders)

    def _put_away_all(self, places: Sequence[Path]) -> list[tuple[Path, Path | None]]:
        """Move each of `places` into the attic (see `put_away`), or on an OSError none:
        those already moved go back, and the error is raised."""
        kept: list[tuple[Path, Path | None]] = []
        try:
            for place in places:
                kept.append((place, self.put_away(place)))
        except OSError:
            self._put_back(kept)
            raise
        return kept

    @staticmethod
    def _put_back(kept: Sequence[tuple[Path, Path | None]]) -> None:
        """Undo `_put_away_all`: each file moved into the attic back to its place."""
        for place, attic in kept:
            if attic is not None:
                shutil.move(str(attic), place)

    def put_away(self, path: Path) -> Path | None:
        """Move a corpus file into the attic (name prefixed with the time); None when it is
        not a file in a corpus folder."""
        if not path.is_file() or not self.in_folders(path):
            return None
        self.attic.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.attic / f"{stamp}-{path.name}"
        shutil.move(str(path), target)
        return target

    def history(self) -> list[AuditRecord]:
        return self.audit.records()
