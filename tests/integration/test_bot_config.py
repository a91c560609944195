"""The `[matrix]` and `[bot]` switches of config.example.toml against the session's real
Synapse, each with the small harness answerer: `answer_all_rooms`, `allowed_users`,
`encryption = false`, `queue_size` and `log_questions`. Grouped in one module so they share
one homeserver; every wait is a poll with a time limit."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from matrix_harness import (
    WordLookupAnswerer,
    bot_config,
    citizen,
    direct_room,
    eventually,
    run,
    running_bot,
    wait_membership,
)

from civicbot.matrix.events import FINAL
from civicbot.matrix.feedback import FEEDBACK_FILE
from civicbot.texts import t

pytestmark = pytest.mark.slow


def test_answer_all_rooms_answers_every_message_there_and_only_there(
    homeserver, bot_account, answerer, tmp_path
):
    async def scenario():
        async with citizen(homeserver) as alice, citizen(homeserver) as bob:
            bot_id = bot_account["user_id"]
            listed = await alice.create_room([bot_id, bob.user_id])
            other = await alice.create_room([bot_id, bob.user_id])
            await bob.join(listed)
            await bob.join(other)
            cfg = bot_config(homeserver, bot_account, tmp_path / "bot").replace(
                "matrix", answer_all_rooms=(listed,))
            async with running_bot(cfg, answerer) as bot:
                await alice.wait_joined(listed, bot.user_id)
                await alice.wait_joined(other, bot.user_id)
                # no mention, no thread: in the other room this is chatter between people
                ignored = await alice.send(other, "When is the waste collected?")
                _, reply, final = await bob.ask(listed, "When is the waste collected?",
                                                bot.user_id)
                assert "Tuesday" in final["body"]
                assert reply["content"]["m.relates_to"]["rel_type"] == "m.thread"
                # sent before the answered question, so the bot has seen it by now
                assert alice.replies_to(other, ignored, bot.user_id) == []

    run(scenario(), timeout=180)


def test_allowed_users_may_invite_the_bot_from_anywhere_and_others_are_declined(
    homeserver, bot_account, answerer, tmp_path
):
    async def scenario():
        async with citizen(homeserver, "librarian") as librarian, citizen(homeserver) as other:
            # only users of another server may invite, except the librarian named in the list
            cfg = bot_config(homeserver, bot_account, tmp_path / "bot").replace(
                "matrix", allowed_servers=("elsewhere.example",),
                allowed_users=(librarian.user_id,))
            async with running_bot(cfg, answerer) as bot:
                declined = await other.create_room([bot.user_id], direct=True)
                accepted = await direct_room(librarian, bot)
                _, _, final = await librarian.ask(accepted, "parking permit?", bot.user_id)
                assert "120 euros" in final["body"]
                # declined: the homeserver shows the bot's invitation turned into "leave"
                await wait_membership(other, declined, bot.user_id, "leave")
                assert declined not in bot.client.rooms

    run(scenario(), timeout=180)


def test_without_encryption_the_bot_answers_in_clear_and_has_no_keys(
    homeserver, bot_account, answerer, tmp_path
):
    data = tmp_path / "bot"
    cfg = bot_config(homeserver, bot_account, data).replace("matrix", encryption=False)

    async def scenario():
        async with running_bot(cfg, answerer) as bot, citizen(homeserver) as c:
            room = await direct_room(c, bot)
            _, reply, final = await c.ask(room, "When is the waste collected?", bot.user_id)
            assert reply["type"] == "m.room.message" and "Tuesday" in final["body"]
            cid = await c.send(room, "!privacy en")
            privacy = await c.wait_reply(room, cid, bot.user_id, kind="command")
            assert "does not read end-to-end encrypted messages" in privacy["content"]["body"]
            return bot.user_id, bot.client.device_id

    bot_id, device = run(scenario(), timeout=120)
    # no device keys were published and no crypto store was made
    body = json.dumps({"device_keys": {bot_id: []}}).encode()
    req = urllib.request.Request(
        f"{homeserver.url}/_matrix/client/v3/keys/query", data=body, method="POST",
        headers={"Authorization": f"Bearer {bot_account['access_token']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        keys = json.load(resp)["device_keys"].get(bot_id, {})
    assert device not in keys
    assert not (data / "crypto").exists() or not any((data / "crypto").iterdir())


def test_a_full_queue_answers_busy_and_the_waiting_questions_are_answered(
    homeserver, bot_account, tmp_path
):
    hold = threading.Event()
    answerer = WordLookupAnswerer(hold=hold)
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot", queue_size=1)

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            citizen(homeserver) as alice,
            citizen(homeserver) as bob,
            citizen(homeserver) as carol,
        ):
            rooms = [await direct_room(x, bot) for x in (alice, bob, carol)]
            try:
                q1 = await alice.send(rooms[0], "What does a parking permit cost?")
                await eventually(answerer.started.is_set, what="the first answer to start")
                q2 = await bob.send(rooms[1], "When is the waste collected?")
                await bob.wait_reply(rooms[1], q2, bot.user_id, kind="status")
                q3 = await carol.send(rooms[2], "Is there a subsidy for insulation?")
                busy = await carol.wait_reply(rooms[2], q3, bot.user_id, kind="status")
                body = busy["content"]["body"]
                assert t("busy", "en") in body or t("busy", "nl") in body, body
            finally:
                hold.set()
            for c, room, q in ((alice, rooms[0], q1), (bob, rooms[1], q2)):
                final = await c.wait_final(room, await c.wait_reply(room, q, bot.user_id,
                                                                    kind="answer"))
                assert final[FINAL] and "Sources" in final["body"]
            # the turned-away question was not queued behind them
            assert carol.replies_to(rooms[2], q3, bot.user_id) == [busy]
            assert [q for q, _ in answerer.calls] == ["What does a parking permit cost?",
                                                      "When is the waste collected?"]

    run(scenario(), timeout=180)


@pytest.mark.parametrize("log_questions", [True, False], ids=["logged", "not-logged"])
def test_log_questions_keeps_the_question_with_the_vote_only_when_on(
    homeserver, bot_account, answerer, tmp_path, log_questions
):
    data = tmp_path / "bot"
    cfg = bot_config(homeserver, bot_account, data, log_questions=log_questions)

    async def scenario():
        async with running_bot(cfg, answerer) as bot, citizen(homeserver) as c:
            room = await direct_room(c, bot)
            _, reply, _ = await c.ask(room, "What does a parking permit cost?", bot.user_id)
            await c.react(room, reply["event_id"], "👎")
            await eventually(lambda: (data / FEEDBACK_FILE).exists()
                             and "down" in (data / FEEDBACK_FILE).read_text(), what="the vote")
            records = [json.loads(line) for line in (data / FEEDBACK_FILE).read_text()
                       .splitlines()]
            assert [r["vote"] for r in records] == ["down"]
            if log_questions:
                assert records[0]["question"] == "What does a parking permit cost?"
            else:
                assert "question" not in records[0]
            assert c.user_id not in (data / FEEDBACK_FILE).read_text()

    run(scenario(), timeout=120)
