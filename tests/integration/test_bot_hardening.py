"""What a room member can send must not stop or stall the bot: malformed events, floods of
commands, floods of invitations; and what the bot logs stays free of Matrix ids. Against a
real Synapse on loopback; every wait is a poll with a generous limit (bench/load.py
measures speed)."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from types import SimpleNamespace

import pytest
from e2e_harness import encrypted_citizen, encrypted_direct_room
from matrix_harness import bot_config, citizen, direct_room, eventually, run, running_bot

from civicbot.config import LoggingConfig
from civicbot.logs import setup as setup_logging
from civicbot.matrix import crypto
from civicbot.matrix.events import KIND
from civicbot.texts import t

nio = pytest.importorskip("nio")

pytestmark = pytest.mark.slow

# Events Synapse accepts from any room member, with nested fields that are not objects.
# (`"m.mentions": {"user_ids": 5}` it refuses from its own users, but not from other
# servers over federation; tests/unit/test_matrix_events.py covers that one.)
MALFORMED = [
    ("m.room.message", {"msgtype": "m.text", "body": "hello there", "m.relates_to": "x"}),
    ("m.room.message", {"msgtype": "m.text", "body": "hello again",
                        "m.relates_to": {"rel_type": "m.thread", "event_id": 5,
                                         "m.in_reply_to": "x"}}),
    ("m.reaction", {"m.relates_to": "x"}),
    ("m.room.message", {"msgtype": "m.file", "body": "plan.pdf",
                        "url": "mxc://localhost/abcdef", "info": "big"}),
]


async def send_raw(c, room_id: str, event_type: str, content: dict) -> str:
    resp = await c.client.room_send(room_id, event_type, content, ignore_unverified_devices=True)
    assert isinstance(resp, nio.RoomSendResponse), f"Synapse refused the event: {resp}"
    return str(resp.event_id)


def test_malformed_events_neither_stop_the_bot_nor_its_restart(
    homeserver, bot_account, answerer, tmp_path
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")

    async def scenario():
        async with citizen(homeserver) as c:
            async with running_bot(cfg, answerer) as bot:
                bot_id = bot.user_id
                room = await direct_room(c, bot)
                for event_type, content in MALFORMED:
                    await send_raw(c, room, event_type, content)
                _, _, final = await c.ask(room, "How much is a parking permit?", bot_id)
                assert "120 euros" in final["body"]
            # The bot is down; the same events wait for it, then a question.
            for event_type, content in MALFORMED:
                await send_raw(c, room, event_type, content)
            q2 = await c.send(room, "When is the waste collected?")
            async with running_bot(cfg, answerer) as bot:
                final = await c.wait_final(room, await c.wait_reply(room, q2, bot_id,
                                                                    kind="answer"))
                assert "Tuesday" in final["body"]
                _, _, final = await c.ask(room, "any subsidy for insulation?", bot_id)
                assert "1.500 euro" in final["body"]

    run(scenario(), timeout=180)


def test_an_invitation_that_fails_to_join_is_logged_and_the_bot_carries_on(
    homeserver, bot_account, answerer, tmp_path, caplog
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")
    caplog.set_level(logging.INFO)

    async def scenario():
        async with running_bot(cfg, answerer) as bot, citizen(homeserver) as c:
            room = await direct_room(c, bot)
            # An invitation the bot saw, withdrawn before it joined: Synapse answers 403.
            withdrawn = await c.create_room([bot.user_id])
            await c.client.room_kick(withdrawn, bot.user_id)
            info = SimpleNamespace(invite_state=[SimpleNamespace(
                state_key=bot.user_id, membership="invite", sender=c.user_id, source={})])
            bot.rooms.on_invite(withdrawn, info)
            await eventually(lambda: withdrawn not in bot.rooms.joining, what="the join to fail")
            assert withdrawn not in bot.client.rooms
            _, _, final = await c.ask(room, "How much is a parking permit?", bot.user_id)
            assert "120 euros" in final["body"]

    run(scenario())
    failures = [r for r in caplog.records if "joining room" in r.getMessage()
                and "failed" in r.getMessage()]
    assert failures and "M_FORBIDDEN" in failures[0].getMessage()


def test_a_hundred_commands_from_one_sender_do_not_hold_up_another_citizens_question(
    homeserver, bot_account, answerer, tmp_path
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")  # 20 replies a minute each
    limit = cfg.bot.replies_per_minute

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            citizen(homeserver) as alice,
            citizen(homeserver) as bob,
        ):
            room_a = await direct_room(alice, bot)
            room_b = await direct_room(bob, bot)
            flood = [asyncio.create_task(alice.send(room_a, "!help")) for _ in range(100)]
            commands = await asyncio.gather(*flood)
            question = await bob.send(room_b, "How much is a parking permit?")
            # The placeholder arrives in seconds, not after a hundred replies (generous bound).
            placeholder = await bob.wait_reply(room_b, question, bot.user_id, kind="answer",
                                               timeout=20)
            final = await bob.wait_final(room_b, placeholder)
            assert "120 euros" in final["body"]

            def replies() -> list[dict]:
                return [ev for ev in alice.events.get(room_a, [])
                        if ev.get("sender") == bot.user_id
                        and (ev.get("content") or {}).get(KIND) in ("command", "status")]

            await eventually(lambda: len(replies()) >= limit + 1, what="alice's replies")
            await asyncio.sleep(2)  # anything more would come now
            got = replies()
            helps = [ev for ev in got if ev["content"][KIND] == "command"]
            slow = [ev for ev in got if ev["content"]["body"] in
                    (t("slow_down", "en"), t("slow_down", "nl"))]
            assert len(helps) == limit and len(slow) == 1 and len(got) == limit + 1
            replied_to = {ev["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
                          for ev in got}
            assert replied_to <= set(commands)
            assert bot.counters["replies_withheld"] == 100 - limit

    run(scenario(), timeout=150)


def test_thirty_invitations_at_once_are_capped_and_do_not_stall_a_question(
    homeserver, bot_account, answerer, tmp_path
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")
    # 30 invitations from three people: each may have the bot in 5 rooms, and the bot is
    # in at most 14 (the direct chat with dave included).
    cfg = cfg.replace("matrix", max_rooms=14, max_rooms_per_inviter=5)

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            citizen(homeserver, "inviter") as a,
            citizen(homeserver, "inviter") as b,
            citizen(homeserver, "inviter") as c,
            citizen(homeserver) as dave,
        ):
            room_d = await direct_room(dave, bot)
            invites = {a: 12, b: 12, c: 6}
            creations = {who: [asyncio.create_task(who.create_room([bot.user_id]))
                               for _ in range(n)] for who, n in invites.items()}
            question = await dave.send(room_d, "When is the waste collected?")
            placeholder = await dave.wait_reply(room_d, question, bot.user_id, kind="answer",
                                                timeout=20)
            rooms = {who: await asyncio.gather(*tasks) for who, tasks in creations.items()}
            final = await dave.wait_final(room_d, placeholder)
            assert "Tuesday" in final["body"]
            await eventually(
                lambda: bot.counters["invitations_joined"]
                + bot.counters["invitations_declined"] >= 31,  # dave's direct chat too
                timeout=120, what="all 30 invitations to be answered")
            await eventually(lambda: not bot.rooms.joining, what="the joins to show in sync")
            joined = {who: [r for r in made if r in bot.client.rooms]
                      for who, made in rooms.items()}
            assert all(len(js) <= 5 for js in joined.values()), joined
            assert len(bot.client.rooms) == 14
            assert bot.counters["invitations_joined"] == 14
            assert bot.counters["invitations_declined"] == 17
            everyone = {r for made in rooms.values() for r in made}
            assert not set(bot.client.invited_rooms) & everyone

    run(scenario(), timeout=240)


def test_logs_of_an_undecryptable_message_name_no_user(
    homeserver, bot_account, answerer, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(crypto, "KEY_GRACE_S", 0.5)
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging(LoggingConfig(level="DEBUG"))  # as `civicbot run -v`, the most talkative

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            encrypted_citizen(homeserver, tmp_path / "citizens") as c,
        ):
            room = await encrypted_direct_room(c, bot)
            (bot_device,) = await c.wait_sees(room, bot.user_id)
            c.client.blacklist_device(bot_device)  # the bot gets no key: undecryptable
            q1 = await c.send(room, "How much is my secret parking permit?")
            await c.wait_reply(room, q1, bot.user_id, kind="status")
            await eventually(lambda: bot.counters["undecryptable_notices"] == 1)
            return c.user_id, bot.user_id

    try:
        citizen_id, bot_id = run(scenario())
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    logged = capsys.readouterr().err
    assert "could not be decrypted" in logged  # the path ran, and was logged...
    assert "undecryptable Megolm event" in logged and "@[user]" in logged  # nio's warning too
    assert "INSERT" not in logged  # nio's key store's SQL (with the bot's secret keys)
    for user in (citizen_id, bot_id):  # ...without anyone's Matrix id
        localpart = user[1:].split(":")[0]
        assert localpart not in logged and urllib.parse.quote(user, safe="") not in logged
    assert "secret" not in logged
