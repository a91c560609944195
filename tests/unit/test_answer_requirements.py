"""What a quoting answer must do, whatever ranks the sentences: for a question after a date,
an amount, a number, a duration or a name, the answer quotes the sentence that holds that
fact and cites the page it stands on, even when another sentence shares more of the
question's words. These replace checks of today's labels for one phrasing (which kind
`asked()` gives a question) with the requirement those labels serve, so a better ranker or
quote choice keeps them green for the right reason."""

from __future__ import annotations

import pytest

from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings
from civicbot.records import Chunk, Hit
from tests.fakes import FixedSource


def _hit(text: str, page: int, doc: str = "beleid.pdf", language: str = "nl") -> Hit:
    return Hit(Chunk(doc, page, page, page, 0, len(text), "", text, language), "Beleid", 1.0)


def _answer(question: str, hits: list[Hit]):  # type: ignore[no-untyped-def]
    pipeline = AnswerPipeline(FixedSource(hits, 0.9, titles=["Beleid"]), None,
                              AnswerSettings(refusal_threshold=0.5))
    return pipeline.ask(question)


# (question, a sentence with more of the question's words but not the fact, a sentence on
# the same subject with the fact, the fact)
CASES = [
    ("Hoeveel rijkskennisinstellingen zijn er in Nederland?",
     "De rijkskennisinstellingen in Nederland werken samen en rijkskennisinstellingen delen "
     "kennis met elkaar.",
     "Er zijn veertien rijkskennisinstellingen.", "veertien"),
    ("From what date do the rules on high-risk AI systems apply?",
     "The rules on high-risk AI systems apply to providers and deployers of high-risk AI "
     "systems.",
     "The rules for high-risk AI systems become applicable on 2 August 2026.", "2 August 2026"),
    ("For how long is the chair of the Board appointed?",
     "The chair of the Board is appointed by the Board from among its members and the chair "
     "represents the Board.",
     "The term of office is five years and renewable once.", "five years"),
    ("Wat kost een parkeervergunning voor bewoners?",
     "Een parkeervergunning voor bewoners wordt aangevraagd bij de gemeente; bewoners met "
     "een parkeervergunning parkeren in hun zone.",
     "Een parkeervergunning kost 120 euro per jaar.", "120 euro"),
    ("Wanneer treedt de verordening in werking?",
     "De verordening regelt wanneer de verordening geldt voor de lidstaten; de verordening "
     "treedt stapsgewijs op.",
     "Zij is op 1 augustus 2024 in werking getreden.", "1 augustus 2024"),
]


@pytest.mark.parametrize(("question", "wordy", "factual", "fact"), CASES,
                         ids=[c[3] for c in CASES])
def test_the_quote_holds_the_fact_asked_for_and_cites_its_page(question, wordy, factual, fact):
    answer = _answer(question, [_hit(wordy, 3), _hit(factual, 9)])
    assert not answer.refused
    assert fact in answer.text
    quoted = [c for c in answer.citations if fact in c.quote]
    assert quoted, answer.citations
    # the citation names the page the fact stands on, and links to it
    assert all((c.page_start, c.page_end) == (9, 9) for c in quoted)
    assert all(c.link.endswith("#page=9") for c in quoted)
