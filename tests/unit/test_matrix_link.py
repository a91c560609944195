"""The link's background tasks at shutdown: everything running is cancelled and waited for,
and nothing new starts once the link is closing (a cancelled answer's `finally` ends its
typing notice: that request must not go out on a client being closed)."""

from __future__ import annotations

import asyncio
import warnings

from civicbot.matrix.link import Link


def test_nothing_starts_once_the_link_is_closing_and_nothing_is_left_behind():
    ran: list[str] = []

    async def main() -> Link:
        link = Link(client=None)  # type: ignore[arg-type]  # no request is made here

        async def late(what: str) -> None:
            ran.append(what)

        async def answering() -> None:
            try:
                await asyncio.Event().wait()
            finally:  # what an answer cancelled by the shutdown does
                link.spawn(late("typing off"), "typing notice")

        link.spawn(answering(), "answering")
        await asyncio.sleep(0)
        await link.cancel_tasks()
        link.spawn(late("after close"), "typing notice")
        await asyncio.sleep(0)
        return link

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        link = asyncio.run(main())
    assert ran == [] and not link.tasks and link.closing


def test_a_task_tracked_while_the_others_wind_down_is_cancelled_too():
    async def main() -> tuple[Link, bool]:
        link = Link(client=None)  # type: ignore[arg-type]
        late: list[asyncio.Task[None]] = []

        async def forever() -> None:
            await asyncio.Event().wait()

        async def first() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                task = asyncio.create_task(forever())
                late.append(task)
                link.track(task)

        link.track(asyncio.create_task(first()))
        await asyncio.sleep(0)
        await link.cancel_tasks()
        # asked before asyncio.run cancels what is left on its own
        return link, bool(late) and late[0].cancelled()

    link, late_cancelled = asyncio.run(main())
    assert late_cancelled and not link.tasks
