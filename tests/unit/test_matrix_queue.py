import asyncio

from civicbot.matrix.queue import FairQueue, QueueFull, RateLimiter, Scheduler


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_fair_queue_serves_citizens_round_robin():
    q = FairQueue(10)
    a1, a2, a3, b1, c1 = "a1", "a2", "a3", "b1", "c1"
    assert q.put("a", a1) == 1
    assert q.put("a", a2) == 2
    assert q.put("a", a3) == 3
    assert q.put("b", b1) == 2  # b's first question goes before a's second
    assert q.put("c", c1) == 3
    assert q.order() == [a1, b1, c1, a2, a3]
    assert [q.pop() for _ in range(6)] == [a1, b1, c1, a2, a3, None]


def test_fair_queue_is_bounded():
    q = FairQueue(2)
    q.put("a", 1)
    q.put("b", 2)
    try:
        q.put("c", 3)
    except QueueFull:
        pass
    else:
        raise AssertionError("expected QueueFull")


def test_rate_limiter_sliding_window():
    clock = Clock()
    r = RateLimiter(2, clock)
    assert r.check("a") == 0 and r.check("a") == 0
    assert r.check("a") == 60.0
    assert r.check("b") == 0  # per citizen
    clock.now += 30
    assert r.check("a") == 30.0
    clock.now += 30
    assert r.check("a") == 0


def test_scheduler_runs_one_at_a_time_and_reports_admission():
    async def main():
        running, seen, max_parallel = 0, [], 0
        release = asyncio.Event()

        async def handle(item):
            nonlocal running, max_parallel
            running += 1
            max_parallel = max(max_parallel, running)
            await release.wait()
            if item == "boom":
                running -= 1
                raise RuntimeError("one failure must not stop the loop")
            seen.append(item)
            running -= 1

        s = Scheduler(handle, queue_size=2, per_minute=2, clock=Clock())
        worker = asyncio.create_task(s.run())
        assert s.offer("a", "boom").status == "started"
        await asyncio.sleep(0)
        first = s.offer("b", "b1")
        assert (first.status, first.position) == ("queued", 1)
        assert s.offer("c", "c1").position == 2
        assert s.offer("d", "d1").status == "busy"
        s.offer("a", "a2")  # queue full: counts against a's rate limit all the same
        assert s.offer("a", "a3").status == "rate_limited"
        release.set()
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        worker.cancel()
        return seen, max_parallel

    seen, max_parallel = asyncio.run(main())
    assert seen == ["b1", "c1"] and max_parallel == 1


def test_scheduler_with_workers_runs_that_many_at_once_in_fair_order():
    async def main():
        running, started, max_parallel = 0, [], 0
        release = asyncio.Event()

        async def handle(item):
            nonlocal running, max_parallel
            running += 1
            started.append(item)
            max_parallel = max(max_parallel, running)
            await release.wait()
            running -= 1

        s = Scheduler(handle, queue_size=5, per_minute=0, clock=Clock(), workers=2)
        worker = asyncio.create_task(s.run())
        assert s.offer("a", "a1").status == "started"
        assert s.offer("a", "a2").status == "started"  # a second worker is free
        await asyncio.sleep(0.01)
        third = s.offer("b", "b1")
        assert (third.status, third.position) == ("queued", 1)
        assert s.offer("a", "a3").position == 2
        assert sorted(s.running) == ["a1", "a2"] and s.current == "a1"
        release.set()
        while len(started) < 4 or s.running:
            await asyncio.sleep(0.01)
        worker.cancel()
        return started, max_parallel

    started, max_parallel = asyncio.run(main())
    assert started == ["a1", "a2", "b1", "a3"] and max_parallel == 2
