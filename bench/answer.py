"""Answer latency: civicbot's answer in two steps — the quoted answer (retrieval, refusal
decision, quoting; no model) and the final answer (the model's checked lead added) — against
raw llama-cpp generation of the same prompt, measured in the same run.

    .venv/bin/python bench/answer.py [--corpus DIR] [--questions N]

Prints per question and as medians: time to the first useful answer (the quoted answer or
the refusal), time to the final answer, and raw llama-cpp's first token and total time on
the prompt the model got. The machine is shared: compare ratios, not seconds."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.questions import DOCS, QUESTIONS  # noqa: E402


def main() -> None:
    from civicbot import config as config_mod
    from civicbot.service import Service

    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--questions", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_mod.build({"index": {"path": str(Path(tmp) / "index")}}, env={},
                               base_dir=str(ROOT))
        service = Service(cfg)
        service.corpus.ingest([args.corpus / d for d in DOCS])
        pipeline = service.pipeline()
        gen = service.generator
        gen.count_tokens("warm-up")  # loads the model: not part of either figure
        pipeline.quick("warm-up")  # and the embedders
        first_useful, final, raw_first, raw_total = [], [], [], []
        print("first answer   final    raw total  final mode   question")
        for question in QUESTIONS[: args.questions]:
            gen._model().reset()  # no KV-cache reuse between the two runs: both read the prompt
            started = time.perf_counter()
            quoted = pipeline.quick(question)
            first_useful.append(time.perf_counter() - started)
            refined = pipeline.refine(quoted) if pipeline.wants_model(quoted) else None
            final.append(time.perf_counter() - started)
            answer = refined or quoted

            # exactly the prompt civicbot gives the model for this question
            messages, _ = pipeline.prompt(quoted.query or question, quoted.language,
                                          quoted.hits)
            gen._model().reset()
            started = time.perf_counter()
            got_first = None
            for _piece in gen.stream(messages, max_tokens=cfg.llm.max_tokens):
                got_first = got_first or time.perf_counter()
            raw_total.append(time.perf_counter() - started)
            raw_first.append((got_first or time.perf_counter()) - started)
            print(f"{first_useful[-1]:9.2f} s {final[-1]:7.2f} s {raw_total[-1]:7.2f} s  "
                  f"{answer.mode:11} {question[:50]}")
    med = statistics.median
    print(f"\nmodel: {service.model_path().name}; {len(final)} questions; medians:")
    print(f"raw llama-cpp:  first token {med(raw_first):.2f} s, total {med(raw_total):.2f} s")
    print(f"civicbot:       first useful answer {med(first_useful):.2f} s, "
          f"final answer {med(final):.2f} s")
    print(f"first useful answer / raw first token: {med(first_useful) / med(raw_first):.2f}; "
          f"final / raw total: {med(final) / med(raw_total):.2f}")


if __name__ == "__main__":
    main()
