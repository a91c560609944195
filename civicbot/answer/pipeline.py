"""From a question to a checked answer in two steps (docs/answering.md):

- `quick`: retrieve, decide whether the documents answer it, and quote them (or refuse) —
  never the model, so it takes well under a second;
- `refine`: let the local model write a lead sentence in front of the quoted answer, kept
  only when the grounding check finds it in the quoted passages (the prompt, the writing
  and the checking of the lead are civicbot/answer/lead.py's; this module decides when).

`ask` is the two in a row."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from civicbot import lang, quoting
from civicbot.answer import grounding
from civicbot.answer import lead as lead_mod
from civicbot.answer.extractive import (
    RULES,
    Asked,
    Quote,
    QuoteRules,
    asked,
    best_sentences,
    candidates,
    quote_pages,
    repeats,
    short_quote,
)
from civicbot.answer.messages import say
from civicbot.answer.prompt import INSTRUCTION
from civicbot.answer.question import Question, retrieval_query
from civicbot.answer.text import fact_present, named_numbers, sentences
from civicbot.errors import ModelError
from civicbot.protocols import EvidenceSource, Generator
from civicbot.rank import LinearModel
from civicbot.records import Answer, Citation, Hit, Turn
from civicbot.refusal import COVERAGE_THRESHOLD, Evidence, RefusalModel, evidence
from civicbot.titles import clip_title

log = logging.getLogger(__name__)

EVIDENCE_QUOTE_SOURCES = 3  # passages the refusal classifier's "quote" feature reads


@dataclass
class AnswerSettings:
    top_k: int = 6
    max_tokens: int = 200
    # On the coverage confidence; decides unless the refusal model does (`refusal_by_model`).
    refusal_threshold: float = COVERAGE_THRESHOLD
    # The learned refusal classifier (civicbot/refusal.py; the service gives the packaged
    # one). With `refusal_by_model` it decides; without, the threshold above decides and the
    # classifier only tells a partial answer (the topic is covered, a detail asked is not)
    # from a refusal among the questions the threshold declines. None: no partial answers.
    refusal_model: RefusalModel | None = None
    refusal_by_model: bool = True
    prompt_sources: int = 3  # passages the model reads (each cut to the relevant part)
    # How quotes are chosen (docs/answering.md, "Quote constants"); the values come from
    # `civicbot eval cv ../shared/eval/train.jsonl --folds 5 --no-ranker --no-refusal --grid`.
    quote_sources: int = 3  # passages an extractive answer may quote
    # How many sentences, and how they are picked. None: the learned chooser's own
    # (quoting.PICK), or without a chooser the hand-set score's (extractive.RULES).
    quotes: QuoteRules | None = None
    # For a question after a number, amount, date or duration: add the passages next to the
    # retrieved ones (`neighbours`), and let every passage compete for the quote (`typed_all`)
    # instead of the top `quote_sources`. None: with the learned chooser only the top
    # `quote_sources` and their neighbours compete (every fold of the grid chose not to let
    # all compete), without it every passage, as before.
    neighbours: bool = True
    typed_all: bool | None = None
    source_words: int = 110
    lead_sentences: int = 1  # the model writes at most this many sentences in front
    # Kinds of question (extractive.Asked.kind) answered by the quote alone when it holds
    # that kind of fact: measured on train.jsonl, see docs/answering.md.
    skip_model_kinds: frozenset[str] = frozenset()
    # The learned quote chooser (civicbot/quoting.py; the service gives the packaged one).
    # None: the hand-set score of `quotes` chooses.
    quote_model: LinearModel | None = None

    @property
    def quote_rules(self) -> QuoteRules:
        """The rules quotes are picked by (see `quotes`)."""
        if self.quotes is not None:
            return self.quotes
        return quoting.PICK if self.quote_model is not None else RULES

    @property
    def all_compete(self) -> bool:
        """Whether every passage competes for the quote of a typed question (`typed_all`)."""
        return self.typed_all if self.typed_all is not None else self.quote_model is None


@dataclass
class Decision:
    """What `AnswerPipeline.decide` found: the passages, P(the documents answer) (or the
    coverage confidence, with a fixed threshold) and the outcome: "answer", "partial" or
    "refused"."""

    question: Question
    hits: list[Hit]
    confidence: float
    outcome: str
    evidence: Evidence | None


class AnswerPipeline:
    """Answers questions from what `source` (the retriever of one snapshot, see
    protocols.EvidenceSource) finds; `generator` may be None (then answers are quoted).
    Each question is worked out once into a `Question` (its language, what to search with,
    the kind of fact asked) that every step reads."""

    def __init__(self, source: EvidenceSource, generator: Generator | None,
                 settings: AnswerSettings):
        self.source = source
        self.generator = generator
        self.settings = settings
        # What a question asks for is needed to retrieve, to decide on refusal and to quote:
        # worked out once per question (it translates the thing counted in "how many X").
        self._asked = functools.lru_cache(maxsize=8)(self._what_is_asked)

    def question(self, text: str, history: Sequence[Turn] = ()) -> Question:
        """`text`, asked after `history`, as the answer path sees it."""
        query = retrieval_query(text, history)
        return Question(text, query, lang.detect(text), self._asked(query))

    def quick(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """The checked quoted answer or the refusal: retrieval and quoting, no model."""
        started = time.perf_counter()
        answer = self.answer(self.decide(question, history))
        answer.seconds = time.perf_counter() - started
        return answer

    def answer(self, decision: Decision) -> Answer:
        """The answer `decision` calls for: the quotes, a partial answer or a refusal."""
        if decision.outcome == "answer":
            # A follow-up is answered as the question it stands for ("and when does that
            # start?" together with what "that" was): for the prompt and for quoting.
            answer = self._extractive(decision.question, decision.hits)
        else:
            answer = self.declined(decision)
        answer.question = decision.question.text
        answer.confidence = decision.confidence
        answer.query = decision.question.query
        return answer

    def decide(self, question: str, history: Sequence[Turn] = ()) -> Decision:
        """Retrieve and decide, without the model, whether the documents answer the
        question ("answer"), cover its topic but not the detail asked ("partial"), or do not
        answer it ("refused")."""
        asked = self.question(question, history)
        return self.judge(asked, self.retrieve(asked))

    def judge(self, question: Question, hits: list[Hit],
              confidence: float | None = None) -> Decision:
        """`decide` on passages already retrieved; `confidence`, when given, is
        `self.confidence(question, hits)` worked out before (evaluation tries several
        thresholds on one)."""
        model = self.settings.refusal_model
        if model is None or not self.settings.refusal_by_model:
            # A fixed threshold on the coverage (`[answer] refusal_threshold`).
            if confidence is None:
                confidence = self.confidence(question, hits)
            if confidence >= self.settings.refusal_threshold:
                return Decision(question, hits, confidence, "answer", None)
            if model is None:
                return Decision(question, hits, confidence, "refused", None)
            found = self.evidence(question, hits)
            covered = (found.missing and self._topic_covered(question, hits, found)
                       and model.topic_probability(found.values) >= model.threshold)
            return Decision(question, hits, confidence, "partial" if covered else "refused",
                            found)
        found = self.evidence(question, hits)
        confidence = model.probability(found.values)
        log.debug("P(answered) %.3f (threshold %.3f)", confidence, model.threshold)
        # A number the question names (a year, a version, an amount) that no passage holds
        # means the passages are about something else than what is asked, however well
        # they match otherwise: never a full answer (on train.jsonl 4 of 67 unanswerable
        # and 2 of 192 answerable questions).
        if confidence >= model.threshold and not found.missing_numbers:
            outcome = "answer"
        elif found.missing and model.topic_probability(found.values) >= model.threshold:
            outcome = "partial"
        else:
            outcome = "refused"
        return Decision(question, hits, confidence, outcome, found)

    def _topic_covered(self, question: Question, hits: list[Hit], found: Evidence) -> bool:
        """Whether the passages cover the question once the specific asks they lack (a
        year, a name) are left out, by the same coverage and threshold that decide on an
        answer: "Tozo loans in 2047" is about Tozo loans, a parking permit in Amersfoort is
        not about anything the documents say."""
        topic = question.query
        for detail in (*found.missing_numbers, *found.missing_names):
            topic = re.sub(re.escape(detail), " ", topic, flags=re.I)
        best = max((self.source.coverage(topic, h) for h in hits[:3]), default=0.0)
        return best >= self.settings.refusal_threshold

    def declined(self, decision: Decision) -> Answer:
        """The answer for a question the documents do not answer: a partial answer that says
        what they do say and what they do not, else a refusal."""
        if decision.outcome == "partial" and decision.evidence is not None:
            answer = self._partial(decision.question, decision.hits, decision.evidence)
            if answer is not None:
                return answer
        return self._refusal(decision.question, decision.hits)

    def ask(self, question: str, history: Sequence[Turn] = (),
            on_text: Callable[[str], None] | None = None) -> Answer:
        """`quick`, then `refine` where the model adds a checked lead; `on_text` sees the
        refined answer while its lead is written (the quoted answer is complete already)."""
        started = time.perf_counter()
        answer = self.quick(question, history)
        answer = self.refine(answer, on_text) or answer
        answer.seconds = time.perf_counter() - started
        return answer

    def retrieve(self, question: Question) -> list[Hit]:
        """The passages an answer is drawn from: the best `top_k`, followed for a question
        after a number, date or duration by the passages next to them, because the sentence
        with the figure is often just over a passage boundary ("... bedragen niet meer dan
        5 % van ..." after the list the best passage holds)."""
        hits = self.source.search(question, self.settings.top_k)
        what = question.asked
        if not self.settings.neighbours or what is None or what.kind == "name":
            return hits
        return hits + self.source.neighbours(hits)

    def evidence(self, question: Question, hits: list[Hit]) -> Evidence:
        """The evidence features the refusal classifier decides on (civicbot/refusal.py)."""
        searched = hits[: self.settings.top_k]
        query, what = question.query, question.asked
        # The question's numbers are looked for where an answer could quote them (its names
        # in the top three): see `confidence`.
        texts = self._quotable_texts(hits)
        covers = [self.source.coverage(query, h) for h in searched[:3]]
        typed = None
        kind_held = False
        if what is not None:
            kind_held = any(what.held_by(h.chunk.text) for h in hits)
            if what.kind != "name":
                typed = max((self.source.coverage(query, h)
                             for h in _typed_windows(hits, what)), default=0.0)
        # The "quote" feature reads the passages (and scores sentences) as the packaged
        # classifier was fitted on, whatever the quote settings.
        quoted = [h.chunk.text for h in searched[:EVIDENCE_QUOTE_SOURCES]]
        quotes = candidates(query, quoted, also=self._translated(query), wanted=what)
        return evidence(query, texts, covers, typed, what.kind if what else None, kind_held,
                        [h.score for h in searched], [h.dense for h in searched],
                        [h.chunk.doc for h in searched],
                        max((q.score for q in quotes), default=0.0))

    def confidence(self, question: Question, hits: list[Hit]) -> float:
        """How plausibly the passages answer (0..1), for a fixed refusal threshold: the best
        coverage of the question among the top three passages; no more than the best
        coverage by a sentence (with its neighbours) that holds the kind of fact asked for,
        when the question asks for a number, amount, date or duration (see
        docs/answering.md); and 0 when the question names a number (a year, a version, an
        amount) that none of the passages an answer may quote has."""
        query, what = question.query, question.asked
        passage = max((self.source.coverage(query, h) for h in hits[:3]), default=0.0)
        # A number is looked for in the passages an answer may quote, not in every passage
        # retrieved: "Qredits in 2024" is not answered by the Tozo passages because a
        # passage sixth on disability policy says "on average in 2024" (docs/answering.md,
        # "Where a named number must stand").
        texts = self._quotable_texts(hits)
        if any(not any(fact_present(f, t) for t in texts) for f in named_numbers(query)):
            return 0.0
        # A name is too common in text to tell an answer from a mention.
        if what is None or what.kind == "name":
            return passage
        return min(passage, max((self.source.coverage(query, h)
                                 for h in _typed_windows(hits, what)), default=0.0))

    def _quotable(self, hits: list[Hit]) -> list[int]:
        """The numbers (1-based) of the passages an answer may quote: the top
        `quote_sources` and their neighbours (a neighbour ranks half a place below the
        passage it neighbours)."""
        return [i + 1 for i, rank in enumerate(_ranks(hits, self.settings.top_k))
                if rank <= self.settings.quote_sources + 0.5]

    def _quotable_texts(self, hits: list[Hit]) -> list[str]:
        """Title, heading and text of each passage an answer may quote (`_quotable`)."""
        return [f"{hits[n - 1].title}\n{hits[n - 1].chunk.heading}\n{hits[n - 1].chunk.text}"
                for n in self._quotable(hits)]

    # ---- the outcomes ---------------------------------------------------------------------

    def _refusal(self, question: Question, hits: list[Hit]) -> Answer:
        """Say so plainly, and say what the collection does hold: the documents closest to
        the question (what the citizen may have been looking for), else some titles."""
        language = question.language
        titles = self.source.titles()
        nearest = list(dict.fromkeys(clip_title(h.title, 90) for h in hits))[:3]
        if len(titles) == 1:  # "Of the 1 documents I know, these ..." reads wrong
            more = say("only", language, title=clip_title(titles[0], 90))
        elif nearest:
            more = say("nearest", language, count=str(max(len(titles), len(nearest))),
                       titles="; ".join(nearest))
        elif titles:
            more = say("covers", language, titles="; ".join(clip_title(t, 90) for t in titles[:5]))
        else:
            more = say("empty", language)
        return Answer(question.text, f"{say('refused', language)} {more}", "refused", language,
                      [], hits)

    def _partial(self, question: Question, hits: list[Hit], found: Evidence) -> Answer | None:
        """The documents cover the topic but not the detail asked: say what they do not
        name, and quote (and cite) what they do say, so the quote is never taken for the
        answer. None when there is nothing to quote."""
        quotes = self._quotes(question, hits)[:1]
        if not quotes:
            return None
        language = question.language
        missing = [f"“{n}”" for n in found.missing_numbers]
        missing += [f"“{n}”" for n in found.missing_names]
        if found.missing_kind and not missing:
            missing.append(say(f"kind_{found.missing_kind}", language))
        hit = hits[quotes[0].source - 1]
        text = say("partial", language, topic=f"“{clip_title(hit.title, 90)}”",
                   missing=_join(missing, language))
        text += f"\n“{quotes[0].text}” [1]"
        if hit.chunk.language != language:
            text += " " + say("other_language", language)
        return Answer(question.text, text, "partial", language,
                      [self._citation(1, hit, quotes)], hits)

    # ---- the model's lead ------------------------------------------------------------------

    def wants_model(self, answer: Answer) -> bool:
        """Whether `refine` would ask the model at all: only for a quoted answer (never a
        refusal or a partial one), with a model, and not for the kinds of question where the
        measurement in docs/answering.md showed the model adds nothing to a quote that
        already holds the kind of fact asked for."""
        if self.generator is None or answer.mode != "extractive" or not answer.citations:
            return False
        what = self._question_of(answer).asked
        if what is None or what.kind not in self.settings.skip_model_kinds:
            return True
        return not what.held_by(answer.text)

    def refine(self, answer: Answer,
               on_text: Callable[[str], None] | None = None) -> Answer | None:
        """`answer` (a quoted answer from `quick`) with the model's checked lead sentence(s)
        in front and a line saying which part the model wrote; None when the model is off,
        is not worth asking (`wants_model`), declines, fails, runs out of time or writes
        nothing that passes the grounding check. `on_text` gets the whole refined text each
        time a further lead sentence has passed the check: a sentence once shown stays."""
        if not self.wants_model(answer):
            return None
        started = time.perf_counter()
        question = self._question_of(answer)
        query = question.query
        quotes = self._quotes(question, answer.hits)
        numbers = sorted({q.source for q in quotes})
        if len(numbers) != len(answer.citations):  # not the quotes `quick` gave: leave it
            return None

        def compose(lead: list[grounding.CheckedSentence]) -> str:
            return lead_mod.with_lead(answer, lead, numbers)

        assert self.generator is not None
        try:
            lead = lead_mod.write(self.generator, query, answer.language, answer.hits,
                                  set(numbers), self._lead_budget(),
                                  None if on_text is None else lambda k: on_text(compose(k)))
        except ModelError as exc:
            log.warning("the model could not write a lead (%s); the quotes stand", exc)
            return None
        if not lead:
            return None
        return dataclasses.replace(
            answer, text=compose(lead), mode="generated",
            seconds=answer.seconds + time.perf_counter() - started)

    def _quotes(self, question: Question, hits: list[Hit]) -> list[Quote]:
        """The sentences an answer quotes, from the top `quote_sources` passages. A question
        after a number, date or duration may be answered just past a passage boundary or
        lower in the ranking: its neighbours added after the top passages (a neighbour ranks
        half a place below the passage it neighbours) compete too, and with `all_compete`
        every passage does (the hand-set score's way; the learned chooser's is not to)."""
        what = question.asked
        few = what is not None and what.kind != "name" and self.settings.all_compete
        model = self.settings.quote_model
        if model is not None:
            allowed = set(range(1, len(hits) + 1)) if few else set(self._quotable(hits))
            quotes, x = self.sentence_features(question, hits)
            chosen = quoting.choose(model, quotes, x, allowed, self.settings.quote_rules)
            return [q for q in chosen if not INSTRUCTION.search(q.text)]
        sources = hits if few else hits[: self.settings.quote_sources]
        return [q for q in best_sentences(question.query, [h.chunk.text for h in sources],
                                          also=self._translated(question.query), wanted=what,
                                          ranks=_ranks(sources, self.settings.top_k),
                                          rules=self.settings.quote_rules)
                if not INSTRUCTION.search(q.text)]

    def sentence_features(self, question: Question,
                          hits: list[Hit]) -> tuple[list[Quote], np.ndarray]:
        """The candidate sentences of `hits` and their features for the learned quote
        chooser (civicbot/quoting.py)."""
        query = question.query
        ranks = _ranks(hits, self.settings.top_k)
        passages = [quoting.Passage(h.chunk.text, ranks[i], i >= self.settings.top_k,
                                    self.source.coverage(query, h), h.dense, h.score,
                                    h.chunk.doc, h.chunk.language, self.source.windows(query, h))
                    for i, h in enumerate(hits)]
        return quoting.featurise(question.text, query, self._translated(query),
                                 question.language, question.asked, passages)

    def _extractive(self, question: Question, hits: list[Hit]) -> Answer:
        """The answer when the documents answer: their own words, quoted."""
        quotes = self._quotes(question, hits)
        if not quotes:
            return self._refusal(question, hits)
        language = question.language
        numbers = sorted({q.source for q in quotes})
        # The quotes, in document order; a sentence picked twice (overlapping passages, a
        # list and its item) is shown once, the longer cut, with each source it came from.
        shown: list[tuple[str, list[int]]] = []  # (text, the passages it is quoted from)
        for q in quotes:
            same = next((i for i, (text, _) in enumerate(shown) if repeats(q.text, text)), None)
            if same is None:
                shown.append((q.text, [q.source]))
                continue
            text, sources = shown[same]
            shown[same] = (max(text, q.text, key=len),
                           sources if q.source in sources else [*sources, q.source])
        lines = [say("extractive", language)]
        marked: set[int] = set()
        for text, sources in shown:
            line = f"“{text}” [{', '.join(str(numbers.index(s) + 1) for s in sources)}]"
            # The note goes with the first quote of each source in the other language, not
            # on the header: an answer quoting an English and a Dutch passage must not say
            # that "the source" is in Dutch.
            foreign = [s for s in sources if hits[s - 1].chunk.language != language]
            if any(s not in marked for s in foreign):
                marked.update(foreign)
                line += " " + say("other_language", language)
            lines.append(line)
        citations = [self._citation(i, hits[n - 1], [q for q in quotes if q.source == n])
                     for i, n in enumerate(numbers, 1)]
        return Answer(question.text, "\n".join(lines), "extractive", language, citations, hits)

    # ---- pieces ----------------------------------------------------------------------------

    def _what_is_asked(self, query: str) -> Asked | None:
        return asked(query, self._translated)

    def _translated(self, text: str) -> str:
        return " ".join(self.source.translations(text).values())

    def _question_of(self, answer: Answer) -> Question:
        """The question `answer` (from `quick`) answered, as `question` gave it."""
        query = answer.query or answer.question
        return Question(answer.question, query, answer.language, self._asked(query))

    def prompt(self, question: str, language: str,
               hits: list[Hit]) -> tuple[list[dict[str, str]], list[str]]:
        """The chat messages the model gets, and the (shortened, defused) passages in them
        (civicbot/answer/lead.py)."""
        assert self.generator is not None
        return lead_mod.prompt(self.generator, question, language, hits, self._lead_budget())

    def _lead_budget(self) -> lead_mod.LeadBudget:
        st = self.settings
        return lead_mod.LeadBudget(st.prompt_sources, st.source_words, st.max_tokens,
                                   st.lead_sentences)

    def _citation(self, number: int, hit: Hit, quotes: list[Quote]) -> Citation:
        """A citation of `hit` that shows the first of `quotes` and names the pages the
        quotes stand on (not every page the passage spans)."""
        c = hit.chunk
        spans = [quote_pages(c, q.start, q.end) for q in quotes]
        first, last = min(p for p, _ in spans), max(p for _, p in spans)
        return Citation(number, c.doc, hit.title, first, last, short_quote(quotes[0].text),
                        self.source.link(hit, first), c.ocr)


def _ranks(hits: list[Hit], searched: int) -> list[float]:
    """The rank of each hit: its place among the first `searched`; a neighbour added after
    them ranks half a place below the passage it neighbours."""
    ranks: list[float] = []
    for i, hit in enumerate(hits):
        if i < searched:
            ranks.append(i + 1.0)
            continue
        c = hit.chunk
        parent = next((j for j, h in enumerate(hits[:searched]) if h.chunk.doc == c.doc
                       and abs(h.chunk.chunk_no - c.chunk_no) == 1), i)
        ranks.append(parent + 1.5)
    return ranks


def _typed_windows(hits: list[Hit], what: Asked) -> list[Hit]:
    """Each sentence of `hits` that holds the kind of fact asked for, with the sentences on
    either side (and the passage's heading), as a hit of its own for `coverage`."""
    out = []
    for hit in hits:
        spans = sentences(hit.chunk.text)
        for i, span in enumerate(spans):
            if what.held_by(span.text):
                before, after = spans[max(i - 1, 0)], spans[min(i + 1, len(spans) - 1)]
                window = dataclasses.replace(hit.chunk,
                                             text=hit.chunk.text[before.start : after.end])
                out.append(dataclasses.replace(hit, chunk=window))
    return out


def _join(items: list[str], language: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {say('and', language)} {items[-1]}"
