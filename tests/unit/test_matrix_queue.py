import asyncio

from civicbot.matrix.queue import (
    FairQueue,
    QueueFull,
    RateLimiter,
    ReplyGate,
    Scheduler,
    SendGate,
)


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


def test_fair_queue_remove_takes_one_item_out():
    q = FairQueue(10)
    a1, a2, b1 = "a1", "a2", "b1"
    q.put("a", a1)
    q.put("b", b1)
    q.put("a", a2)
    assert q.remove(b1) and not q.remove(b1)
    assert q.order() == [a1, a2] and len(q) == 2
    assert q.remove(a1) and q.pop() == a2 and q.pop() is None


def test_reply_gate_warns_once_then_stays_silent_until_the_window_frees():
    clock = Clock()
    gate = ReplyGate(3, clock)
    assert [gate.check("a") for _ in range(6)] == ["reply"] * 3 + ["warn"] + ["silent"] * 2
    assert gate.check("b") == "reply"  # per sender
    clock.now += 61
    assert gate.check("a") == "reply"  # a new minute: replies again,
    assert [gate.check("a") for _ in range(3)] == ["reply", "reply", "warn"]  # and one warning


def test_send_gate_caps_sends_in_flight_and_lets_answers_go_first():
    async def main():
        gate = SendGate(3, reserved=1)
        release = asyncio.Event()
        order, peak = [], 0

        async def send(name, urgent):
            nonlocal peak
            async with gate.slot(urgent):
                peak = max(peak, gate.in_flight)
                order.append(name)
                await release.wait()

        tasks = [asyncio.create_task(send(f"cmd{i}", False)) for i in range(5)]
        await asyncio.sleep(0.01)
        assert order == ["cmd0", "cmd1"]  # other replies leave the last slot free
        tasks.append(asyncio.create_task(send("answer", True)))
        await asyncio.sleep(0.01)
        assert order == ["cmd0", "cmd1", "answer"]  # an answer gets it at once
        waiting = asyncio.create_task(send("cancelled", False))
        await asyncio.sleep(0.01)
        waiting.cancel()  # a cancelled waiter leaves no slot taken
        release.set()
        await asyncio.gather(*tasks)
        assert gate.in_flight == 0 and peak == 3
        assert order[3:] == ["cmd2", "cmd3", "cmd4"]

    asyncio.run(main())


def test_send_gate_serves_waiting_answers_before_waiting_replies():
    async def main():
        gate = SendGate(1, reserved=0)
        order = []
        await gate.acquire(False)

        async def send(name, urgent):
            async with gate.slot(urgent):
                order.append(name)

        tasks = [asyncio.create_task(send("cmd", False)),
                 asyncio.create_task(send("answer", True))]
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(*tasks)
        assert order == ["answer", "cmd"]

    asyncio.run(main())
