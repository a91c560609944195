"""The extractive answer: the passages' most relevant sentences, quoted verbatim. Used when
the model's answer does not survive the grounding check, or when there is no model time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from civicbot.answer.text import sentences
from civicbot.index.lexical import analyse_query


@dataclass(frozen=True)
class Quote:
    source: int  # 1-based passage number
    text: str
    score: float = 0.0  # share of the question's (idf-weighted) terms the sentence holds


# Questions that ask for a number, an amount, a date or a duration are answered by sentences
# that hold one.
_ASKS_NUMBER = re.compile(
    r"\b(hoeveel|hoe (hoog|lang|vaak|oud)|wanneer|welke datum|vanaf wanneer|binnen welke|"
    r"how (many|much|long|often|old|large|high)|when|what date|from what|by when|within what)\b",
    re.I)


def _terms(text: str) -> set[str]:
    return set(analyse_query(text))


def best_sentences(question: str, passages: Sequence[str], limit: int = 3,
                   max_chars: int = 600) -> list[Quote]:
    """Up to `limit` sentences that hold the most of the question's terms, favouring
    passages that ranked higher; quoted as they stand. (Weighing terms by idf was tried and
    found more quotes of the right page but fewer of the facts asked for on dev.jsonl.)"""
    wanted = _terms(question)
    if not wanted:
        return []
    wants_number = bool(_ASKS_NUMBER.search(question))
    scored: list[tuple[float, int, int, str]] = []
    for number, passage in enumerate(passages, 1):
        for index, span in enumerate(sentences(passage)):
            text = " ".join(span.text.split()).lstrip("#* ")
            # A question restates what was asked (FAQs, parliamentary questions); the
            # sentences after it answer.
            if len(text) < 25 or text.endswith("?"):
                continue
            share = len(wanted & _terms(text)) / len(wanted)
            if not share:
                continue
            if wants_number and any(ch.isdigit() for ch in text):
                share *= 1.3
            rank_weight = 1.0 / (1 + 0.3 * (number - 1))
            length_penalty = 1.0 if len(text) < 400 else 400 / len(text)
            scored.append((share * rank_weight * length_penalty, number, index,
                           text[:max_chars]))
    scored.sort(key=lambda s: -s[0])
    # Only sentences nearly as relevant as the best: a weak second quote from another
    # document distracts more than it informs.
    picked = [s for s in scored[:limit] if s[0] >= 0.6 * scored[0][0]] if scored else []
    picked.sort(key=lambda s: (s[1], s[2]))  # keep document order within the answer
    return [Quote(number, text, score) for score, number, _, text in picked]


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
