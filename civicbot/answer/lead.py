"""The model's lead: the prompt it reads (the best passages, shortened and defused), the
sentences it writes, each kept only while the grounding check finds it in the passages and it
cites only quoted ones, and the refined text (the lead, the line that says the model wrote it,
then the quoted answer). `AnswerPipeline.refine` (civicbot/answer/pipeline.py) decides when to
ask and calls these."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import NamedTuple

from civicbot.answer import grounding
from civicbot.answer.extractive import focus
from civicbot.answer.messages import say
from civicbot.answer.prompt import build_messages, defuse
from civicbot.answer.text import sentences
from civicbot.errors import GenerationTimeout
from civicbot.protocols import Generator
from civicbot.records import Answer, Hit

log = logging.getLogger(__name__)

# The model says the sources do not answer the question.
_MODEL_DECLINES = re.compile(
    r"(not (mentioned|stated|contain|included|provided|found)|no information|do(es)? not "
    r"(say|answer|mention|contain)|niet (vermeld|genoemd|beschreven|te vinden|in de bronnen)|"
    r"geen informatie|bevat(ten)? geen|staat (dit|het) niet)", re.I)


class LeadBudget(NamedTuple):
    """What the model may read and write (from `AnswerSettings`)."""

    prompt_sources: int  # passages the model reads (each cut to the relevant part)
    source_words: int  # words of each passage
    max_tokens: int  # tokens the model may write
    lead_sentences: int  # sentences it writes at most in front of the quotes


def pages_label(hit: Hit) -> str:
    c = hit.chunk
    if c.page_start == c.page_end:
        return f"p. {c.page_start}"
    return f"pp. {c.page_start}-{c.page_end}"


def prompt(gen: Generator, question: str, language: str, hits: list[Hit],
           budget: LeadBudget) -> tuple[list[dict[str, str]], list[str]]:
    """The chat messages the model gets, and the (shortened, defused) passages in them."""
    texts = [defuse(focus(question, h.chunk.text, budget.source_words))
             for h in hits[: budget.prompt_sources]]
    sources = [(h.title, pages_label(h), t) for h, t in zip(hits, texts, strict=False)]
    room = gen.context_size - budget.max_tokens
    messages, used = build_messages(question, language, sources, gen.count_tokens, room)
    return messages, texts[:used]


def write(gen: Generator, question: str, language: str, hits: list[Hit], quoted: set[int],
          budget: LeadBudget,
          on_lead: Callable[[list[grounding.CheckedSentence]], None] | None = None,
          ) -> list[grounding.CheckedSentence]:
    """The model's first `lead_sentences` sentences that pass the grounding check and
    cite only `quoted` passages, in order; writing stops at the first sentence that does
    not (what follows a dropped sentence may lean on it), when the model declines, or
    once the lead is complete (no tokens spent on text that would not be shown)."""
    messages, passages = prompt(gen, question, language, hits, budget)
    if not passages:
        return []
    want = budget.lead_sentences
    lead: list[grounding.CheckedSentence] = []
    draft = ""
    judged = 0  # sentences of the draft already judged

    def judge(spans: list[str]) -> bool:
        """Judge newly completed sentences; False to stop writing."""
        for text in spans:
            if _MODEL_DECLINES.search(text):
                lead.clear()
                return False
            checked = grounding.check(text, passages, language, question).sentences
            if not checked:  # a bare citation mark or a stray bit: nothing to judge
                continue
            ok = all(c.supported and set(c.sources) <= quoted for c in checked)
            if not ok:
                log.info("lead sentence dropped: %s", "; ".join(
                    c.why or "cites a passage that is not quoted" for c in checked))
                return False
            lead.extend(checked)
            if on_lead is not None:
                on_lead(list(lead))
            if len(lead) >= want:
                return False
        return True

    stream = gen.stream(messages, max_tokens=budget.max_tokens)
    try:
        for piece in stream:
            draft += piece
            done = [s.text for s in sentences(draft)[:-1]]  # the last may go on
            if len(done) > judged:
                going = judge(done[judged:])
                judged = len(done)
                if not going:
                    return lead[:want]
        # The reply ended: its last sentence is complete too, unless it was cut off
        # (the grounding check drops a sentence without its closing stop).
        judge([s.text for s in sentences(draft)][judged:])
    except GenerationTimeout:
        log.info("generation reached its time limit; the lead is what was checked so far")
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
    return lead[:want]


def with_lead(answer: Answer, lead: list[grounding.CheckedSentence], numbers: list[int]) -> str:
    """The lead (cited like the quotes below it), the line that says the model wrote it,
    then the quoted answer unchanged."""
    text = _renumber(grounding.Grounding(lead).text(), numbers)
    note = say("model_lead" if len(lead) == 1 else "model_leads", answer.language)
    return f"{text}\n{note}\n\n{answer.text}"


def _renumber(text: str, numbers: list[int]) -> str:
    """Citations as [1], [2], ... in the order of the sources actually used."""
    mapping = {old: new for new, old in enumerate(numbers, 1)}
    return re.sub(r"\[(\d+)\]", lambda m: f"[{mapping.get(int(m.group(1)), m.group(1))}]", text)
