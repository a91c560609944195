"""The bot's whole contact with Matrix: one nio client behind one narrow object.

Routing, answering, editing and the lifecycle (bot.py) get a `Link` handed in and never
reach into each other: everything they send or read goes through here. Every nio error
response is turned into a MatrixError once (`call`), after back-off for network errors,
5xx and M_LIMIT_EXCEEDED. Why one object: a user of the link can be tested with a small
fake link (tests/fakes.py) instead of a homeserver, and no user needs the bot to talk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from nio import AsyncClient, AsyncClientConfig, ErrorResponse
from nio.api import Api, MessageDirection, RelationshipType
from nio.exceptions import (
    EncryptionError,
    GroupEncryptionError,
    LocalProtocolError,
    OlmTrustError,
)
from nio.responses import RoomEventRelationsResponse

from civicbot.errors import CivicbotError, MatrixError
from civicbot.matrix import crypto, events
from civicbot.matrix.queue import SendGate
from civicbot.matrix.render import Rendered

log = logging.getLogger(__name__)

R = TypeVar("R")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
SEND_PATIENCE_S = 600.0  # how long a reply keeps being retried while the server is away
REPLY_PATIENCE_S = 120.0  # command replies and notices give up sooner than answers
TYPING_MS = 30_000
# Sends in flight at once. Replies to questions (bounded by the queue and the per-sender
# limit) may use them all; other replies (commands, warnings) at most 4, so that a flood of
# those cannot delay a citizen's first sign of life. With 6 slots in all, the busy notices
# of bench/load.py (20 citizens) waited 4-6 s behind the queue notices.
SENDS_AT_ONCE = 16
SENDS_RESERVED = 12
THREAD_PAGE = 50  # one page of the newest thread messages is plenty for the history


def client_config(encryption: bool = False) -> AsyncClientConfig:
    """nio's own retry loops are switched off (0): `Link.call` does the back-off, logs it
    and counts it. With encryption nio keeps its keys in a SQLite store (crypto.store_dir);
    the sync token stays in state.json."""
    return AsyncClientConfig(
        max_limit_exceeded=0,
        max_timeouts=0,
        encryption_enabled=encryption,
        store_sync_tokens=False,
    )


def make_client(homeserver: str, user_id: str, device_id: str, data_dir: Path,
                encryption: bool) -> AsyncClient:
    """The bot's nio client (its crypto store under `data_dir` when encryption is on)."""
    return AsyncClient(
        homeserver.rstrip("/"),
        user=user_id,
        device_id=device_id or None,
        store_path=str(crypto.store_dir(data_dir)) if encryption else "",
        config=client_config(encryption),
    )


class Link:
    """One bot account's connection: requests with one error map, sends, edits, typing,
    guarded background tasks, thread history and attachments. Also who the bot is
    (`user_id`, `display_name`), which every user needs to read events."""

    def __init__(self, client: AsyncClient, counters: Counter[str] | None = None):
        self.client = client
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.user_id = ""
        self.display_name = ""
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False  # set by `cancel_tasks`: no new background work after it
        self._sends = SendGate(SENDS_AT_ONCE, reserved=SENDS_RESERVED)

    # -- requests ----------------------------------------------------------------------

    async def call(
        self,
        what: str,
        request: Callable[[], Awaitable[R]],
        patience: float | None = SEND_PATIENCE_S,
    ) -> R:
        """Run one nio request; back off and retry on network errors, 5xx and
        M_LIMIT_EXCEEDED (honouring retry_after_ms) for up to `patience` seconds (None:
        forever); turn any other error response into MatrixError."""
        deadline = None if patience is None else time.monotonic() + patience
        delay = BACKOFF_FIRST_S
        while True:
            try:
                resp = await request()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"homeserver unreachable ({type(exc).__name__})"
                wait = delay
                delay = min(delay * 2, BACKOFF_MAX_S)
                self.counters["network_errors"] += 1
            else:
                if not isinstance(resp, ErrorResponse):
                    return resp
                status = getattr(resp.transport_response, "status", 0) or 0
                if resp.status_code == "M_LIMIT_EXCEEDED" or status == 429:
                    wait = (resp.retry_after_ms or 5000) / 1000
                    problem = "rate limited by the homeserver (M_LIMIT_EXCEEDED)"
                    self.counters["rate_limited"] += 1
                elif status >= 500:
                    problem = f"homeserver error {status}"
                    wait = delay
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    self.counters["server_errors"] += 1
                else:
                    raise MatrixError(f"{what}: {resp.status_code or status}: {resp.message}")
            if deadline is not None and time.monotonic() + wait > deadline:
                raise MatrixError(f"{what}: gave up: {problem}")
            log.warning("%s: %s; retrying in %.1f s", what, problem, wait)
            await asyncio.sleep(wait)

    async def send(
        self, room_id: str, content: dict[str, Any], what: str, urgent: bool = False
    ) -> str:
        """Send a message: `urgent` for answers (they go first, and are retried longer)."""
        # Nobody is notified unless the content says so: without `m.mentions` clients look
        # for names in the text, and a remote error reason could say "@room".
        content.setdefault("m.mentions", {})
        # One transaction id for all retries: the server drops a repeated send.
        txn = uuid.uuid4().hex
        try:
            async with self._sends.slot(urgent):
                # Trust on first use (crypto.py): unverified devices get the room key too.
                resp = await self.call(
                    what,
                    lambda: self.client.room_send(room_id, "m.room.message", content,
                                                  tx_id=txn, ignore_unverified_devices=True),
                    patience=SEND_PATIENCE_S if urgent else REPLY_PATIENCE_S,
                )
        except (LocalProtocolError, OlmTrustError, EncryptionError, GroupEncryptionError) as exc:
            # encryption refused to send (e.g. the room's members could not be loaded)
            raise MatrixError(f"{what}: {exc}") from exc
        return str(resp.event_id)

    async def notice(self, room_id: str, thread_root: str, reply_to: str, rendered: Rendered,
                     kind: str, mention: str | None = None, final: bool = True) -> str:
        """A notice in a thread, replying to `reply_to`; its event id."""
        content = events.notice_content(rendered, kind, thread_root, reply_to, mention, final)
        # Replies to a question (its placeholder, or its place in the queue or "busy") are
        # the citizen's first sign of life: they go before command replies and warnings.
        return await self.send(room_id, content, f"sending a {kind} notice",
                               urgent=kind == "answer" or mention is not None)

    async def edit(self, room_id: str, original: str, rendered: Rendered, final: bool) -> None:
        """Replace the text of an answer the bot sent."""
        content = events.edit_content(original, rendered, "answer", final)
        await self.send(room_id, content, "editing an answer", urgent=True)

    async def typing(self, room_id: str, on: bool) -> None:
        """Show (or stop showing) that the bot is typing; failures are only logged."""
        try:
            await self.call(
                "typing notice",
                lambda: self.client.room_typing(room_id, on, timeout=TYPING_MS),
                patience=5,
            )
        except MatrixError as exc:  # a missing typing notice is no reason to fail
            log.debug("typing notice failed: %s", exc)

    async def keep_typing(self, room_id: str) -> None:
        """Renew the typing notice until cancelled."""
        while True:
            await self.typing(room_id, True)
            await asyncio.sleep(TYPING_MS / 1000 * 0.7)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run `coro` in the background; failures are logged with `what`, never raised.
        Once the link is closing, `coro` is dropped: an answer cancelled by the shutdown
        ends its typing notice from its `finally`, and that request would meet a closed
        client (the homeserver drops the notice on its own after its timeout)."""
        if self.closing:
            coro.close()
            return

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except CivicbotError as exc:
                log.warning("%s failed: %s", what, exc)
            except Exception:
                log.exception("%s failed", what)

        self.track(asyncio.create_task(guarded()))

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` until it is done; `close` cancels what is left."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_tasks(self) -> None:
        """Cancel every background task and wait for them; from now on `spawn` starts
        nothing. A task tracked while the others wind down is cancelled in turn."""
        self.closing = True
        while self.tasks:
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.tasks.difference_update(tasks)

    # -- rooms -------------------------------------------------------------------------

    async def join(self, room_id: str, patience: float) -> None:
        """Join a room (accept its invitation)."""
        await self.call(f"joining room {room_id}", lambda: self.client.join(room_id),
                        patience=patience)

    async def leave(self, room_id: str) -> None:
        """Leave (or decline) and forget a room, so it no longer shows in sync."""
        await self.call(f"leaving room {room_id}", lambda: self.client.room_leave(room_id))
        with contextlib.suppress(MatrixError):
            await self.call(f"forgetting room {room_id}",
                            lambda: self.client.room_forget(room_id), patience=5)

    def joined(self) -> set[str]:
        """The rooms the bot is in, as of the last sync."""
        return set(self.client.rooms)

    def inviter(self, room_id: str) -> str:
        """Who invited the bot into a room it is invited to, as nio saw it ("" if unknown)."""
        room = self.client.invited_rooms.get(room_id)
        return events.text(room.inviter if room else None) or ""

    async def resolve_alias(self, alias: str) -> str:
        """The room id of a room alias (#name:server)."""
        resp = await self.call(f"resolving {alias}",
                               lambda: self.client.room_resolve_alias(alias), patience=30)
        return str(resp.room_id)

    async def state(self, room_id: str, event_type: str, what: str) -> dict[str, Any]:
        """The content of a room's state event, read from the homeserver (not nio's copy)."""
        resp = await self.call(what, lambda: self.client.room_get_state_event(room_id,
                                                                             event_type),
                               patience=30)
        return resp.content if isinstance(resp.content, dict) else {}

    # -- reading -----------------------------------------------------------------------

    def room(self, room_id: str) -> Any:
        """nio's view of a joined room, or None."""
        return self.client.rooms.get(room_id)

    def is_direct(self, room_id: str) -> bool:
        """A direct chat: the bot and at most one other member."""
        room = self.room(room_id)
        return room is not None and room.member_count <= 2

    def names(self, room_id: str) -> list[str]:
        """The names the bot goes by in a room (for mentions)."""
        room = self.room(room_id)
        return [n for n in (self.display_name, room.user_name(self.user_id) if room else "")
                if n]

    async def event(self, room_id: str, event_id: str, what: str) -> dict[str, Any]:
        """One event's source, decrypted when it was encrypted."""
        resp = await self.call(what, lambda: self.client.room_get_event(room_id, event_id),
                               patience=30)
        return crypto.decrypted_source(self.client, room_id, resp.event)

    async def thread_events(self, room_id: str, root: str) -> list[dict[str, Any]]:
        """The thread's root and its newest messages (decrypted), oldest first."""
        first = await self.event(room_id, root, "reading a thread")
        # nio's room_get_event_relations iterator fails with AttributeError on an error
        # response, so the request is made here (through nio's `_send`, the one use of it),
        # through `call` like every other.
        method, path = Api.room_get_event_relations(
            self.client.access_token, room_id, root, RelationshipType.thread,
            direction=MessageDirection.back, limit=THREAD_PAGE,
        )
        page = await self.call(
            "reading a thread",
            lambda: self.client._send(RoomEventRelationsResponse, method, path,
                                      response_data=(room_id, root)),
            patience=30,
        )
        sources = [first, *(crypto.decrypted_source(self.client, room_id, ev)
                            for ev in page.events)]
        sources.sort(key=lambda s: int(s.get("origin_server_ts") or 0))
        return sources

    async def download(self, url: str, encryption: dict[str, Any] | None = None,
                       max_bytes: int | None = None) -> bytes:
        """The bytes of an uploaded file (authenticated media), plain or end-to-end
        encrypted (`encryption`: the event's `file` object: checked against its sha256 and
        decrypted). The one download path; raises AttachmentError (a MatrixError)."""
        resp = await self.call("downloading a file", lambda: self.client.download(mxc=url),
                               patience=60)
        body = getattr(resp, "body", None)
        if isinstance(body, Path):
            body = body.read_bytes()
        if not isinstance(body, bytes):
            raise crypto.AttachmentError("the homeserver sent no file")
        if max_bytes is not None and len(body) > max_bytes:
            raise crypto.AttachmentError(f"too large (at most {max_bytes // 1_000_000} MB)")
        if encryption is None:
            return body
        # an AttachmentError also for a wrong hash (nio's EncryptionError)
        return crypto.decrypt_file(body, encryption)
