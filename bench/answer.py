"""Answer latency: civicbot's whole answer path (retrieval, prompt, generation, grounding
check) against raw llama-cpp generation of the same prompt, measured in the same run.

    .venv/bin/python bench/answer.py [--corpus DIR] [--questions N]

Prints time to first token / first visible text and total time for both, and the overhead
ratio (civicbot total / raw total). The machine is shared: compare ratios, not seconds."""

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
        civic_first, civic_total, raw_first, raw_total = [], [], [], []
        for question in QUESTIONS[: args.questions]:
            first: list[float] = []

            def seen(_text: str, first: list[float] = first) -> None:
                first.append(time.perf_counter())

            gen._model().reset()  # no KV-cache reuse between the two runs: both read the prompt
            started = time.perf_counter()
            answer = pipeline.ask(question, on_text=seen)
            civic_total.append(time.perf_counter() - started)
            # Only checked sentences are shown while streaming; when none is (the answer
            # is quoted instead), the first visible text is the final answer.
            civic_first.append(first[0] - started if first else civic_total[-1])

            # exactly the prompt civicbot gave the model for this question
            messages, _ = pipeline.prompt(question, answer.language, answer.hits)
            gen._model().reset()
            started = time.perf_counter()
            got_first = None
            for _piece in gen.stream(messages, max_tokens=cfg.llm.max_tokens):
                got_first = got_first or time.perf_counter()
            raw_total.append(time.perf_counter() - started)
            raw_first.append((got_first or time.perf_counter()) - started)
            print(f"{answer.mode:10} {civic_total[-1]:5.1f} s  raw {raw_total[-1]:5.1f} s  "
                  f"{question[:60]}")
    med = statistics.median
    print(f"\nmodel: {service.model_path().name}; {len(civic_total)} questions; medians:")
    print(f"raw llama-cpp:  first token {med(raw_first):.2f} s, total {med(raw_total):.2f} s")
    print(f"civicbot:       first visible text {med(civic_first):.2f} s, "
          f"total {med(civic_total):.2f} s")
    print(f"overhead ratio (civicbot total / raw total): {med(civic_total) / med(raw_total):.2f}")


if __name__ == "__main__":
    main()
