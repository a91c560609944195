"""`[bot] concurrent_answers` with a server backend, against a real Synapse on loopback: a
second citizen's answer starts while the first is still being written, and a third waits
with its place in the queue. (The pool itself is tested against real inference servers in
test_server_backend.py; here a small honest answerer stands in for it.)"""

from __future__ import annotations

import threading

import pytest
from matrix_harness import (
    WordLookupAnswerer,
    bot_config,
    citizen,
    direct_room,
    eventually,
    run,
    running_bot,
)

pytestmark = pytest.mark.slow


def test_two_answers_are_written_at_once_and_the_third_waits_its_turn(
        homeserver, bot_account, tmp_path):
    hold = threading.Event()
    answerer = WordLookupAnswerer(hold=hold)
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot", concurrent_answers=2)
    cfg = cfg.replace("llm", backend="server", servers=("http://127.0.0.1:9/v1",))
    assert cfg.answer_workers == 2

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            citizen(homeserver) as alice,
            citizen(homeserver) as bob,
            citizen(homeserver) as carol,
        ):
            rooms = [await direct_room(c, bot) for c in (alice, bob, carol)]
            try:
                q1 = await alice.send(rooms[0], "What does a parking permit cost?")
                await eventually(lambda: len(answerer.calls) == 1, what="the first answer")
                q2 = await bob.send(rooms[1], "When is the waste collected?")
                # Bob's answer starts while Alice's is held: no place in a queue for him.
                await eventually(lambda: len(answerer.calls) == 2, what="a second answer at once")
                assert not hold.is_set()
                q3 = await carol.send(rooms[2], "What does a parking permit cost?")
                status = await carol.wait_reply(rooms[2], q3, bot.user_id, kind="status")
                assert "number 1 in the queue" in status["content"]["body"]
                assert len(answerer.calls) == 2
            finally:
                hold.set()
            for c, room, q in ((alice, rooms[0], q1), (bob, rooms[1], q2),
                               (carol, rooms[2], q3)):
                await c.wait_final(room, await c.wait_reply(room, q, bot.user_id, kind="answer"))
            assert len(answerer.calls) == 3  # each answered once

    run(scenario(), timeout=180)
