"""The small interfaces the core talks to. Adapters (sentence-transformers, llama-cpp, nio)
implement them; tests use small honest implementations."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from civicbot.records import Answer, DocInfo, Hit, Turn

if TYPE_CHECKING:
    from civicbot.answer.question import Question


class Embedder(Protocol):
    name: str  # identifies the model; the index refuses to mix names

    @property
    def dimension(self) -> int:
        """Length of a vector (read-only: an adapter may have to load its model to know)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class Generator(Protocol):
    name: str

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int | None = None
    ) -> Iterator[str]:
        """Yield pieces of the reply to chat `messages` ({"role", "content"} dicts)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def context_size(self) -> int: ...


class Answerer(Protocol):
    """What the bot and the CLI need from the answering service. Blocking calls: run them
    in a thread (`asyncio.to_thread`) from async code."""

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer `question`; `on_text` is called with the text so far while it is written."""
        ...

    def documents(self) -> list[DocInfo]: ...

    def about(self) -> dict[str, str]:
        """Facts for the transparency card: model file, sha256 prefix, embedding model,
        number of documents, last corpus change."""
        ...


class TwoStepAnswerer(Answerer, Protocol):
    """An answerer that answers at once from the documents and lets the model add a lead
    later (civicbot.service.Service). The bot sends `quick`'s answer first and queues only
    `refine`."""

    def quick(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """The checked quoted answer or the refusal, without the model."""
        ...

    def wants_model(self, answer: Answer) -> bool:
        """Whether `refine` would ask the model at all."""
        ...

    def refine(
        self, answer: Answer, on_text: Callable[[str], None] | None = None
    ) -> Answer | None:
        """`answer` with the model's checked lead, or None when it adds nothing."""
        ...


class EvidenceSource(Protocol):
    """What the answer pipeline reads the documents through: civicbot.retrieve.Retriever for
    one snapshot of the index (tests use a fixed list of passages)."""

    def search(self, query: str | Question, k: int = 10) -> list[Hit]:
        """The `k` best passages for a question (or a plain query), best first."""
        ...

    def neighbours(self, hits: list[Hit]) -> list[Hit]:
        """The passages next to `hits` that are not among them."""
        ...

    def coverage(self, question: str, hit: Hit) -> float:
        """How much of `question` the passage of `hit` covers (0..1)."""
        ...

    def windows(self, question: str, hit: Hit) -> tuple[tuple[int, float], ...]:
        """For each window of a few words of the passage of `hit`: its first word and its
        similarity to `question` (empty when there is no such index)."""
        ...

    def translations(self, question: str) -> dict[str, str]:
        """`question` in each other language of the documents, word by word."""
        ...

    def titles(self) -> list[str]:
        """The titles of all documents."""
        ...

    def link(self, hit: Hit, page: int) -> str:
        """Where a citation of `hit` on `page` points."""
        ...
