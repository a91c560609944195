"""Local generation with llama-cpp-python: the only module that imports llama_cpp."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicbot.config import LlmConfig
from civicbot.errors import GenerationTimeout, ModelError

if TYPE_CHECKING:
    from llama_cpp import Llama


_HOW_TO_FIX = (
    "Run `civicbot models` to place the default model, or set [llm] model_path to a GGUF file."
)


class LlamaGenerator:
    """A GGUF chat model on the CPU. Loaded on first use, once; one generation at a time."""

    def __init__(self, model_path: Path, llm: LlmConfig | None = None):
        """`model_path` already resolved; the other settings from an `[llm]` section (default:
        the config's defaults)."""
        llm = llm or LlmConfig()
        self.model_path = Path(model_path)
        self.name = self.model_path.name
        self.n_ctx = llm.n_ctx
        self.n_threads = llm.n_threads or os.cpu_count() or 1
        self.temperature = llm.temperature
        self.max_tokens = llm.max_tokens
        self.time_limit_s = llm.time_limit_s
        self._llama: Llama | None = None
        self._load_lock = threading.Lock()
        # A llama.cpp context holds one sequence: concurrent generations would corrupt it.
        self._generate_lock = threading.Lock()

    @property
    def context_size(self) -> int:
        """Tokens the loaded context holds: prompt and reply together."""
        return self._model().n_ctx()

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's vocabulary (no special tokens added)."""
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int | None = None
    ) -> Iterator[str]:
        """Yield the reply to chat `messages` piece by piece, formatted with the model's own chat
        template. Waits while another generation runs. When the time limit (counted from the
        start of this generation, not the wait) passes, stops after yielding what was written
        and raises GenerationTimeout. Close the iterator if you stop early: it holds the lock."""
        llama = self._model()
        with self._generate_lock:
            deadline = time.monotonic() + self.time_limit_s
            try:
                chunks: Any = llama.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]  # plain dicts are fine
                    stream=True,
                    temperature=self.temperature,
                    max_tokens=max_tokens or self.max_tokens,
                )
            except ValueError as exc:  # llama_cpp's word for a prompt longer than the context
                raise ModelError(f"{self.name} cannot take this prompt: {exc}") from exc
            try:
                for chunk in _translated(chunks, self.name):
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        yield text
                    if choice.get("finish_reason") is not None:
                        return
                    # Not on the opening role-only chunk: it arrives together with the first
                    # piece of text, which a slow prompt evaluation must not throw away.
                    if text is not None and time.monotonic() > deadline:
                        raise GenerationTimeout(
                            f"The model did not finish within {self.time_limit_s:g} s; "
                            "the reply was cut off."
                        )
            finally:
                # Closing resets llama.cpp's generation state when we stopped early.
                getattr(chunks, "close", lambda: None)()

    def _model(self) -> Llama:
        if self._llama is None:
            with self._load_lock:
                if self._llama is None:
                    self._llama = self._load()
        return self._llama

    def _load(self) -> Llama:
        if not self.model_path.is_file():
            raise ModelError(f"The model file {self.model_path} does not exist. {_HOW_TO_FIX}")
        # llama.cpp's threads meet at an OpenMP barrier after every op; spinning there is
        # ruinous when other processes share the cores (measured on a busy 2-core machine:
        # 1-10 tokens/s with 10 s stalls, against 23-25 tokens/s passive). libgomp reads this
        # once, when it is first loaded: here, unless torch (which ships a libgomp.so.1 that
        # llama_cpp then shares) came first, so entry points set it early too. The user's wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                f"llama-cpp-python is not installed ({exc}); install civicbot's dependencies."
            ) from exc
        try:
            return Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"Cannot load {self.model_path} as a GGUF model ({exc}). The file may be damaged "
                f"or in a format this llama-cpp-python does not read. {_HOW_TO_FIX}"
            ) from exc


def _translated(chunks: Iterator[Any], name: str) -> Iterator[Any]:
    """The chunks of a streamed completion; llama_cpp's errors raised while iterating (the
    prompt is evaluated on the first `next`) become ModelError."""
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except ValueError as exc:
            raise ModelError(f"{name} cannot take this prompt: {exc}") from exc
        yield chunk
