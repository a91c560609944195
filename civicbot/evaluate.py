"""Quality measurement: retrieval on BEIR-layout benchmarks, answers on dev.jsonl, the refusal
threshold's calibration, and the per-question records and figures of one run (cross-validation
and training of the learned models, which reuse these figures, are civicbot/crossval.py's)."""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from civicbot import glossary, lang
from civicbot.config import Config
from civicbot.errors import ConfigError
from civicbot.index.crosslingual import CrossLingualIndex, shared_use
from civicbot.index.dense import DenseIndex
from civicbot.index.embed import make_embedder
from civicbot.index.lexical import LexicalIndex
from civicbot.index.store import Snapshot, lexical_text, passage_text
from civicbot.ingest.chunk import chunk_document
from civicbot.ingest.clean import normalise
from civicbot.records import Document, Page
from civicbot.retrieve import Retriever


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG as BEIR (pytrec_eval) computes it: graded gains, log2 discount."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def beir(folder: Path, cfg: Config) -> dict[str, float | int]:
    """Rank the whole corpus for every query with civicbot's own pipeline (cleaning, chunking,
    analysis, embedding, the cross-lingual side when configured, fusion) in a throw-away
    in-memory index."""
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        if not (folder / name).exists():
            raise ConfigError(f"{folder}: not a BEIR folder ({name} is missing)")
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels.tsv").open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and parts[2].lstrip("-").isdigit():
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])

    chunks, titles = [], {}
    for row in _jsonl(folder / "corpus.jsonl"):
        text = normalise(row.get("text", ""))
        title = normalise(row.get("title", ""))
        doc = Document(name=row["_id"], title=title, sha256="", page_count=1,
                       language=lang.detect(f"{title}\n{text}"),
                       pages=(Page(1, f"{title}\n{text}" if title else text),))
        titles[doc.name] = title
        chunks.extend(chunk_document(doc, cfg.retrieval.chunk_words,
                                     cfg.retrieval.overlap_words))
    started = time.perf_counter()
    embedder = make_embedder(cfg.embedding.model, cfg.embedding.batch_size)
    vectors = (embedder.embed([passage_text(c) for c in chunks])
               if cfg.retrieval.dense_weight > 0 else np.zeros((len(chunks), 1), np.float32))
    # As in the index store: the title is indexed with every passage (here it also starts the
    # text, as a PDF's title usually does on its first page).
    lexical = LexicalIndex.build([lexical_text(titles[c.doc], c) for c in chunks],
                                 [c.language for c in chunks])
    crosslingual = (CrossLingualIndex.build(chunks, shared_use())
                    if cfg.retrieval.crosslingual else None)
    snapshot = Snapshot(Path(tempfile.gettempdir()), embedder.name, {}, chunks,
                        DenseIndex.build(vectors, vectors.shape[1]), lexical, "", crosslingual)
    index_seconds = time.perf_counter() - started
    retriever = Retriever.from_config(snapshot, embedder, cfg.retrieval,
                                      glossary.for_config(cfg))

    ndcg, r10, r100, mrr = [], [], [], []
    queries = [q for q in _jsonl(folder / "queries.jsonl") if q["_id"] in qrels]
    for q in queries:
        ranked: list[str] = []
        for hit in retriever.search(q["text"], k=len(chunks)):
            owner = hit.chunk.doc
            if owner not in ranked:
                ranked.append(owner)
            if len(ranked) >= 100:
                break
        rel = {d: g for d, g in qrels[q["_id"]].items() if g > 0}
        ndcg.append(ndcg_at_k(ranked, qrels[q["_id"]], 10))
        r10.append(len(set(ranked[:10]) & rel.keys()) / len(rel))
        r100.append(len(set(ranked[:100]) & rel.keys()) / len(rel))
        first = next((i for i, d in enumerate(ranked[:10]) if d in rel), None)
        mrr.append(0.0 if first is None else 1 / (first + 1))
    return {
        "ndcg_at_10": round(statistics.fmean(ndcg), 4),
        "recall_at_10": round(statistics.fmean(r10), 4),
        "recall_at_100": round(statistics.fmean(r100), 4),
        "mrr_at_10": round(statistics.fmean(mrr), 4),
        "n_queries": len(queries),
        "index_seconds": round(index_seconds, 1),
    }


def _hit(hit_doc: str, page_start: int, page_end: int, gold: list[dict[str, Any]]) -> bool:
    return any(g["doc"] == hit_doc and any(page_start <= p <= page_end for p in g["pages"])
               for g in gold)


def _contains_fact(text: str, keys: list[str]) -> bool:
    folded = " ".join(text.lower().split())
    return any(" ".join(k.lower().split()) in folded for k in keys)


def qa(path: Path, cfg: Config, retrieval_only: bool = False,
       service: Any = None, use_model: bool = True,
       details: Path | None = None) -> dict[str, Any]:
    """Retrieval and answer quality on questions in the dev.jsonl format (../shared/eval);
    without `use_model`, answers are quoted only (fast, for trying out changes). `details`
    receives one line per question (see `record`); "groups" holds the figures per question
    language and for the cross-lingual questions."""
    from civicbot.service import Service

    service = service or Service(cfg)
    pipeline = None if retrieval_only else service.pipeline(use_model=use_model)
    records = []
    for row in _jsonl(path):
        hits = service.search(row["question"], 10) if row["answerable"] else None
        answer = pipeline.ask(row["question"]) if pipeline is not None else None
        records.append(record(row, hits, answer))
    _write_details(details, records)
    return {**summarise(records), "groups": by_group(records)}


def confidences(path: Path, service: Any) -> list[tuple[float, bool]]:
    """(retrieval confidence, answerable) for every question of a dev.jsonl-format file,
    computed exactly as the answer pipeline does before deciding to refuse."""
    pipeline = service.pipeline(use_model=False)
    out = []
    for row in _jsonl(path):
        question = pipeline.question(row["question"])
        hits = pipeline.retrieve(question)
        out.append((pipeline.confidence(question, hits), bool(row["answerable"])))
    return out


# How many bootstrap resamples the threshold is the median of (odd: the median is one of them).
RESAMPLES = 1001


def calibrate(pairs: list[tuple[float, bool]], max_false_refusals: float = 0.1,
              resamples: int = RESAMPLES, seed: int = 0) -> float:
    """The refusal threshold: `threshold_rule` on `pairs`, bagged — the median of its
    threshold over `resamples` bootstrap resamples of the questions (the answerable and the
    unanswerable ones each resampled on their own, so every resample has as many of each),
    with a fixed `seed` so the same questions give the same threshold. `resamples=0` is the
    rule on `pairs` themselves.

    Why bagged: the rule picks one point of an empirical curve drawn by a few dozen
    unanswerable questions, so one question more or less can move it a long way (on train's
    folds it jumped from 0.23 to 0.31 and refused 0.09 of the answerable questions held out);
    the median over resamples stays where most of them put it (docs/answering.md, "A bagged
    threshold")."""
    if resamples <= 0:
        return threshold_rule(pairs, max_false_refusals)
    # Sorted, so that the questions' order does not change the resamples.
    answerable = sorted(p for p in pairs if p[1])
    unanswerable = sorted(p for p in pairs if not p[1])
    if not answerable:
        raise ConfigError("calibration needs answerable questions")
    rng = np.random.default_rng(seed)
    thresholds = []
    for _ in range(resamples):
        sample = [answerable[i] for i in rng.integers(0, len(answerable), len(answerable))]
        if unanswerable:
            sample += [unanswerable[i]
                       for i in rng.integers(0, len(unanswerable), len(unanswerable))]
        thresholds.append(threshold_rule(sample, max_false_refusals))
    return round(float(np.median(thresholds)), 4)


def threshold_rule(pairs: list[tuple[float, bool]], max_false_refusals: float = 0.1) -> float:
    """The refusal threshold for `pairs` (score, answerable): of the thresholds that refuse
    at most `max_false_refusals` of the answerable questions, the one whose share of
    unanswerable questions refused most exceeds its share of answerable ones refused
    (Youden's J within the budget; of equals the lowest), placed midway between the highest
    unanswerable score it refuses and the next answerable score (the widest margin on both
    sides).

    Spending the whole budget instead (the rule until docs/answering.md, "The refusal
    threshold's rule") refused five answerable questions of train.jsonl to refuse one more
    unanswerable one."""
    answerable = sorted(s for s, a in pairs if a)
    unanswerable = [s for s, a in pairs if not a]
    if not answerable:
        raise ConfigError("calibration needs answerable questions")
    n_unanswerable = max(len(unanswerable), 1)
    best, threshold = -math.inf, 0.0
    # k answerable questions below the threshold, for k up to the budget: the threshold
    # refuses every unanswerable question scoring below the (k+1)th answerable one.
    for ceiling in answerable[:int(max_false_refusals * len(answerable)) + 1]:
        floor = max((s for s in unanswerable if s < ceiling), default=0.0)
        candidate = (floor + min(s for s in answerable if s > floor)) / 2
        false = sum(s < candidate for s in answerable)
        gain = sum(s < candidate for s in unanswerable) / n_unanswerable - false / len(answerable)
        if gain > best + 1e-12:
            best, threshold = gain, candidate
    return round(threshold, 4)


def calibration_check(pairs: list[tuple[float, bool]],
                      max_false_refusals: float = 0.1) -> list[str]:
    """A 2-fold check of `calibrate`: the threshold calibrated on every other question,
    applied to the rest, both ways. A threshold that only fits the questions it was chosen
    on shows up here as refusals far from the target on the other half."""
    lines = []
    halves = [pairs[0::2], pairs[1::2]]
    for name, train, test in (("even", halves[0], halves[1]), ("odd", halves[1], halves[0])):
        threshold = calibrate(train, max_false_refusals)
        unanswerable = [s < threshold for s, a in test if not a]
        answerable = [s < threshold for s, a in test if a]
        lines.append(
            f"2-fold: threshold {threshold} from the {name} questions refuses "
            f"{sum(unanswerable)}/{len(unanswerable)} unanswerable and "
            f"{sum(answerable)}/{len(answerable)} answerable of the others")
    return lines


# ---- per-question records and their figures -------------------------------------------

def _first_gold_rank(hits: list[Any], gold: list[dict[str, Any]]) -> int | None:
    return next((i + 1 for i, h in enumerate(hits)
                 if _hit(h.chunk.doc, h.chunk.page_start, h.chunk.page_end, gold)), None)


def crosslingual(row: dict[str, Any]) -> bool:
    """The question's language differs from its (first) gold document's (`nl_*`, `en_*`)."""
    gold = row.get("gold") or []
    return bool(gold) and not gold[0]["doc"].startswith(f"{row['lang']}_")


def record(row: dict[str, Any], hits: list[Any] | None, answer: Any) -> dict[str, Any]:
    """One question's line of `eval qa --details`: where its first gold passage ranked and
    what the answer did."""
    gold = row.get("gold", [])
    out: dict[str, Any] = {"id": row.get("id", ""), "lang": row.get("lang", ""),
                           "answerable": bool(row["answerable"]),
                           "crosslingual": crosslingual(row)}
    if row["answerable"] and hits is not None:
        out["gold_rank"] = _first_gold_rank(hits, gold)
    if answer is not None:
        out.update({
            "mode": answer.mode, "refused": answer.refused,
            "confidence": round(float(answer.confidence), 4),
            "citations": [{"doc": c.doc, "pages": [c.page_start, c.page_end],
                           "on_gold": _hit(c.doc, c.page_start, c.page_end, gold)}
                          for c in answer.citations],
            "seconds": round(answer.seconds, 3),
        })
        if row["answerable"]:
            out["key_fact"] = (not answer.refused
                               and _contains_fact(answer.text, row["must_contain_any"]))
    return out


def summarise(records: list[dict[str, Any]]) -> dict[str, float | int]:
    """The figures of `eval qa` from per-question records (see `record`)."""
    def mean(xs: list[Any]) -> float:
        return round(statistics.fmean(xs), 4) if xs else 0.0

    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    ranks = [r.get("gold_rank") for r in answerable if "gold_rank" in r]
    result: dict[str, float | int] = {
        "hit_at_1": mean([x is not None and x <= 1 for x in ranks]),
        "hit_at_5": mean([x is not None and x <= 5 for x in ranks]),
        "mrr": mean([1 / x if x is not None else 0.0 for x in ranks]),
    }
    answered = [r for r in records if "mode" in r]
    if answered:
        cites = [c["on_gold"] for r in answerable for c in r.get("citations", [])]
        result.update({
            "key_fact_rate": mean([r["key_fact"] for r in answerable if "key_fact" in r]),
            "citation_accuracy": mean(cites),
            "refusal_accuracy": mean([r["refused"] for r in unanswerable if "mode" in r]),
            "false_refusal_rate": mean([r["refused"] for r in answerable if "mode" in r]),
        })
    result.update({"n_answerable": len(answerable), "n_unanswerable": len(unanswerable)})
    if answered:
        result["median_seconds_per_answer"] = round(
            statistics.median(r["seconds"] for r in answered), 2)
    return result


def by_group(records: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """The figures per question language and for the cross-lingual questions (whose
    answerable part is the cross-lingual answerable questions alone)."""
    out = {}
    for language in sorted({r["lang"] for r in records}):
        out[language] = summarise([r for r in records if r["lang"] == language])
    cross = [r for r in records if r["crosslingual"]]
    if cross:
        out["crosslingual"] = summarise(cross)
    return out


def _write_details(path: Path | None, records: list[dict[str, Any]]) -> None:
    if path is None:
        return
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
