"""Editors change the corpus from Matrix: uploads (a file in the editors' room or a direct
chat), `!add`, `!replace NAME`, `!remove NAME`, `!docs`, `!reindex`, `!history`; and the
scheduled sync's notices go to the editors' room (docs/editors.md).

The decisions (is this a file, may this user edit, is this upload acceptable) are pure
functions; `Editing` is the thin part that downloads, runs the corpus change in a worker
thread (citizens keep being answered meanwhile) and replies through the bot.

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
from civicbot.matrix.render import Rendered, render_notice
from civicbot.sources import safe_file_name

if TYPE_CHECKING:  # the bot imports this module; this module only calls back into it
    from civicbot.matrix.bot import Bot
    from civicbot.sync import Syncer

log = logging.getLogger(__name__)

COMMANDS = frozenset({"add", "replace", "remove", "docs", "reindex", "history"})
HISTORY_SHOWN = 20
_REJECTIONS = frozenset({"bad_name", "type", "too_large", "content"})
KIND = "editor"

_TEXTS: dict[str, dict[str, str]] = {
    "not_editor": {
        "en": "Only editors may change the documents. Ask an administrator to add you to "
              "the editors if you should be one.",
        "nl": "Alleen redacteuren mogen de documenten wijzigen. Vraag een beheerder om u als "
              "redacteur toe te voegen als dat de bedoeling is.",
    },
    "no_file": {
        "en": "Send this command as a reply to the file it is about.",
        "nl": "Stuur deze opdracht als antwoord op het bestand waar het om gaat.",
    },
    "bad_name": {
        "en": "The file name {name!r} cannot be used. Rename the file and send it again.",
        "nl": "De bestandsnaam {name!r} is niet bruikbaar. Geef het bestand een andere naam "
              "en stuur het opnieuw.",
    },
    "type": {
        "en": "{name}: files of this type cannot be added. Send a PDF, text (.txt), "
              "Markdown (.md) or HTML file.",
        "nl": "{name}: dit soort bestand kan niet worden toegevoegd. Stuur een PDF-, tekst- "
              "(.txt), Markdown- (.md) of HTML-bestand.",
    },
    "too_large": {
        "en": "{name} is {mb:.1f} MB; the limit is {limit} MB. Send a smaller file.",
        "nl": "{name} is {mb:.1f} MB; de grens is {limit} MB. Stuur een kleiner bestand.",
    },
    "content": {
        "en": "{name} is not what its name says: {what}. Nothing was changed.",
        "nl": "{name} is niet wat de naam zegt: {what}. Er is niets gewijzigd.",
    },
    "exists": {
        "en": "A document named {name} is already there. To replace it, reply to the file "
              "with: !replace {name}",
        "nl": "Er is al een document met de naam {name}. Om het te vervangen, antwoord op het "
              "bestand met: !replace {name}",
    },
    "unknown_doc": {
        "en": "There is no document named {name}. !docs lists them.",
        "nl": "Er is geen document met de naam {name}. !docs toont ze.",
    },
    "from_source": {
        "en": "{name} comes from the configured source {source}; it is updated from there. "
              "To change it, change the source or take it out of [[sources]] in the "
              "configuration.",
        "nl": "{name} komt uit de ingestelde bron {source} en wordt daar vandaan bijgewerkt. "
              "Wijzig de bron, of haal hem uit [[sources]] in de configuratie.",
    },
    "not_stored": {
        "en": "The file could not be stored ({error}). Nothing was changed. Ask the "
              "administrator to check the disk.",
        "nl": "Het bestand kon niet worden opgeslagen ({error}). Er is niets gewijzigd. "
              "Vraag de beheerder de schijf na te kijken.",
    },
    "other_type": {
        "en": "{name} can only be replaced by a file of the same type ({suffix}).",
        "nl": "{name} kan alleen worden vervangen door een bestand van hetzelfde soort "
              "({suffix}).",
    },
    "download": {
        "en": "The file could not be downloaded from the homeserver ({error}). Send it again.",
        "nl": "Het bestand kon niet van de server worden gehaald ({error}). Stuur het opnieuw.",
    },
    "reading": {
        "en": "Reading {name}…",
        "nl": "Bezig met {name}…",
    },
    "added": {"en": "Added", "nl": "Toegevoegd"},
    "replaced": {"en": "Replaced", "nl": "Vervangen"},
    "unchanged": {"en": "Unchanged (the same file is already there)",
                  "nl": "Ongewijzigd (hetzelfde bestand staat er al)"},
    "report": {
        "en": "{status}: {name}\nTitle: {title}\nPages: {pages}, passages: {chunks}, "
              "language: {language}",
        "nl": "{status}: {name}\nTitel: {title}\nPagina's: {pages}, passages: {chunks}, "
              "taal: {language}",
    },
    "left_out": {
        "en": "Left out: pages {pages} ({why})",
        "nl": "Weggelaten: pagina's {pages} ({why})",
    },
    "rejected": {
        "en": "{name} was not added ({reason}): {message}\nNothing was changed.",
        "nl": "{name} is niet toegevoegd ({reason}): {message}\nEr is niets gewijzigd.",
    },
    "removed": {
        "en": "Removed: {name}. It is no longer used in answers.",
        "nl": "Verwijderd: {name}. Het wordt niet meer gebruikt in antwoorden.",
    },
    "no_name": {
        "en": "Say which document: !remove NAME (!docs lists the names).",
        "nl": "Zeg welk document: !remove NAAM (!docs toont de namen).",
    },
    "no_docs": {"en": "There are no documents yet.", "nl": "Er zijn nog geen documenten."},
    "no_history": {"en": "No changes have been recorded yet.",
                   "nl": "Er zijn nog geen wijzigingen vastgelegd."},
    "reindexed": {
        "en": "Checked the corpus folders and sources: {changes}.",
        "nl": "Mappen en bronnen nagelopen: {changes}.",
    },
    "no_changes": {"en": "nothing changed", "nl": "niets gewijzigd"},
    "failed": {
        "en": "That did not work: {error}",
        "nl": "Dat lukte niet: {error}",
    },
}

_WHY = {"no-text": ("no text layer, scanned?", "geen tekstlaag, gescand?"),
        "garbled": ("garbled text", "onleesbare tekst")}


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def say(key: str, language: str, /, **values: Any) -> str:
    table = _TEXTS[key]
    text = table.get(language) or table["en"]
    return text.format(**values) if values else text


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
    RoomEncryptedFile shows it), else None."""
    if event.get("type") != "m.room.message":
        return None
    content = event.get("content") or {}
    if content.get("msgtype") != "m.file" or "m.new_content" in content:
        return None
    encrypted = content.get("file") if isinstance(content.get("file"), dict) else None
    url = (encrypted or {}).get("url") if encrypted else content.get("url")
    if not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    info = content.get("info") or {}
    size = info.get("size") if isinstance(info.get("size"), int) else None
    name = content.get("filename") or content.get("body") or ""
    return FileRef(str(event.get("event_id", "")), room_id, str(event.get("sender", "")),
                   str(name), url, size, encrypted)


def reply_target(event: dict[str, Any]) -> str | None:
    """The event a message replies to (`m.in_reply_to`), inside a thread or not."""
    relates = (event.get("content") or {}).get("m.relates_to") or {}
    target = (relates.get("m.in_reply_to") or {}).get("event_id")
    return target if isinstance(target, str) else None


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
        return say("rejected", language, name=report.name, reason=report.reason,
                   message=report.message)
    text = say("report", language, status=say(report.status, language), name=report.name,
               title=report.title or report.name, pages=report.pages, chunks=report.chunks,
               language=report.language)
    by_reason: dict[str, list[str]] = {}
    for issue in report.skipped:
        by_reason.setdefault(issue.reason, []).append(str(issue.number))
    for reason, pages in by_reason.items():
        why = _WHY.get(reason, (reason, reason))[language == "nl"]
        text += "\n" + say("left_out", language, pages=", ".join(pages), why=why)
    return text


# ---- the Matrix part -----------------------------------------------------------------------


class Editing:
    """The editor features of one bot."""

    def __init__(self, bot: Bot, curator: Curator, syncer: Syncer | None = None):
        self.bot = bot
        self.cfg = bot.cfg
        self.curator = curator
        self.syncer = syncer
        self.editors_room = ""  # the room id, once an alias is resolved
        self.max_bytes = self.cfg.corpus.max_file_mb * 1_000_000
        self.staging = bot.data_dir / "uploads"
        self.schedule: Any = None

    # -- lifecycle --

    async def start(self) -> None:
        """Resolve the editors' room and start the scheduled sync."""
        room = self.cfg.editors.room
        if room.startswith("#"):
            try:
                resp = await self.bot._call(f"resolving {room}",
                                            lambda: self.bot.client.room_resolve_alias(room),
                                            patience=30)
                self.editors_room = str(resp.room_id)
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
        if self.editors_room and self.editors_room in self.bot.client.rooms:
            content = {"msgtype": "m.notice", "body": text, events.KIND: KIND}
            await self.bot._send(self.editors_room, content, "telling the editors")

    # -- who may do what --

    async def is_editor(self, user_id: str) -> bool:
        """Listed in the config, or a member of the editors' room with enough power there.
        The power levels are read from the homeserver at each check, not from nio's room:
        nio merges each new m.room.power_levels into the old one, so a user demoted by
        dropping their entry (as Element's /deop does) would keep the old level there. If
        they cannot be read, nobody is an editor by power level (fail closed)."""
        if user_id in self.cfg.editors.users:
            return True
        room = self.bot.client.rooms.get(self.editors_room) if self.editors_room else None
        if room is None or user_id not in room.users:
            return False
        try:
            resp = await self.bot._call(
                "reading the editors' power levels",
                lambda: self.bot.client.room_get_state_event(self.editors_room,
                                                             "m.room.power_levels"),
                patience=30)
        except MatrixError as exc:
            log.warning("the editors' room power levels cannot be read: %s", exc)
            return False
        levels = resp.content if isinstance(resp.content, dict) else {}
        users = levels.get("users") if isinstance(levels.get("users"), dict) else {}
        level = users.get(user_id, levels.get("users_default", 0))
        return isinstance(level, int) and level >= self.cfg.editors.power_level

    def is_editing_room(self, room_id: str) -> bool:
        """Where a plain file upload is taken as a document: the editors' room or a direct
        chat with the bot (files shared among citizens elsewhere are left alone)."""
        room = self.bot.client.rooms.get(room_id)
        return room_id == self.editors_room or (room is not None and room.member_count <= 2)

    # -- events --

    def on_event(self, room_id: str, source: dict[str, Any]) -> None:
        """An event that is not a text message: handle it if it is a file upload."""
        ref = file_of(room_id, source)
        if ref is None or ref.sender == self.bot.user_id or self.bot.state.seen(ref.event_id):
            return
        self.bot.state.mark_done(ref.event_id)
        self.bot._spawn(self.on_file(room_id, ref), "handling an upload")

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
            await reply(say("not_editor", lang))
            return
        try:
            if command.name in ("add", "replace"):
                target = reply_target(source)
                ref = await self._file_event(msg.room_id, target) if target else None
                if ref is None:
                    await reply(say("no_file", lang))
                    return
                replace = command.args.strip() if command.name == "replace" else None
                if command.name == "replace" and not replace:
                    await reply(say("no_name", lang).replace("!remove", "!replace"))
                    return
                await self._upload(ref, lang, replace, thread_root, msg.event_id,
                                   by=msg.sender)
            elif command.name == "remove":
                await reply(await self._remove(command.args.strip(), msg.sender, lang))
            elif command.name == "docs":
                await self.bot._notice(msg.room_id, thread_root, msg.event_id,
                                       docs_text(self.curator.corpus.documents().values(),
                                                 lang), KIND)
            elif command.name == "history":
                records = await asyncio.to_thread(self.curator.history)
                await reply(history_text(records, lang))
            elif command.name == "reindex":
                await reply(await self._reindex(lang))
        except CivicbotError as exc:
            await reply(say("failed", lang, error=str(exc)))

    # -- the work --

    async def _upload(self, ref: FileRef, language: str, replace: str | None,
                      thread_root: str, reply_to: str, by: str | None = None) -> None:
        by = by or ref.sender

        async def reply(text: str, final: bool = True) -> None:
            await self._reply(ref.room_id, thread_root, reply_to, text, final)

        if not await self.is_editor(by):
            log.info("upload refused: not an editor")
            await reply(say("not_editor", language))
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
                data = await self.download(ref.url, ref.encryption)
            except MatrixError as exc:
                raise UploadRefused("download", error=str(exc)) from exc
            check_content(name, data, self.max_bytes)
        except UploadRefused as exc:
            log.info("upload refused: %s", exc.key)
            message = say(exc.key, language, **exc.values)
            if exc.key in _REJECTIONS:  # a refused document is a change attempt: recorded
                record = AuditRecord(now(), "rejected", str(exc.values.get("name", ref.name)),
                                     by=by, source="upload", reason=f"{exc.key}: {message}")
                await asyncio.to_thread(self.curator.audit.append, [record])
            await reply(message)
            return
        await reply(say("reading", language, name=name), final=False)
        # Whatever goes wrong now, the editor hears it (the "Reading…" notice must not stay).
        try:
            report = await asyncio.to_thread(self._store, name, data, replace is not None, by)
        except CivicbotError as exc:
            await reply(say("failed", language, error=str(exc)))
            return
        except OSError as exc:
            log.error("storing an upload failed: %s", exc)
            await reply(say("not_stored", language, error=exc.strerror or str(exc)))
            return
        except Exception:
            log.exception("storing an upload failed")
            await reply(say("failed", language, error="an internal error; see the log"))
            return
        await reply(report_text(report, language))

    async def download(self, mxc: str, encryption: dict[str, Any] | None = None) -> bytes:
        """The bytes of an uploaded file (authenticated media). Encrypted attachments are
        decrypted with the `file` object of the event (key, iv, sha256 hash)."""
        resp = await self.bot._call("downloading a file",
                                    lambda: self.bot.client.download(mxc=mxc), patience=60)
        body = getattr(resp, "body", None)
        if not isinstance(body, bytes):
            raise MatrixError("the homeserver sent no file")
        if encryption is None:
            return body
        from civicbot.matrix import crypto

        # an AttachmentError (a MatrixError) also for a wrong hash (nio's EncryptionError)
        return crypto.decrypt_file(body, encryption)

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
            return say("no_name", language)
        try:
            reports = await asyncio.to_thread(self.curator.remove, [name], by)
        except RemovalRefused as exc:
            return say("failed", language, error=str(exc))
        if reports and reports[0].status == "removed":
            return say("removed", language, name=name)
        return say("unknown_doc", language, name=name)

    async def _reindex(self, language: str) -> str:
        if self.syncer is None:
            return say("failed", language, error="no sync is configured")
        result = await asyncio.to_thread(self.syncer.run_round)
        lines = [r.describe() for r in result.folders if r.status != "unchanged"]
        lines += [s.describe() for s in result.sources if s.status != "not-modified"]
        changes = "\n" + "\n".join(lines) if lines else say("no_changes", language)
        return say("reindexed", language, changes=changes)

    def _folder_file(self, name: str) -> Path:
        return self.curator.folders[0] / name

    async def _file_event(self, room_id: str, event_id: str) -> FileRef | None:
        try:
            resp = await self.bot._call("reading the file event",
                                        lambda: self.bot.client.room_get_event(room_id, event_id),
                                        patience=30)
        except MatrixError:
            return None
        return file_of(room_id, resp.event.source)

    def _language(self, room_id: str) -> str:
        from civicbot.matrix.texts import DEFAULT_LANGUAGE

        return self.bot._room_language.get(room_id, DEFAULT_LANGUAGE)

    async def _reply(self, room_id: str, thread_root: str, reply_to: str, text: str,
                     final: bool = True) -> None:
        await self.bot._notice(room_id, thread_root, reply_to, render_notice(text), KIND,
                               final=final)


def for_bot(bot: Bot) -> Editing | None:
    """Editing for a bot whose answerer is the service (it owns the corpus); None for an
    answerer that cannot change documents (e.g. the test harness's)."""
    if getattr(type(bot.answerer), "curator", None) is None:
        return None
    from civicbot.sync import Syncer

    curator = bot.answerer.curator  # type: ignore[attr-defined]
    return Editing(bot, curator, Syncer(curator, bot.cfg))


def docs_text(docs: Any, language: str) -> Rendered:
    """`!docs`: name, title, pages, language, date added, added by, source."""
    docs = sorted(docs, key=lambda d: d.name)
    if not docs:
        return render_notice(say("no_docs", language))
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
        return say("no_history", language)
    return "\n".join(r.describe() for r in records[-HISTORY_SHOWN:])
