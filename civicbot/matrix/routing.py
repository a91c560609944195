"""Which events the bot reacts to, and how: is a message addressed to the bot, is it a
command (citizens' or editors'), may its sender get a reply (bot.replies_per_minute), and
reactions (feedback) and deletions. Questions go on to `Answering`, editor commands and
uploads to `Editing`; everything sent goes through the `Link`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicbot import metrics
from civicbot.config import Config
from civicbot.matrix import commands, events, feedback
from civicbot.matrix.answering import Answering, Job
from civicbot.matrix.link import Link
from civicbot.matrix.queue import ReplyGate
from civicbot.matrix.render import render_notice
from civicbot.matrix.state import BotState
from civicbot.protocols import Answerer
from civicbot.texts import DEFAULT_LANGUAGE, language_of, t

if TYPE_CHECKING:
    from civicbot.matrix.editing import Editing

log = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600  # questions older than this when first seen get an apology


@dataclass(eq=False)
class Routing:
    """Decides what each event is and hands it on."""

    link: Link
    cfg: Config
    answerer: Answerer
    state: BotState
    answering: Answering
    editing: Editing | None
    data_dir: Path
    room_language: dict[str, str]  # shared with answering and editing

    def __post_init__(self) -> None:
        self.counters = self.link.counters
        self.replies = ReplyGate(self.cfg.bot.replies_per_minute)
        self.reactions = feedback.recorded_reactions(self.data_dir)

    async def on_event(self, room_id: str, source: dict[str, Any]) -> None:
        """One (decrypted) event of a joined room."""
        source = events.sanitized(source)  # nested fields of the wrong type are dropped
        reaction = events.reaction_of(source)
        if reaction is not None:
            self._on_reaction(source, *reaction)
            return
        redacted = events.redacted_id(source)
        if redacted is not None:
            if redacted in self.reactions:
                feedback.record_retraction(self.data_dir, redacted)
                self.reactions.discard(redacted)
            elif redacted in self.state.pending:
                self.answering.withdraw(redacted)
            return
        user_id = self.link.user_id
        msg = events.parse_message(room_id, source, user_id)
        if msg is None and self.editing is not None:  # perhaps an editor's upload
            ref = self.editing.upload_of(room_id, source)
            if ref is not None and not self.may_reply(ref.sender, ref.event_id, room_id,
                                                      ref.event_id, DEFAULT_LANGUAGE):
                return
            self.editing.on_event(room_id, source)
            return
        if msg is None or self.state.seen(msg.event_id):
            return
        names = self.link.names(room_id)
        if not self.addressed(msg, names):
            return
        text = events.strip_mention(msg.body, user_id, names)
        language = language_of(text, self.room_language.get(room_id, DEFAULT_LANGUAGE))
        thread_root = msg.thread_root or msg.event_id
        if not self.may_reply(msg.sender, msg.event_id, room_id, thread_root, language):
            return
        command = commands.parse_command(text)
        if command is not None and self.editing is not None and self.editing.handles(command):
            self.state.mark_done(msg.event_id)
            self.link.spawn(self.editing.on_command(msg, source, thread_root, command, language),
                            "an editor command")
            return
        if command is not None:
            self.state.mark_done(msg.event_id)
            log.info("command %s in room %s", command.name, room_id)
            self.link.spawn(self._command(msg, thread_root, command, language),
                            "answering a command")
            return
        if not text:
            self._short_reply(msg, thread_root, t("bare_mention", language),
                              "answering a bare mention")
            return
        if msg.timestamp_ms and time.time() - msg.timestamp_ms / 1000 > STALE_AFTER_S:
            log.info("question %s in room %s is too old to answer", msg.event_id, room_id)
            self._short_reply(msg, thread_root, t("stale", language), "apologising")
            return
        if not self.state.accept(msg.event_id, room_id, thread_root):
            return
        job = Job(msg.event_id, room_id, thread_root, msg.sender, text, language,
                  in_thread=msg.thread_root is not None)
        self.answering.admit(job, rate_limited=True)

    def addressed(self, msg: events.Incoming, names: list[str]) -> bool:
        """A message the bot answers: in a direct chat, a room where it answers everything,
        a thread it answers in, with a mention, or an editors' command."""
        return (
            self.needs_answer(msg.room_id, msg.thread_root)
            or events.is_mentioned(msg, self.link.user_id, names)
            or (self.editing is not None and self.editing.addressed(msg))
        )

    def needs_answer(self, room_id: str, thread_root: str | None) -> bool:
        """Whether a message the bot cannot read would have been answered (without a
        mention, which it cannot see): direct chats, answer-all rooms, its threads."""
        return (
            self.link.is_direct(room_id)
            or room_id in self.cfg.matrix.answer_all_rooms
            or (thread_root is not None and thread_root in self.state.threads)
        )

    def _short_reply(self, msg: events.Incoming, thread_root: str, text: str, what: str) -> None:
        self.state.mark_done(msg.event_id)
        self.link.spawn(
            self.link.notice(msg.room_id, thread_root, msg.event_id, render_notice(text),
                             "status"),
            what,
        )

    def may_reply(self, sender: str, event_id: str, room_id: str, thread_root: str,
                  language: str) -> bool:
        """The per-sender limit on replies of every kind (bot.replies_per_minute): False
        when this message gets no reply (then it is marked handled). Editors (listed ones,
        and anyone in the editors' room) are not limited: they upload in batches."""
        if sender in self.cfg.editors.users or (
            self.editing is not None and room_id == self.editing.editors_room
        ):
            return True
        verdict = self.replies.check(sender)
        if verdict == "reply":
            return True
        self.state.mark_done(event_id)
        self.counters["replies_withheld"] += 1
        metrics.turned_away("rate_limited")
        if verdict == "warn":
            log.info("room %s: a sender is over the message limit; one notice, then silence",
                     room_id)
            self.link.spawn(self.link.notice(room_id, thread_root, event_id,
                                             render_notice(t("slow_down", language)), "status"),
                            "telling a citizen to slow down")
        return False

    def _on_reaction(self, source: dict[str, Any], target: str, key: str) -> None:
        reaction_id = str(source.get("event_id", ""))
        if source.get("sender") == self.link.user_id or reaction_id in self.reactions:
            return
        placeholders = {p.placeholder for p in self.state.pending.values()}
        if target not in self.state.answers and target not in placeholders:
            return
        vote = feedback.vote_from_key(key)
        if vote is None:
            return
        question = (self.answering.questions.get(target) if self.cfg.bot.log_questions
                    else None)
        feedback.record_vote(self.data_dir, target, vote, reaction_id, question=question)
        self.reactions.add(reaction_id)
        log.info("feedback %s on answer %s", vote, target)

    async def _command(
        self, msg: events.Incoming, thread_root: str, command: commands.Command, language: str
    ) -> None:
        lang = command.language or language
        if command.name == "help":
            rendered = commands.help_text(lang)
        elif command.name == "about":
            facts = await asyncio.to_thread(self.answerer.about)
            rendered = commands.about_text(facts, lang, self.cfg.matrix.source_code_url)
        elif command.name == "sources":
            docs = await asyncio.to_thread(self.answerer.documents)
            rendered = commands.sources_text(docs, lang)
        elif command.name == "privacy":
            rendered = commands.privacy_text(lang, self.cfg.bot.log_questions,
                                             self.cfg.matrix.encryption)
        else:
            rendered = commands.unknown_text(command.word, lang)
        await self.link.notice(msg.room_id, thread_root, msg.event_id, rendered, "command")
