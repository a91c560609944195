"""The Matrix edge: a nio AsyncClient that syncs, decides which messages are questions,
answers them at once with the checked quoted answer, queues the model's lead for an edit of
that answer, and survives restarts.

This is the only module of civicbot that imports nio. Every nio error response is turned
into a MatrixError here, once (`_call`), after back-off for network errors and
M_LIMIT_EXCEEDED. The answerer is blocking and runs in a worker thread; its progress
callbacks hop back onto the event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    MegolmEvent,
    RoomGetEventResponse,
)
from nio.api import Api, MessageDirection, RelationshipType
from nio.exceptions import (
    EncryptionError,
    GroupEncryptionError,
    LocalProtocolError,
    OlmTrustError,
)
from nio.responses import RoomEventRelationsResponse

from civicbot import health, metrics
from civicbot.config import Config
from civicbot.errors import CivicbotError, GenerationTimeout, MatrixError
from civicbot.matrix import commands, crypto, editing, events, feedback
from civicbot.matrix.queue import ReplyGate, Scheduler, SendGate
from civicbot.matrix.render import (
    Rendered,
    answer_text_from_body,
    render_answer,
    render_notice,
    render_partial,
)
from civicbot.matrix.state import BotState
from civicbot.matrix.texts import DEFAULT_LANGUAGE, guess_language, t
from civicbot.protocols import Answerer
from civicbot.records import Answer, Turn

log = logging.getLogger(__name__)

R = TypeVar("R")

SYNC_TIMEOUT_MS = 30_000
# Only the recent past matters after a restart; a longer gap shows as `limited` in sync.
SYNC_FILTER = {
    "room": {"timeline": {"limit": 50}, "ephemeral": {"not_types": ["*"]}},
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
SEND_PATIENCE_S = 600.0  # how long a reply keeps being retried while the server is away
STALE_AFTER_S = 24 * 3600  # questions older than this when first seen get an apology
HISTORY_TURNS = 10
QUICK_WORKERS = 2
TYPING_MS = 30_000
# Sends in flight at once. Replies to questions (bounded by the queue and the per-sender
# limit) may use them all; other replies (commands, warnings) at most 4, so that a flood of
# those cannot delay a citizen's first sign of life. With 6 slots in all, the busy notices
# of bench/load.py (20 citizens) waited 4-6 s behind the queue notices.
SENDS_AT_ONCE = 16
SENDS_RESERVED = 12
REPLY_PATIENCE_S = 120.0  # command replies and notices give up sooner than answers
JOINS_AT_ONCE = 2  # invitations are joined in the background, a few at a time
JOIN_PATIENCE_S = 120.0
STATE_WRITE_DELAY_S = 0.5  # changes to state.json are gathered this long, then written


@dataclass(eq=False)  # identity, not equality: the queue finds jobs by `is`
class Job:
    """A question waiting for, or getting, its answer. Lives in memory only."""

    event_id: str
    room_id: str
    thread_root: str
    sender: str
    text: str
    language: str
    in_thread: bool
    placeholder: str = ""
    received: float = field(default_factory=time.monotonic)  # for the latency metrics
    signalled: bool = False  # the citizen has seen a first reply
    quoted: Answer | None = None  # the answer sent at once, waiting for the model's lead


@dataclass
class _Progress:
    text: str = ""
    sent: str = ""  # the text of the last edit sent
    done: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


def _client_config(encryption: bool = False) -> AsyncClientConfig:
    # nio's own retry loops are switched off (0): `_call` does the back-off, logs it and
    # counts it. With encryption nio keeps its keys in a SQLite store (crypto.store_dir);
    # the sync token stays in state.json.
    return AsyncClientConfig(
        max_limit_exceeded=0,
        max_timeouts=0,
        encryption_enabled=encryption,
        store_sync_tokens=False,
    )


class Bot:
    """One bot account serving its rooms. `await run()` until cancelled or `stop()`."""

    def __init__(self, cfg: Config, answerer: Answerer):
        self.cfg = cfg
        self.answerer = answerer
        self.data_dir: Path = cfg.paths.data
        self.state = BotState.load(self.data_dir)
        if not cfg.matrix.homeserver:
            raise MatrixError("matrix.homeserver: not set (e.g. https://matrix.example.org)")
        if not (cfg.matrix.access_token or (cfg.matrix.user_id and cfg.matrix.password)):
            raise MatrixError(
                "matrix.access_token: not set (or set matrix.user_id and matrix.password)"
            )
        self.client = AsyncClient(
            cfg.matrix.homeserver.rstrip("/"),
            user=cfg.matrix.user_id,
            device_id=self.state.device_id or None,
            store_path=str(crypto.store_dir(self.data_dir)) if cfg.matrix.encryption else "",
            config=_client_config(cfg.matrix.encryption),
        )
        self._undecryptable = crypto.Undecryptable()
        # An answerer that can answer in two steps (quotes at once, the model's lead later)
        # is used so: citizens get the quoted answer at once and only the model waits in the
        # queue. One that cannot (a plain `ask`) has whole answers queued, as before.
        self.quotes_first = all(callable(getattr(answerer, name, None))
                                for name in ("quick", "refine", "wants_model"))
        # The one place generation is gated: one job at a time, `queue_size` waiting.
        self.scheduler: Scheduler[Job] = Scheduler(
            self._refine if self.quotes_first else self._answer, cfg.bot.queue_size,
            cfg.bot.rate_limit_per_minute, workers=cfg.answer_workers,
        )
        self._quick_running = 0  # quoted answers being worked out
        self._quick_idle = asyncio.Event()
        self._quick_idle.set()
        # Quoted answers are worked out first come, first served, two at a time (one per
        # core): twenty worked out all at once would share the cores and all finish late;
        # in turn, half of them are done in half that time.
        self._quick_pool = ThreadPoolExecutor(QUICK_WORKERS, thread_name_prefix="quick")
        self.counters: Counter[str] = Counter()
        self.ready = asyncio.Event()
        self.user_id = ""
        self.display_name = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._room_language: dict[str, str] = {}
        self._questions: dict[str, str] = {}  # answer id -> question, only with log_questions
        self._reactions = feedback.recorded_reactions(self.data_dir)
        self._stopping = False
        self._known_rooms: set[str] = set()
        self.editing = editing.for_bot(self)  # None when the answerer cannot change the corpus
        self._health: health.HealthServer | None = None
        self._index_problem = ""
        self.replies = ReplyGate(cfg.bot.replies_per_minute)
        self._sends = SendGate(SENDS_AT_ONCE, reserved=SENDS_RESERVED)
        self._index_check: asyncio.Task[None] | None = None
        self._joins = asyncio.Semaphore(JOINS_AT_ONCE)
        self._joining: set[str] = set()  # invitations being accepted or declined
        self._declining: set[str] = set()
        self._leaving: set[str] = set()
        # Rooms joined on each user's invitation since the start, in memory only (as the
        # queue's user ids are): for matrix.max_rooms_per_inviter.
        self._invited_by: dict[str, set[str]] = {}
        self._state_dirty = asyncio.Event()

    # -- the Matrix edge -------------------------------------------------------------------

    async def _call(
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

    async def _send(
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
                resp = await self._call(
                    what,
                    lambda: self.client.room_send(room_id, "m.room.message", content,
                                                  tx_id=txn, ignore_unverified_devices=True),
                    patience=SEND_PATIENCE_S if urgent else REPLY_PATIENCE_S,
                )
        except (LocalProtocolError, OlmTrustError, EncryptionError, GroupEncryptionError) as exc:
            # encryption refused to send (e.g. the room's members could not be loaded)
            raise MatrixError(f"{what}: {exc}") from exc
        return str(resp.event_id)

    async def _notice(
        self,
        room_id: str,
        thread_root: str,
        reply_to: str,
        rendered: Rendered,
        kind: str,
        mention: str | None = None,
        final: bool = True,
    ) -> str:
        content = events.notice_content(rendered, kind, thread_root, reply_to, mention, final)
        # Replies to a question (its placeholder, or its place in the queue or "busy") are
        # the citizen's first sign of life: they go before command replies and warnings.
        return await self._send(room_id, content, f"sending a {kind} notice",
                                urgent=kind == "answer" or mention is not None)

    async def _edit(self, room_id: str, original: str, rendered: Rendered, final: bool) -> None:
        content = events.edit_content(original, rendered, "answer", final)
        await self._send(room_id, content, "editing an answer", urgent=True)

    async def _typing(self, room_id: str, on: bool) -> None:
        try:
            await self._call(
                "typing notice",
                lambda: self.client.room_typing(room_id, on, timeout=TYPING_MS),
                patience=5,
            )
        except MatrixError as exc:  # a missing typing notice is no reason to fail
            log.debug("typing notice failed: %s", exc)

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run `coro` in the background; failures are logged with `what`, never raised."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except CivicbotError as exc:
                log.warning("%s failed: %s", what, exc)
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle -------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in by access token (preferred) or password, keeping one device."""
        m = self.cfg.matrix
        if m.access_token:
            self.client.access_token = m.access_token
            who = await self._call("checking the access token", self.client.whoami, patience=120)
            user_id, device_id = who.user_id, who.device_id or self.state.device_id
            if m.user_id and m.user_id != user_id:
                raise MatrixError(
                    f"matrix.user_id: the access token belongs to another account than {m.user_id}"
                )
        else:
            resp = await self._call(
                "logging in",
                # nio logs in as client.device_id (the saved one, given to AsyncClient),
                # so a restart reuses the device and its encryption keys.
                lambda: self.client.login(m.password, device_name=m.device_name),
                patience=120,
            )
            user_id, device_id = resp.user_id, resp.device_id
        if not device_id:
            raise MatrixError("the homeserver did not tell the bot's device id")
        self.client.user_id, self.client.device_id = user_id, device_id
        self.user_id = user_id
        self.state.bind_account(user_id, device_id)
        if m.encryption:
            self.client.load_store()  # keys of this device, kept in data_dir/crypto
        try:
            profile = await self._call(
                "reading the display name",
                lambda: self.client.get_displayname(user_id),
                patience=30,
            )
            self.display_name = profile.displayname or ""
        except MatrixError:
            self.display_name = ""
        log.info("logged in with device %s", device_id)

    async def run(self) -> None:
        """Log in, catch up, answer until cancelled or stopped."""
        try:
            self._health = health.start(self.cfg.health)
            await self.login()
            self._start_state_writer()
            await self._check_index()
            first = not self.state.next_batch
            resp = await self._sync(full_state=True, timeout=0)
            worker = asyncio.create_task(self.scheduler.run())
            self._tasks.add(worker)
            await self._recover()  # journalled questions go before those that came meanwhile
            await self._handle_sync(resp, catch_up=not first)
            self.state.set_sync_token(resp.next_batch)
            if self.editing is not None:
                await self.editing.start()
            self.ready.set()
            log.info("ready (%d rooms)", len(self.client.rooms))
            while not self._stopping:
                resp = await self._sync(full_state=False, timeout=SYNC_TIMEOUT_MS)
                await self._handle_sync(resp, catch_up=True)
                self.state.set_sync_token(resp.next_batch)
        finally:
            await self._shutdown()

    async def stop(self) -> None:
        """Stop syncing and answering. Unanswered questions stay in the journal and are
        answered after the next start."""
        self._stopping = True
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self.editing is not None:
            self.editing.stop()
        if self._health is not None:
            self._health.stop()
            self._health = None
        metrics.reset_liveness()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self.state.dirty:  # what the writer had not written yet
            try:
                await asyncio.to_thread(self.state.write, self.state.snapshot())
            except OSError as exc:
                log.error("state.json could not be written: %s", exc)
        self.state.defer_saves(None)
        self._quick_pool.shutdown(wait=False, cancel_futures=True)
        await self.client.close()

    # -- state.json, written off the event loop ------------------------------------------

    def _start_state_writer(self) -> None:
        self.state.defer_saves(self._state_dirty.set)
        task = asyncio.create_task(self._write_state())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_state(self) -> None:
        """Write state.json in a worker thread, at most every STATE_WRITE_DELAY_S: a burst
        of messages makes one write, not one fsync each on the event loop."""
        while True:
            await self._state_dirty.wait()
            await asyncio.sleep(STATE_WRITE_DELAY_S)
            self._state_dirty.clear()
            data = self.state.snapshot()  # on the loop: no change can interleave
            try:
                await asyncio.to_thread(self.state.write, data)
            except OSError as exc:  # e.g. a full disk: keep serving, try again later
                log.error("state.json could not be written (%s); retrying", exc)
                self.state.dirty = True
                self._state_dirty.set()
                await asyncio.sleep(5)

    async def _sync(self, full_state: bool, timeout: int) -> Any:
        resp = await self._call(
            "syncing",
            lambda: self.client.sync(
                timeout=timeout,
                since=self.state.next_batch or None,
                full_state=full_state,
                sync_filter=SYNC_FILTER,
            ),
            patience=None,
        )
        metrics.matrix_synced()  # the heartbeat /healthz looks at
        # In the background: the new events need not wait for a look at the index.
        if self._index_check is None or self._index_check.done():
            self._index_check = asyncio.create_task(self._check_index())
            self._tasks.add(self._index_check)
            self._index_check.add_done_callback(self._tasks.discard)
        return resp

    async def _check_index(self) -> None:
        """Load (or pick up a new generation of) the serving index and publish its size;
        a failure shows in /healthz and is logged once, not at every sync."""
        try:
            docs = await asyncio.to_thread(self.answerer.documents)
        except Exception as exc:  # a damaged index must not stop the bot: it reports it
            if str(exc) != self._index_problem:
                log.warning("the index cannot be used: %s", exc)
            self._index_problem = str(exc)
            metrics.index_failed(str(exc))
        else:
            self._index_problem = ""
            metrics.index_loaded(len(docs), sum(d.chunks for d in docs))

    # -- events in -------------------------------------------------------------------------

    async def _handle_sync(self, resp: Any, catch_up: bool) -> None:
        """React to one sync response. On the very first start (`catch_up=False`) old
        messages are only skipped: they were sent before the bot existed. Each invitation
        and each event is handled on its own: one that fails is logged and skipped, and the
        rest of the batch (and the sync token after it) carries on."""
        for room_id, info in resp.rooms.invite.items():
            self._isolated(room_id, "", "an invitation",
                           lambda r=room_id, i=info: self._on_invite(r, i))
        for room_id, info in resp.rooms.join.items():
            if info.timeline.limited and catch_up and room_id in self._known_rooms:
                log.warning("room %s: more messages arrived while away than one sync shows; "
                            "older ones are not answered", room_id)
            if catch_up:
                for event in info.timeline.events:
                    await self._one_event(room_id, event)
            self._isolated(room_id, "", "checking who is left in the room",
                           lambda r=room_id: self._leave_if_alone(r))
        self._known_rooms = set(self.client.rooms)
        self._joining -= self._known_rooms
        if catch_up:  # room keys that came late: read the messages that waited for them
            for room_id, source in self._undecryptable.retry(self.client):
                log.info("room %s: a message became readable after its key arrived", room_id)
                await self._one_event(room_id, source)
        await self._crypto_upkeep()

    async def _one_event(self, room_id: str, event: Any) -> None:
        """Handle one event (a nio Event, or a decrypted event's dict) in isolation."""
        source = event if isinstance(event, dict) else getattr(event, "source", None)
        event_id = events.event_id_of(source)
        if event_id and self.state.seen(event_id):
            return  # handled before (or failed before: then it is not tried again)
        try:
            if isinstance(event, MegolmEvent):  # nio could not decrypt it
                self._on_undecryptable(room_id, event)
            else:
                await self._on_event(room_id, events.obj(source))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(room_id, event_id, "an event", exc)

    def _isolated(self, room_id: str, event_id: str, what: str,
                  handle: Callable[[], Any]) -> None:
        """Run a synchronous handler; an exception is logged and swallowed."""
        try:
            handle()
        except Exception as exc:
            self._failed(room_id, event_id, what, exc)

    def _failed(self, room_id: str, event_id: str, what: str, exc: BaseException) -> None:
        """Log a failed event without its content, and never try it again."""
        self.counters["failed_events"] += 1
        if isinstance(exc, CivicbotError):  # our own message, free of event content
            log.warning("room %s: handling %s %s failed: %s", room_id, what, event_id, exc)
        else:  # a bug or a malformed event: where it failed, not what the event said
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = (f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
                     if tb is not None else "?")
            log.warning("room %s: handling %s %s failed (%s at %s); skipped", room_id, what,
                        event_id, type(exc).__name__, where)
        if event_id:
            self.state.mark_done(event_id)

    # -- end-to-end encryption (crypto.py) ----------------------------------------------

    async def _crypto_upkeep(self) -> None:
        """Send what the encryption protocol needs between syncs (keys, sessions)."""
        for what, request in crypto.due_requests(self.client):
            try:
                await self._call(what, request, patience=30)
            except MatrixError as exc:
                log.error("%s", crypto.explain_upload_failure(exc) if "upload" in what else exc)

    def _on_undecryptable(self, room_id: str, event: MegolmEvent) -> None:
        if event.sender == self.user_id or self.state.seen(event.event_id):
            return
        self._undecryptable.add(room_id, event)
        self._spawn(self._tell_undecryptable(room_id, event), "handling an unreadable message")

    async def _tell_undecryptable(self, room_id: str, event: MegolmEvent) -> None:
        """After a grace period for a late key: ask for the key and tell the citizen, once
        per sender's session. In group rooms only where the bot would have answered (it
        cannot see a mention in a message it cannot read), to stay quiet among chatter."""
        await asyncio.sleep(crypto.KEY_GRACE_S)
        if not self._undecryptable.still_waiting(event.event_id):
            return
        self.counters["undecryptable_messages"] += 1
        if not self._undecryptable.first_notice(room_id, event.sender, event.session_id):
            return
        log.warning("room %s: a message could not be decrypted (no room key); "
                    "requesting the key", room_id)
        try:
            await crypto.request_key(self.client, event)
        except MatrixError as exc:
            log.warning("requesting a room key failed: %s", exc)
        room = self.client.rooms.get(room_id)
        thread_root = events.thread_root_of(event.source)
        if not (
            (room is not None and room.member_count <= 2)
            or room_id in self.cfg.matrix.answer_all_rooms
            or (thread_root is not None and thread_root in self.state.threads)
        ):
            return
        text = crypto.undecryptable_text(self._room_language.get(room_id))
        self.counters["undecryptable_notices"] += 1
        await self._notice(room_id, thread_root or event.event_id, event.event_id,
                           render_notice(text), "status", mention=event.sender)

    def _on_invite(self, room_id: str, info: Any) -> None:
        """Decide on an invitation at once and join (or decline) in the background: a join
        can take the homeserver seconds, and 30 invitations must not hold up the answers."""
        if room_id in self._joining or room_id in self._declining or room_id in self.client.rooms:
            return
        inviter = ""
        for ev in getattr(info, "invite_state", None) or ():
            src = events.obj(getattr(ev, "source", None))
            if (
                getattr(ev, "state_key", src.get("state_key")) == self.user_id
                and getattr(ev, "membership", "") == "invite"
            ):
                inviter = events.text(getattr(ev, "sender", None)) or ""
        if not inviter:
            room = self.client.invited_rooms.get(room_id)
            inviter = events.text(room.inviter if room else None) or ""
        refusal = self._invite_refusal(inviter)
        if refusal:
            log.info("declining an invitation to room %s: %s", room_id, refusal)
            self._declining.add(room_id)
            self._spawn(self._settle_invite(room_id, inviter, join=False),
                        f"declining an invitation to room {room_id}")
        else:
            log.info("joining room %s on invitation", room_id)
            self._joining.add(room_id)
            self._invited_by.setdefault(inviter, set()).add(room_id)
            self._spawn(self._settle_invite(room_id, inviter, join=True),
                        f"joining room {room_id}")

    def _invite_refusal(self, inviter: str) -> str:
        """Why an invitation from `inviter` is declined, or "" to accept it."""
        m = self.cfg.matrix
        if not self._may_invite(inviter):
            return "the inviter is not on an allowed server"
        if len(set(self.client.rooms) | self._joining) >= m.max_rooms:
            return f"the bot is in {m.max_rooms} rooms already (matrix.max_rooms)"
        mine = self._invited_by.get(inviter, set())
        mine &= set(self.client.rooms) | self._joining  # rooms since left no longer count
        if len(mine) >= m.max_rooms_per_inviter:
            return ("the inviter has invited the bot into "
                    f"{m.max_rooms_per_inviter} rooms already (matrix.max_rooms_per_inviter)")
        return ""

    async def _settle_invite(self, room_id: str, inviter: str, join: bool) -> None:
        try:
            async with self._joins:
                if join:
                    await self._call(f"joining room {room_id}", lambda: self.client.join(room_id),
                                     patience=JOIN_PATIENCE_S)
                else:
                    await self._leave(room_id)
        except BaseException:
            # e.g. a 403 when the invitation was withdrawn meanwhile: forget the room
            self._joining.discard(room_id)
            self._invited_by.get(inviter, set()).discard(room_id)
            raise
        finally:
            self._declining.discard(room_id)
        self.counters["invitations_joined" if join else "invitations_declined"] += 1
        # A joined room stays in `_joining` until sync shows it among the bot's rooms, so
        # that it counts towards matrix.max_rooms meanwhile.

    def _may_invite(self, inviter: str) -> bool:
        m = self.cfg.matrix
        if not inviter:
            return False
        if inviter in m.allowed_users:
            return True
        servers = m.allowed_servers or (self.user_id.split(":", 1)[1],)
        return ":" in inviter and inviter.split(":", 1)[1] in servers

    def _leave_if_alone(self, room_id: str) -> None:
        room = self.client.rooms.get(room_id)
        if room is None or room.joined_count > 1 or room.invited_count > 0:
            return
        # A public room is where citizens come to ask (e.g. the one `civicbot start` creates):
        # it waits for them. Private rooms and direct chats are left once everyone has gone.
        if room.join_rule == "public" or room_id in self._leaving:
            return
        log.info("leaving room %s: nobody else is in it", room_id)
        self._leaving.add(room_id)

        async def leave() -> None:
            try:
                await self._leave(room_id)
            finally:
                self._leaving.discard(room_id)

        self._spawn(leave(), f"leaving room {room_id}")

    async def _leave(self, room_id: str) -> None:
        """Leave (or decline) and forget a room, so it no longer shows in sync."""
        await self._call(f"leaving room {room_id}", lambda: self.client.room_leave(room_id))
        with contextlib.suppress(MatrixError):
            await self._call(
                f"forgetting room {room_id}", lambda: self.client.room_forget(room_id), patience=5
            )

    async def _on_event(self, room_id: str, source: dict[str, Any]) -> None:
        source = events.sanitized(source)  # nested fields of the wrong type are dropped
        reaction = events.reaction_of(source)
        if reaction is not None:
            self._on_reaction(source, *reaction)
            return
        redacted = events.redacted_id(source)
        if redacted is not None:
            if redacted in self._reactions:
                feedback.record_retraction(self.data_dir, redacted)
                self._reactions.discard(redacted)
            elif redacted in self.state.pending:
                self._withdraw(redacted)
            return
        msg = events.parse_message(room_id, source, self.user_id)
        if msg is None and self.editing is not None:  # perhaps an editor's upload
            ref = editing.file_of(room_id, source)
            if (ref is not None and ref.sender != self.user_id
                    and not self.state.seen(ref.event_id)
                    and self.editing.is_editing_room(room_id)
                    and not self._may_reply(ref.sender, ref.event_id, room_id, ref.event_id,
                                            DEFAULT_LANGUAGE)):
                return
            self.editing.on_event(room_id, source)
            return
        if msg is None or self.state.seen(msg.event_id):
            return
        room = self.client.rooms.get(room_id)
        names = [n for n in (self.display_name, room.user_name(self.user_id) if room else "") if n]
        direct = room is not None and room.member_count <= 2
        addressed = (
            direct
            or room_id in self.cfg.matrix.answer_all_rooms
            or (msg.thread_root is not None and msg.thread_root in self.state.threads)
            or events.is_mentioned(msg, self.user_id, names)
            or (self.editing is not None and self.editing.addressed(msg))
        )
        if not addressed:
            return
        text = events.strip_mention(msg.body, self.user_id, names)
        language = guess_language(text, self._room_language.get(room_id, DEFAULT_LANGUAGE))
        thread_root = msg.thread_root or msg.event_id
        if not self._may_reply(msg.sender, msg.event_id, room_id, thread_root, language):
            return
        command = commands.parse_command(text)
        if command is not None and self.editing is not None and command.name in editing.COMMANDS:
            self.state.mark_done(msg.event_id)
            self._spawn(self.editing.on_command(msg, source, thread_root, command, language),
                        "an editor command")
            return
        if command is not None:
            self.state.mark_done(msg.event_id)
            log.info("command %s in room %s", command.name, room_id)
            self._spawn(self._command(msg, thread_root, command, language), "answering a command")
            return
        if not text:
            self._short_reply(msg, thread_root, t("empty", language), "answering a bare mention")
            return
        if msg.timestamp_ms and time.time() - msg.timestamp_ms / 1000 > STALE_AFTER_S:
            log.info("question %s in room %s is too old to answer", msg.event_id, room_id)
            self._short_reply(msg, thread_root, t("stale", language), "apologising")
            return
        if not self.state.accept(msg.event_id, room_id, thread_root):
            return
        job = Job(msg.event_id, room_id, thread_root, msg.sender, text, language,
                  in_thread=msg.thread_root is not None)
        self._admit(job, rate_limited=True)

    def _short_reply(self, msg: events.Incoming, thread_root: str, text: str, what: str) -> None:
        self.state.mark_done(msg.event_id)
        self._spawn(
            self._notice(msg.room_id, thread_root, msg.event_id, render_notice(text), "status"),
            what,
        )

    def _may_reply(self, sender: str, event_id: str, room_id: str, thread_root: str,
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
            self._spawn(self._notice(room_id, thread_root, event_id,
                                     render_notice(t("slow_down", language)), "status"),
                        "telling a citizen to slow down")
        return False

    def _withdraw(self, event_id: str) -> None:
        """A question was deleted before its turn: take it out of the queue unanswered.
        (One being answered already is answered: its reply is on its way.)"""
        for job in self.scheduler.queue.order():
            if job.event_id == event_id and self.scheduler.queue.remove(job):
                self.state.finish(event_id)
                metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
                log.info("question %s was deleted before its turn; not answering it", event_id)
                return

    def _admit(self, job: Job, rate_limited: bool) -> None:
        if not self.quotes_first:
            self._admit_whole(job, rate_limited)
            return
        # Rate limits per citizen stay; a full generation queue never turns anyone away.
        wait = self.scheduler.limiter.check(job.sender) if rate_limited else 0.0
        if wait > 0:
            log.info("question %s in room %s: rate_limited", job.event_id, job.room_id)
            self._turn_away(job, "rate_limited", wait)
            return
        log.info("question %s in room %s: answering", job.event_id, job.room_id)
        # The sign that the bot heard the question: at once, whatever is before it in turn
        # (twenty questions at once wait up to a few seconds for their quoted answers).
        self._spawn(self._typing(job.room_id, True), "typing notice")
        self._quick_running += 1
        self._quick_idle.clear()
        self._spawn(self._answer_now(job), "answering a question")

    def _turn_away(self, job: Job, status: str, retry_after: float = 0.0) -> None:
        self.counters[status] += 1
        metrics.turned_away(status)
        self.state.finish(job.event_id)
        text = (t("busy", job.language) if status == "busy"
                else t("rate_limited", job.language, s=max(1, round(retry_after))))
        self._spawn(self._reply_status(job, text), f"telling a citizen: {status}")

    def _admit_whole(self, job: Job, rate_limited: bool) -> None:
        """Queue the whole answer (an answerer without `quick`): busy when the queue is full."""
        admission = self.scheduler.offer(job.sender, job, rate_limited=rate_limited)
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        log.info("question %s in room %s: %s%s", job.event_id, job.room_id, admission.status,
                 f" (place {admission.position})" if admission.position else "")
        if admission.status in ("busy", "rate_limited"):
            self._turn_away(job, admission.status, admission.retry_after)
            return
        self._spawn(self._typing(job.room_id, True), "typing notice")
        if admission.status == "queued":
            self._spawn(
                self._reply_status(job, t("queued", job.language, n=admission.position)),
                "telling a citizen their place in the queue",
            )

    async def _reply_status(self, job: Job, text: str) -> None:
        if job.placeholder:  # recovered after a restart: reuse the message already there
            await self._edit(job.room_id, job.placeholder, render_notice(text), final=True)
        else:
            await self._notice(job.room_id, job.thread_root, job.event_id, render_notice(text),
                               "status", mention=job.sender)
        self._alive(job)

    @staticmethod
    def _alive(job: Job) -> None:
        """The citizen saw a first reply to their question (for the metrics)."""
        if not job.signalled:
            job.signalled = True
            metrics.first_sign_of_life(time.monotonic() - job.received)

    def _on_reaction(self, source: dict[str, Any], target: str, key: str) -> None:
        reaction_id = str(source.get("event_id", ""))
        if source.get("sender") == self.user_id or reaction_id in self._reactions:
            return
        placeholders = {p.placeholder for p in self.state.pending.values()}
        if target not in self.state.answers and target not in placeholders:
            return
        vote = feedback.vote_from_key(key)
        if vote is None:
            return
        question = self._questions.get(target) if self.cfg.bot.log_questions else None
        feedback.record_vote(self.data_dir, target, vote, reaction_id, question=question)
        self._reactions.add(reaction_id)
        log.info("feedback %s on answer %s", vote, target)

    # -- commands --------------------------------------------------------------------------

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
        await self._notice(msg.room_id, thread_root, msg.event_id, rendered, "command")

    # -- answering -------------------------------------------------------------------------

    async def _answer_now(self, job: Job) -> None:
        """The quoted answer (or the refusal), worked out in a thread and sent as soon as it
        is ready; then the model's lead is queued, when the model can add one."""
        answer: Answer | None = None
        try:
            history = await self._history(job) if job.in_thread else []
            try:
                answer = await asyncio.get_running_loop().run_in_executor(
                    self._quick_pool, self.answerer.quick, job.text, history)
                rendered = render_answer(answer)
            except CivicbotError as exc:
                log.warning("question %s could not be answered: %s", job.event_id, exc)
                rendered = render_notice(t("error", job.language))
            except Exception:
                log.exception("question %s: the answerer failed", job.event_id)
                rendered = render_notice(t("error", job.language))
        finally:
            self._quick_running -= 1
            if not self._quick_running:
                self._quick_idle.set()
        if job.placeholder:  # recovered after a restart: the message is there already
            await self._edit(job.room_id, job.placeholder, rendered, final=True)
        else:
            job.placeholder = await self._notice(job.room_id, job.thread_root, job.event_id,
                                                 rendered, "answer", mention=job.sender)
        self._alive(job)
        metrics.first_answer(time.monotonic() - job.received)
        # The citizen has an answer: a restart now must not answer again (the lead is lost).
        self.state.finish(job.event_id, answer_id=job.placeholder, thread_root=job.thread_root)
        self.counters["answered"] += 1
        if answer is None:
            self._spawn(self._typing(job.room_id, False), "typing notice")
            metrics.question_finished(None, time.monotonic() - job.received)
            return
        self._room_language[job.room_id] = answer.language
        if self.cfg.bot.log_questions:
            self._questions[job.placeholder] = job.text
        log.info("question %s answered (%s)", job.event_id, answer.mode)
        try:
            wanted = await asyncio.to_thread(self.answerer.wants_model, answer)
        except Exception:  # no lead then; the answer stands
            log.exception("question %s: deciding on the model's lead failed", job.event_id)
            wanted = False
        if not wanted:
            self._spawn(self._typing(job.room_id, False), "typing notice")
            metrics.refinement("not_asked")
            metrics.question_finished(answer.mode, time.monotonic() - job.received)
            return
        job.quoted = answer
        admission = self.scheduler.offer(job.sender, job, rate_limited=False)
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        if admission.status == "busy":  # the quoted answer stays as it is
            self._spawn(self._typing(job.room_id, False), "typing notice")
            self.counters["refinements_skipped"] += 1
            metrics.refinement("skipped_busy")
            metrics.question_finished(answer.mode, time.monotonic() - job.received)

    async def _refine(self, job: Job) -> None:
        """Have the model write its lead for an answer already sent, and edit the lead in
        (throttled, capped edits); nothing is edited when it adds nothing."""
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        quoted = job.quoted
        assert quoted is not None
        # Quoted answers first: a generation started now would slow every one of them.
        await self._quick_idle.wait()
        loop = asyncio.get_running_loop()
        progress = _Progress()

        def render(text: str) -> Rendered:
            return render_answer(dataclasses.replace(quoted, text=text, mode="generated"))

        def update(text: str) -> None:  # on the event loop
            if not progress.done:
                progress.text = text
                progress.changed.set()

        def on_text(text: str) -> None:  # in the worker thread
            loop.call_soon_threadsafe(update, text)

        typing = asyncio.create_task(self._keep_typing(job.room_id))
        editor = asyncio.create_task(self._stream_edits(job, progress, render, final=True))
        refined: Answer | None = None
        outcome = "nothing"
        try:
            refined = await asyncio.to_thread(self.answerer.refine, quoted, on_text)
            outcome = "added" if refined is not None else "nothing"
        except Exception:  # the quoted answer stands; the model is not worth an apology
            log.exception("question %s: the model's lead failed", job.event_id)
            outcome = "error"
        finally:
            await _close_edits(progress, editor)
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        final = refined.text if refined is not None else quoted.text
        if progress.sent and progress.sent != final:
            # What was shown changes (a lead shown, then not kept): a visible edit says so.
            await self._edit(job.room_id, job.placeholder,
                             render_answer(refined or quoted), final=True)
        elif refined is not None and not progress.sent:
            await self._edit(job.room_id, job.placeholder, render_answer(refined), final=True)
        metrics.refinement(outcome)
        metrics.question_finished((refined or quoted).mode, time.monotonic() - job.received)
        self._spawn(self._typing(job.room_id, False), "typing notice")
        log.info("question %s: the model's lead %s", job.event_id,
                 "was added" if refined is not None else "added nothing")

    async def _answer(self, job: Job) -> None:
        """Answer one question: placeholder, streamed edits, final edit with sources."""
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        typing = asyncio.create_task(self._keep_typing(job.room_id))
        try:
            if not job.placeholder:
                job.placeholder = await self._notice(
                    job.room_id, job.thread_root, job.event_id,
                    render_notice(t("thinking", job.language)), "answer",
                    mention=job.sender, final=False,
                )
                self.state.set_placeholder(job.event_id, job.placeholder)
            self._alive(job)
            history = await self._history(job) if job.in_thread else []
            rendered, answer = await self._generate(job, history)
            await self._edit(job.room_id, job.placeholder, rendered, final=True)
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        if answer is not None:
            self._room_language[job.room_id] = answer.language
            if self.cfg.bot.log_questions:
                self._questions[job.placeholder] = job.text
        self.state.finish(job.event_id, answer_id=job.placeholder, thread_root=job.thread_root)
        self.counters["answered"] += 1
        metrics.question_finished(answer.mode if answer is not None else None,
                                  time.monotonic() - job.received)
        self._spawn(self._typing(job.room_id, False), "typing notice")
        log.info("question %s answered (%s)", job.event_id,
                 answer.mode if answer is not None else "error")

    async def _generate(self, job: Job, history: list[Turn]) -> tuple[Rendered, Answer | None]:
        loop = asyncio.get_running_loop()
        progress = _Progress()

        def update(text: str) -> None:  # on the event loop
            if not progress.done:
                progress.text = text
                progress.changed.set()

        def on_text(text: str) -> None:  # in the worker thread
            loop.call_soon_threadsafe(update, text)

        editor = asyncio.create_task(self._stream_edits(job, progress))
        answer: Answer | None = None
        try:
            answer = await asyncio.to_thread(self.answerer.ask, job.text, history, on_text)
            rendered = render_answer(answer)
        except GenerationTimeout:
            rendered = render_notice(t("timeout", job.language))
        except CivicbotError as exc:
            log.warning("question %s could not be answered: %s", job.event_id, exc)
            rendered = render_notice(t("error", job.language))
        except Exception:
            log.exception("question %s: the answerer failed", job.event_id)
            rendered = render_notice(t("error", job.language))
        finally:
            await _close_edits(progress, editor)
        return rendered, answer

    async def _stream_edits(self, job: Job, progress: _Progress,
                            render: Callable[[str], Rendered] | None = None,
                            final: bool = False) -> None:
        """Edit the answer message as text arrives: at most one edit per edit_interval_s and
        max_edits - 1 in all (the last one is reserved for the final answer). `render` makes
        the message of the text so far (default: the text with a cursor)."""
        edits, sent = 0, ""
        while edits < self.cfg.bot.max_edits - 1:
            await progress.changed.wait()
            progress.changed.clear()
            if progress.done:
                return
            text = progress.text
            if text.strip() and text != sent:
                rendered = render(text) if render else render_partial(text, job.language)
                await self._edit(job.room_id, job.placeholder, rendered, final=final)
                sent, edits = text, edits + 1
                progress.sent = text
                self.counters["edits"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.finished.wait(), self.cfg.bot.edit_interval_s)
            if progress.done:
                return

    async def _keep_typing(self, room_id: str) -> None:
        while True:
            await self._typing(room_id, True)
            await asyncio.sleep(TYPING_MS / 1000 * 0.7)

    async def _history(self, job: Job) -> list[Turn]:
        """The thread's earlier messages as conversation turns (best effort: a failure
        means an answer without context, not no answer)."""
        try:
            return await self._thread_turns(job)
        except (CivicbotError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("question %s: reading the thread failed (%s); answering without it",
                        job.event_id, exc)
            return []

    async def _thread_turns(self, job: Job) -> list[Turn]:
        root = await self._call(
            "reading a thread",
            lambda: self.client.room_get_event(job.room_id, job.thread_root),
            patience=30,
        )
        assert isinstance(root, RoomGetEventResponse)
        # One page of the newest thread messages is plenty for HISTORY_TURNS. nio's
        # room_get_event_relations iterator fails with AttributeError on an error response,
        # so the request is made here, through `_call` like every other.
        method, path = Api.room_get_event_relations(
            self.client.access_token, job.room_id, job.thread_root, RelationshipType.thread,
            direction=MessageDirection.back, limit=50,
        )
        page = await self._call(
            "reading a thread",
            lambda: self.client._send(
                RoomEventRelationsResponse, method, path,
                response_data=(job.room_id, job.thread_root),
            ),
            patience=30,
        )
        sources = [crypto.decrypted_source(self.client, job.room_id, ev)
                   for ev in [root.event, *page.events]]
        sources.sort(key=lambda s: int(s.get("origin_server_ts") or 0))
        room = self.client.rooms.get(job.room_id)
        names = [n for n in (self.display_name, room.user_name(self.user_id) if room else "") if n]
        turns: list[Turn] = []
        for src in sources:
            if src.get("event_id") == job.event_id:
                break
            if src.get("type") != "m.room.message":
                continue
            if src.get("sender") == self.user_id:
                content = events.current_content(src)
                if content.get(events.KIND) == "answer" and content.get(events.FINAL):
                    turns.append(Turn("assistant", answer_text_from_body(str(content["body"]))))
                continue
            msg = events.parse_message(job.room_id, src, self.user_id)
            if msg is None:
                continue
            text = events.strip_mention(msg.body, self.user_id, names)
            if text and commands.parse_command(text) is None:
                turns.append(Turn("user", text))
        return turns[-HISTORY_TURNS:]

    # -- after a restart -------------------------------------------------------------------

    async def _recover(self) -> None:
        """Answer the questions journalled before a crash or restart, or say they were lost."""
        for pending in list(self.state.pending.values()):
            if any(j.event_id == pending.event_id for j in self.scheduler.queue.order()):
                continue
            msg = None
            try:
                resp = await self._call(
                    "reading a journalled question",
                    lambda p=pending: self.client.room_get_event(p.room_id, p.event_id),
                    patience=30,
                )
                source = crypto.decrypted_source(self.client, pending.room_id, resp.event)
                if events.is_redacted(source):  # deleted by its writer: nothing to answer
                    log.info("journalled question %s was deleted; not answering it",
                             pending.event_id)
                    self.state.finish(pending.event_id)
                    continue
                msg = events.parse_message(pending.room_id, source, self.user_id)
            except MatrixError as exc:
                log.warning("journalled question %s cannot be read: %s", pending.event_id, exc)
            room = self.client.rooms.get(pending.room_id)
            names = [n for n in (self.display_name, room.user_name(self.user_id) if room else "")
                     if n]
            text = events.strip_mention(msg.body, self.user_id, names) if msg else ""
            language = guess_language(text) if text else DEFAULT_LANGUAGE
            job = Job(pending.event_id, pending.room_id, pending.thread_root,
                      msg.sender if msg else "", text, language,
                      in_thread=bool(msg and msg.thread_root), placeholder=pending.placeholder)
            if not text:
                log.info("journalled question %s was lost; telling the citizen", job.event_id)
                self.state.finish(job.event_id)
                self._spawn(self._reply_status(job, t("lost", language)), "apologising")
                continue
            log.info("answering journalled question %s after a restart", job.event_id)
            self._admit(job, rate_limited=False)


async def _close_edits(progress: _Progress, editor: asyncio.Task[None]) -> None:
    """End a streamed answer: let the editor finish the edit it may be sending, so that no
    partial edit can land after the final one."""
    progress.done = True
    progress.finished.set()
    progress.changed.set()
    try:
        await editor
    except CivicbotError as exc:
        log.warning("streaming edits stopped: %s", exc)


async def serve(cfg: Config, answerer: Answerer) -> None:
    """Run the bot until SIGINT or SIGTERM."""
    bot = Bot(cfg, answerer)
    loop = asyncio.get_running_loop()
    if cfg.answer_workers > 1:
        # Each answer holds a thread (asyncio.to_thread) while it is written; the default
        # pool (cores + 4) would cap answers at once and starve the bot's other calls.
        from concurrent.futures import ThreadPoolExecutor

        loop.set_default_executor(ThreadPoolExecutor(cfg.answer_workers + 8))
    task = asyncio.create_task(bot.run())
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped")


def run(cfg: Config, answerer: Answerer) -> None:
    """`civicbot run`: serve Matrix rooms with `answerer` until interrupted."""
    asyncio.run(serve(cfg, answerer))
