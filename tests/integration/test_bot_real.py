"""The bot with the REAL answering service: real models, a real index of ../shared/corpus and
a real Synapse. The fast bot behaviours are covered in test_bot.py with a small answerer."""

from __future__ import annotations

import pytest
from matrix_harness import bot_config, citizen, direct_room, run, running_bot

from civicbot.answer.messages import say
from civicbot.service import Service

pytestmark = pytest.mark.slow


def test_citizen_gets_a_real_answer_with_a_citation_in_a_thread(
    homeserver, bot_account, corpus_index, tmp_path
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")
    cfg = cfg.replace("index", path=str(corpus_index.path))
    service = Service(cfg, embedder=corpus_index.embedder)

    async def scenario():
        async with running_bot(cfg, service) as bot, citizen(homeserver) as c:
            room = await direct_room(c, bot)
            qid, reply, final = await c.ask(
                room, "Waarom is de rente op een Tozo-lening op 2 procent vastgesteld?",
                bot.user_id, timeout=240)
            assert reply["content"]["msgtype"] == "m.notice"
            assert reply["content"]["m.relates_to"]["event_id"] == qid
            assert "Qredits" in final["body"]
            # the source: document (by file name, as it has no public address) and page
            assert "kamervragen_tozo.pdf), p. 1" in final["body"]
            assert "kamervragen_tozo.pdf" in final["formatted_body"]

            # a follow-up in the thread is answered with the thread as context
            _, _, follow = await c.ask(room, "En wat was die rente daarna?", bot.user_id,
                                       thread_root=qid, timeout=240)
            # what the follow-up asks (the rate after the first year), which the first
            # answer need not have said
            assert "5,75" in follow["body"], follow["body"]

            # in a group room (default room version 12), asked with a mention
            async with citizen(homeserver, "neighbour") as bob:
                group = await c.create_room([bot.user_id, bob.user_id])
                await bob.join(group)
                await c.wait_joined(group, bot.user_id)
                _, reply, final = await bob.ask(
                    group, "Which GNU licences are compatible with the EUPL v1.2?",
                    bot.user_id, mention=bot.user_id, timeout=240)
                assert reply["content"]["msgtype"] == "m.notice"
                assert "GPL" in final["body"] and "eupl.pdf" in final["body"]

            # an unanswerable question gets an honest refusal, in Dutch
            _, _, refusal = await c.ask(
                room, "Hoeveel kost een bewonersparkeervergunning in Amersfoort?", bot.user_id,
                timeout=240)
            # the refusal itself: a quoting answer also speaks of "documenten"
            assert say("refused", "nl") in refusal["body"]
            assert "Bronnen:" not in refusal["body"]

    run(scenario(), timeout=600)
