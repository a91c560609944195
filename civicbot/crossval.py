"""Cross-validation and training of the learned models (civicbot/rank.py, civicbot/refusal.py)
on labelled questions: folds grouped by document, the `Lab` that fits and tries the models
over the serving index, the grids of settings chosen on the other folds, and `train`, which
writes the models serving loads. The figures of one run are civicbot/evaluate.py's."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from civicbot.config import Config
from civicbot.errors import ConfigError
from civicbot.evaluate import (
    _contains_fact,
    _hit,
    _jsonl,
    _write_details,
    by_group,
    calibrate,
    record,
    summarise,
)
from civicbot.index.crosslingual import shared_use


class _Memo:
    """An embedder that remembers what it embedded: evaluation searches each question many
    times (once per fold's models), and the embedding is the slow part."""

    def __init__(self, real: Any):
        self.real = real
        self.name = getattr(real, "name", "")
        self.dimension = getattr(real, "dimension", 0)
        self._seen: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}

    def embed(self, texts: Any) -> np.ndarray:
        return self._remembered(list(texts), self.real.embed, self._seen)

    def embed_query(self, texts: Any) -> np.ndarray:
        from civicbot.index.embed import embed_queries

        return self._remembered(list(texts), lambda new: embed_queries(self.real, new),
                                self._queries)

    @staticmethod
    def _remembered(texts: list[str], embed: Any, seen: dict[str, np.ndarray]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        if new:
            for t, v in zip(new, embed(new), strict=True):
                seen[t] = v
        return np.vstack([seen[t] for t in texts]) if texts else embed([])


def with_choice(settings: Any, choice: dict[str, Any]) -> Any:
    """`settings` (AnswerSettings) with the values of `choice`; the names of QuoteRules'
    fields set its `quotes`."""
    from dataclasses import fields, replace

    rules = {f.name for f in fields(settings.quote_rules)}
    given = {k: v for k, v in choice.items() if k in rules}
    quotes = replace(settings.quote_rules, **given) if given else settings.quotes
    return replace(settings, quotes=quotes, **{k: v for k, v in choice.items()
                                               if k not in rules})


def folds(rows: list[dict[str, Any]], k: int) -> list[int]:
    """The fold of each question, grouped by document: an answerable question goes with its
    (first) gold document, the documents spread over the folds largest first to the fold
    with the fewest questions; an unanswerable question (no document) goes to the fold a
    hash of its id gives. Deterministic."""
    if k < 2:
        raise ConfigError("cross-validation needs at least 2 folds")
    counts: dict[str, int] = {}
    for r in rows:
        if r["answerable"] and r.get("gold"):
            counts[r["gold"][0]["doc"]] = counts.get(r["gold"][0]["doc"], 0) + 1
    size = [0] * k
    fold_of: dict[str, int] = {}
    for doc, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        f = min(range(k), key=lambda i: (size[i], i))
        fold_of[doc] = f
        size[f] += n
    out = []
    for r in rows:
        if r["answerable"] and r.get("gold"):
            out.append(fold_of[r["gold"][0]["doc"]])
        else:
            digest = hashlib.sha256(str(r.get("id", r["question"])).encode()).hexdigest()
            out.append(int(digest, 16) % k)
    return out


def _plain_retriever(service: Any, embedder: Any, use: Any) -> Any:
    """A retriever over `service`'s serving snapshot without a learned ranker, embedding
    with `embedder` and `use` (the Lab's memos: each question is embedded once)."""
    from dataclasses import replace

    from civicbot.retrieve import Retriever

    base = Retriever.from_config(service.snapshot(), embedder, service.cfg.retrieval,
                                 service.glossary)
    return replace(base, ranker=None, use=use)


class Lab:
    """Fits and tries the learned models (civicbot/rank.py, civicbot/refusal.py) on labelled
    questions over the serving index, with the embeddings of each question computed once."""

    def __init__(self, service: Any):
        self.service = service
        self.base = _plain_retriever(service, _Memo(service.embedder), _Memo(shared_use()))
        self._groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._kept: list[Any] = []
        self._gold_hits: dict[tuple[Any, str], Any] = {}
        self._inputs: dict[tuple[Any, str], tuple[list[Any], float]] = {}
        self._records: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._sentences: dict[tuple[Any, str], tuple[np.ndarray, np.ndarray]] = {}
        self._alone: dict[str, tuple[Any, Any]] = {}

    def retriever(self, ranker: Any, choice: dict[str, Any] | None = None,
                  base: Any = None) -> Any:
        """The retriever (of `base`, by default the serving index's) with `ranker` and the
        retrieval settings of `choice` (see `RETRIEVAL_GRID`)."""
        from dataclasses import replace

        from civicbot.glossary import Glossary

        base = base or self.base
        change = {k: v for k, v in (choice or {}).items() if k in _RETRIEVER_FIELDS}
        if not change:
            return replace(base, ranker=ranker)
        if not change.pop("glossary", True):
            change["glossary"] = Glossary()
        # Translations depend on the glossary: a fresh cache.
        return replace(base, ranker=ranker, _translations={}, **change)

    def ranking_group(self, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """The features of the fusion's best candidates for an answerable question, and
        which of them lie on a gold page."""
        key = row["question"]
        if key not in self._groups:
            ranking = self.base.rank(row["question"], features=True)
            if ranking is None:
                return None
            chunks = self.base.snapshot.chunks
            relevant = np.array([_hit(chunks[i].doc, chunks[i].page_start, chunks[i].page_end,
                                      row["gold"]) for i in ranking.reranked.tolist()])
            self._groups[key] = (ranking.features, relevant)
        return self._groups[key]

    def fit_ranker(self, rows: list[dict[str, Any]]) -> Any:
        from civicbot.rank import fit_ranker

        groups = [g for r in rows if r["answerable"]
                  if (g := self.ranking_group(r)) is not None]
        return fit_ranker(groups)

    def pipeline(self, ranker: Any, refusal_model: Any = None,
                 choice: dict[str, Any] | None = None, quote_model: Any = None,
                 service: Any = None, base: Any = None,
                 threshold: float | None = None) -> Any:
        """A quoting pipeline with `ranker`, `refusal_model`, `quote_model` (None: the
        hand-set quote score) and the settings of `choice` (see `GRID`), over the serving
        index or `service` with its retriever `base`; given a `threshold`, the coverage
        threshold decides instead of any refusal model."""
        choice = choice or {}
        pipeline = (service or self.service).pipeline(
            use_model=False, retriever=self.retriever(ranker, choice, base),
            refusal_model=refusal_model)
        pipeline.settings.quote_model = quote_model
        pipeline.settings = with_choice(pipeline.settings, {
            k: v for k, v in choice.items() if k not in _RETRIEVER_FIELDS})
        if threshold is not None:
            pipeline.settings.refusal_model = None
            pipeline.settings.refusal_threshold = threshold
        return pipeline

    def fit_quotes(self, rows: list[dict[str, Any]], ranker: Any,
                   choice: dict[str, Any] | None = None) -> Any:
        """The learned quote chooser (civicbot/quoting.py) fitted on the answerable `rows`,
        on the passages retrieved with the retrieval settings of `choice` (the others do
        not change what it learns from): a candidate sentence states the answer when it
        holds one of the question's key strings."""
        from civicbot.quoting import fit_quotes

        retrieval = _retrieval_part(choice)
        pipeline = self.pipeline(ranker, choice=retrieval)
        searched = self._searched(ranker, retrieval)
        groups = []
        for r in rows:
            if not r["answerable"]:
                continue
            # A question's candidates and labels are the same for every fold's fit: worked
            # out once, on the passages the answers are scored with.
            key = (searched, r["question"])
            if key not in self._sentences:
                hits, _ = self._decision_inputs(pipeline, searched, r["question"])
                quotes, x = pipeline.sentence_features(pipeline.question(r["question"]), hits)
                self._sentences[key] = (x, np.array(
                    [_contains_fact(q.text, r["must_contain_any"]) for q in quotes],
                    dtype=bool))
            groups.append(self._sentences[key])
        return fit_quotes(groups)

    def fit_refusal(self, rows: list[dict[str, Any]], ranker: Any, groups: list[int]) -> Any:
        from civicbot.refusal import fit_refusal

        pipeline = self.pipeline(ranker)
        x = []
        for r in rows:
            question = pipeline.question(r["question"])
            x.append(pipeline.evidence(question, pipeline.retrieve(question)).values)
        return fit_refusal(np.vstack(x), np.array([bool(r["answerable"]) for r in rows]),
                           groups)

    def threshold(self, rows: list[dict[str, Any]], ranker: Any,
                  choice: dict[str, Any] | None = None) -> float:
        """The coverage threshold of the fixed-threshold refusal, calibrated on `rows`."""
        choice = choice or {}
        pipeline = self.pipeline(ranker, None, choice)
        searched = self._searched(ranker, choice)
        return calibrate([(self._decision_inputs(pipeline, searched, r["question"])[1],
                           bool(r["answerable"])) for r in rows])

    def records(self, rows: list[dict[str, Any]], ranker: Any, refusal_model: Any,
                threshold: float | None = None,
                choice: dict[str, Any] | None = None,
                quote_model: Any = None) -> list[dict[str, Any]]:
        """The `record` of each of `rows`, answered (by quoting) with `ranker`, and either
        `refusal_model` deciding or, given a `threshold`, the coverage threshold; `choice`
        replaces settings of the answer (see `GRID`). Retrieval, the confidence and a
        quoted answer are remembered across calls: the grid tries many settings and
        thresholds on the same questions."""
        choice = choice or {}
        keep = (ranker, refusal_model, quote_model)  # their ids key the memo: keep them alive
        self._kept.append(keep)
        pipeline = self.pipeline(ranker, refusal_model, choice, quote_model,
                                 threshold=threshold)
        variant = (id(ranker), id(refusal_model), id(quote_model),
                   tuple(sorted(choice.items())))
        searched = self._searched(ranker, choice)
        out = []
        for r in rows:
            question = r["question"]
            ranking = (searched[:1] + searched[2:], question)
            if ranking not in self._gold_hits:
                self._gold_hits[ranking] = (
                    pipeline.source.search(question, 10) if r["answerable"] else None)
            hits, confidence = self._decision_inputs(pipeline, searched, question)
            decision = pipeline.judge(pipeline.question(question), hits,
                                      confidence if threshold is not None else None)
            key = (variant, question, "answer" if decision.outcome == "answer" else threshold)
            if key not in self._records:
                self._records[key] = record(r, self._gold_hits[ranking],
                                            pipeline.answer(decision))
            out.append(dict(self._records[key]))
        return out

    @staticmethod
    def _searched(ranker: Any, choice: dict[str, Any]) -> tuple[Any, ...]:
        """What retrieval depends on: the ranker, the neighbour setting of the answer and
        the retrieval settings."""
        return (id(ranker), choice.get("neighbours", True),
                *sorted((k, v) for k, v in choice.items() if k in _RETRIEVER_FIELDS))

    def _decision_inputs(self, pipeline: Any, searched: tuple[Any, ...],
                         question: str) -> tuple[list[Any], float]:
        """The passages retrieved for `question` and their coverage confidence, worked out
        once per ranker and neighbour setting."""
        key = (searched, question)
        if key not in self._inputs:
            asked = pipeline.question(question)
            hits = pipeline.retrieve(asked)
            self._inputs[key] = (hits, pipeline.confidence(asked, hits))
        return self._inputs[key]

    def home(self, row: dict[str, Any]) -> str | None:
        """The document a question is asked of alone (`cross_validate`'s `alone`): an
        answerable one's first gold document in the index, an unanswerable one's the document
        of the passage the whole index ranks first for it."""
        docs = self.base.snapshot.docs
        if row["answerable"]:
            return next((g["doc"] for g in row["gold"] if g["doc"] in docs), None)
        hits = self.base.search(row["question"], 1)
        return hits[0].chunk.doc if hits else None

    def alone_records(self, rows: list[dict[str, Any]], ranker: Any, refusal_model: Any,
                      threshold: float | None, choice: dict[str, Any], quote_model: Any,
                      folder: Path) -> list[dict[str, Any]]:
        """The `record` of each of `rows` asked of its `home` document alone: an index of
        that document only (see `index_of_one`, made in `folder` once per document),
        answered with the models and settings fitted on the whole index, as a deployment's
        models fitted on one corpus serve another."""
        out = []
        for r in rows:
            doc = self.home(r)
            if doc is None:
                continue
            if doc not in self._alone:
                service = index_of_one(self.service, doc, folder / f"{len(self._alone)}")
                base = _plain_retriever(service, self.base.embedder, self.base.use)
                self._alone[doc] = (service, base)
            service, base = self._alone[doc]
            pipeline = self.pipeline(ranker, refusal_model, choice, quote_model, service, base,
                                     threshold)
            hits = pipeline.source.search(r["question"], 10) if r["answerable"] else None
            out.append({**record(r, hits, pipeline.ask(r["question"])), "doc": doc})
        return out


def index_of_one(service: Any, doc: str, folder: Path) -> Any:
    """A service over an index of the serving index's document `doc` alone, made in
    `folder` from the serving index's cache: its files are linked (copied across file
    systems), then every other document is removed, so nothing is read or embedded again
    and the serving index is not touched (its generations and cache files are never
    written in place)."""
    from civicbot.service import Service

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(service.cfg.paths.index, folder, copy_function=link,
                    ignore=shutil.ignore_patterns(".lock", ".building-*"))
    alone = Service(service.cfg.replace("index", path=str(folder)), embedder=service.embedder)
    alone.corpus.remove([name for name in alone.corpus.documents() if name != doc])
    return alone


# The quote and neighbour settings `eval cv --grid` chooses among, per fold on the fitting
# folds (docs/answering.md, "Quote constants"): every combination of these values of
# AnswerSettings (and of its QuoteRules). The first value of each is today's default with the
# learned chooser (quoting.PICK), so on a tie the default stays.
GRID: dict[str, tuple[Any, ...]] = {
    "quote_sources": (3, 1, 2),  # passages a question of no particular kind quotes from
    "sentences": (4, 3, 2),  # sentences quoted at most
    "other_passage": (0.8, 0.7, 0.9),  # share of the best a sentence of another passage needs
    "neighbours": (True, False),  # a typed question also reads the neighbouring passages
    "typed_all": (False, True),  # ... and quotes from every passage, not the top few
}


# Retrieval constants chosen the same way (`eval cv --grid retrieval`), with the quote
# settings at their defaults: the weight of a match through the question's translation, the
# pull of a strong neighbouring passage, and the built-in glossary on or off.
RETRIEVAL_GRID: dict[str, tuple[Any, ...]] = {
    "translation_weight": (0.5, 0.25, 1.0),
    "neighbour_weight": (0.3, 0.0, 0.5),
    "glossary": (True, False),
}
_RETRIEVER_FIELDS = set(RETRIEVAL_GRID)


def grid_choices(axes: dict[str, tuple[Any, ...]] = GRID) -> list[dict[str, Any]]:
    """Every combination of `axes`, today's defaults first."""
    names = list(axes)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(axes[n] for n in names))]


def objective(summary: dict[str, Any]) -> float:
    """What the grid maximises: the key-fact rate plus the share of citations on a gold
    page (the two figures quoting moves; refusal is the threshold's)."""
    return float(summary.get("key_fact_rate", 0.0)) + float(
        summary.get("citation_accuracy", 0.0))


def _retrieval_part(choice: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (choice or {}).items() if k in _RETRIEVER_FIELDS}


def choose(lab: Lab, rows: list[dict[str, Any]], ranker: Any, model: Any,
           choices: list[dict[str, Any]],
           quotes: bool = True) -> tuple[dict[str, Any], float | None, Any]:
    """The choice that does best by `objective` on `rows` (the first on a tie), with what
    was fitted on `rows` for it: without `model`, the coverage threshold; with `quotes`, the
    quote chooser. The chooser is fitted again for each retrieval setting, since retrieval
    decides which sentences it learns from: fitted on today's retrieval only, it held every
    other retrieval setting back."""
    choosers: dict[tuple[Any, ...], Any] = {}
    best: tuple[float, dict[str, Any], float | None, Any] | None = None
    for choice in choices:
        retrieval = tuple(sorted(_retrieval_part(choice).items()))
        if retrieval not in choosers:
            choosers[retrieval] = lab.fit_quotes(rows, ranker, choice) if quotes else None
        chooser = choosers[retrieval]
        threshold = None if model is not None else lab.threshold(rows, ranker, choice)
        score = objective(summarise(lab.records(rows, ranker, model, threshold, choice,
                                                chooser)))
        if best is None or score > best[0] + 1e-9:
            best = (score, choice, threshold, chooser)
    assert best is not None
    return best[1], best[2], best[3]


def cross_validate(path: Path, cfg: Config, k: int = 5, ranker: bool = True,
                   refusal: bool = True, quotes: bool = True, service: Any = None,
                   details: Path | None = None,
                   grid: dict[str, tuple[Any, ...]] | None = None,
                   alone: bool = False) -> dict[str, Any]:
    """k-fold cross-validation grouped by document (see `folds`): for each fold, the learned
    models are fitted on the other folds' questions and the fold's questions are answered
    (by quoting) with them; the figures are those of all held-out answers pooled. Without
    `ranker`, the hand-set fusion ranks; without `refusal`, a coverage threshold calibrated
    on the other folds decides (what civicbot did before the refusal classifier); without
    `quotes`, the hand-set score chooses the quoted sentences, not the learned one. With
    `grid` (e.g. `GRID`), the settings it names are also chosen on the other folds (nested:
    the held-out fold never takes part in the choice), "chosen" lists each fold's choice,
    and "whole" the choice made on every question (the defaults to ship). With `alone`,
    "alone" holds the figures of the held-out questions asked again, each of its own document
    alone (`Lab.home`, `index_of_one`), with the same fitted models and threshold: whether
    what was fitted on one corpus holds on a small one (docs/answering.md, "Term weights")."""
    from civicbot.service import Service

    rows = list(_jsonl(path))
    fold = folds(rows, k)
    lab = Lab(service or Service(cfg))
    choices = grid_choices(grid) if grid else [{}]
    records: list[dict[str, Any]] = []
    alone_records: list[dict[str, Any]] = []
    chosen = []
    # Indexes of one document each, for `alone`; removed when the folds are done.
    with tempfile.TemporaryDirectory(prefix="civicbot-alone-") as scratch:
        for f in range(k):
            train = [r for r, g in zip(rows, fold, strict=True) if g != f]
            test = [r for r, g in zip(rows, fold, strict=True) if g == f]
            if not test:
                continue
            fitted = lab.fit_ranker(train) if ranker else None
            groups = [g for g in fold if g != f]
            model = lab.fit_refusal(train, fitted, groups) if refusal else None
            choice, threshold, chooser = choose(lab, train, fitted, model, choices, quotes)
            chosen.append({"fold": f, **choice, "threshold": threshold})
            for rec in lab.records(test, fitted, model, threshold, choice, chooser):
                records.append({**rec, "fold": f})
            if alone:
                for rec in lab.alone_records(test, fitted, model, threshold, choice, chooser,
                                             Path(scratch)):
                    alone_records.append({**rec, "fold": f, "alone": True})
    _write_details(details, records + alone_records)
    out: dict[str, Any] = {**summarise(records), "groups": by_group(records)}
    if alone:
        out["alone"] = {**summarise(alone_records), "groups": by_group(alone_records)}
    if grid:
        fitted = lab.fit_ranker(rows) if ranker else None
        model = lab.fit_refusal(rows, fitted, fold) if refusal else None
        choice, threshold, _ = choose(lab, rows, fitted, model, choices, quotes)
        out["chosen"] = chosen
        out["whole"] = {**choice, "threshold": threshold}
    return out


def train(path: Path, cfg: Config, out: Path, service: Any = None, k: int = 5) -> list[Path]:
    """Fit the ranker, the refusal classifier and the quote chooser on every question of
    `path` and write them to `out` (ranker.json, refusal.json, quotes.json). The refusal
    threshold is chosen on out-of-fold probabilities over `k` folds grouped by document; the
    classifier and the chooser are fitted on the ranking serving uses (the fusion unless
    `rank.SERVING`)."""
    from civicbot.quoting import QUOTES_FILE
    from civicbot.rank import RANKER_FILE
    from civicbot.refusal import REFUSAL_FILE
    from civicbot.service import Service

    rows = list(_jsonl(path))
    lab = Lab(service or Service(cfg))
    from civicbot.rank import SERVING

    ranker = lab.fit_ranker(rows)
    # The classifier reads the ranking serving uses (its scores and margins are features).
    refusal = lab.fit_refusal(rows, ranker if SERVING else None, folds(rows, k))
    # The chooser reads the serving ranking's passages too.
    chooser = lab.fit_quotes(rows, ranker if SERVING else None)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / RANKER_FILE.name, out / REFUSAL_FILE.name, out / QUOTES_FILE.name]
    written[0].write_text(ranker.to_json())
    written[1].write_text(refusal.to_json())
    written[2].write_text(chooser.to_json())
    return written


