"""Fairness under load: a bounded queue served round-robin per citizen, one generation at a
time (or `workers` at once, with inference servers that can write several answers), a
per-citizen rate limit, and an explicit answer when the queue is full.

The bot answers from the documents at once and queues here only the model's work (its lead
for an answer already sent): a full queue means the answer stays as quoted, not that the
citizen is turned away. This is the one place generation is gated; serving several
generations at once means widening `Scheduler.run` to several workers.

User ids live only in memory here, as dictionary keys; nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimiter:
    """At most `per_minute` events per key in any sliding 60-second window."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[Hashable, deque[float]] = {}

    def check(self, key: Hashable) -> float:
        """0.0 and the event is counted, or the seconds to wait before the next one is allowed."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        times = self._seen.setdefault(key, deque())
        while times and now - times[0] >= 60.0:
            times.popleft()
        if len(times) >= self.per_minute:
            return max(0.0, 60.0 - (now - times[0]))
        times.append(now)
        # Forget keys with nothing left in the window, so memory does not grow with citizens.
        for k in [k for k, v in self._seen.items() if v and now - v[-1] >= 60.0]:
            del self._seen[k]
        return 0.0


class ReplyGate:
    """The per-citizen limit applied to every reply, not only to answers: commands, bare
    mentions and refusals each cost a send, so 100 x `!help` would otherwise be 100 sends
    (each retried on M_LIMIT_EXCEEDED) competing with everyone's answers. Within the limit a
    message gets its reply ("reply"); the first one over it gets one short notice ("warn");
    the rest get nothing ("silent") until the window has room again."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self._limiter = RateLimiter(per_minute, clock)
        self._warned: dict[Hashable, None] = {}

    def check(self, key: Hashable) -> str:
        """"reply", "warn" or "silent" for one more message of `key` (counted if "reply")."""
        if self._limiter.check(key) == 0.0:
            self._warned.pop(key, None)
            return "reply"
        if key in self._warned:
            return "silent"
        self._warned[key] = None
        while len(self._warned) > 10_000:  # bounded: forget the oldest warnings first
            del self._warned[next(iter(self._warned))]
        return "warn"


class SendGate:
    """At most `limit` sends in flight at once. Waiting answers go before other replies,
    and other replies never take the last `reserved` slots: a flood of command replies
    (each possibly backing off on M_LIMIT_EXCEEDED) cannot hold up a citizen's answer."""

    def __init__(self, limit: int, reserved: int = 1):
        if not 0 <= reserved < limit:
            raise ValueError("need 0 <= reserved < limit")
        self.limit, self.reserved = limit, reserved
        self.in_flight = 0
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    def _room(self, urgent: bool) -> bool:
        return self.in_flight < (self.limit if urgent else self.limit - self.reserved)

    def _wake(self) -> None:
        for urgent in (True, False):
            queue = self._waiting[urgent]
            while queue and self._room(urgent):
                waiter = queue.popleft()
                if not waiter.done():
                    self.in_flight += 1
                    waiter.set_result(None)
            if queue:  # urgent ones still wait: nothing else may start
                return

    async def acquire(self, urgent: bool) -> None:
        waiting_before = self._waiting[True] or (not urgent and self._waiting[False])
        if not waiting_before and self._room(urgent):
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[urgent].append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted just as it was cancelled
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    self._waiting[urgent].remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    @contextlib.asynccontextmanager
    async def slot(self, urgent: bool) -> AsyncIterator[None]:
        """`async with gate.slot(urgent):` around one send."""
        await self.acquire(urgent)
        try:
            yield
        finally:
            self.release()


class QueueFull(Exception):
    """No room for another waiting question."""


class FairQueue(Generic[T]):
    """Waiting items, at most `maxsize`, served round-robin across keys: a citizen with five
    questions does not make the next citizen wait for all five."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._by_key: OrderedDict[Hashable, deque[T]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_key.values())

    def put(self, key: Hashable, item: T) -> int:
        """Add `item`; returns its 1-based place in the serving order. Raises QueueFull."""
        if len(self) >= self.maxsize:
            raise QueueFull
        self._by_key.setdefault(key, deque()).append(item)
        position = self.position(item)
        assert position is not None
        return position

    def pop(self) -> T | None:
        """The next item to serve, or None when nothing waits."""
        if not self._by_key:
            return None
        key, items = next(iter(self._by_key.items()))
        item = items.popleft()
        del self._by_key[key]
        if items:  # this citizen goes to the back of the line
            self._by_key[key] = items
        return item

    def order(self) -> list[T]:
        """All waiting items in the order they will be served."""
        lanes = [list(q) for q in self._by_key.values()]
        out: list[T] = []
        depth = 0
        while any(depth < len(lane) for lane in lanes):
            out.extend(lane[depth] for lane in lanes if depth < len(lane))
            depth += 1
        return out

    def remove(self, item: T) -> bool:
        """Take `item` out of the queue (e.g. its question was deleted); False if absent."""
        for key, items in list(self._by_key.items()):
            for i, other in enumerate(items):
                if other is item:
                    del items[i]
                    if not items:
                        del self._by_key[key]
                    return True
        return False

    def position(self, item: T) -> int | None:
        """1-based place of `item` in the serving order, or None if it is not waiting."""
        for i, other in enumerate(self.order(), start=1):
            if other is item:
                return i
        return None


@dataclass(frozen=True)
class Admission:
    """What happened to an offered question: "started" (nothing ahead of it), "queued"
    (`position` questions to go, counting itself), "busy" (queue full) or "rate_limited"
    (`retry_after` seconds)."""

    status: str
    position: int = 0
    retry_after: float = 0.0


class Scheduler(Generic[T]):
    """Runs `handle(item)` for `workers` items at a time (default one), in fair order.
    Failures of one item are logged and never stop the loop."""

    def __init__(
        self,
        handle: Callable[[T], Awaitable[None]],
        queue_size: int,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        workers: int = 1,
    ):
        self._handle = handle
        self.queue: FairQueue[T] = FairQueue(queue_size)
        self.limiter = RateLimiter(per_minute, clock)
        self._wakeup = asyncio.Event()
        self.workers = max(1, workers)
        self.running: list[T] = []  # items being handled now, oldest first

    @property
    def current(self) -> T | None:
        """The item handled longest (with one worker: the one being handled), or None."""
        return self.running[0] if self.running else None

    @property
    def busy(self) -> bool:
        """True when a new item would have to wait for a worker."""
        return len(self.running) + len(self.queue) >= self.workers

    def offer(self, key: Hashable, item: T, *, rate_limited: bool = True) -> Admission:
        """Queue `item` for citizen `key`, or say why not."""
        if rate_limited:
            wait = self.limiter.check(key)
            if wait > 0:
                return Admission("rate_limited", retry_after=wait)
        try:
            position = self.queue.put(key, item)
        except QueueFull:
            return Admission("busy")
        self._wakeup.set()
        # Items a free worker takes at once are not waiting: they do not count as places.
        free = self.workers - len(self.running)
        return Admission("queued", position - free) if position > free else Admission("started")

    async def run(self) -> None:
        """Serve the queue with `workers` workers until cancelled."""
        if self.workers == 1:  # in this task, as before there were workers
            await self._work()
        await asyncio.gather(*(self._work() for _ in range(self.workers)))

    async def _work(self) -> None:
        while True:
            item = self.queue.pop()
            if item is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self.running.append(item)
            try:
                await self._handle(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("answering a queued question failed; carrying on")
            finally:
                self.running.remove(item)
