"""Small honest implementations of civicbot's protocols for fast unit tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine, Sequence
from typing import Any

import numpy as np

from civicbot.config import RetrievalConfig
from civicbot.lang import words

# A Corpus built with this indexes without the cross-lingual USE model (fast unit tests).
NO_CROSSLINGUAL = RetrievalConfig(crosslingual=False)


class HashingEmbedder:
    """Bag of words hashed into 64 dimensions: texts sharing words are similar."""

    name = "test:hashing-64"
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dimension] += 1
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


class ScriptedGenerator:
    """Writes a fixed reply in small pieces, the way a streaming model does; records prompts."""

    name = "test:scripted"
    context_size = 2048

    def __init__(self, reply: str):
        self.reply = reply
        self.prompts: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def stream(self, messages, max_tokens=None):  # type: ignore[no-untyped-def]
        self.prompts.append(messages)
        for i in range(0, len(self.reply), 7):
            yield self.reply[i : i + 7]


class FakeRoom:
    """What the bot's users read of a room: its members and the bot's name there."""

    def __init__(self, room_id: str, users: Sequence[str] = ()):
        self.room_id = room_id
        self.users = {u: None for u in users}

    @property
    def member_count(self) -> int:
        return len(self.users)

    def user_name(self, user_id: str) -> str:
        return ""


class FakeLink:
    """A Matrix link (civicbot.matrix.link.Link) without a homeserver: what is sent is kept
    in `sent` as (room id, content); events and files are served from dicts; background
    tasks run on the loop as the real link runs them."""

    def __init__(self, user_id: str = "@bot:example.org"):
        from collections import Counter

        self.user_id = user_id
        self.display_name = ""
        self.counters: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.rooms: dict[str, FakeRoom] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}  # (room, event id) -> source
        self.files: dict[str, bytes] = {}  # mxc url -> bytes
        self.states: dict[tuple[str, str], dict[str, Any]] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.typing_in: list[tuple[str, bool]] = []

    async def send(self, room_id: str, content: dict[str, Any], what: str,
                   urgent: bool = False) -> str:
        content.setdefault("m.mentions", {})
        self.sent.append((room_id, content))
        return f"$sent{len(self.sent)}"

    async def notice(self, room_id: str, thread_root: str, reply_to: str, rendered: Any,
                     kind: str, mention: str | None = None, final: bool = True) -> str:
        from civicbot.matrix import events

        content = events.notice_content(rendered, kind, thread_root, reply_to, mention, final)
        return await self.send(room_id, content, kind)

    async def edit(self, room_id: str, original: str, rendered: Any, final: bool) -> None:
        from civicbot.matrix import events

        await self.send(room_id, events.edit_content(original, rendered, "answer", final),
                        "edit")

    async def typing(self, room_id: str, on: bool) -> None:
        self.typing_in.append((room_id, on))

    async def keep_typing(self, room_id: str) -> None:
        await self.typing(room_id, True)
        await asyncio.Event().wait()  # until cancelled

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        self.track(asyncio.create_task(coro))

    def track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settle(self) -> None:
        """Wait until every background task is done."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks))

    def room(self, room_id: str) -> FakeRoom | None:
        return self.rooms.get(room_id)

    def is_direct(self, room_id: str) -> bool:
        room = self.rooms.get(room_id)
        return room is not None and room.member_count <= 2

    def names(self, room_id: str) -> list[str]:
        return [self.display_name] if self.display_name else []

    def joined(self) -> set[str]:
        return set(self.rooms)

    async def event(self, room_id: str, event_id: str, what: str) -> dict[str, Any]:
        try:
            return self.events[room_id, event_id]
        except KeyError:
            from civicbot.errors import MatrixError

            raise MatrixError(f"{what}: M_NOT_FOUND") from None

    async def thread_events(self, room_id: str, root: str) -> list[dict[str, Any]]:
        found = [e for (r, _), e in self.events.items() if r == room_id and (
            e.get("event_id") == root
            or ((e.get("content") or {}).get("m.relates_to") or {}).get("event_id") == root)]
        return sorted(found, key=lambda e: int(e.get("origin_server_ts") or 0))

    async def download(self, url: str, encryption: dict[str, Any] | None = None,
                       max_bytes: int | None = None) -> bytes:
        from civicbot.matrix.crypto import AttachmentError

        if url not in self.files:
            raise AttachmentError("the homeserver sent no file")
        return self.files[url]

    async def state(self, room_id: str, event_type: str, what: str) -> dict[str, Any]:
        return self.states.get((room_id, event_type), {})

    async def resolve_alias(self, alias: str) -> str:
        return "!" + alias.lstrip("#")

    async def join(self, room_id: str, patience: float) -> None:
        self.rooms[room_id] = FakeRoom(room_id, [self.user_id])

    async def leave(self, room_id: str) -> None:
        self.rooms.pop(room_id, None)

    def inviter(self, room_id: str) -> str:
        return ""


class FixedSource:
    """An evidence source (civicbot.protocols.EvidenceSource) over a fixed list of passages:
    every search finds them, best first; `coverage` is a fixed value or a function of
    (question, hit); `neighbours` gives the passages next to the found ones (none by
    default); a citation links to the document's page."""

    def __init__(self, hits, coverage=0.9, titles=(), neighbours=None):  # type: ignore[no-untyped-def]
        self.hits = list(hits)
        self._coverage = coverage if callable(coverage) else (lambda q, h: coverage)
        self._titles = list(titles)
        self._neighbours = neighbours or (lambda hits: [])
        self.searched: list[str] = []

    def search(self, query, k=10):  # type: ignore[no-untyped-def]
        self.searched.append(getattr(query, "query", query))
        return self.hits[:k]

    def neighbours(self, hits):  # type: ignore[no-untyped-def]
        return self._neighbours(hits)

    def coverage(self, question, hit):  # type: ignore[no-untyped-def]
        return self._coverage(question, hit)

    def windows(self, question, hit):  # type: ignore[no-untyped-def]
        return ()

    def translations(self, question):  # type: ignore[no-untyped-def]
        return {}

    def titles(self):  # type: ignore[no-untyped-def]
        return self._titles

    def link(self, hit, page):  # type: ignore[no-untyped-def]
        return f"{hit.chunk.doc}#page={page}"
