"""The bot's event handling without a homeserver: a Bot whose nio client sends into a list.
(tests/integration/test_bot_hardening.py does the same against a real Synapse.)"""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("nio")

from nio.rooms import MatrixRoom  # noqa: E402

from civicbot import config as config_mod  # noqa: E402
from civicbot.matrix.bot import Bot, Job  # noqa: E402
from civicbot.matrix.events import KIND  # noqa: E402
from civicbot.matrix.state import BotState  # noqa: E402
from civicbot.texts import t  # noqa: E402

BOT = "@civicbot:example.org"
ALICE = "@alice:example.org"


class NoAnswers:
    """An answerer for tests that never reach answering."""

    def ask(self, question, history=(), on_text=None):  # type: ignore[no-untyped-def]
        raise AssertionError("not expected to answer")

    def documents(self) -> list[Any]:
        return []

    def about(self) -> dict[str, str]:
        return {}


def make_bot(tmp_path, **bot_section: Any) -> tuple[Bot, list[dict[str, Any]]]:
    cfg = config_mod.build({
        "matrix": {"homeserver": "http://127.0.0.1:9", "access_token": "token",
                   "data_dir": str(tmp_path / "bot"), "encryption": False},
        "bot": bot_section,
    }, env={})
    bot = Bot(cfg, NoAnswers())
    bot.user_id = bot.client.user_id = BOT
    sent: list[dict[str, Any]] = []

    async def room_send(room_id, event_type, content, tx_id=None, **kwargs):  # noqa: ANN001
        sent.append(content)
        return SimpleNamespace(event_id=f"$sent{len(sent)}")

    bot.client.room_send = room_send  # type: ignore[method-assign]
    bot.client.rooms["!dm"] = MatrixRoom("!dm", BOT)  # no members known: a direct chat
    return bot, sent


def text_event(event_id: str, body: str, sender: str = ALICE, **content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": event_id, "sender": sender,
            "origin_server_ts": 0, "content": {"msgtype": "m.text", "body": body, **content}}


async def settle(bot: Bot) -> None:
    while bot.link.tasks:
        await asyncio.gather(*list(bot.link.tasks), return_exceptions=True)


def test_a_failing_event_is_logged_without_its_content_marked_done_and_not_retried(
    tmp_path, caplog
):
    bot, _ = make_bot(tmp_path)
    handled = []

    async def on_event(room_id: str, source: dict[str, Any]) -> None:
        handled.append(source["event_id"])
        if source["event_id"] == "$bad":
            raise AttributeError("'str' object has no attribute 'get' (my secret question)")

    bot.routing.on_event = on_event  # type: ignore[method-assign]
    bad = text_event("$bad", "my secret question")

    async def main() -> None:
        for event in (bad, text_event("$good", "hello"), bad):
            await bot._one_event("!dm", event)

    caplog.set_level(logging.INFO)
    asyncio.run(main())
    assert handled == ["$bad", "$good"]  # the next event is handled; the bad one once only
    assert bot.state.seen("$bad") and BotState.load(tmp_path / "bot").seen("$bad")
    assert "AttributeError" in caplog.text and "$bad" in caplog.text
    assert "secret" not in caplog.text and ALICE not in caplog.text


def test_a_sync_batch_carries_on_past_a_bad_invitation_and_a_bad_event(tmp_path, caplog):
    bot, sent = make_bot(tmp_path)
    batch = SimpleNamespace(rooms=SimpleNamespace(
        invite={"!odd": SimpleNamespace(invite_state=5)},  # not a list of events
        join={"!dm": SimpleNamespace(timeline=SimpleNamespace(limited=False, events=[
            SimpleNamespace(source=text_event("$1", "x", **{"m.relates_to": "x"})),
            SimpleNamespace(source="not an event"),
            SimpleNamespace(source=text_event("$2", "!help")),
        ]))},
    ))

    asyncio.run(bot._handle_sync(batch, catch_up=True))
    assert bot.counters["failed_events"] == 1  # the invitation
    commands = [c for c in sent if c.get(KIND) == "command"]
    assert len(commands) == 1 and "!help" in commands[0]["body"]
    assert bot.state.seen("$2")


def test_every_reply_counts_against_the_sender_limit_with_one_warning(tmp_path):
    bot, sent = make_bot(tmp_path, replies_per_minute=4)

    async def main() -> None:
        for i in range(20):
            await bot.routing.on_event("!dm", text_event(f"$c{i}", "!help"))
        await bot.routing.on_event("!dm", text_event("$m", "@civicbot"))  # a bare mention
        await settle(bot)

    asyncio.run(main())
    commands = [c for c in sent if c.get(KIND) == "command"]
    warnings = [c for c in sent if c["body"] in (t("slow_down", "nl"), t("slow_down", "en"))]
    assert len(commands) == 4 and len(warnings) == 1 and len(sent) == 5
    assert all(bot.state.seen(f"$c{i}") for i in range(20))  # never replayed either
    assert bot.counters["replies_withheld"] == 17


def test_a_bare_mention_and_a_stale_question_get_their_short_replies(tmp_path):
    bot, sent = make_bot(tmp_path)

    async def main() -> None:
        await bot.routing.on_event("!dm", text_event("$m", BOT))
        stale = text_event("$old", "How much is a parking permit?")
        stale["origin_server_ts"] = 1_000_000_000_000  # 2001
        await bot.routing.on_event("!dm", stale)
        await settle(bot)

    asyncio.run(main())
    bodies = [c["body"] for c in sent]
    assert bodies == [t("bare_mention", "nl"), t("stale", "en")]
    assert bot.state.seen("$m") and bot.state.seen("$old") and not bot.state.pending


def test_a_question_deleted_before_its_turn_is_not_answered(tmp_path):
    bot, _ = make_bot(tmp_path)
    job = Job("$q", "!dm", "$q", ALICE, "parking?", "en", in_thread=False)
    other = Job("$r", "!dm", "$r", "@bob:example.org", "waste?", "en", in_thread=False)

    async def main() -> None:
        bot.state.accept("$q", "!dm", "$q")
        bot.scheduler.queue.put(ALICE, job)
        bot.scheduler.queue.put("@bob:example.org", other)
        await bot.routing.on_event("!dm", {"type": "m.room.redaction", "event_id": "$d",
                                    "sender": ALICE, "redacts": "$q", "content": {}})

    asyncio.run(main())
    assert bot.scheduler.queue.order() == [other]
    assert "$q" not in bot.state.pending and bot.state.seen("$q")


def test_notices_without_mentions_notify_nobody(tmp_path):
    bot, sent = make_bot(tmp_path)
    # as the editor features tell the editors' room about a failed download
    content = {"msgtype": "m.notice", "body": "download failed: server said @room"}
    asyncio.run(bot.link.send("!dm", content, "telling the editors"))
    assert sent[0]["m.mentions"] == {}


def test_state_is_written_off_the_event_loop_once_for_a_burst(tmp_path, monkeypatch):
    monkeypatch.setattr("civicbot.matrix.bot.STATE_WRITE_DELAY_S", 0.05)
    bot, _ = make_bot(tmp_path)
    writes = []
    real_write = bot.state.write

    def write(data: dict[str, Any]) -> None:
        writes.append(data)
        real_write(data)

    bot.state.write = write  # type: ignore[method-assign]

    async def main() -> None:
        bot._start_state_writer()
        for i in range(50):
            bot.state.mark_done(f"$e{i}")
        assert not writes  # nothing written on the loop meanwhile
        await asyncio.sleep(0.3)
        bot.state.mark_done("$last")
        await bot.link.cancel_tasks()
        if bot.state.dirty:  # as the bot does when it stops
            await asyncio.to_thread(bot.state.write, bot.state.snapshot())

    asyncio.run(main())
    assert len(writes) == 2 and len(writes[0]["done"]) == 50
    saved = json.loads((tmp_path / "bot" / "state.json").read_text())
    assert "$last" in saved["done"]
