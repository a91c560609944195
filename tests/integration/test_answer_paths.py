"""The answer path when the model misbehaves, with the real service over a real index of two
documents of ../shared/corpus: the model says the sources do not answer, fails, stops at its
time limit mid-answer, or makes things up. A scripted generator stands in for the model (it
writes what the test says, in pieces, as a streaming model does); everything else is real.
What the citizen then gets is checked against the page of the PDF itself."""

from __future__ import annotations

import re

import pytest
from checks import assert_cited_on_page
from scripted_model import FABRICATED, MARKERS, QUESTION, Model, true_sentences
from workspace import SMALL_DOCS

from civicbot.answer.messages import say
from civicbot.errors import GenerationTimeout, ModelError
from civicbot.service import Service

pytestmark = pytest.mark.slow

MOTIE, TOZO = SMALL_DOCS


@pytest.fixture
def service(small_workspace, embedder) -> Service:
    return Service(small_workspace.load(), embedder=embedder)


def _with_model(service: Service, model: Model) -> Service:
    service.generator = model  # the cached property's value: the model the pipeline uses
    return service


def _no_fabrication(text: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"a made-up fact reached the citizen: {marker!r} in {text!r}"


def test_the_model_saying_the_sources_do_not_answer_adds_nothing_to_the_quotes(service):
    """Whether the documents answer is decided by retrieval and the checked quotes, not by
    the tiny model: a model that declines adds no lead, and its words are never shown."""
    model = Model("De bronnen bevatten geen informatie over deze vraag.")
    answer = _with_model(service, model).ask(QUESTION)
    assert model.calls == 1
    assert answer.mode == "extractive" and not answer.refused and answer.citations
    assert answer.text.startswith(say("extractive", "nl"))
    assert "geen informatie" not in answer.text and say("model_lead", "nl") not in answer.text


def test_a_model_that_fails_is_replaced_by_quoting_the_sources(service, shared):
    quoted = service.pipeline(use_model=False).ask(QUESTION)  # quoting alone, no model
    model = Model("", then_raise=ModelError("the model file could not be loaded"))
    answer = _with_model(service, model).ask(QUESTION)
    assert model.calls == 1
    assert answer.mode == "extractive" and not answer.refused
    # Exactly what quoting alone answers: the same quotes, the same citations.
    assert answer.text == quoted.text and answer.citations == quoted.citations
    assert "Tozo" in answer.text and any(c.doc == TOZO for c in answer.citations)
    for c in answer.citations:
        assert_cited_on_page(c, shared / "corpus")


def test_a_time_limit_mid_answer_keeps_only_checked_sentences_and_the_quotes(service, shared):
    true = true_sentences(service, QUESTION)
    reply = f"{true[0]} [1] {FABRICATED[0]} {FABRICATED[1]} Daarom"
    streamed: list[str] = []
    model = Model(reply, then_raise=GenerationTimeout("the answer took longer than 60 s"))
    answer = _with_model(service, model).ask(QUESTION, on_text=streamed.append)
    # the citizen gets an answer (the checked part, or the quotes), never the made-up part
    assert not answer.refused and answer.mode in ("generated", "extractive")
    assert "Qredits" in answer.text
    _no_fabrication(answer.text)
    for text in streamed:
        _no_fabrication(text)
    for c in answer.citations:
        assert_cited_on_page(c, shared / "corpus")
        _no_fabrication(c.quote)


def test_streaming_shows_checked_sentences_only_and_the_answer_keeps_them(service, shared):
    true = true_sentences(service, QUESTION)
    # a long answer: true sentences with made-up ones between them
    parts: list[str] = []
    for i in range(3):
        parts.append(f"{true[i % len(true)]} [1]")
        parts.append(FABRICATED[i % 2])
    parts.append(f"{true[0]} [1]")
    streamed: list[str] = []
    answer = _with_model(service, Model(" ".join(parts))).ask(QUESTION, on_text=streamed.append)
    assert streamed, "a long answer is streamed while it is written"
    for text in streamed:
        _no_fabrication(text)
        # what is shown grows: each update starts with what was shown before
    for before, after in zip(streamed, streamed[1:], strict=False):
        assert after.startswith(before.rstrip(".")[:40])
    _no_fabrication(answer.text)
    assert "Qredits" in answer.text
    first_true = re.sub(r"\s+", " ", true[0])[:40]
    assert first_true in re.sub(r"\s+", " ", streamed[0])
    for c in answer.citations:
        assert_cited_on_page(c, shared / "corpus")
