"""The Matrix bot's lifecycle: log in (keeping one device), sync with back-off, hand each
event to routing in isolation, encryption upkeep, state.json written off the event loop,
and a clean stop. It wires the small users of the one `Link` (link.py) together:

- `Routing` (routing.py): is an event addressed to the bot, which command, may it reply;
- `Answering` (answering.py): the queue, quotes first, streamed edits, restart recovery;
- `Editing` (editing.py): editors' uploads and commands;
- `Rooms` (rooms.py): invitations and leaving empty rooms.

None of them reaches into another or into the bot; bot.py and link.py (with crypto.py) are
the only modules that import nio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import AsyncClient, MegolmEvent

from civicbot import health, metrics
from civicbot.config import Config
from civicbot.errors import CivicbotError, MatrixError
from civicbot.matrix import crypto, events
from civicbot.matrix.answering import Answering, Job
from civicbot.matrix.editing import Editing
from civicbot.matrix.link import Link, make_client
from civicbot.matrix.queue import Scheduler
from civicbot.matrix.render import render_notice
from civicbot.matrix.rooms import Rooms
from civicbot.matrix.routing import Routing
from civicbot.matrix.state import BotState
from civicbot.protocols import Answerer

log = logging.getLogger(__name__)

__all__ = ["Bot", "Job", "run", "serve"]

SYNC_TIMEOUT_MS = 30_000
# Only the recent past matters after a restart; a longer gap shows as `limited` in sync.
SYNC_FILTER = {
    "room": {"timeline": {"limit": 50}, "ephemeral": {"not_types": ["*"]}},
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}
STATE_WRITE_DELAY_S = 0.5  # changes to state.json are gathered this long, then written


class Bot:
    """One bot account serving its rooms. `await run()` until cancelled or `stop()`."""

    def __init__(self, cfg: Config, answerer: Answerer):
        self.cfg = cfg
        self.answerer = answerer
        # The one place the data folder is worked out; everything below gets it handed in.
        self.data_dir: Path = cfg.paths.data
        self.state = BotState.load(self.data_dir)
        if not cfg.matrix.homeserver:
            raise MatrixError("matrix.homeserver: not set (e.g. https://matrix.example.org)")
        if not (cfg.matrix.access_token or (cfg.matrix.user_id and cfg.matrix.password)):
            raise MatrixError(
                "matrix.access_token: not set (or set matrix.user_id and matrix.password)"
            )
        self.counters: Counter[str] = Counter()
        self.link = Link(make_client(cfg.matrix.homeserver, cfg.matrix.user_id,
                                     self.state.device_id, self.data_dir,
                                     cfg.matrix.encryption), self.counters)
        room_language: dict[str, str] = {}  # the language of each room's last answer
        self.answering = Answering(self.link, cfg, answerer, self.state, room_language)
        self.editing = _editing(self.link, cfg, answerer, self.state, self.data_dir,
                                room_language)
        self.routing = Routing(self.link, cfg, answerer, self.state, self.answering,
                               self.editing, self.data_dir, room_language)
        self.rooms = Rooms(self.link, cfg)
        self._room_language = room_language
        self._undecryptable = crypto.Undecryptable()
        self.ready = asyncio.Event()
        self._stopping = False
        self._health: health.HealthServer | None = None
        self._index_problem = ""
        self._index_check: asyncio.Task[None] | None = None
        self._state_dirty = asyncio.Event()

    @property
    def client(self) -> AsyncClient:
        return self.link.client

    @property
    def scheduler(self) -> Scheduler[Job]:
        return self.answering.scheduler

    @property
    def user_id(self) -> str:
        return self.link.user_id

    @user_id.setter
    def user_id(self, value: str) -> None:
        self.link.user_id = value

    # -- lifecycle -------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in by access token (preferred) or password, keeping one device."""
        m = self.cfg.matrix
        if m.access_token:
            self.client.access_token = m.access_token
            who = await self.link.call("checking the access token", self.client.whoami,
                                       patience=120)
            user_id, device_id = who.user_id, who.device_id or self.state.device_id
            if m.user_id and m.user_id != user_id:
                raise MatrixError(
                    f"matrix.user_id: the access token belongs to another account than {m.user_id}"
                )
        else:
            resp = await self.link.call(
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
            profile = await self.link.call(
                "reading the display name",
                lambda: self.client.get_displayname(user_id),
                patience=30,
            )
            self.link.display_name = profile.displayname or ""
        except MatrixError:
            self.link.display_name = ""
        log.info("logged in with device %s", device_id)

    async def run(self) -> None:
        """Log in, catch up, answer until cancelled or stopped."""
        self.link.closing = False  # a bot run again after a stop works in the background again
        try:
            self._health = health.start(self.cfg.health)
            await self.login()
            self._start_state_writer()
            await self._check_index()
            first = not self.state.next_batch
            resp = await self._sync(full_state=True, timeout=0)
            self.link.track(asyncio.create_task(self.scheduler.run()))
            # journalled questions go before those that came meanwhile
            await self.answering.recover()
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
        await self.link.cancel_tasks()
        if self.state.dirty:  # what the writer had not written yet
            try:
                await asyncio.to_thread(self.state.write, self.state.snapshot())
            except OSError as exc:
                log.error("state.json could not be written: %s", exc)
        self.state.defer_saves(None)
        self.answering.close()
        await self.client.close()

    # -- state.json, written off the event loop ------------------------------------------

    def _start_state_writer(self) -> None:
        self.state.defer_saves(self._state_dirty.set)
        self.link.track(asyncio.create_task(self._write_state()))

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
        resp = await self.link.call(
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
            self.link.track(self._index_check)
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
                           functools.partial(self.rooms.on_invite, room_id, info))
        for room_id, info in resp.rooms.join.items():
            if info.timeline.limited and catch_up and room_id in self.rooms.known:
                log.warning("room %s: more messages arrived while away than one sync shows; "
                            "older ones are not answered", room_id)
            if catch_up:
                for event in info.timeline.events:
                    await self._one_event(room_id, event)
            self._isolated(room_id, "", "checking who is left in the room",
                           functools.partial(self.rooms.leave_if_alone, room_id))
        self.rooms.synced()
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
                await self.routing.on_event(room_id, events.obj(source))
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
                await self.link.call(what, request, patience=30)
            except MatrixError as exc:
                log.error("%s", crypto.explain_upload_failure(exc) if "upload" in what else exc)

    def _on_undecryptable(self, room_id: str, event: MegolmEvent) -> None:
        if event.sender == self.user_id or self.state.seen(event.event_id):
            return
        self._undecryptable.add(room_id, event)
        self.link.spawn(self._tell_undecryptable(room_id, event),
                        "handling an unreadable message")

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
        thread_root = events.thread_root_of(event.source)
        if not self.routing.needs_answer(room_id, thread_root):
            return
        text = crypto.undecryptable_text(self._room_language.get(room_id))
        self.counters["undecryptable_notices"] += 1
        await self.link.notice(room_id, thread_root or event.event_id, event.event_id,
                               render_notice(text), "status", mention=event.sender)


def _editing(link: Link, cfg: Config, answerer: Answerer, state: BotState, data_dir: Path,
             room_language: dict[str, str]) -> Editing | None:
    """Editing for an answerer that owns the corpus (the service); None for one that
    cannot change documents (e.g. the test harness's)."""
    if getattr(type(answerer), "curator", None) is None:
        return None
    from civicbot.sync import Syncer

    curator = answerer.curator  # type: ignore[attr-defined]  # checked just above
    return Editing(link, cfg, state, data_dir, room_language, curator, Syncer(curator, cfg))


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
