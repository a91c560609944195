"""What the learned ranker, refusal classifier and quote chooser cost per question: the
decision path (retrieval, then answer / partial / refuse, no model) with the classifier
alone and with both, against the hand-set fusion and the coverage threshold; then the whole
quoted answer (decision and quotes, as served) with the learned quote chooser against the
hand-set quote score. Measured in the same run on the same index.

    .venv/bin/python bench/rank.py --index DIR [--questions FILE] [-n N]

Each question is decided once by each path before timing (so the embeddings of the question,
which both share and cache nowhere, are timed alike: both embed every time), then the two
paths alternate question by question. Prints the median milliseconds of each, the difference
and the ratio. The machine is shared: compare the difference and the ratio, not seconds."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from civicbot import config as config_mod
    from civicbot.quoting import packaged_quotes
    from civicbot.rank import packaged_ranker
    from civicbot.refusal import COVERAGE_THRESHOLD, packaged_refusal
    from civicbot.retrieve import Retriever
    from civicbot.service import Service

    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--questions", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "train.jsonl")
    parser.add_argument("-n", type=int, default=60)
    args = parser.parse_args()
    cfg = config_mod.build({"index": {"path": str(args.index)}}, env={}, base_dir=str(ROOT))
    service = Service(cfg)
    base = Retriever.from_config(service.snapshot(), service.embedder, cfg.retrieval,
                                 service.glossary)
    learned = service.pipeline(use_model=False, retriever=replace(base, ranker=packaged_ranker()),
                               refusal_model=packaged_refusal())
    serving = service.pipeline(use_model=False, retriever=replace(base, ranker=None),
                               refusal_model=packaged_refusal())
    before = service.pipeline(use_model=False, retriever=replace(base, ranker=None))
    before.settings.refusal_model = None
    before.settings.refusal_threshold = COVERAGE_THRESHOLD
    if packaged_ranker() is None or packaged_refusal() is None:
        sys.exit("no packaged ranker or refusal model: run `civicbot eval train` first")
    with args.questions.open(encoding="utf-8") as fh:
        questions = [json.loads(line)["question"] for line in fh if line.strip()][: args.n]
    for q in questions[:3]:  # warm-up: models loaded, caches of the passages filled
        learned.decide(q)
        serving.decide(q)
        before.decide(q)
    times: dict[str, list[float]] = {"learned": [], "serving": [], "before": []}
    for q in questions:
        for name, pipeline in (("before", before), ("serving", serving),
                               ("learned", learned)):
            started = time.perf_counter()
            pipeline.decide(q)
            times[name].append((time.perf_counter() - started) * 1000)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"{len(questions)} questions, median ms per decision (retrieve + decide, no model):")
    print(f"hand-set fusion + coverage threshold: {med['before']:7.1f} ms (served)")
    print(f"hand-set fusion + refusal classifier: {med['serving']:7.1f} ms "
          "(refusal_classifier = true)")
    print(f"learned ranker + refusal classifier:  {med['learned']:7.1f} ms")
    for name in ("serving", "learned"):
        print(f"{name}: added {med[name] - med['before']:+.1f} ms per question; "
              f"ratio {med[name] / med['before']:.2f}")

    # The whole quoted answer as served (threshold deciding), quotes chosen either way.
    hand = service.pipeline(use_model=False, retriever=replace(base, ranker=None))
    hand.settings.quote_model = None
    chooser = service.pipeline(use_model=False, retriever=replace(base, ranker=None))
    chooser.settings.quote_model = packaged_quotes()
    if chooser.settings.quote_model is None:
        sys.exit("no packaged quote chooser: run `civicbot eval train` first")
    quick: dict[str, list[float]] = {"hand": [], "chooser": []}
    for q in questions:
        for name, pipeline in (("hand", hand), ("chooser", chooser)):
            started = time.perf_counter()
            pipeline.quick(q)
            quick[name].append((time.perf_counter() - started) * 1000)
    hand_ms, chooser_ms = (statistics.median(quick[n]) for n in ("hand", "chooser"))
    print("median ms per quoted answer (retrieve, decide, quote; no model):")
    print(f"hand-set quote score:  {hand_ms:7.1f} ms")
    print(f"learned quote chooser: {chooser_ms:7.1f} ms (served)")
    print(f"chooser: added {chooser_ms - hand_ms:+.1f} ms per question; "
          f"ratio {chooser_ms / hand_ms:.2f}")


if __name__ == "__main__":
    main()
