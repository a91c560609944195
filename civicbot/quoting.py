"""The learned quote chooser: which sentences of the retrieved passages an answer quotes.

A logistic regression gives each candidate sentence P(it states the answer), from features
that any corpus has (docs/answering.md, "Learned quotes"): the share of the question's terms
it holds (plain, and weighed by how rare each term is among this question's candidate
sentences), whether it holds the kind of fact asked, its passage's rank, scores and
similarity, its length, whether it only introduces a list. The answer then quotes as before
(civicbot/answer/extractive.py `pick`): the best sentence, and at most two more that score
nearly as well.

Why learned: the hand-set score (term share, times 0.2 without the kind of fact asked,
times a rank decay) was written looking at dev.jsonl, and on held-out documents of
train.jsonl it put the answering sentence in the answer for 0.41 of the questions; the
model, fitted on other documents' questions, for 0.50 (`civicbot eval cv`). Labels are the
questions' key strings: a sentence that contains one states the answer. Every feature is a
share, a flag or normalised within the question's candidates, so it means the same on a
corpus of one document and of ten thousand; none names a document or a word.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from civicbot.answer.extractive import Asked, Quote, QuoteRules, candidates, pick, terms
from civicbot.index.crosslingual import WINDOW_WORDS
from civicbot.lang import fold
from civicbot.rank import DATA, LinearModel, fit_signed_logistic, names, numbers, zscore

QUOTES_FILE = DATA / "quotes.json"

FEATURES = (
    "share",  # share of the question's terms (or their translations) the sentence holds
    "rare_share",  # ... each term weighed by its rarity among the question's candidates
    "held",  # the sentence holds the kind of fact asked (number, date, amount, name)
    "typed_held",  # ... and the question asks for a number, amount, date or duration
    "typed_lacking",  # such a question, and the sentence holds no such fact
    "inverse_rank",  # 1 / the passage's rank (a neighbour ranks half a place below)
    "neighbour",  # the passage was added as a neighbour of a retrieved one
    "coverage",  # the passage's coverage of the question
    "dense",  # the embedder's cosine of question and passage, z-scored within the passages
    "score",  # the passage's fused score, z-scored within the retrieved passages
    "log_length",  # log of the sentence's length in characters
    "long",  # 400 characters or more
    "position",  # where the sentence starts in its passage (0 .. 1)
    "digits",  # the sentence holds a digit
    "numbers",  # share of the question's numbers the sentence holds (0 when none)
    "names",  # share of the question's names and acronyms the sentence holds
    "bigrams",  # share of the question's adjacent word pairs the sentence holds
    "same_doc",  # the passage is from the best passage's document
    "other_language",  # the passage is not in the question's language
    "list_intro",  # the sentence ends in ":" with no items after it
    "top3",  # the passage is among the first three
    "window",  # the cross-lingual model's cosine with the question of the text around it
)
_FLAT = QuoteRules(type_missing=1.0, rank_decay=0.0)  # candidates' plain term share
# How the chooser's probabilities are picked from (extractive.pick): the best sentence and up
# to three more at 0.6 of its probability, from another passage only at 0.8 of it. Chosen
# with the chooser by nested cross-validation on train.jsonl (`civicbot eval cv ... --grid`;
# docs/answering.md, "Quote constants"): every fold chose four sentences; 0.8 and 0.9 tie
# on key facts plus citations, and 0.8 puts more key facts in the answers.
PICK = QuoteRules(sentences=4, other_passage=0.8)
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Passage:
    """What the features need of one retrieved passage."""

    text: str
    rank: float
    neighbour: bool
    coverage: float
    dense: float
    score: float
    doc: str
    language: str
    # (first word, cosine with the question) of each window of the passage (Retriever.windows)
    windows: tuple[tuple[int, float], ...] = ()


def window_match(passage: Passage, start: int, end: int) -> float:
    """How well the text around the sentence at `start:end` of `passage` matches the
    question: the best window's cosine, each weighed by the share of the sentence's words
    it holds. NaN when the passage has no windows (see `choose`)."""
    if not passage.windows:
        return math.nan
    first = len(passage.text[:start].split())
    words = max(len(passage.text[:end].split()) - first, 1)
    return max(cos * max(0, min(first + words, w + WINDOW_WORDS) - max(first, w)) / words
               for w, cos in passage.windows)


def featurise(question: str, query: str, also: str, language: str, what: Asked | None,
              passages: Sequence[Passage]) -> tuple[list[Quote], np.ndarray]:
    """Every candidate sentence of `passages` (see extractive.candidates) for `question`
    (searched as `query`, `also` its translation, asked in `language`), and its FEATURES."""
    quotes = candidates(query, [p.text for p in passages], also=also, wanted=what,
                        ranks=[1.0] * len(passages), rules=_FLAT)
    if not quotes:
        return [], np.zeros((0, len(FEATURES)))
    own = terms(query)
    asked_terms = own | (terms(also) - own if also else set())
    held_terms = [terms(q.text) for q in quotes]
    n = len(quotes)
    rarity = {t: math.log((n + 1) / (sum(t in h for h in held_terms) + 0.5))
              for t in asked_terms}
    total = sum(rarity[t] for t in own) or 1.0
    z = zscore(np.array([p.score for p in passages], dtype=float))
    # Cosines are z-scored too: their scale is the embedder's (multilingual-e5 puts nearly
    # every passage between 0.75 and 0.92, MiniLM between 0.1 and 0.7), and raw they pushed
    # every sentence of a well-matching document towards certainty.
    dense_z = zscore(np.array([p.dense for p in passages], dtype=float))
    typed = what is not None and what.kind != "name"
    asked_numbers = numbers(query)
    asked_names = names(question)
    words = _WORDS.findall(fold(query))
    pairs = set(zip(words, words[1:], strict=False))
    first_doc = passages[0].doc
    rows = []
    for q, have in zip(quotes, held_terms, strict=True):
        p = passages[q.source - 1]
        text = q.text
        folded = fold(text)
        said = _WORDS.findall(folded)
        held = float(what is not None and what.held_by(text))
        rows.append([
            q.score,
            min(1.0, sum(rarity[t] for t in asked_terms if t in have) / total),
            held, held * typed, (1.0 - held) * typed,
            1.0 / p.rank, float(p.neighbour), p.coverage, dense_z[q.source - 1],
            z[q.source - 1],
            math.log(len(text)), float(len(text) >= 400),
            q.start / max(len(p.text), 1), float(any(ch.isdigit() for ch in text)),
            (len(asked_numbers & numbers(text)) / len(asked_numbers)) if asked_numbers else 0.0,
            (sum(n in folded for n in asked_names) / len(asked_names)) if asked_names else 0.0,
            (len(pairs & set(zip(said, said[1:], strict=False))) / len(pairs)) if pairs else 0.0,
            float(p.doc == first_doc), float(p.language != language),
            float(text.rstrip().endswith(":")), float(q.source <= 3),
            window_match(p, q.start, q.end),
        ])
    return quotes, np.array(rows)


def choose(model: LinearModel, quotes: list[Quote], x: np.ndarray, allowed: Container[int],
           rules: QuoteRules) -> list[Quote]:
    """The sentences to quote: each candidate of the `allowed` passages (1-based numbers)
    scored by `model` (P(it states the answer)), then picked as the hand-set score was."""
    if not quotes:
        return []
    # A feature the index cannot give (no cross-lingual windows) counts as average.
    x = np.where(np.isnan(x), model.mean, x)
    p = 1.0 / (1.0 + np.exp(-model.score(x)))
    scored = [replace(q, score=float(s)) for q, s in zip(quotes, p, strict=True)
              if q.source in allowed]
    return pick(scored, rules)


# The direction each feature may push P(states the answer): holding more of the question, the
# kind of fact asked, a better-ranked and better-matching passage can only help; a typed
# question's sentence without the kind of fact, or a bare list introduction, only hurt.
# Unconstrained, the fit gave the question's names and the passage's coverage small negative
# weights (they overlap with the term shares): a quirk of 192 questions, not a rule to serve.
# 0 or absent: either way.
SIGNS = {"share": 1, "rare_share": 1, "held": 1, "typed_held": 1, "typed_lacking": -1,
         "inverse_rank": 1, "coverage": 1, "dense": 1, "score": 1, "numbers": 1, "names": 1,
         "bigrams": 1, "same_doc": 1, "list_intro": -1, "window": 1}


def fit_quotes(groups: Sequence[tuple[np.ndarray, np.ndarray]], c: float = 0.1) -> LinearModel:
    """A logistic regression on `groups` of (features, states the answer) per question,
    classes weighed equally and each weight's sign held to `SIGNS`; questions with no
    candidate that states the answer teach nothing about choosing and are left out.
    Deterministic."""
    kept = [(x, y) for x, y in groups if len(y) and y.any()]
    if not kept:
        raise ValueError("no question has a candidate sentence that states its answer")
    x = np.vstack([x for x, _ in kept])
    y = np.concatenate([y for _, y in kept]).astype(float)
    missing = np.isnan(x)
    if missing.any():  # as `choose` serves it: the average (0 if nothing had a value)
        means = np.nan_to_num(np.nanmean(np.where(missing.all(axis=0), 0.0, x), axis=0))
        x = np.where(missing, means, x)
    fitted = fit_signed_logistic(x, y, c, FEATURES, SIGNS)
    # As it will be served: rounded (so that evaluation scores the very model the file holds).
    return LinearModel.from_json(fitted.to_json())


@cache
def packaged_quotes() -> LinearModel | None:
    """The chooser shipped in civicbot/data (None if the file is missing)."""
    return LinearModel.from_json(QUOTES_FILE.read_text()) if QUOTES_FILE.exists() else None
