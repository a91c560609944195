"""A scripted stand-in for the local model, and what it may write about a real question:
true sentences taken from the passages it is shown, and made-up ones that the grounding
check must never let through (their markers must never reach a citizen)."""

from __future__ import annotations

from collections.abc import Iterator

from civicbot.answer.text import sentences

QUESTION = "Waarom is de rente op een Tozo-lening op 2 procent vastgesteld?"
# Made up: facts and words that are in neither document.
FABRICATED = ("Vanaf 2031 stijgt de rente op een Tozo-lening naar 19 procent voor alle "
              "Friese ondernemers [1].",
              "Het walvisfonds van de provincie Zeeland betaalt 4.400 euro terug [1].")
MARKERS = ("2031", "19 procent", "walvisfonds", "Friese", "4.400")


class Model:
    """A scripted stand-in for the local model: writes `reply` in pieces of a few characters,
    then (if given) raises `then_raise`, as LlamaGenerator does at its time limit."""

    name = "test:scripted"
    context_size = 2048

    def __init__(self, reply: str, then_raise: BaseException | None = None):
        self.reply = reply
        self.then_raise = then_raise
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def stream(self, messages, max_tokens=None) -> Iterator[str]:  # type: ignore[no-untyped-def]
        self.calls += 1
        for i in range(0, len(self.reply), 9):
            yield self.reply[i : i + 9]
        if self.then_raise is not None:
            raise self.then_raise


def true_sentences(service, question: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Sentences the model is shown (the passages of its prompt) that hold the answer's key
    word: what an honest model would write."""
    pipeline = service.pipeline(use_model=False)
    pipeline.generator = Model("")
    hits = pipeline.retrieve(pipeline.question(question))
    _, passages = pipeline.prompt(question, "nl", hits)
    found = [s.text for p in passages[:1] for s in sentences(p)
             if "Qredits" in s.text and len(s.text) > 40]
    assert found, passages
    return found
