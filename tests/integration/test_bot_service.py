"""The bot with the real answering service (real index of two documents of ../shared/corpus,
real embedder, real grounding check) on the session's real Synapse, with a scripted
generator in place of the model so the test decides what the model writes:

- a long answer in which the model makes things up: no made-up sentence ever reaches the
  room, not in the answer and not in any intermediate edit, and the answer message is
  edited at least once and never more than `[bot] max_edits` times;
- the model failing, or stopping at its time limit mid-answer: what the citizen then gets;
- `!about`: the real service's facts (model file and its hash, embedder, documents).

These promises hold however the bot orders its messages (placeholder then edits, or the
quoted answer first and the model's checked text added later): they are checked on every
event and edit the citizen's client receives."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from matrix_harness import (
    Citizen,
    bot_config,
    citizen,
    direct_room,
    eventually,
    run,
    running_bot,
)
from scripted_model import FABRICATED, MARKERS, QUESTION, Model, true_sentences

from civicbot.answer.messages import say
from civicbot.errors import GenerationTimeout
from civicbot.matrix.events import KIND
from civicbot.service import Service
from civicbot.texts import t

pytestmark = pytest.mark.slow

MAX_EDITS = 4


class SlowModel(Model):
    """Writes at a model's pace: a short pause per piece, so that the bot has time to edit
    between sentences (each sentence takes several edit intervals)."""

    def __init__(self, reply: str, then_raise: BaseException | None = None,
                 pause_s: float = 0.02):
        super().__init__(reply, then_raise)
        self.pause_s = pause_s

    def stream(self, messages, max_tokens=None) -> Iterator[str]:  # type: ignore[no-untyped-def]
        for piece in super().stream(messages, max_tokens):
            time.sleep(self.pause_s)
            yield piece


@pytest.fixture
def setup(homeserver, bot_account, small_workspace, embedder, tmp_path):
    ws_cfg = small_workspace.load()
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot", edit_interval_s=0.05,
                     max_edits=MAX_EDITS)
    cfg = cfg.replace("index", path=str(ws_cfg.resolve(ws_cfg.index.path)))
    cfg = cfg.replace("llm", model_path=str(ws_cfg.resolve(ws_cfg.llm.model_path)))
    return cfg, Service(cfg, embedder=embedder), homeserver


def _refinements() -> float:
    """The model's turns finished so far (civicbot_refinements_total, every outcome)."""
    from civicbot import metrics

    return sum(metrics.REFINEMENTS.labels(o)._value.get() for o in metrics.REFINEMENT_OUTCOMES)


async def _models_turn_done(before: float, c: Citizen, room: str) -> None:
    """Wait until the model's turn for one more question has ended (its lead edited in, or
    nothing added) and the citizen has received every edit the bot sent: the bot sends the
    quoted answer first and the model's text later, and counts the turn once its edits are
    sent, which is before the citizen's next sync brings them."""
    await eventually(lambda: _refinements() > before or None, 120, "the model's turn")
    await c.caught_up(room)


def _everything_the_bot_said(c, room: str, bot_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every text of every event and edit the bot sent to the room, as clients receive it."""
    out = []
    for ev in c.events.get(room, []):
        if ev.get("sender") != bot_id:
            continue
        content = ev.get("content") or {}
        for part in (content, content.get("m.new_content") or {}):
            out += [str(part.get("body", "")), str(part.get("formatted_body", ""))]
    return out


def test_a_long_answer_streams_checked_sentences_only_within_the_edit_cap(setup, shared):
    cfg, service, hs = setup
    true = true_sentences(service, QUESTION)
    parts: list[str] = []
    for i in range(8):  # eight true sentences, each followed by a made-up one
        parts += [f"{true[i % len(true)]} [1]", FABRICATED[i % 2]]
    service.generator = SlowModel(" ".join(parts))

    async def scenario():
        async with running_bot(cfg, service) as bot, citizen(hs) as c:
            room = await direct_room(c, bot)
            turns = _refinements()
            _, reply, final = await c.ask(room, QUESTION, bot.user_id, timeout=120)
            assert "kamervragen_tozo.pdf" in final["body"]  # the quoted answer, its sources
            await _models_turn_done(turns, c, room)
            said = _everything_the_bot_said(c, room, bot.user_id)
            for text in said:
                for marker in MARKERS:
                    assert marker not in text, f"made up {marker!r} was shown: {text!r}"
            edits = c.edits_of(room, reply["event_id"])
            assert 1 <= len(edits) <= cfg.bot.max_edits, len(edits)
            # a checked sentence of the model was shown in an edit, marked as the model's
            note = say("model_lead", "nl")
            assert any(note in e["content"]["m.new_content"]["body"]
                       and true[0][:40] in e["content"]["m.new_content"]["body"]
                       for e in edits)

    run(scenario(), timeout=300)


def test_a_failing_model_and_a_time_limit_mid_answer_as_the_citizen_sees_them(setup, shared):
    cfg, service, hs = setup
    true = true_sentences(service, QUESTION)

    async def scenario():
        async with running_bot(cfg, service) as bot, citizen(hs) as c:
            room = await direct_room(c, bot)
            # stopped at the time limit after a true and a made-up sentence: the checked
            # part and the quotes, nothing made up
            service.generator = SlowModel(
                f"{true[0]} [1] {FABRICATED[0]} Verder",
                then_raise=GenerationTimeout("the answer took longer than 60 s"))
            turns = _refinements()
            _, _, final = await c.ask(room, QUESTION, bot.user_id, timeout=120)
            await _models_turn_done(turns, c, room)
            assert "rente" in final["body"] and "kamervragen_tozo.pdf" in final["body"]
            assert not any(m in text for text in _everything_the_bot_said(c, room, bot.user_id)
                           for m in MARKERS)
            # a model that breaks unexpectedly: the citizen keeps the quoted answer with its
            # sources (the model only ever adds a lead), never an error in its place
            service.generator = SlowModel("", then_raise=RuntimeError("out of memory"))
            turns = _refinements()
            _, reply, final = await c.ask(room, "Waarom is de Tozo-rente 2 procent?",
                                          bot.user_id, timeout=120)
            await _models_turn_done(turns, c, room)
            shown = [final, *(e["content"]["m.new_content"]
                              for e in c.edits_of(room, reply["event_id"]))]
            assert "kamervragen_tozo.pdf" in shown[-1]["body"] and "“" in shown[-1]["body"]
            assert not any(m["body"].startswith(t("error", "nl")) for m in shown)

    run(scenario(), timeout=300)


def test_about_shows_the_real_service_facts(setup):
    cfg, service, hs = setup
    model = Path(cfg.llm.model_path)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:12]

    async def scenario():
        async with running_bot(cfg, service) as bot, citizen(hs) as c:
            room = await direct_room(c, bot)
            for word in ("!about", "!over"):
                cid = await c.send(room, word)
                reply = await c.wait_reply(room, cid, bot.user_id, kind="command")
                body = reply["content"]["body"]
                assert model.name in body and digest in body
                assert service.embedder.name in body
                assert ": 2\n" in body  # the two documents of the index
                assert "example.org/civicbot" in body  # where the source code is

    run(scenario(), timeout=120)


def test_metrics_count_the_real_index_and_the_questions_answered(setup):
    """/metrics of a bot serving the real service: the documents and passages of its index
    (counted here from the index files themselves) and the questions by outcome."""
    import asyncio
    import urllib.request

    from civicbot.homeserver import free_port
    from civicbot.index.store import IndexStore
    from tests.unit.test_health import samples

    cfg, service, hs = setup
    port = free_port()
    cfg = cfg.replace("health", enabled=True, port=port)
    snapshot = IndexStore(cfg.resolve(cfg.index.path)).load(service.embedder.name)
    true = true_sentences(service, QUESTION)
    service.generator = SlowModel(f"{true[0]} [1]", pause_s=0)

    async def scenario():
        async with running_bot(cfg, service) as bot, citizen(hs) as c:
            def get() -> str:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    return r.read().decode()

            async def fetch() -> str:
                return await asyncio.to_thread(get)

            before = samples(await fetch())
            assert before[("civicbot_documents", ())] == len(snapshot.docs) == 2
            assert before[("civicbot_chunks", ())] == len(snapshot.chunks)
            room = await direct_room(c, bot)
            await c.ask(room, QUESTION, bot.user_id, timeout=120)
            await c.ask(room, "Hoeveel kost een bewonersparkeervergunning in Amersfoort?",
                        bot.user_id, timeout=120)
            def count(after, *outcomes) -> float:  # type: ignore[no-untyped-def]
                return sum(after.get(("civicbot_questions_total", (("outcome", o),)), 0)
                           - before.get(("civicbot_questions_total", (("outcome", o),)), 0)
                           for o in outcomes)

            after = before
            for _ in range(200):  # the counters move just after the final reply is sent
                after = samples(await fetch())
                if count(after, "refused", "partial") and count(after, "generated",
                                                                "extractive"):
                    break
                await asyncio.sleep(0.05)
            assert count(after, "generated", "extractive") == 1
            # declined: refused outright, or a partial answer (the topic, not the detail asked)
            assert count(after, "refused", "partial") == 1
            error = ("civicbot_questions_total", (("outcome", "error"),))
            assert after.get(error, 0) == before.get(error, 0)

    run(scenario(), timeout=300)


def test_a_citizen_over_the_question_limit_is_told_to_wait_with_quotes_first(
        homeserver, bot_account, small_workspace, embedder, tmp_path):
    """The quoted answer never waits in the queue, but the per-citizen limit on questions
    still holds: the question over `rate_limit_per_minute` gets the wait notice, no answer."""
    ws_cfg = small_workspace.load()
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot", rate_limit_per_minute=2)
    cfg = cfg.replace("index", path=str(ws_cfg.resolve(ws_cfg.index.path)))
    service = Service(cfg, embedder=embedder)
    service.generator = SlowModel("", pause_s=0)  # the model adds nothing

    async def scenario():
        async with running_bot(cfg, service) as bot, citizen(homeserver) as c:
            room = await direct_room(c, bot)
            for _ in range(2):
                _, _, final = await c.ask(room, QUESTION, bot.user_id, timeout=120)
                assert "kamervragen_tozo.pdf" in final["body"]
            qid = await c.send(room, QUESTION)
            status = await c.wait_reply(room, qid, bot.user_id, kind="status", timeout=60)
            wait_text = t("rate_limited", "nl", s=1).split("1")[0]
            assert status["content"]["body"].startswith(wait_text), status["content"]["body"]
            assert bot.counters["rate_limited"] == 1
            assert not [e for e in c.replies_to(room, qid, bot.user_id)
                        if e["content"].get(KIND) == "answer"]

    run(scenario(), timeout=300)
