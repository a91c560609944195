"""Editors change the corpus from Matrix: uploads (a file in the editors' room or a direct
chat), `!add`, `!replace NAME`, `!remove NAME`, `!docs`, `!reindex`, `!history`; and the
scheduled sync's notices go to the editors' room (docs/editors.md).

The decisions (is this a file, may this user edit, is this upload acceptable) are pure
functions; `Editing` is the thin part that downloads, runs the corpus change in a worker
thread (citizens keep being answered meanwhile) and replies, all through the `Link` it is
given (it never sees the bot).

Uploads are stored in the first corpus folder, under their sanitised name, only once they
have been ingested: a rejected upload never touches the folder. Replaced and removed files
go to the data folder's attic, so the folder watcher does not bring them back.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicbot.audit import AuditRecord, now
from civicbot.corpus import IngestReport
from civicbot.curator import Curator, RemovalRefused
from civicbot.errors import CivicbotError, MatrixError
from civicbot.ingest import SUFFIXES
from civicbot.matrix import commands, events
from civicbot.matrix.events import content_of, obj, text
from civicbot.matrix.link import Link
from civicbot.matrix.render import Rendered, render_notice
from civicbot.matrix.state import BotState
from civicbot.sources import safe_file_name
from civicbot.texts import DEFAULT_LANGUAGE, TEXTS, t

if TYPE_CHECKING:
    from civicbot.config import Config
    from civicbot.sync import Syncer

log = logging.getLogger(__name__)

COMMANDS = frozenset({"add", "replace", "remove", "docs", "reindex", "history"})
HISTORY_SHOWN = 20
_REJECTIONS = frozenset({"bad_name", "type", "too_large", "content"})
KIND = "editor"

def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# ---- pure decisions ------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRef:
    """An uploaded file as an event describes it. `encryption` is the `file` object of an
    encrypted attachment (key, iv, hashes), None for a plain one."""

    event_id: str
    room_id: str
    sender: str
    name: str
    url: str  # mxc://...
    size: int | None
    encryption: dict[str, Any] | None = None


def file_of(room_id: str, event: dict[str, Any]) -> FileRef | None:
    """The file an `m.file` message carries (plain, or encrypted as the decrypted event of a
    RoomEncryptedFile shows it), else None. Any field may have any type: what is not what
    the spec says is read as absent."""
    event = obj(event)
    if event.get("type") != "m.room.message":
        return None
    content = content_of(event)
    if content.get("msgtype") != "m.file" or "m.new_content" in content:
        return None
    encrypted = obj(content.get("file")) or None
    url = encrypted.get("url") if encrypted else content.get("url")
    if not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    size = obj(content.get("info")).get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    name = text(content.get("filename")) or text(content.get("body")) or ""
    return FileRef(text(event.get("event_id")) or "", room_id, text(event.get("sender")) or "",
                   name, url, size, encrypted)


def reply_target(event: dict[str, Any]) -> str | None:
    """The event a message replies to (`m.in_reply_to`), inside a thread or not."""
    relates = obj(content_of(event).get("m.relates_to"))
    return text(obj(relates.get("m.in_reply_to")).get("event_id"))


class UploadRefused(CivicbotError):
    """An upload is not acceptable; `key` names the text that says why."""

    def __init__(self, key: str, **values: Any):
        super().__init__(key)
        self.key = key
        self.values = values


def upload_name(raw: str) -> str:
    """A safe corpus file name for an uploaded file's name, or UploadRefused."""
    name = safe_file_name(raw)
    if name is None:
        raise UploadRefused("bad_name", name=raw)
    if Path(name).suffix.lower() not in SUFFIXES:
        raise UploadRefused("type", name=name)
    return name


def check_content(name: str, data: bytes, max_bytes: int) -> None:
    """Size and a first look at the bytes: a .pdf must start like a PDF, a text file must
    not be binary. (The reader's own checks come after this, during ingestion.)"""
    if len(data) > max_bytes:
        raise UploadRefused("too_large", name=name, mb=len(data) / 1e6,
                            limit=max_bytes // 1_000_000)
    if name.lower().endswith(".pdf"):
        if b"%PDF-" not in data[:1024]:
            raise UploadRefused("content", name=name, what="it does not start like a PDF")
    elif b"\x00" in data[:8192]:
        raise UploadRefused("content", name=name, what="it is a binary file, not text")


def report_text(report: IngestReport, language: str) -> str:
    """An ingestion report for an editor."""
    if report.status == "rejected":
        return t("rejected", language, name=report.name, reason=report.reason,
                   message=report.message)
    text = t("report", language, status=t(report.status, language), name=report.name,
               title=report.title or report.name, pages=report.pages, chunks=report.chunks,
               language=report.language)
    by_reason: dict[str, list[str]] = {}
    for issue in report.skipped:
        by_reason.setdefault(issue.reason, []).append(str(issue.number))
    for reason, pages in by_reason.items():
        why = t(f"why_{reason}", language) if f"why_{reason}" in TEXTS else reason
        text += "\n" + t("left_out", language, pages=", ".join(pages), why=why)
    return text


# ---- the Matrix part -----------------------------------------------------------------------


class Editing:
    """The editor features of one bot."""

    def __init__(self, link: Link, cfg: Config, state: BotState, data_dir: Path,
                 room_language: dict[str, str], curator: Curator,
                 syncer: Syncer | None = None):
        self.link = link
        self.cfg = cfg
        self.state = state
        self.room_language = room_language  # shared with routing and answering
        self.curator = curator
        self.syncer = syncer
        self.editors_room = ""  # the room id, once an alias is resolved
        self.max_bytes = self.cfg.corpus.max_file_mb * 1_000_000
        self.staging = data_dir / "uploads"
        self.schedule: Any = None

    # -- lifecycle --

    async def start(self) -> None:
        """Resolve the editors' room and start the scheduled sync."""
        room = self.cfg.editors.room
        if room.startswith("#"):
            try:
                self.editors_room = await self.link.resolve_alias(room)
            except MatrixError as exc:
                log.warning("editors' room %s cannot be resolved: %s", room, exc)
        else:
            self.editors_room = room
        if self.syncer is not None:
            from civicbot.sync import SyncSchedule

            self.schedule = SyncSchedule(self.syncer, self.notify_editors)
            self.schedule.start()

    def stop(self) -> None:
        if self.schedule is not None:
            self.schedule.stop()
            self.schedule = None

    async def notify_editors(self, text: str) -> None:
        """A notice in the editors' room (logged when there is none)."""
        log.warning("sync: %s", text)
        if self.editors_room and self.link.room(self.editors_room) is not None:
            content = {"msgtype": "m.notice", "body": text, events.KIND: KIND}
            await self.link.send(self.editors_room, content, "telling the editors")

    # -- who may do what --

    async def is_editor(self, user_id: str) -> bool:
        """Listed in the config, or a member of the editors' room with enough power there.
        The power levels are read from the homeserver at each check, not from nio's room:
        nio merges each new m.room.power_levels into the old one, so a user demoted by
        dropping their entry (as Element's /deop does) would keep the old level there. If
        they cannot be read, nobody is an editor by power level (fail closed)."""
        if user_id in self.cfg.editors.users:
            return True
        room = self.link.room(self.editors_room) if self.editors_room else None
        if room is None or user_id not in room.users:
            return False
        try:
            levels = await self.link.state(self.editors_room, "m.room.power_levels",
                                           "reading the editors' power levels")
        except MatrixError as exc:
            log.warning("the editors' room power levels cannot be read: %s", exc)
            return False
        users = levels.get("users")
        level = (users if isinstance(users, dict) else {}).get(
            user_id, levels.get("users_default", 0))
        return isinstance(level, int) and level >= self.cfg.editors.power_level

    def is_editing_room(self, room_id: str) -> bool:
        """Where a plain file upload is taken as a document: the editors' room or a direct
        chat with the bot (files shared among citizens elsewhere are left alone)."""
        return room_id == self.editors_room or self.link.is_direct(room_id)

    # -- events --

    def handles(self, command: commands.Command) -> bool:
        """An editors' command (the rest are citizens')."""
        return command.name in COMMANDS

    def upload_of(self, room_id: str, source: dict[str, Any]) -> FileRef | None:
        """The file of an upload this bot has not handled yet, where editors upload."""
        ref = file_of(room_id, source)
        if (ref is None or ref.sender == self.link.user_id or self.state.seen(ref.event_id)
                or not self.is_editing_room(room_id)):
            return None
        return ref

    def on_event(self, room_id: str, source: dict[str, Any]) -> None:
        """An event that is not a text message: handle it if it is a file upload."""
        ref = file_of(room_id, source)
        if ref is None or ref.sender == self.link.user_id or self.state.seen(ref.event_id):
            return
        self.state.mark_done(ref.event_id)
        self.link.spawn(self.on_file(room_id, ref), "handling an upload")

    def addressed(self, msg: events.Incoming) -> bool:
        """Commands in the editors' room need no mention."""
        return bool(self.editors_room) and msg.room_id == self.editors_room and (
            msg.body.lstrip().startswith("!"))

    async def on_file(self, room_id: str, ref: FileRef) -> None:
        """A file sent where editors upload: add it (or say why not)."""
        if not self.is_editing_room(room_id):
            return
        language = self._language(room_id)
        await self._upload(ref, language, replace=None, thread_root=ref.event_id,
                           reply_to=ref.event_id)

    async def on_command(self, msg: events.Incoming, source: dict[str, Any], thread_root: str,
                         command: commands.Command, language: str) -> None:
        lang = command.language or language
        reply = lambda text, final=True: self._reply(  # noqa: E731
            msg.room_id, thread_root, msg.event_id, text, final)
        if not await self.is_editor(msg.sender):
            log.info("editor command %s refused: not an editor", command.name)
            await reply(t("not_editor", lang))
            return
        try:
            if command.name in ("add", "replace"):
                target = reply_target(source)
                ref = await self._file_event(msg.room_id, target) if target else None
                if ref is None:
                    await reply(t("no_file", lang))
                    return
                replace = command.args.strip() if command.name == "replace" else None
                if command.name == "replace" and not replace:
                    await reply(t("no_name", lang).replace("!remove", "!replace"))
                    return
                await self._upload(ref, lang, replace, thread_root, msg.event_id,
                                   by=msg.sender)
            elif command.name == "remove":
                await reply(await self._remove(command.args.strip(), msg.sender, lang))
            elif command.name == "docs":
                await self.link.notice(msg.room_id, thread_root, msg.event_id,
                                       docs_text(self.curator.corpus.documents().values(),
                                                 lang), KIND)
            elif command.name == "history":
                records = await asyncio.to_thread(self.curator.history)
                await reply(history_text(records, lang))
            elif command.name == "reindex":
                await reply(await self._reindex(lang))
        except CivicbotError as exc:
            await reply(t("failed", lang, error=str(exc)))

    # -- the work --

    async def _upload(self, ref: FileRef, language: str, replace: str | None,
                      thread_root: str, reply_to: str, by: str | None = None) -> None:
        by = by or ref.sender

        async def reply(text: str, final: bool = True) -> None:
            await self._reply(ref.room_id, thread_root, reply_to, text, final)

        if not await self.is_editor(by):
            log.info("upload refused: not an editor")
            await reply(t("not_editor", language))
            return
        try:
            name = upload_name(ref.name)
            docs = self.curator.corpus.documents()
            if replace is not None:
                # Only a document of the index, by its exact name: never a path ("../x").
                if replace not in docs:
                    raise UploadRefused("unknown_doc", name=replace)
                if _is_url(docs[replace].source):
                    raise UploadRefused("from_source", name=replace,
                                        source=docs[replace].source)
                if Path(replace).suffix.lower() != Path(name).suffix.lower():
                    raise UploadRefused("other_type", name=replace,
                                        suffix=Path(replace).suffix)
                name = replace
            elif name in docs or self._folder_file(name).exists():
                raise UploadRefused("exists", name=name)
            if ref.size is not None and ref.size > self.max_bytes:
                raise UploadRefused("too_large", name=name, mb=ref.size / 1e6,
                                    limit=self.max_bytes // 1_000_000)
            try:
                data = await self.link.download(ref.url, ref.encryption)
            except MatrixError as exc:
                raise UploadRefused("download", error=str(exc)) from exc
            check_content(name, data, self.max_bytes)
        except UploadRefused as exc:
            log.info("upload refused: %s", exc.key)
            message = t(exc.key, language, **exc.values)
            if exc.key in _REJECTIONS:  # a refused document is a change attempt: recorded
                record = AuditRecord(now(), "rejected", str(exc.values.get("name", ref.name)),
                                     by=by, source="upload", reason=f"{exc.key}: {message}")
                await asyncio.to_thread(self.curator.audit.append, [record])
            await reply(message)
            return
        await reply(t("reading", language, name=name), final=False)
        # Whatever goes wrong now, the editor hears it (the "Reading…" notice must not stay).
        try:
            report = await asyncio.to_thread(self._store, name, data, replace is not None, by)
        except CivicbotError as exc:
            await reply(t("failed", language, error=str(exc)))
            return
        except OSError as exc:
            log.error("storing an upload failed: %s", exc)
            await reply(t("not_stored", language, error=exc.strerror or str(exc)))
            return
        except Exception:
            log.exception("storing an upload failed")
            await reply(t("failed", language, error="an internal error; see the log"))
            return
        await reply(report_text(report, language))

    def _store(self, name: str, data: bytes, replace: bool, by: str) -> IngestReport:
        """Ingest an upload from a staging folder; the curator puts it in a corpus folder
        once it is accepted (the replaced file goes to the attic). Runs in a thread."""
        staged = self.staging / uuid.uuid4().hex / name
        try:
            staged.parent.mkdir(parents=True)
            staged.write_bytes(data)
            return self.curator.store(staged, by=by, replace=replace)
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)

    async def _remove(self, name: str, by: str, language: str) -> str:
        if not name:
            return t("no_name", language)
        try:
            reports = await asyncio.to_thread(self.curator.remove, [name], by)
        except RemovalRefused as exc:
            return t("failed", language, error=str(exc))
        if reports and reports[0].status == "removed":
            return t("removed", language, name=name)
        return t("unknown_doc", language, name=name)

    async def _reindex(self, language: str) -> str:
        if self.syncer is None:
            return t("failed", language, error="no sync is configured")
        result = await asyncio.to_thread(self.syncer.run_round)
        lines = [r.describe() for r in result.folders if r.status != "unchanged"]
        lines += [s.describe() for s in result.sources if s.status != "not-modified"]
        changes = "\n" + "\n".join(lines) if lines else t("no_changes", language)
        return t("reindexed", language, changes=changes)

    def _folder_file(self, name: str) -> Path:
        return self.curator.folders[0] / name

    async def _file_event(self, room_id: str, event_id: str) -> FileRef | None:
        try:
            source = await self.link.event(room_id, event_id, "reading the file event")
        except MatrixError:
            return None
        return file_of(room_id, source)

    def _language(self, room_id: str) -> str:
        return self.room_language.get(room_id, DEFAULT_LANGUAGE)

    async def _reply(self, room_id: str, thread_root: str, reply_to: str, text: str,
                     final: bool = True) -> None:
        await self.link.notice(room_id, thread_root, reply_to, render_notice(text), KIND,
                               final=final)


def docs_text(docs: Any, language: str) -> Rendered:
    """`!docs`: name, title, pages, language, date added, added by, source."""
    docs = sorted(docs, key=lambda d: d.name)
    if not docs:
        return render_notice(t("no_docs", language))
    nl = language == "nl"
    lines = []
    for d in docs:
        lines.append(
            f"- {d.name} — {d.title}; {d.page_count} p., {d.language}; "
            + (f"toegevoegd {d.added_at[:16]} door {d.added_by or '?'}; bron {d.source}"
               if nl else
               f"added {d.added_at[:16]} by {d.added_by or '?'}; source {d.source}"))
    return render_notice("\n".join(lines))


def history_text(records: Any, language: str) -> str:
    """`!history`: the latest changes, oldest first."""
    records = list(records)
    if not records:
        return t("no_history", language)
    return "\n".join(r.describe() for r in records[-HISTORY_SHOWN:])
