"""Fairness under load: a bounded queue served round-robin per citizen, one generation at a
time, a per-citizen rate limit, and an explicit answer when the queue is full.

The bot answers from the documents at once and queues here only the model's work (its lead
for an answer already sent): a full queue means the answer stays as quoted, not that the
citizen is turned away. This is the one place generation is gated; serving several
generations at once means widening `Scheduler.run` to several workers.

User ids live only in memory here, as dictionary keys; nothing is written to disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
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
    """Runs `handle(item)` for one item at a time, in fair order. Failures of one item are
    logged and never stop the loop."""

    def __init__(
        self,
        handle: Callable[[T], Awaitable[None]],
        queue_size: int,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._handle = handle
        self.queue: FairQueue[T] = FairQueue(queue_size)
        self.limiter = RateLimiter(per_minute, clock)
        self._wakeup = asyncio.Event()
        self.current: T | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None or len(self.queue) > 0

    def offer(self, key: Hashable, item: T, *, rate_limited: bool = True) -> Admission:
        """Queue `item` for citizen `key`, or say why not."""
        if rate_limited:
            wait = self.limiter.check(key)
            if wait > 0:
                return Admission("rate_limited", retry_after=wait)
        was_busy = self.busy
        try:
            position = self.queue.put(key, item)
        except QueueFull:
            return Admission("busy")
        self._wakeup.set()
        return Admission("queued", position) if was_busy else Admission("started")

    async def run(self) -> None:
        """Serve the queue until cancelled."""
        while True:
            item = self.queue.pop()
            if item is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self.current = item
            try:
                await self._handle(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("answering a queued question failed; carrying on")
            finally:
                self.current = None
