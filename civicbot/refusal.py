"""Whether the documents answer a question: a calibrated logistic regression over evidence
features, replacing a single threshold on retrieval coverage.

Why (docs/answering.md): a threshold on one score calibrated on one corpus does not hold on
another, because the score moves with the corpus. These features are shares and flags about
the question's own asks (its numbers, names, the kind of fact asked) and how the best passages
hold them, z-scored ranker margins and cosine similarities: they mean the same for a library of
one document and of ten thousand. The classifier and its threshold are fitted on labelled
questions with `civicbot eval train` (cross-validated by `civicbot eval cv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from civicbot.lang import fold
from civicbot.rank import (
    DATA,
    LinearModel,
    fit_signed_logistic,
    names,
    numbers,
    sigmoid,
)

REFUSAL_FILE = DATA / "refusal.json"

# The refusal threshold on the coverage confidence (AnswerPipeline.confidence), which decides
# by default; the one place this value lives (`[answer] refusal_threshold` overrides it).
# Calibrated on ../shared/eval/train.jsonl (`civicbot eval calibrate ../shared/eval/train.jsonl`;
# `eval cv` calibrates it the same way on each fold's other folds): of the coverages that
# refuse at most 0.10 of its answerable questions, the one that refuses the largest share of
# its unanswerable ones beyond the share of answerable ones, bagged: the median of that over
# bootstrap resamples (`evaluate.calibrate`; 0.2246 before coverage read the document title,
# 0.2229 before a relative moment counted as a date, 0.2295 without bagging). The 0.317 of
# earlier work was chosen on dev.jsonl and refused 0.23 of train.jsonl's answerable ones.
COVERAGE_THRESHOLD = 0.22

FEATURES = (
    "cover_best",  # coverage of the question by the best passage
    "cover_top3",  # the best coverage among the top three
    "cover_typed",  # ... by a sentence (with its neighbours) holding the kind of fact asked
    "asks_kind",  # the question asks for a number, amount, date, duration or name
    "kind_missing",  # ... and no passage holds one
    "numbers_missing",  # share of the question's numbers no passage holds
    "names_missing",  # share of the question's names the top three passages lack
    "score_best",  # the ranker's score of the best passage
    "margin",  # ... minus the second's
    "dense_best",  # cosine of the question and the best passage (embedder)
    "same_doc",  # share of the top three from the best passage's document
    "quote",  # how much of the question the best quotable sentence holds
)
# Not a feature: the question's length. It alone refused 0.28 of train.jsonl's unanswerable
# questions at 0.10 false refusals (they were written shorter), but it is how a question set
# was written, not evidence in the documents, and would refuse a citizen's short question.
# The features that say a specific ask of the question is not in the documents: with them
# set to "all found", the classifier tells whether the documents cover the topic at all.
DETAIL_FEATURES = ("kind_missing", "numbers_missing", "names_missing")


@dataclass(frozen=True)
class Evidence:
    """The evidence features of one question, and which of its asks the passages lack."""

    values: np.ndarray
    missing_numbers: tuple[str, ...] = ()
    missing_names: tuple[str, ...] = ()
    missing_kind: str = ""

    @property
    def missing(self) -> bool:
        return bool(self.missing_numbers or self.missing_names or self.missing_kind)


def evidence(question: str, texts: Sequence[str], covers: Sequence[float], typed: float | None,
             kind: str | None, kind_held: bool, scores: Sequence[float],
             dense: Sequence[float], docs: Sequence[str], quote: float) -> Evidence:
    """The features of FEATURES for a question whose retrieved passages are `texts` (title,
    heading and text; best first) with coverages `covers`, ranker `scores`, embedder cosines
    `dense` and documents `docs`; `typed` is the coverage by a sentence holding the kind of
    fact asked (None when the question asks for none or for a name), `kind_held` whether any
    passage holds it, `quote` the best quotable sentence's score."""
    x = np.zeros(len(FEATURES))
    col = {name: i for i, name in enumerate(FEATURES)}
    folded = [fold(t) for t in texts]
    held_numbers = set().union(*(numbers(t) for t in texts)) if texts else set()
    asked_numbers = sorted(numbers(question))
    lacking_numbers = tuple(n for n in asked_numbers if n not in held_numbers)
    asked_names = sorted(names(question))
    lacking_names = tuple(n for n in asked_names if not any(n in t for t in folded[:3]))
    x[col["cover_best"]] = covers[0] if covers else 0.0
    x[col["cover_top3"]] = max(covers[:3], default=0.0)
    x[col["cover_typed"]] = x[col["cover_top3"]] if typed is None else typed
    x[col["asks_kind"]] = float(kind is not None)
    missing_kind = kind if kind is not None and not kind_held else ""
    x[col["kind_missing"]] = float(bool(missing_kind))
    x[col["numbers_missing"]] = len(lacking_numbers) / len(asked_numbers) if asked_numbers else 0
    x[col["names_missing"]] = len(lacking_names) / len(asked_names) if asked_names else 0.0
    x[col["score_best"]] = scores[0] if scores else 0.0
    x[col["margin"]] = scores[0] - scores[1] if len(scores) > 1 else 0.0
    x[col["dense_best"]] = dense[0] if dense else 0.0
    x[col["same_doc"]] = (sum(d == docs[0] for d in docs[:3]) / min(3, len(docs))
                          if docs else 0.0)
    x[col["quote"]] = quote
    return Evidence(x, lacking_numbers, lacking_names, missing_kind)


@dataclass(frozen=True)
class RefusalModel:
    """P(the documents answer the question), and the probability below which civicbot
    declines (chosen on held-out predictions: see `fit_refusal`)."""

    model: LinearModel
    threshold: float

    def probability(self, x: np.ndarray) -> float:
        return sigmoid(float(self.model.score(x)))

    def topic_probability(self, x: np.ndarray) -> float:
        """The probability were every specific ask found: high when the documents cover
        the topic and only the detail asked for is missing."""
        found = x.copy()
        for name in DETAIL_FEATURES:
            found[FEATURES.index(name)] = 0.0
        return self.probability(found)

    def to_json(self) -> str:
        return LinearModel(self.model.features, self.model.mean, self.model.scale,
                           self.model.coef, self.model.intercept,
                           {"threshold": round(self.threshold, 6)}).to_json()

    @classmethod
    def from_json(cls, text: str) -> RefusalModel:
        model = LinearModel.from_json(text)
        return cls(model, float((model.extra or {})["threshold"]))


@cache
def packaged_refusal() -> RefusalModel | None:
    return (RefusalModel.from_json(REFUSAL_FILE.read_text()) if REFUSAL_FILE.exists()
            else None)


# The direction each feature may push P(answered): more coverage, a stronger and clearer best
# passage, a better quote can only make an answer more likely; a missing number, name or kind
# of fact less likely. train.jsonl's unanswerable questions are near the corpus's topics, so an
# unconstrained fit gave coverage a *negative* weight and answered a question about a passport
# fee in Utrecht (low coverage) with an unrelated quote: a fit to how a question set was
# written, which would not hold on another corpus. 0: either way.
SIGNS = {"cover_best": 1, "cover_top3": 1, "cover_typed": 1, "asks_kind": 0,
         "kind_missing": -1, "numbers_missing": -1, "names_missing": -1, "score_best": 1,
         "margin": 1, "dense_best": 1, "same_doc": 1, "quote": 1}


def _fit_linear(x: np.ndarray, y: np.ndarray, c: float) -> LinearModel:
    return fit_signed_logistic(x, y, c, FEATURES, SIGNS)


def fit_refusal(x: np.ndarray, answerable: np.ndarray, groups: Sequence[int], c: float = 1.0,
                max_false_refusals: float = 0.1) -> RefusalModel:
    """A logistic regression on the evidence features `x`, with the threshold that refuses
    the most unanswerable questions while refusing at most `max_false_refusals` of the
    answerable ones, chosen on out-of-fold probabilities (the questions of each group of
    `groups` predicted by a model fitted without them), so that it holds on new questions."""
    from civicbot.evaluate import calibrate

    y = answerable.astype(int)
    folds = sorted(set(groups))
    oof = np.zeros(len(y))
    g = np.asarray(groups)
    for f in folds:
        test = g == f
        train = ~test
        if len(set(y[train])) < 2:
            oof[test] = 0.5
            continue
        model = _fit_linear(x[train], y[train], c)
        oof[test] = [sigmoid(float(v)) for v in model.score(x[test])]
    threshold = calibrate(list(zip(oof.tolist(), answerable.tolist(), strict=True)),
                          max_false_refusals)
    return RefusalModel(_fit_linear(x, y, c), threshold)


def load(path: Path) -> RefusalModel:
    return RefusalModel.from_json(path.read_text())
