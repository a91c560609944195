"""The extractive answer: the passages' most relevant sentences, quoted verbatim. Used when
the model's answer does not survive the grounding check, or when there is no model time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from civicbot.answer.text import Span, sentences
from civicbot.index.lexical import analyse_query


@dataclass(frozen=True)
class Quote:
    source: int  # 1-based passage number
    text: str
    score: float = 0.0  # share of the question's terms the sentence holds, weighted
    start: int = 0  # offsets of the sentence in its passage
    end: int = 0


# What kind of fact a question asks for. A question that asks for a number, an amount, a date
# or a duration is answered by a sentence that holds one; "when" and "wanneer" alone are not
# enough ("when is an organisation required to ...?" asks for a condition).
_ASKS = {
    "date": re.compile(
        r"\b(welke datum|op welke dag|vanaf wanneer|sinds wanneer|tot wanneer|in welk jaar|"
        r"what date|which date|from what date|from when|since when|by when|until when|"
        r"in what year|which year)\b", re.I),
    "duration": re.compile(
        r"\b(hoe lang|hoe vaak|binnen welke (termijn|periode|tijd)|binnen hoeveel|looptijd|"
        r"how long|how often|for how long|within (what|which|how many)|what period)\b", re.I),
    "amount": re.compile(
        r"\b((wat|hoeveel) (kost|kosten)|hoe duur|wat betaal|"
        r"how much (does|do|did|will|would) .{1,60} cost|what (does|do) .{1,60} cost|"
        r"what is the (annual |yearly )?(budget|price|fee|cost)|what are the (costs|fees))\b",
        re.I),
    "number": re.compile(
        r"\b(hoeveel|hoe (hoog|groot|veel)|welk (percentage|bedrag|aandeel)|"
        r"how (many|much|large|high|big)|what (share|percentage|proportion|amount)|"
        r"what is the (annual )?rate)\b", re.I),
}
_NUMBER_WORDS = (
    r"twee|drie|vier|vijf|zes|zeven|acht|negen|tien|elf|twaalf|dertien|veertien|"
    r"vijftien|twintig|dertig|honderd|duizend|two|three|four|five|six|seven|eight|nine|"
    r"ten|eleven|twelve|thirteen|fourteen|fifteen|twenty|thirty|hundred|thousand")
_HOLDS = {
    "amount": re.compile(r"€|%|\b(euro|eur|cent|procent|percent|gratis|kosteloos|free of charge)\b",
                         re.I),
    "date": re.compile(r"\b(1[89]|20)\d\d\b"),
    "duration": re.compile(
        rf"\b(\d+|{_NUMBER_WORDS})[ -](\w+ )?(jaar|jaren|maand|maanden|week|weken|dag|dagen|"
        r"uur|uren|kalenderdagen|werkdagen|year|years|month|months|weeks|day|days|hour|"
        r"hours)\b", re.I),
    "number": re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I),
}

TYPE_MISSING = 0.3  # score factor for a sentence without the kind of fact asked for
RANK_DECAY = 0.3  # the k-th passage weighs 1 / (1 + RANK_DECAY (k - 1))
NEAR_BEST = 0.6  # other quotes must score at least this share of the best one
OTHER_PASSAGE = 0.9  # ... and, from another passage than the best one's, this share


def asked_type(question: str) -> str | None:
    """"amount", "date", "duration" or "number" when the question asks for one, else
    None."""
    return next((kind for kind, pattern in _ASKS.items() if pattern.search(question)), None)


# Digits that are not an answer to "how many": references ("artikel 75, lid 1", "(87a)"),
# page marks ("5 / 24", "pagina 1 van 7"), footnote marks at the start of a sentence and web
# addresses.
_NOT_A_QUANTITY = re.compile(
    r"https?://\S+|www\.\S+|\b\d+ / \d+\b|\b(pagina|page) \d+ (van|of) \d+\b|"
    r"\b(artikel|article|art\.|artt?\.|lid|paragraph|punt|point|"
    r"annex|bijlage|nr\.|no\.|p\.|pp\.|blz\.)\s*\d+[a-z]?|^\(?\d+[a-z]?\)?\s|\(\d+[a-z]?\)",
    re.I)


def holds_type(text: str, kind: str | None) -> bool:
    """Whether `text` holds the kind of fact `asked_type` named (always true for None)."""
    if kind is None:
        return True
    if kind == "number":
        text = _NOT_A_QUANTITY.sub(" ", text)
    return bool(_HOLDS[kind].search(text))


def _terms(text: str) -> set[str]:
    return set(analyse_query(text))


def candidates(question: str, passages: Sequence[str], max_chars: int = 600,
               also: str = "") -> list[Quote]:
    """Every quotable sentence of `passages` that shares a term with the question, scored:
    the share of the question's terms it holds, lowered when it lacks the kind of fact the
    question asks for and for passages further down the ranking. `also` is the question in
    other words (a translation): a sentence may match those instead."""
    wanted = _terms(question)
    if not wanted:
        return []
    other = _terms(also) - wanted if also else set()
    kind = asked_type(question)
    out: list[Quote] = []
    seen: set[str] = set()
    for number, passage in enumerate(passages, 1):
        for span in _quotable(passage):
            text = " ".join(span.text.split()).lstrip("#* ")
            # A question restates what was asked (FAQs, parliamentary questions); the
            # sentences after it answer. Overlapping passages repeat sentences.
            if len(text) < 25 or text.endswith("?") or text in seen:
                continue
            have = _terms(text)
            share = max(len(wanted & have), len(other & have)) / len(wanted)
            if not share:
                continue
            seen.add(text)
            if not holds_type(text, kind):
                share *= TYPE_MISSING
            rank_weight = 1.0 / (1 + RANK_DECAY * (number - 1))
            length_penalty = 1.0 if len(text) < 400 else 400 / len(text)
            out.append(Quote(number, text[:max_chars], share * rank_weight * length_penalty,
                             span.start, span.end))
    return out


_CLAUSE = re.compile(r";\s+")  # long enumerations: "constaterende dat ...; verzoekt ..."


def _quotable(passage: str, long: int = 400, list_chars: int = 450) -> list[Span]:
    """The passage's sentences as quotable units: a sentence that introduces a list ("... voor
    zover:") is quoted with the items that follow (they are the answer), and a very long
    sentence is split at its semicolons (a motion's considerations, a list of definitions)."""
    spans = sentences(passage)
    out: list[Span] = []
    for i, span in enumerate(spans):
        if span.text.rstrip().endswith(":"):
            j = i
            while j + 1 < len(spans) and spans[j + 1].end - span.start <= list_chars:
                j += 1
            if j > i:
                out.append(Span(span.start, spans[j].end, passage[span.start : spans[j].end]))
                continue
        if len(span.text) <= long:
            out.append(span)
            continue
        start = span.start
        for m in _CLAUSE.finditer(span.text):
            end = span.start + m.start() + 1
            out.append(Span(start, end, passage[start:end]))
            start = span.start + m.end()
        out.append(Span(start, span.end, passage[start : span.end]))
    return out


def best_sentences(question: str, passages: Sequence[str], limit: int = 3,
                   max_chars: int = 600, also: str = "") -> list[Quote]:
    """Up to `limit` sentences that hold the most of the question's terms, favouring
    passages that ranked higher and sentences with the kind of fact asked for; quoted as they
    stand, in document order. Another passage than the best sentence's is quoted (and so
    cited) only when its sentence is nearly as good: every citation is one more for the
    citizen to check. (Weighing terms by idf was tried and found more quotes of the right
    page but fewer of the facts asked for on dev.jsonl.)"""
    scored = sorted(candidates(question, passages, max_chars, also), key=lambda q: -q.score)
    if not scored:
        return []
    best = scored[0]
    picked = [q for q in scored[:limit] if q.score >= NEAR_BEST * best.score
              and (q.source == best.source or q.score >= OTHER_PASSAGE * best.score)]
    picked.sort(key=lambda q: (q.source, q.start))
    return picked


def focus(question: str, passage: str, max_words: int = 110) -> str:
    """The part of `passage` around its sentence most relevant to `question`, about
    `max_words` long: small models read faster and stray less with less text."""
    spans = sentences(passage)
    if len(passage.split()) <= max_words or not spans:
        return passage
    wanted = _terms(question)
    best = max(range(len(spans)), key=lambda i: len(wanted & _terms(spans[i].text)))
    lo = hi = best
    count = len(spans[best].text.split())
    while count < max_words and (lo > 0 or hi < len(spans) - 1):
        if hi < len(spans) - 1:
            hi += 1
            count += len(spans[hi].text.split())
        if count < max_words and lo > 0:
            lo -= 1
            count += len(spans[lo].text.split())
    return passage[spans[lo].start : spans[hi].end]
