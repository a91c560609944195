"""Test harness for the Matrix bot: users registered through the admin API of the real Synapse
that tests/integration/conftest.py starts once per session, citizens driven with nio, and a
small honest answerer. Only the Matrix test modules import this (nio and synapse are imported
here, so a missing one fails those modules instead of skipping them).

Tests are plain functions that call `run(coro)`; the bot runs as a task in the same event
loop as the citizens (`running_bot`), so no pytest-asyncio is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nio

# Imported, not skipped: a missing homeserver is a failing suite, never a silent one.
import synapse  # noqa: F401

from civicbot import config as config_mod
from civicbot.homeserver import Homeserver
from civicbot.matrix.bot import Bot
from civicbot.matrix.events import FINAL, KIND, content_of, obj
from civicbot.records import Answer, Citation, DocInfo, Turn

TIMEOUT = 30.0


# -- a small honest answerer -------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    keywords: tuple[str, ...]
    doc: str
    title: str
    page: int
    text: str
    language: str


PASSAGES = (
    Passage(("parking", "parkeren", "parkeervergunning", "permit"), "parkeerbeleid.pdf",
            "Parkeerbeleid 2024", 4,
            "A resident parking permit costs 120 euros a year and is valid in zone A.", "en"),
    Passage(("waste", "afval", "bin", "container"), "afvalplan.pdf", "Afvalplan", 2,
            "Household waste is collected every Tuesday; large items by appointment.", "en"),
    Passage(("subsidie", "subsidy", "grant"), "subsidieregeling.pdf", "Subsidieregeling", 7,
            "De gemeente geeft subsidie voor isolatie tot 1.500 euro per woning.", "nl"),
)

_WORD = re.compile(r"[a-zà-ÿ]+")


class WordLookupAnswerer:
    """Finds passages by keyword in the question (or, for a follow-up without keywords, in
    the conversation so far) and writes its answer in small pieces, like a model would.

    `hold`, when set, makes each answer pause after its first piece until the event is set:
    tests use it to have an answer "in progress" for as long as they need, without sleeps.
    """

    def __init__(
        self,
        passages: Sequence[Passage] = PASSAGES,
        piece_delay: float = 0.02,
        words_per_piece: int = 3,
        hold: threading.Event | None = None,
        repeat: int = 1,
    ):
        self.passages = tuple(passages)
        self.piece_delay = piece_delay
        self.words_per_piece = words_per_piece
        self.hold = hold
        self.repeat = repeat
        self.calls: list[tuple[str, tuple[Turn, ...]]] = []
        self.started = threading.Event()
        self._lock = threading.Lock()

    def _find(self, text: str) -> list[Passage]:
        words = set(_WORD.findall(text.lower()))
        return [p for p in self.passages if words & set(p.keywords)]

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        with self._lock:
            self.calls.append((question, tuple(history)))
        start = time.monotonic()
        found = self._find(question)
        if not found:
            earlier = " ".join(turn.text for turn in history)
            found = self._find(earlier)
        if not found:
            text = "The documents do not answer this question."
            return Answer(question, text, "refused", "en", seconds=time.monotonic() - start)
        p = found[0]
        text = " ".join([f"According to {p.title}: {p.text} [1]"] * self.repeat)
        words = text.split()
        so_far: list[str] = []
        for i in range(0, len(words), self.words_per_piece):
            so_far.extend(words[i : i + self.words_per_piece])
            if on_text:
                on_text(" ".join(so_far))
            if i == 0:
                self.started.set()
                if self.hold is not None:
                    self.hold.wait(TIMEOUT)
            time.sleep(self.piece_delay)
        citation = Citation(1, p.doc, p.title, p.page, p.page, p.text,
                            f"https://example.org/docs/{p.doc}#page={p.page}")
        return Answer(question, text, "generated", p.language, [citation],
                      seconds=time.monotonic() - start)

    def documents(self) -> list[DocInfo]:
        docs = {p.doc: p for p in self.passages}
        return [DocInfo(p.doc, p.title, "0" * 64, 10, p.language, 3, added_at="2024-05-01")
                for p in docs.values()]

    def about(self) -> dict[str, str]:
        return {"model": "word-lookup (test)", "model_sha256": "000000000000",
                "embedding_model": "none", "documents": str(len(self.documents())),
                "corpus_updated": "2024-05-01"}


# -- running things ----------------------------------------------------------------------


def run(coro: Any, timeout: float = 90.0) -> Any:
    """Run an async test body with an overall time limit."""

    async def limited() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(limited())


async def eventually(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


_names = itertools.count()


def new_user(hs: Homeserver, prefix: str) -> dict[str, str]:
    """Register a fresh user (unique within the session)."""
    name = f"{prefix}{next(_names)}{secrets.token_hex(3)}"
    return hs.register(name, secrets.token_urlsafe(12))


def bot_config(
    hs: Homeserver, account: dict[str, str], data_dir: Path, **bot: Any
) -> config_mod.Config:
    """A Config for a bot account on `hs`, with fast edits unless overridden."""
    bot_section = {"edit_interval_s": 0.1, "max_edits": 10, **bot}
    return config_mod.build(
        {
            "matrix": {
                "homeserver": hs.url,
                "user_id": account["user_id"],
                "access_token": account["access_token"],
                "data_dir": str(data_dir),
            },
            "bot": bot_section,
        },
        env={},
    )


def service_config(
    tmp_path: Path, hs: Homeserver | None = None, account: dict[str, str] | None = None,
    **sections: Any,
) -> config_mod.Config:
    """A Config for the real Service over a fresh index, corpus folder and data folder in
    `tmp_path`; with `hs` and `account`, also for a bot on that homeserver (fast edits)."""
    (tmp_path / "corpus").mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "matrix": {"data_dir": str(tmp_path / "data")},
        "corpus": {"paths": [str(tmp_path / "corpus")]},
        "index": {"path": str(tmp_path / "index")},
    }
    if hs is not None and account is not None:
        data["matrix"].update(homeserver=hs.url, user_id=account["user_id"],
                              access_token=account["access_token"])
        data["bot"] = {"edit_interval_s": 0.1, "max_edits": 10}
    return config_mod.build({**data, **sections}, env={})


@contextlib.asynccontextmanager
async def running_bot(cfg: config_mod.Config, answerer: Any) -> AsyncIterator[Bot]:
    """A bot serving in the background until the block ends (then stopped abruptly, as a
    crash would: the journal must cover whatever was in progress)."""
    bot = Bot(cfg, answerer)
    task = asyncio.create_task(bot.run())
    ready = asyncio.create_task(bot.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong
    if ready not in done:
        ready.cancel()
        task.cancel()
        raise AssertionError("bot did not become ready")
    try:
        yield bot
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# Synapse shows at most 10 events of a room per sync unless asked for more; a flood (100
# commands and their replies) between two syncs on a busy machine would then reach the
# citizen with a gap, and a reply the bot did send would never be seen by the test.
CITIZEN_FILTER = {"room": {"timeline": {"limit": 1000}}}


class Citizen:
    """A Matrix user driven with nio, collecting every event of its rooms."""

    def __init__(self, hs: Homeserver, account: dict[str, str]):
        self.user_id = account["user_id"]
        self.client = nio.AsyncClient(hs.url, self.user_id, device_id=account["device_id"])
        self.client.access_token = account["access_token"]
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Citizen:
        await self._sync(0)
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()

    async def _sync(self, timeout: int) -> None:
        resp = await self.client.sync(timeout=timeout, full_state=False,
                                      sync_filter=CITIZEN_FILTER)
        if isinstance(resp, nio.SyncResponse):
            for room_id, info in resp.rooms.join.items():
                self.events.setdefault(room_id, []).extend(e.source for e in info.timeline.events)

    async def _loop(self) -> None:
        while True:
            try:
                await self._sync(1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # the homeserver may be restarting
                await asyncio.sleep(0.2)

    async def _ok(self, resp: Any) -> Any:
        if isinstance(resp, nio.ErrorResponse):
            raise AssertionError(f"citizen request failed: {resp}")
        return resp

    async def create_room(
        self, invite: Sequence[str], room_version: str | None = None, direct: bool = False
    ) -> str:
        resp = await self._ok(await self.client.room_create(
            invite=list(invite), is_direct=direct, room_version=room_version,
            preset=nio.RoomPreset.private_chat,
        ))
        return str(resp.room_id)

    async def join(self, room_id: str) -> None:
        await self._ok(await self.client.join(room_id))

    async def wait_joined(self, room_id: str, user_id: str) -> None:
        async def joined() -> bool:
            resp = await self.client.joined_members(room_id)
            return isinstance(resp, nio.JoinedMembersResponse) and any(
                m.user_id == user_id for m in resp.members)

        deadline = time.monotonic() + TIMEOUT
        while not await joined():
            if time.monotonic() > deadline:
                raise AssertionError(f"{user_id} did not join {room_id}")
            await asyncio.sleep(0.1)

    async def send(
        self,
        room_id: str,
        text: str,
        thread_root: str | None = None,
        mention: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if mention:
            content["m.mentions"] = {"user_ids": [mention]}
        if thread_root:
            content["m.relates_to"] = {
                "rel_type": "m.thread", "event_id": thread_root, "is_falling_back": True,
                "m.in_reply_to": {"event_id": reply_to or thread_root},
            }
        resp = await self._ok(await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True))
        return str(resp.event_id)

    async def caught_up(self, room_id: str, timeout: float = TIMEOUT) -> None:
        """Wait until this client has received everything sent to the room so far: a marker
        event of a type nobody answers, sent now, comes back through sync after every
        earlier event of the room's timeline."""
        resp = await self._ok(await self.client.room_send(
            room_id, "org.civicbot.test.marker", {}, ignore_unverified_devices=True))
        marker = str(resp.event_id)
        await eventually(lambda: any(ev.get("event_id") == marker
                                     for ev in self.events.get(room_id, [])),
                         timeout, "the room's timeline to catch up")

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        resp = await self._ok(await self.client.room_send(
            room_id, "m.reaction", content, ignore_unverified_devices=True))
        return str(resp.event_id)

    def replies_to(self, room_id: str, question_id: str, sender: str) -> list[dict[str, Any]]:
        """The `sender`'s thread messages replying to `question_id` (edits excluded)."""
        out = []
        for ev in self.events.get(room_id, []):
            # the room may hold malformed events (tests/integration/test_bot_hardening.py)
            rel = obj(content_of(ev).get("m.relates_to"))
            if (ev.get("sender") == sender and ev.get("type") == "m.room.message"
                    and rel.get("rel_type") == "m.thread"
                    and obj(rel.get("m.in_reply_to")).get("event_id") == question_id):
                out.append(ev)
        return out

    def edits_of(self, room_id: str, event_id: str) -> list[dict[str, Any]]:
        out = []
        for ev in self.events.get(room_id, []):
            rel = obj(content_of(ev).get("m.relates_to"))
            if rel.get("rel_type") == "m.replace" and rel.get("event_id") == event_id:
                out.append(ev)
        return out

    async def wait_reply(
        self, room_id: str, question_id: str, sender: str, kind: str | None = None,
        timeout: float = TIMEOUT,
    ) -> dict[str, Any]:
        """The first thread reply of `sender` to the question (of `kind` if given)."""
        def found() -> dict[str, Any] | None:
            for ev in self.replies_to(room_id, question_id, sender):
                if kind is None or ev["content"].get(KIND) == kind:
                    return ev
            return None

        return await eventually(found, timeout, f"a {kind or ''} reply to {question_id}")

    async def wait_final(
        self, room_id: str, reply: dict[str, Any], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The content of the reply once final: its own if it was sent final, else the
        final edit's m.new_content."""
        if reply["content"].get(FINAL):
            return reply["content"]

        def final() -> dict[str, Any] | None:
            for ev in self.edits_of(room_id, reply["event_id"]):
                new = ev["content"].get("m.new_content") or {}
                if new.get(FINAL):
                    return new
            return None

        return await eventually(final, timeout, f"the final edit of {reply['event_id']}")

    async def ask(
        self, room_id: str, text: str, bot_id: str, thread_root: str | None = None,
        mention: str | None = None, timeout: float = TIMEOUT,
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Send a question and wait for the bot's answer: (question id, reply, final content)."""
        qid = await self.send(room_id, text, thread_root=thread_root, mention=mention)
        reply = await self.wait_reply(room_id, qid, bot_id, kind="answer", timeout=timeout)
        final = await self.wait_final(room_id, reply, timeout=timeout)
        return qid, reply, final


@contextlib.asynccontextmanager
async def citizen(hs: Homeserver, prefix: str = "citizen") -> AsyncIterator[Citizen]:
    async with Citizen(hs, new_user(hs, prefix)) as c:
        yield c


async def membership(c: Citizen, room_id: str, user_id: str) -> str:
    """`user_id`'s membership in the room as the homeserver has it ("" when unknown)."""
    resp = await c.client.room_get_state_event(room_id, "m.room.member", user_id)
    if isinstance(resp, nio.RoomGetStateEventResponse):
        return str(resp.content.get("membership", ""))
    return ""


async def wait_membership(
    c: Citizen, room_id: str, user_id: str, wanted: str, timeout: float = TIMEOUT
) -> None:
    """Poll the homeserver until `user_id` is `wanted` ("join", "leave", ...) in the room."""
    deadline = time.monotonic() + timeout
    while (now := await membership(c, room_id, user_id)) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"{user_id} is {now!r} in {room_id}, not {wanted!r}")
        await asyncio.sleep(0.05)


async def direct_room(c: Citizen, bot: Bot) -> str:
    """A direct chat between the citizen and the bot, once the bot has joined."""
    room_id = await c.create_room([bot.user_id], direct=True)
    await c.wait_joined(room_id, bot.user_id)
    return room_id
