"""Routing, answering and editing each on their own, with a fake Matrix link
(tests/fakes.FakeLink) instead of a homeserver: the narrow link is all they talk to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nio")

from civicbot import config as config_mod  # noqa: E402
from civicbot.matrix.answering import Answering, Job  # noqa: E402
from civicbot.matrix.editing import Editing  # noqa: E402
from civicbot.matrix.events import KIND  # noqa: E402
from civicbot.matrix.routing import Routing  # noqa: E402
from civicbot.matrix.state import BotState  # noqa: E402
from civicbot.records import Answer, Citation  # noqa: E402
from civicbot.texts import t  # noqa: E402
from tests.fakes import FakeLink, FakeRoom  # noqa: E402

BOT = "@bot:example.org"
ALICE = "@alice:example.org"


def make_cfg(tmp_path: Path) -> config_mod.Config:
    return config_mod.build({"matrix": {"homeserver": "http://127.0.0.1:9",
                                        "access_token": "token",
                                        "data_dir": str(tmp_path / "bot")}}, env={})


def text_event(event_id: str, body: str, sender: str = ALICE) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": event_id, "sender": sender,
            "origin_server_ts": 0, "content": {"msgtype": "m.text", "body": body}}


class TwoSteps:
    """An answerer that quotes at once and has the model add a lead later."""

    def __init__(self) -> None:
        self.refined = asyncio.Event()

    def quick(self, question: str, history: Any = ()) -> Answer:
        cite = Citation(1, "plan.pdf", "Plan", 3, 3, "Permits cost 50 euro.", "")
        return Answer(question, "The source says: Permits cost 50 euro. [1]", "extractive",
                      "en", citations=[cite])

    def wants_model(self, answer: Answer) -> bool:
        return True

    def refine(self, answer: Answer, on_text: Any = None) -> Answer:
        return Answer(answer.question, "A permit costs 50 euro. " + answer.text, "generated",
                      "en", citations=answer.citations)

    def ask(self, question: str, history: Any = (), on_text: Any = None) -> Answer:
        raise AssertionError("quotes first: never asked whole")

    def documents(self) -> list[Any]:
        return []

    def about(self) -> dict[str, str]:
        return {}


def make_users(tmp_path: Path, answerer: Any) -> tuple[FakeLink, Answering, Routing]:
    link = FakeLink(BOT)
    cfg = make_cfg(tmp_path)
    state = BotState.load(tmp_path / "bot")
    languages: dict[str, str] = {}
    answering = Answering(link, cfg, answerer, state, languages)  # type: ignore[arg-type]
    routing = Routing(link, cfg, answerer, state, answering, None,  # type: ignore[arg-type]
                      tmp_path / "bot", languages)
    return link, answering, routing


def test_routing_answers_commands_and_skips_chatter_it_is_not_addressed_in(tmp_path):
    link, answering, routing = make_users(tmp_path, TwoSteps())
    link.rooms["!dm"] = FakeRoom("!dm", [BOT, ALICE])
    link.rooms["!group"] = FakeRoom("!group", [BOT, ALICE, "@bob:x", "@carol:x"])

    async def main() -> None:
        await routing.on_event("!group", text_event("$chat", "how much is a permit?"))
        await routing.on_event("!dm", text_event("$help", "!help"))
        await link.settle()
        answering.close()

    asyncio.run(main())
    assert [c[KIND] for _, c in link.sent] == ["command"]  # the chatter got no reply
    assert link.sent[0][0] == "!dm" and "!help" in link.sent[0][1]["body"]
    assert routing.state.seen("$help") and not routing.state.seen("$chat")


def test_answering_sends_the_quoted_answer_before_the_models_lead(tmp_path):
    link, answering, _ = make_users(tmp_path, TwoSteps())
    link.rooms["!dm"] = FakeRoom("!dm", [BOT, ALICE])

    async def main() -> None:
        worker = asyncio.create_task(answering.scheduler.run())
        answering.state.accept("$q", "!dm", "$q")
        answering.admit(Job("$q", "!dm", "$q", ALICE, "How much is a permit?", "en",
                            in_thread=False), rate_limited=True)
        for _ in range(200):
            await link.settle()
            if len(link.sent) >= 2 and not answering.scheduler.busy:
                break
            await asyncio.sleep(0.02)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        answering.close()

    asyncio.run(main())
    first, last = link.sent[0][1], link.sent[-1][1]
    assert first[KIND] == "answer" and "Permits cost 50 euro" in first["body"]
    assert "A permit costs 50 euro" not in first["body"]  # the lead comes after the quote
    assert last["m.new_content"]["body"].startswith("A permit costs 50 euro")
    assert link.counters["answered"] == 1 and "$q" not in answering.state.pending


def test_editing_refuses_a_non_editor_and_changes_nothing(tmp_path):
    from civicbot.matrix.commands import parse_command
    from civicbot.matrix.events import parse_message

    link = FakeLink(BOT)
    link.rooms["!dm"] = FakeRoom("!dm", [BOT, ALICE])
    cfg = make_cfg(tmp_path)
    state = BotState.load(tmp_path / "bot")

    class NoCurator:  # a refused editor never gets this far
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the curator was used ({name})")

    editing = Editing(link, cfg, state, tmp_path / "bot", {"!dm": "en"},
                      NoCurator())  # type: ignore[arg-type]
    source = text_event("$rm", "!remove plan.pdf")
    msg = parse_message("!dm", source, BOT)
    command = parse_command("!remove plan.pdf")
    assert msg is not None and command is not None and editing.handles(command)

    asyncio.run(editing.on_command(msg, source, "$rm", command, "en"))
    assert [c["body"] for _, c in link.sent] == [t("not_editor", "en")]
    assert link.sent[0][1][KIND] == "editor"


def test_answering_reads_the_thread_before_the_question_through_the_link(tmp_path):
    from civicbot.matrix.events import FINAL

    link, answering, _ = make_users(tmp_path, TwoSteps())
    thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    root = text_event("$root", "How much is a parking permit?")
    answer = {"type": "m.room.message", "event_id": "$a", "sender": BOT,
              "origin_server_ts": 1, "content": {"msgtype": "m.notice", KIND: "answer",
                                                 FINAL: True, "body": "50 euro a year.",
                                                 **thread}}
    command = {**text_event("$c", "!help"), "origin_server_ts": 2}
    command["content"] = {**command["content"], **thread}
    question = {**text_event("$q", "And for a second car?"), "origin_server_ts": 3}
    question["content"] = {**question["content"], **thread}
    for event in (root, answer, command, question):
        link.events["!dm", event["event_id"]] = event
    job = Job("$q", "!dm", "$root", ALICE, "And for a second car?", "en", in_thread=True)

    turns = asyncio.run(answering._history(job))
    answering.close()
    assert [(turn.role, turn.text) for turn in turns] == [
        ("user", "How much is a parking permit?"), ("assistant", "50 euro a year.")]


def test_typing_notices_are_cleared_only_after_every_quoted_answer_is_sent(tmp_path):
    """Quoted answers go first: a typing notice is cleared once no quoted answer is being
    worked out or sent (cleared at once, the notices delayed the answers under load)."""
    import threading

    release = threading.Event()

    class Quotes(TwoSteps):
        def quick(self, question: str, history: Any = ()) -> Answer:
            if question.startswith("slow"):
                release.wait(10)
            return super().quick(question, history)

        def wants_model(self, answer: Answer) -> bool:
            return False

    link, answering, _ = make_users(tmp_path, Quotes())
    for room in ("!a", "!b"):
        link.rooms[room] = FakeRoom(room, [BOT, ALICE])

    async def main() -> tuple[list[Any], list[Any]]:
        for room, text in (("!a", "fast: how much is a permit?"),
                           ("!b", "slow: how much is a permit?")):
            answering.state.accept(f"${room}", room, f"${room}")
            answering.admit(Job(f"${room}", room, f"${room}", ALICE, text, "en",
                                in_thread=False), rate_limited=True)
        for _ in range(200):  # the fast answer is sent, the slow one is still being worked out
            await asyncio.sleep(0.01)
            if link.sent:
                break
        await asyncio.sleep(0.1)
        before = list(link.typing_in)
        release.set()
        await link.settle()
        answering.close()
        return before, list(link.typing_in)

    before, after = asyncio.run(main())
    assert [room for room, _ in link.sent] == ["!a", "!b"]
    assert sorted(before) == [("!a", True), ("!b", True)]  # at once: the sign of life
    assert sorted(after) == [("!a", False), ("!a", True), ("!b", False), ("!b", True)]
