"""Questions that arrive together are prepared together.

A sync batch can bring many questions at once (a class asking in a room, twenty citizens
after a newsletter). Each question's quoted answer needs its question embedded; one batched
embedding call for all of them costs little more than one call for one (bench/load.py), so
the answering tasks of one burst join a single `prepare` call before working out their
answers, and each then sends its answer as soon as it is ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Burst(Generic[T]):
    """Collects the items joined during one turn of the event loop and runs `work` once
    for all of them; items joined while that runs form the next burst."""

    def __init__(self, work: Callable[[list[T]], Awaitable[None]]):
        self._work = work
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None
        self._running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def join(self, item: T) -> None:
        """Wait until `work` has run for a burst holding `item`. Never raises: a failed
        `work` is logged, and whoever waits goes on without it (it only saves time)."""
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            # Every task made ready in the same turn (one sync batch's questions) runs
            # before this callback, so they all join this burst.
            loop.call_soon(self._start)
        done = self._done
        self._items.append(item)
        await asyncio.shield(done)

    def _start(self) -> None:
        items, done = self._items, self._done
        self._items, self._done = [], None
        assert done is not None
        task = asyncio.ensure_future(self._run(items, done))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, items: list[T], done: asyncio.Future[None]) -> None:
        try:
            await self._work(items)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("preparing %d questions at once failed", len(items))
        finally:
            if not done.done():
                done.set_result(None)
