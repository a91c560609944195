"""A burst of questions embedded at once (what the bot does with the questions of one sync
batch, civicbot/matrix/burst.py), with the real service, models and index of two documents
of ../shared/corpus."""

from __future__ import annotations

import pytest

from civicbot.index.crosslingual import shared_use
from civicbot.service import Service

pytestmark = pytest.mark.slow

QUESTIONS = ["Waarom is de rente op een Tozo-lening op 2 procent vastgesteld?",
             "Wat vraagt de motie van Van Dijk en Grinwis over negatieve spaarrente?",
             "Why was the interest on a Tozo loan set at 2 percent?"]


def _seen(answer):
    return answer.mode, answer.text, [(c.doc, c.page_start, c.quote) for c in answer.citations]


def test_prepared_questions_get_the_same_answers_without_running_the_models(
        small_workspace, embedder, monkeypatch):
    """`Service.prepare` embeds the questions (and the words their translation looks up) in
    one batch: their quoted answers then run neither embedding model, and are the answers
    they get without it."""
    expected = [_seen(Service(small_workspace.load(), embedder=embedder).quick(q))
                for q in QUESTIONS]
    assert all(citations for _, _, citations in expected)

    service = Service(small_workspace.load(), embedder=embedder)  # nothing translated yet
    service.prepare([(q, ()) for q in QUESTIONS])

    def no_model(*_):
        raise AssertionError("an embedding model ran for a prepared question")

    monkeypatch.setattr(service.embedder, "_load", no_model)
    monkeypatch.setattr(shared_use(), "_load", no_model)
    assert [_seen(service.quick(q)) for q in QUESTIONS] == expected
