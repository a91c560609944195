"""The grounding check: the heart of trust (docs/answering.md).

A tiny local model writes fluent sentences that are sometimes false. Before anything it wrote
is shown, every sentence is checked against the passages it cites:

- a citation must point at a passage that was given;
- it must be a whole sentence: not cut off, not a fragment, no two words run together;
- every number, date and name in the sentence must occur in a cited passage, and be attached
  there to what the sentence attaches it to: all its numbers in one sentence of the source,
  each in a clause of it that shares a word with the sentence's own clause around the number
  ("35 million EUR or 6.5 %" is false when 6.5 % was an earlier proposal, in another
  sentence or another clause, even though both numbers are in the passage);
- most of the sentence's content words must occur there too.

A sentence that cites nothing but is fully supported by one given passage gets that citation;
a sentence that fails is dropped. The caller falls back to quoting the passages when too
little survives."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from civicbot.answer.prompt import INSTRUCTION
from civicbot.answer.text import (
    cited_numbers,
    digits,
    fact_present,
    facts,
    sentences,
    strip_citations,
)
from civicbot.lang import analyse, stopwords, words

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


# A whole sentence ends with a stop (a closing quote or bracket may follow it). A small model
# that hits its token limit stops mid-sentence: "... zoals die van de".
_ENDS = re.compile(r"[.!?][\"'”’)\]]*$")
# Words a sentence cannot start with and stand alone ("which applies from ...", "en dat ..."),
# or end with when cut off ("... van de.").
_OPENERS = {
    "en": {"and", "or", "but", "which", "who", "whom", "whose", "that", "because", "although",
           "while", "whereas", "if", "unless", "so"},
    "nl": {"en", "of", "maar", "die", "dat", "wat", "waarin", "waarbij", "omdat", "hoewel",
           "terwijl", "als", "indien", "zodat", "want"},
}
_CLOSERS = {
    "en": {"the", "a", "an", "of", "to", "for", "and", "or", "with", "by", "in", "on", "at",
           "from", "as", "than", "such", "is", "are", "be", "which", "that"},
    "nl": {"de", "het", "een", "van", "voor", "en", "of", "met", "door", "in", "op", "aan",
           "bij", "uit", "als", "dan", "zoals", "is", "zijn", "die", "dat", "om", "te", "tot"},
}
MIN_WORDS = 4
MIN_JOINED = 5  # letters of a run-together or garbled word worth looking for
GARBLED_SIMILARITY = 0.8  # difflib ratio: a source word with a few letters changed


def _runs_in(body: str) -> bool:
    """A line break before a capital, a digit or a bullet starts a line of its own (a heading
    run into the sentence, a list item); one before a lower-case word is only where the PDF's
    line ended, as in a sentence copied from the page with its line breaks."""
    return any(m.group(1).isupper() or m.group(1).isdigit() or m.group(1) in "-•*–·▪"
               for m in re.finditer(r"\n\s*(\S)", body))


def _whole(body: str, language: str) -> str:
    """Why `body` is not a whole sentence, or "" when it is."""
    tokens = re.findall(r"[^\W_]+", body.lower())
    if not _ENDS.search(body.rstrip()):
        return "cut off (no closing stop)"
    if _runs_in(body.strip()):  # a heading or a list item run into the sentence
        return "joins two lines"
    if sum(not t.isdigit() for t in tokens) < MIN_WORDS:
        return "a fragment (too short)"
    first = body.lstrip("\"'“‘(- ")[:1]
    if first.islower() or tokens[0] in _OPENERS.get(language, _OPENERS["en"]):
        return "a fragment (starts mid-sentence)"
    if tokens[-1] in _CLOSERS.get(language, _CLOSERS["en"]):
        return "cut off (ends on a linking word)"
    return ""


def _broken_word(body: str, passages: Sequence[str], question: str) -> str:
    """A word of `body` that no passage (nor the question) has but that is a broken form
    of the passages' text: two of their words run together ("AIOffice"), or one of their
    words with its start garbled ("etelichting" for "toelichting"). A word the model
    builds by putting a prefix in front of a source word ("onverminderd") is not broken."""
    text = " ".join([*passages, question]).lower()
    known = set(re.findall(r"[^\W\d_]+", text))
    squashed = re.sub(r"[\W_]+", "", text)
    for word in re.findall(r"[^\W\d_]+", body.lower()):
        if len(word) < MIN_JOINED or word in known:
            continue
        if word in squashed and not any(word in k for k in known if len(k) > len(word)):
            return word
        for near in difflib.get_close_matches(word, known, n=3, cutoff=GARBLED_SIMILARITY):
            same_start = os.path.commonprefix([word, near])
            if not (word.endswith(near) or near.endswith(word)
                    or len(same_start) >= min(len(word), len(near)) - 3):
                return word
    return ""


# Where a source sentence turns to another subject: a number in one clause is not attached
# to what the other clause says ("the penalty has been set at 35 million EUR or 7 %, slightly
# above the limit set in the Council's revised mandate, which was 35 million EUR or 6.5 %").
# Split at every comma too: a clause then must name what the number belongs to itself.
_SOURCE_CLAUSE = re.compile(
    r";|,\s|:\s|\s\((?=[^)]{0,200}\))|\s(?=(?:whereas|while|but|although|though|however|"
    r"instead|terwijl|maar|hoewel|echter|daarentegen|in plaats)\b)", re.I)
# Where a generated sentence joins two claims: "35 million EUR or 6.5 % of turnover".
_OWN_CLAUSE = {
    "en": re.compile(r";|,\s|\s(?=(?:and|or|but|while|whereas|although)\s)", re.I),
    "nl": re.compile(r";|,\s|\s(?=(?:en|of|maar|terwijl|hoewel)\s)", re.I),
}
# Part of how a number or date is written, not of what it is attached to.
_NUMBER_WORDS = {"million", "miljoen", "billion", "miljard", "thousand", "duizend", "procent",
                 "percent", "cent", "januari", "februari", "maart", "april", "mei", "juni",
                 "juli", "augustus", "september", "oktober", "november", "december",
                 "january", "february", "march", "may", "june", "july", "august", "october",
                 "eur", "euro", "euros", "dollar", "dollars", "usd"}


def _numeric(fact: str) -> bool:
    return any(ch.isdigit() for ch in fact)


def _terms(text: str, language: str) -> set[str]:
    """Content terms without numbers and number words: what a number is attached to."""
    kept = " ".join(w for w in words(text) if w not in _NUMBER_WORDS)
    return {t for t in _content_terms(kept, language) if not any(ch.isdigit() for ch in t)}


def _detached(sentence: str, passage: str, language: str) -> str:
    """A number of `sentence` that the passage does not attach to what the sentence does,
    or "" when every number is where the sentence puts it (see the module docstring)."""
    numbers = [f for f in facts(sentence) if _numeric(f)]
    if not numbers:
        return ""
    other = "en" if language == "nl" else "nl"
    spans = [s.text for s in sentences(passage)]
    together = [s for s in spans if all(fact_present(f, s) for f in numbers)]
    if not together:
        return f"its numbers ({', '.join(sorted(numbers))}) are not in one sentence of the source"
    own = [c for c in _OWN_CLAUSE.get(language, _OWN_CLAUSE["en"]).split(
        strip_citations(sentence)) if c and c.strip()]
    whole = _terms(sentence, language)
    for fact in numbers:
        near = next((c for c in own if fact in {digits(n) for n in re.findall(
            r"\d+(?:[ .,]\d{3})*(?:[.,]\d+)?", c)} or fact in c.lower()), "")
        # A number with nothing of its own clause beside it ("(Staatsblad 2020, 118)") is
        # attached to nothing in particular: one source sentence holding them all is enough.
        wanted = _terms(near, language) if near else whole
        if not wanted:
            continue
        attached = False
        for span in together:
            for clause in _SOURCE_CLAUSE.split(span):
                if clause and fact_present(fact, clause):
                    have = _terms(clause, language) | _terms(clause, other)
                    if wanted & have:
                        attached = True
        if not attached:
            return f"{fact} is attached to something else in the source"
    return ""


def _support(sentence: str, passage: str, language: str) -> tuple[bool, str]:
    missing = [f for f in facts(sentence) if not fact_present(f, passage)]
    if missing:
        return False, f"not in the source: {', '.join(sorted(missing))}"
    detached = _detached(sentence, passage, language)
    if detached:
        return False, detached
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
        broken = _whole(body, language)
        joined = "" if broken else _broken_word(body, passages, question)
        if broken or joined:
            why = broken or f"a broken word: {joined!r}"
            result.sentences.append(CheckedSentence(body, (), False, why))
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
