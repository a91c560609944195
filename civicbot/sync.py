"""Keeping the corpus current without a person at a terminal: watched corpus folders and
public sources fetched on a schedule (docs/editors.md).

`Syncer` does the work, blocking, in whatever thread calls it (`civicbot sync` in the main
thread, the bot in worker threads). `SyncSchedule` runs it on apscheduler's asyncio
scheduler inside the bot: each job hops to a thread, so citizens keep being answered, and a
failing job is logged with context and never stops the loop. Every change goes through the
`Curator` (audit log, one change at a time); the index swaps generations atomically, so a
question never meets a half-built index.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from civicbot import metrics
from civicbot.audit import records_for
from civicbot.config import Config, SourceConfig, build, parse_duration
from civicbot.corpus import IngestReport, expand
from civicbot.curator import Curator
from civicbot.errors import ConfigError
from civicbot.ingest import file_sha256
from civicbot.records import DocInfo
from civicbot.sources import SourceFailed, SyncState, fetch, name_from_url, safe_file_name

log = logging.getLogger(__name__)

STATE_FILE = "sync-state.json"


@dataclass(frozen=True)
class SourceReport:
    """What one round did with one source."""

    url: str
    name: str
    status: str  # added, replaced, unchanged, not-modified, restored, failed, removed
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        mark = "✗" if not self.ok else "✓" if self.status in ("added", "replaced") else "·"
        return f"{mark} {self.name} ({self.url}): {self.status}" + (
            f": {self.message}" if self.message else "")


@dataclass
class RoundReport:
    """One sync round: folder changes, source outcomes, and notices for the editors (a
    source that started failing or recovered; each said once)."""

    folders: list[IngestReport] = field(default_factory=list)
    sources: list[SourceReport] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sources)


def source_name(src: SourceConfig) -> str:
    name = safe_file_name(src.name) if src.name else name_from_url(src.url)
    return name or "document.pdf"


class Syncer:
    """Applies folder changes and source updates to the corpus, incrementally."""

    def __init__(self, curator: Curator, cfg: Config):
        self.curator = curator
        self.cfg = cfg
        data = cfg.paths.data
        self.sources_dir = data / "sources"  # last good copy of each source
        self.state = SyncState(data / STATE_FILE)

    # ---- folders ---------------------------------------------------------------------------

    def watch_folders(self) -> list[IngestReport]:
        """New and changed files in the corpus folders are ingested, documents whose file
        is gone are removed. Unchanged files (same size and mtime) are not even hashed, and a
        version that was rejected once is not read again until it changes."""
        folders = [f for f in self.curator.folders if f.is_dir()]
        with self.curator.lock:
            current = self.curator.corpus.documents()
            changed: list[Path] = []
            keys: dict[str, tuple[str, str]] = {}  # name -> (state key, sha256)
            seen: set[str] = set()
            for path in expand(folders):
                key = str(path.resolve())
                seen.add(key)
                try:
                    st = path.stat()
                    before = self.state.files.get(key)
                    if before and before[0] == st.st_size and before[1] == st.st_mtime_ns:
                        sha = before[2]
                    else:
                        sha = file_sha256(path)
                        self.state.files[key] = [st.st_size, st.st_mtime_ns, sha]
                except OSError:
                    continue  # vanished while we looked: the next round sees it gone
                info = current.get(path.name)
                if info is not None and info.sha256 == sha:
                    continue
                if info is not None and _is_url(info.source):
                    log.warning("%s: a configured source already has this name; the file in "
                                "%s is ignored", path.name, path.parent)
                    continue
                if self.state.rejected.get(key) == sha:
                    continue
                changed.append(path)
                keys[path.name] = (key, sha)
            for key in [k for k in self.state.files if k not in seen]:
                del self.state.files[key]
                self.state.rejected.pop(key, None)
            gone = [name for name, info in current.items()
                    if info.source and not _is_url(info.source)
                    and self.curator.in_folders(Path(info.source) / name)
                    and not (Path(info.source) / name).exists()]
            reports: list[IngestReport] = []
            if changed:
                reports += self.curator.ingest(changed, by="folder")
                for r in reports:
                    if r.name in keys:
                        key, sha = keys[r.name]
                        if r.status == "rejected":
                            self.state.rejected[key] = sha
                        else:
                            self.state.rejected.pop(key, None)
            if gone:
                reports += self.curator.remove(gone, by="folder")
            self.state.save()
        for r in reports:
            log.info("folder sync: %s", r.describe())
        return reports

    # ---- public sources --------------------------------------------------------------------

    def fetch_sources(self, sources: Sequence[SourceConfig] | None = None
                      ) -> tuple[list[SourceReport], list[str]]:
        """Fetch `sources` (default: all configured) and apply what changed. A failing
        source keeps its last good copy; the editors are told once when it starts failing
        and once when it recovers."""
        reports: list[SourceReport] = []
        notices: list[str] = []
        for src in self.cfg.sources if sources is None else sources:
            report = self._one_source(src)
            reports.append(report)
            notice = self._transition(src, report)
            if notice:
                notices.append(notice)
        return reports, notices

    def drop_unconfigured(self) -> list[IngestReport]:
        """Documents of sources no longer in the configuration are removed."""
        urls = {s.url for s in self.cfg.sources}
        with self.curator.lock:
            stale = [name for name, info in self.curator.corpus.documents().items()
                     if _is_url(info.source) and info.added_by == "sync"
                     and info.source not in urls]
            if not stale:
                return []
            reports = self.curator.corpus.remove(stale)
            self.curator.audit.append(records_for(reports, "sync"))
        for name in stale:
            (self.sources_dir / name).unlink(missing_ok=True)
        return reports

    def _one_source(self, src: SourceConfig) -> SourceReport:
        name = source_name(src)
        state = self.state.source(src.url)
        good = self.sources_dir / name
        # Per URL: two sources whose URLs end in the same name never share a download.
        incoming = self.sources_dir / ".incoming" / _url_key(src.url) / name
        current = self.curator.corpus.documents().get(name)
        if current is not None and current.source != src.url:
            return SourceReport(src.url, name, "failed", (
                f"a document named {name} from {current.source or 'elsewhere'} is already "
                "in the index; give this source another `name`"))
        have_copy = good.is_file() and state.get("sha256") == file_sha256(good)
        try:
            fetched = fetch(
                src.url, incoming,
                etag=state.get("etag", "") if have_copy else "",
                last_modified=state.get("last_modified", "") if have_copy else "",
                timeout=self.cfg.sync.timeout_s,
                max_bytes=self.cfg.sync.max_file_mb * 1_000_000,
                homeserver=self.cfg.matrix.homeserver)
        except SourceFailed as exc:
            return self._failed(src, name, str(exc), have_copy)
        if fetched.path is None:  # 304: our copy is current
            if current is not None:
                return SourceReport(src.url, name, "not-modified")
            # The index lost it (e.g. rebuilt elsewhere): put the last good copy back.
            reports = self.curator.ingest([good], by="sync", source=lambda _p: src.url)
            return self._from_ingest(src, name, reports[0], restored=True)
        if src.sha256 and fetched.sha256 != src.sha256.lower():
            fetched.path.unlink(missing_ok=True)
            record = IngestReport(name, "rejected", reason="sha256-mismatch", message=(
                f"the download has sha256 {fetched.sha256}, the configuration expects "
                f"{src.sha256.lower()}; the file was not used"), sha256=fetched.sha256)
            if state.get("refused_sha256") != fetched.sha256:  # recorded once per version
                self.curator.audit.append(records_for([record], "sync", src.url))
                state["refused_sha256"] = fetched.sha256
            return self._failed(src, name, record.message, have_copy)
        reports = self.curator.ingest([fetched.path], by="sync", source=lambda _p: src.url)
        report = reports[0]
        if report.ok:
            os.replace(fetched.path, good)
            state.update(etag=fetched.etag, last_modified=fetched.last_modified,
                         sha256=fetched.sha256, changed_at=_now())
        else:
            fetched.path.unlink(missing_ok=True)
        self.state.save()
        return self._from_ingest(src, name, report)

    def _from_ingest(self, src: SourceConfig, name: str, report: IngestReport,
                     restored: bool = False) -> SourceReport:
        if not report.ok:
            return self._failed(src, name, f"the document was rejected ({report.reason}): "
                                f"{report.message}", True)
        status = "restored" if restored and report.status != "unchanged" else report.status
        return SourceReport(src.url, name, status)

    def _failed(self, src: SourceConfig, name: str, message: str,
                have_copy: bool) -> SourceReport:
        kept = (" The last good copy keeps serving." if have_copy
                else " There is no earlier copy.")
        return SourceReport(src.url, name, "failed", message.rstrip(".") + "." + kept)

    def _transition(self, src: SourceConfig, report: SourceReport) -> str | None:
        """A notice when a source starts failing or recovers; None while nothing changes."""
        state = self.state.source(src.url)
        was_failing = bool(state.get("failing"))
        state["checked_at"] = _now()
        notice = None
        if not report.ok and not was_failing:
            notice = f"⚠ Source {report.name} ({src.url}) failed: {report.message}"
        elif report.ok and was_failing:
            notice = f"✓ Source {report.name} ({src.url}) works again."
        state["failing"] = not report.ok
        state["error"] = report.message if not report.ok else ""
        self.state.save()
        return notice

    # ---- a whole round ---------------------------------------------------------------------

    def run_round(self) -> RoundReport:
        """Folders, then every source, then sources dropped from the configuration."""
        result = RoundReport()
        result.folders = self.watch_folders()
        result.sources, result.notices = self.fetch_sources()
        result.folders += self.drop_unconfigured()
        report_metrics(result.ok)
        return result


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def report_metrics(ok: bool) -> None:
    """Tell the bot's /metrics that a sync round finished."""
    try:
        metrics.sync_finished(ok, time.time())
    except Exception:  # metrics must never break a sync
        log.exception("recording sync metrics failed")


def starter_sources(cfg: Config, documents: Mapping[str, DocInfo]) -> tuple[SourceConfig, ...]:
    """The `[sync] starter_sources` a first-time user gets: used when no [[sources]] are
    configured and the index holds nothing but documents of those same sources, so they stay
    until the deployer adds documents or sources of their own (then they are dropped)."""
    if cfg.sources or not cfg.sync.starter_sources:
        return ()
    path = cfg.resolve(cfg.sync.starter_sources)
    if not path.is_file():
        return ()
    try:
        with path.open("rb") as f:
            entries = tomllib.load(f).get("sources", [])
        starter = build({"sources": entries}, env={}).sources
    except (OSError, tomllib.TOMLDecodeError, ConfigError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    urls = {s.url for s in starter}
    if any(info.source not in urls for info in documents.values()):
        return ()
    return starter


Notify = Callable[[str], Awaitable[None]]
T = TypeVar("T")


class SyncSchedule:
    """The bot's scheduler: the folder watch and each source on its own interval."""

    def __init__(self, syncer: Syncer, notify: Notify):
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.syncer = syncer
        self.notify = notify
        self.scheduler = AsyncIOScheduler(timezone=dt.UTC)
        cfg = syncer.cfg
        # One instance of each job at a time; a round missed while another ran is merged.
        options = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        now = dt.datetime.now(dt.UTC)
        self.scheduler.add_job(self._watch, "interval",
                               seconds=parse_duration(cfg.sync.watch_every), next_run_time=now,
                               id="watch-folders", **options)
        for i, src in enumerate(cfg.sources):
            self.scheduler.add_job(self._source, "interval", args=[src],
                                   seconds=parse_duration(src.every or cfg.sync.every),
                                   next_run_time=now, id=f"source-{i}", **options)
        if cfg.sources:
            self.scheduler.add_job(self._drop, "date", run_date=now, id="drop-unconfigured")

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _guarded(self, what: str, work: Callable[[], T]) -> T | None:
        try:
            return await asyncio.to_thread(work)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync: %s failed; trying again next round", what)
            report_metrics(False)
            return None

    async def _watch(self) -> None:
        reports = await self._guarded("watching the corpus folders", self.syncer.watch_folders)
        if reports is not None:
            report_metrics(True)

    async def _source(self, src: SourceConfig) -> None:
        result = await self._guarded(f"source {src.url}",
                                     lambda: self.syncer.fetch_sources([src]))
        if result is None:
            return
        reports, notices = result
        report_metrics(all(r.ok for r in reports))
        for notice in notices:
            try:
                await self.notify(notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync: telling the editors failed: %s", notice)

    async def _drop(self) -> None:
        await self._guarded("removing unconfigured sources", self.syncer.drop_unconfigured)
