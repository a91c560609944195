"""The grounding check: the heart of trust (docs/answering.md).

A tiny local model writes fluent sentences that are sometimes false. Before anything it wrote
is shown, every sentence is checked against the passages it cites:

- a citation must point at a passage that was given;
- every number, date and name in the sentence must occur in a cited passage;
- most of the sentence's content words must occur there too.

A sentence that cites nothing but is fully supported by one given passage gets that citation;
a sentence that fails is dropped. The caller falls back to quoting the passages when too
little survives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from civicbot.answer.prompt import INSTRUCTION
from civicbot.answer.text import cited_numbers, fact_present, facts, sentences, strip_citations
from civicbot.index.lexical import analyse
from civicbot.ingest.quality import stopwords
from civicbot.lang import words

MIN_CONTENT_SUPPORT = 0.6
MIN_NEW_TERMS = 2  # content words an answer sentence must add to the question


@dataclass(frozen=True)
class CheckedSentence:
    text: str  # without citation marks
    sources: tuple[int, ...]  # 1-based passage numbers that support it
    supported: bool
    why: str = ""


@dataclass
class Grounding:
    sentences: list[CheckedSentence] = field(default_factory=list)

    @property
    def kept(self) -> list[CheckedSentence]:
        return [s for s in self.sentences if s.supported]

    @property
    def dropped(self) -> list[CheckedSentence]:
        return [s for s in self.sentences if not s.supported]

    def text(self) -> str:
        """The supported sentences with their citations, as shown to the citizen."""
        parts = []
        for s in self.kept:
            marks = "".join(f"[{n}]" for n in s.sources)
            body = s.text.rstrip()
            if body[-1:] in ".!?:":
                parts.append(f"{body[:-1]} {marks}{body[-1]}")
            else:
                parts.append(f"{body} {marks}")
        return " ".join(parts)


def _content_terms(text: str, language: str) -> set[str]:
    """Stemmed words that carry meaning: function words ("the", "is", "de") say nothing about
    whether a claim is supported."""
    stop = stopwords()
    return set(analyse(" ".join(w for w in words(text) if w not in stop), language))


def _support(sentence: str, passage: str, language: str) -> tuple[bool, str]:
    missing = [f for f in facts(sentence) if not fact_present(f, passage)]
    if missing:
        return False, f"not in the source: {', '.join(sorted(missing))}"
    terms = _content_terms(sentence, language)
    if len(terms) < 2:
        return False, "says too little to check"
    other = "en" if language == "nl" else "nl"
    have = set(analyse(passage, language)) | set(analyse(passage, other))
    share = len(terms & have) / len(terms)
    if share < MIN_CONTENT_SUPPORT:
        return False, f"only {share:.0%} of its words are in the source"
    return True, ""


def check(answer: str, passages: Sequence[str], language: str, question: str = "") -> Grounding:
    """Check each sentence of `answer` against `passages` (numbered from 1). With `question`,
    a sentence must also add something to it: small models like to echo the question back,
    which any passage on the topic "supports"."""
    result = Grounding()
    asked = _content_terms(question, language) if question else set()
    for span in sentences(answer):
        cited = cited_numbers(span.text)
        body = strip_citations(span.text)
        if len(body) < 3:
            continue
        if body.endswith("?"):
            result.sentences.append(CheckedSentence(body, (), False, "asks instead of answers"))
            continue
        if INSTRUCTION.search(body):
            result.sentences.append(CheckedSentence(body, (), False, "repeats an instruction"))
            continue
        if question and len(_content_terms(body, language) - asked) < MIN_NEW_TERMS:
            result.sentences.append(CheckedSentence(body, (), False, "restates the question"))
            continue
        invalid = [n for n in cited if not 1 <= n <= len(passages)]
        if invalid:
            result.sentences.append(CheckedSentence(
                body, (), False, f"cites a source that was not given: {invalid}"))
            continue
        candidates = sorted(set(cited)) or list(range(1, len(passages) + 1))
        joined = "\n".join(passages[n - 1] for n in sorted(set(cited)))
        if cited:
            ok, why = _support(body, joined, language)
            result.sentences.append(CheckedSentence(body, tuple(sorted(set(cited))), ok, why))
            continue
        # No citation: accept it only if one given passage supports it on its own.
        reasons = []
        for n in candidates:
            ok, why = _support(body, passages[n - 1], language)
            if ok:
                result.sentences.append(CheckedSentence(body, (n,), True))
                break
            reasons.append(why)
        else:
            result.sentences.append(CheckedSentence(
                body, (), False, reasons[0] if reasons else "no source"))
    return result
