"""The bot's memory across restarts, in `data_dir/state.json`, written atomically.

Kept: the device id (so a restart creates no new device), the sync position (so old
messages are not answered again), a journal of accepted questions not yet answered (so a
crash is followed by an answer or an apology, never silence), and bounded lists of recently
handled question ids, answer ids and thread roots. Only event and room ids: no question
text and no user ids.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from civicbot.errors import MatrixError

STATE_FILE = "state.json"
VERSION = 1
KEEP_DONE = 2000
KEEP_ANSWERS = 5000
KEEP_THREADS = 5000


@dataclass
class Pending:
    """A question accepted but not yet answered."""

    event_id: str
    room_id: str
    thread_root: str  # the thread the answer goes into (the question itself if it had none)
    accepted_at: float
    placeholder: str = ""  # the bot's message being edited into the answer, once sent


class _BoundedSet:
    """An insertion-ordered set that forgets its oldest members beyond `limit`."""

    def __init__(self, limit: int, items: Iterable[str] = ()):
        self.limit = limit
        self._items: dict[str, None] = dict.fromkeys(items)
        self._trim()

    def add(self, item: str) -> None:
        self._items.pop(item, None)
        self._items[item] = None
        self._trim()

    def _trim(self) -> None:
        while len(self._items) > self.limit:
            del self._items[next(iter(self._items))]

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def to_list(self) -> list[str]:
        return list(self._items)


class BotState:
    """Load with `BotState.load(data_dir)`. Every change method saves at once, unless
    `defer_saves(on_change)` was called: then a change only calls `on_change`, and the owner
    writes `snapshot()` with `write()` when it likes (the bot: off its event loop, at most a
    few times a second, since an fsync of this file can take longer than a whole reply).
    One snapshot holds the sync token and the journal together, so a crash between two
    writes loses both the newer token and the questions accepted since the last write: the
    homeserver then sends those questions again, and they are accepted again."""

    def __init__(self, path: Path):
        self.path = path
        self._on_change: Callable[[], None] | None = None
        self.dirty = False
        self._write_lock = threading.Lock()
        self._taken = 0  # snapshots taken, and the newest one written: an older snapshot
        self._written = 0  # whose thread runs late must not overwrite a newer one
        self.user_id = ""  # the bot's own id: the state belongs to one account
        self.device_id = ""
        self.next_batch = ""
        self.pending: dict[str, Pending] = {}
        self.done = _BoundedSet(KEEP_DONE)
        self.answers = _BoundedSet(KEEP_ANSWERS)
        self.threads = _BoundedSet(KEEP_THREADS)

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> BotState:
        """The saved state in `data_dir`, or a fresh one (the folder is created, private)."""
        folder = Path(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(folder, 0o700)
        except PermissionError:  # pragma: no cover - a folder owned by someone else
            pass
        state = cls(folder / STATE_FILE)
        if not state.path.exists():
            return state
        try:
            data: dict[str, Any] = json.loads(state.path.read_text(encoding="utf-8"))
            state.user_id = str(data.get("user_id", ""))
            state.device_id = str(data.get("device_id", ""))
            state.next_batch = str(data.get("next_batch", ""))
            state.pending = {p["event_id"]: Pending(**p) for p in data.get("pending", [])}
            state.done = _BoundedSet(KEEP_DONE, data.get("done", []))
            state.answers = _BoundedSet(KEEP_ANSWERS, data.get("answers", []))
            state.threads = _BoundedSet(KEEP_THREADS, data.get("threads", []))
        except (ValueError, TypeError, KeyError) as exc:
            raise MatrixError(
                f"{state.path} is damaged ({exc}); move it away to start afresh "
                "(old messages may then be answered again)"
            ) from exc
        return state

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data, detached from later changes."""
        self.dirty = False
        self._taken += 1
        return {
            "_snapshot": self._taken,
            "version": VERSION,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "next_batch": self.next_batch,
            "pending": [asdict(p) for p in self.pending.values()],
            "done": self.done.to_list(),
            "answers": self.answers.to_list(),
            "threads": self.threads.to_list(),
        }

    def write(self, data: dict[str, Any]) -> None:
        """Write a `snapshot()` atomically (safe to call from a worker thread); a snapshot
        older than one already written is dropped."""
        data = dict(data)
        number = data.pop("_snapshot", 0)
        with self._write_lock:
            if number and number <= self._written:
                return
            self._written = max(self._written, number)
            # A name of this thread's own: a bot restarted in the same process (or the old
            # one's last save, still in a worker thread) writes the same file, and a shared
            # ".tmp" was renamed away under the other writer (seen in CI as a failed login).
            tmp = self.path.with_name(
                f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    def save(self) -> None:
        """Write the state now."""
        self.write(self.snapshot())

    def defer_saves(self, on_change: Callable[[], None] | None) -> None:
        """From now on changes call `on_change` instead of saving (None: save at once again)."""
        self._on_change = on_change

    def _changed(self) -> None:
        if self._on_change is None:
            self.save()
        else:
            self.dirty = True
            self._on_change()

    # -- the account ----------------------------------------------------------------------

    def bind_account(self, user_id: str, device_id: str) -> None:
        """Remember who we are. State saved by another account is dropped: its sync token
        and journal mean nothing to this one."""
        if self.user_id and self.user_id != user_id:
            fresh = BotState(self.path)
            fresh._on_change, fresh._write_lock = self._on_change, self._write_lock
            fresh._taken, fresh._written = self._taken, self._written
            self.__dict__.update(fresh.__dict__)
        self.user_id, self.device_id = user_id, device_id
        self._changed()

    def set_sync_token(self, token: str) -> None:
        if token and token != self.next_batch:
            self.next_batch = token
            self._changed()

    # -- the journal ----------------------------------------------------------------------

    def seen(self, event_id: str) -> bool:
        """Whether this question was accepted before (pending or handled)."""
        return event_id in self.pending or event_id in self.done

    def accept(self, event_id: str, room_id: str, thread_root: str) -> bool:
        """Journal a new question; False if it was seen before (never answer twice)."""
        if self.seen(event_id):
            return False
        self.pending[event_id] = Pending(event_id, room_id, thread_root, time.time())
        self._changed()
        return True

    def set_placeholder(self, event_id: str, placeholder: str) -> None:
        if event_id in self.pending:
            self.pending[event_id].placeholder = placeholder
            self._changed()

    def finish(self, event_id: str, answer_id: str = "", thread_root: str = "") -> None:
        """The question has had its reply: leave the journal for good."""
        self.pending.pop(event_id, None)
        self.done.add(event_id)
        if answer_id:
            self.answers.add(answer_id)
        if thread_root:
            self.threads.add(thread_root)
        self._changed()

    def mark_done(self, event_id: str) -> None:
        """Remember an event as handled without journalling it (commands, refusals)."""
        self.done.add(event_id)
        self._changed()
