"""LlamaGenerator with the real default model (SmolLM2-135M-Instruct, 98 MB), placed by
`ensure_default_llm` in CIVICBOT_TEST_MODELS_DIR (default /tmp/civicbot-test-models) so that
later runs reuse it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from civicbot.answer.llm import LlamaGenerator
from civicbot.config import DEFAULT_GGUF_NAME, LlmConfig
from civicbot.errors import GenerationTimeout, ModelError
from civicbot.models import ensure_default_llm

QUESTION = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
LONG_TASK = [{"role": "user", "content": "Write a very long story about a city council."}]


@pytest.fixture(scope="session")
def model_path() -> Path:
    models_dir = Path(os.environ.get("CIVICBOT_TEST_MODELS_DIR", "/tmp/civicbot-test-models"))
    return ensure_default_llm(models_dir)


@pytest.fixture(scope="module")
def generator(model_path: Path) -> LlamaGenerator:
    return LlamaGenerator(model_path, LlmConfig(n_ctx=2048, n_threads=0, temperature=0.1,
                                                max_tokens=48, time_limit_s=60.0))


@pytest.mark.slow
def test_streams_a_reply(generator: LlamaGenerator) -> None:
    pieces = list(generator.stream(QUESTION))
    assert pieces and all(isinstance(p, str) and p for p in pieces)
    reply = "".join(pieces)
    assert reply.strip()
    assert "<|im_end|>" not in reply and "<|im_start|>" not in reply  # template stop honoured
    assert generator.count_tokens(reply) <= 48 + 1


@pytest.mark.slow
def test_counts_tokens_and_reports_context(generator: LlamaGenerator) -> None:
    assert generator.name == DEFAULT_GGUF_NAME
    assert generator.context_size == 2048
    short = generator.count_tokens("Hello world")
    assert short > 0
    assert generator.count_tokens("Hello world. " * 20) > 10 * short
    assert generator.count_tokens("") == 0


@pytest.mark.slow
def test_time_limit_keeps_partial_text_then_raises(model_path: Path) -> None:
    hasty = LlamaGenerator(model_path, LlmConfig(max_tokens=1500, time_limit_s=0.5))
    hasty.count_tokens("load the model before the clock starts")
    pieces: list[str] = []
    arrived: list[float] = []
    with pytest.raises(GenerationTimeout):
        for piece in hasty.stream(LONG_TASK):
            pieces.append(piece)
            arrived.append(time.monotonic())
    stopped = time.monotonic()
    assert pieces, "the text written before the limit was yielded"
    # It stopped soon after the limit, far short of max_tokens. (Measured from the first piece:
    # on a busy machine the prompt alone can take longer than the limit.)
    assert hasty.count_tokens("".join(pieces)) < 200
    assert stopped - arrived[0] < 5
    # The lock was released and the model still works after an interrupted generation.
    hasty.time_limit_s = 60
    assert "".join(hasty.stream(QUESTION, max_tokens=8)).strip()


@pytest.mark.slow
def test_concurrent_generations_are_serialised(generator: LlamaGenerator) -> None:
    events: list[tuple[float, str, str]] = []  # (time, thread, "start" | "piece" | "end")
    failures: list[BaseException] = []
    gate = threading.Barrier(2)

    def run(label: str) -> None:
        try:
            gate.wait()
            stream = generator.stream(QUESTION, max_tokens=16)
            for i, _ in enumerate(stream):
                events.append((time.monotonic(), label, "start" if i == 0 else "piece"))
            events.append((time.monotonic(), label, "end"))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(label,)) for label in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    intervals = {}
    for label in ("a", "b"):
        times = [t for t, who, _ in events if who == label]
        assert len(times) >= 2, f"thread {label} produced no text"
        intervals[label] = (min(times), max(times))
    first, second = sorted(intervals.values())
    assert first[1] <= second[0], f"generations overlapped: {intervals}"
    # Every event of one thread comes before every event of the other.
    order = [who for _, who, _ in sorted(events)]
    assert order == sorted(order, key=order.index)


def test_missing_model_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    generator = LlamaGenerator(missing)
    with pytest.raises(ModelError) as caught:
        generator.count_tokens("hello")
    assert str(missing) in str(caught.value)
    assert "civicbot models" in str(caught.value)
    assert "[llm] model_path" in str(caught.value)


def test_file_that_is_not_gguf_is_a_model_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 100)
    with pytest.raises(ModelError, match="junk.gguf"):
        list(LlamaGenerator(junk).stream(QUESTION))
