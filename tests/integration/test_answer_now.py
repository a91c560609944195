"""Answer at once (issue 17), with the real service (real embedders, the real index of
../shared/corpus, the real pipeline and grounding check) and a real Synapse: the first
message a citizen gets already holds a citation; the model's checked lead is edited in
later; with the generation queue full, a further citizen still gets the quoted answer.

The model is a scripted generator here: the real one does not write the same lead every
time, and the test must know which sentence to expect. It writes the sentence the real
pipeline quoted, so the grounding check passes it on its merits."""

from __future__ import annotations

import threading

import pytest
from matrix_harness import bot_config, citizen, direct_room, eventually, run, running_bot

from civicbot import metrics
from civicbot.answer.messages import say
from civicbot.answer.text import sentences
from civicbot.matrix.events import FINAL
from civicbot.service import Service
from tests.fakes import ScriptedGenerator

pytestmark = pytest.mark.slow

QUESTION = "Waarom is de rente op een Tozo-lening op 2 procent vastgesteld?"


class HeldGenerator(ScriptedGenerator):
    """A scripted generator that starts writing only once `gate` is set: the generation
    queue stays full for as long as the test needs."""

    def __init__(self, reply: str, gate: threading.Event):
        super().__init__(reply)
        self.gate = gate

    def stream(self, messages, max_tokens=None):  # type: ignore[no-untyped-def]
        self.gate.wait(120)
        yield from super().stream(messages, max_tokens)


def _refinements(outcome: str) -> float:
    return metrics.REFINEMENTS.labels(outcome)._value.get()


def test_quotes_at_once_then_the_lead_as_an_edit_and_nobody_turned_away(
    homeserver, bot_account, corpus_index, tmp_path
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot", queue_size=1)
    cfg = cfg.replace("index", path=str(corpus_index.path))
    service = Service(cfg, embedder=corpus_index.embedder)
    quoted = service.quick(QUESTION)
    assert quoted.mode == "extractive" and service.wants_model(quoted)
    # The lead the model "writes": the first quoted sentence, in its own words of the source.
    lead = sentences(quoted.citations[0].quote.removesuffix(" …"))[0].text
    gate = threading.Event()
    service.generator = HeldGenerator(lead, gate)
    note = say("model_lead", "nl")
    skipped_before = _refinements("skipped_busy")

    async def scenario():
        async with running_bot(cfg, service) as bot, \
                citizen(homeserver) as first, citizen(homeserver) as second, \
                citizen(homeserver) as third:
            rooms = [await direct_room(c, bot) for c in (first, second, third)]
            replies = []
            for c, room in zip((first, second, third), rooms, strict=True):
                qid = await c.send(room, QUESTION)
                reply = await c.wait_reply(room, qid, bot.user_id, kind="answer", timeout=60)
                replies.append(reply)
                content = reply["content"]
                # the first message is the complete quoted answer: a citation of the page
                assert content[FINAL] is True
                assert "[1]" in content["body"]
                assert "kamervragen_tozo.pdf), p. " in content["body"]
                assert note not in content["body"]
            # The first lead is being written (held), the second waits in the queue of one,
            # the third had no room: its quoted answer stays as it is, counted in /metrics.
            # The bot offers a lead to the queue just after it has sent the quoted answer, so
            # the citizen may read the third answer before the offer is turned away.
            await eventually(lambda: bot.counters["refinements_skipped"], 30,
                             "the third lead to be turned away")
            assert bot.counters["refinements_skipped"] == 1
            assert _refinements("skipped_busy") == skipped_before + 1
            assert not any(bot.counters[k] for k in ("busy", "rate_limited"))

            gate.set()

            def lead_edit(c, room, reply):
                for ev in c.edits_of(room, reply["event_id"]):
                    new = ev["content"].get("m.new_content") or {}
                    if note in new.get("body", ""):
                        return new
                return None

            for c, room, reply in zip((first, second), rooms, replies, strict=False):
                new = await eventually(lambda c=c, room=room, reply=reply:
                                       lead_edit(c, room, reply), 120, "the lead's edit")
                body = new["body"]
                # the model's lead first, the line that says so, then the quotes and sources
                assert body.startswith(lead.rstrip(".")[:40])
                assert body.index(note) < body.index("“")
                assert "kamervragen_tozo.pdf), p. " in body and new[FINAL] is True
            await eventually(lambda: not bot.scheduler.busy, 60, "the queue to empty")
            await third.caught_up(rooms[2])  # an edit sent by now has reached the client
            assert third.edits_of(rooms[2], replies[2]["event_id"]) == []

    try:
        run(scenario(), timeout=400)
    finally:
        gate.set()
