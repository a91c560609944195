"""The service: builds civicbot's parts from a Config and keeps the serving index fresh.
The CLI and the bot talk to this; it talks to the core and the adapters."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from civicbot import glossary
from civicbot.config import Config
from civicbot.corpus import Corpus
from civicbot.glossary import Glossary
from civicbot.index.embed import make_embedder
from civicbot.index.store import IndexStore, Snapshot
from civicbot.protocols import Embedder
from civicbot.records import Answer, DocInfo, Hit, Turn
from civicbot.retrieve import Retriever

if TYPE_CHECKING:  # imported where used: a command that needs no OCR or model loads neither
    from civicbot.curator import Curator
    from civicbot.ingest.ocr import TesseractOcr
    from civicbot.protocols import Generator

log = logging.getLogger(__name__)


class Service:
    """Search (and, with a generator, answers) over the serving index. Thread-safe: a new
    generation written by an ingest or sync is picked up before the next question, and a
    question already running finishes on the snapshot it started with."""

    def __init__(self, cfg: Config, embedder: Embedder | None = None):
        self.cfg = cfg
        self.embedder = embedder or make_embedder(cfg.embedding.model, cfg.embedding.batch_size)
        self.store = IndexStore(cfg.paths.index)
        # Term translations for cross-lingual questions: built in, plus `[retrieval] glossary`,
        # read now so a broken file stops the start with a ConfigError, not the first question.
        self.glossary: Glossary = glossary.for_config(cfg)
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    @functools.cached_property
    def corpus(self) -> Corpus:
        return Corpus(self.store, self.embedder, self.cfg.retrieval, self.cfg.corpus,
                      ocr=self.ocr)

    @functools.cached_property
    def ocr(self) -> TesseractOcr | None:
        """The OCR reader for scanned pages, or None when [ocr] enabled = false."""
        from civicbot.ingest.ocr import TesseractOcr

        return TesseractOcr.from_config(self.cfg.ocr) if self.cfg.ocr.enabled else None

    @functools.cached_property
    def curator(self) -> Curator:
        """The corpus with every change recorded in the audit log (civicbot/audit.py)."""
        from civicbot.audit import AUDIT_FILE, AuditLog
        from civicbot.curator import Curator

        data = self.cfg.paths.data
        return Curator(self.corpus, AuditLog(data / AUDIT_FILE), list(self.cfg.paths.corpus),
                       data / "attic")

    def snapshot(self) -> Snapshot:
        """The serving generation, reloaded when a writer has swapped in a new one. Should
        the new one vanish while it loads (two quick commits let the store collect it), the
        load is tried again; failing that, the last good snapshot keeps serving."""
        with self._lock:
            for attempt in range(3):
                gen = self.store.current_generation()
                if self._snapshot is not None and (gen is None or self._snapshot.path == gen):
                    return self._snapshot
                try:
                    self._snapshot = self.store.load(self.embedder.name,
                                                     self.corpus.crosslingual_model)
                    return self._snapshot
                except (OSError, ValueError) as exc:
                    if attempt == 2 and self._snapshot is not None:
                        log.warning("loading the new index failed (%s); still serving %s",
                                    exc, self._snapshot.path.name)
                        return self._snapshot
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover

    def search(self, query: str, k: int = 10) -> list[Hit]:
        retriever = Retriever.from_config(self.snapshot(), self.embedder, self.cfg.retrieval,
                                          self.glossary)
        return retriever.search(query, k)

    # ---- answers ---------------------------------------------------------------------------

    @functools.cached_property
    def generator(self) -> Generator:
        """The local model (loaded lazily on the first question), or with `[llm] backend =
        "server"` the pool of inference servers (civicbot/answer/pool.py)."""
        if self.cfg.llm.backend == "server":
            from civicbot.answer.pool import ServerPool

            return ServerPool.from_config(self.cfg.llm, os.environ)
        from civicbot.answer.llm import LlamaGenerator

        return LlamaGenerator(self.model_path(), self.cfg.llm)

    def model_path(self) -> Path:
        return self.cfg.paths.llm_model

    def pipeline(self, use_model: bool = True, retriever: Retriever | None = None,  # type: ignore[no-untyped-def]
                 refusal_model=None, quote_model=None):
        """The answer pipeline over the serving snapshot; `retriever`, `refusal_model` and
        `quote_model` replace the default ones (evaluation uses them to try models fitted on other
        questions)."""
        from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings
        from civicbot.quoting import packaged_quotes
        from civicbot.refusal import packaged_refusal

        if retriever is None:
            retriever = Retriever.from_config(self.snapshot(), self.embedder,
                                              self.cfg.retrieval, self.glossary)
        settings = AnswerSettings(top_k=self.cfg.retrieval.top_k,
                                  max_tokens=self.cfg.llm.max_tokens)
        # A negative `[answer] refusal_threshold` keeps the calibrated one (AnswerSettings).
        threshold = self.cfg.answer.refusal_threshold
        if threshold >= 0:
            settings.refusal_threshold = threshold
        # The classifier decides when asked to (or when evaluation hands one in); otherwise
        # the threshold decides and the classifier only finds the partial answers.
        settings.refusal_model = refusal_model or packaged_refusal()
        settings.refusal_by_model = refusal_model is not None or (
            self.cfg.answer.refusal_classifier and threshold < 0)
        if quote_model is not None:
            settings.quote_model = quote_model
        elif self.cfg.answer.learned_quotes:
            settings.quote_model = packaged_quotes()
        return AnswerPipeline(retriever, self.generator if use_model else None, settings)

    def ask(self, question: str, history: Sequence[Turn] = (),
            on_text: Callable[[str], None] | None = None) -> Answer:
        """`quick`, then `refine`: the whole answer in one call (the CLI, evaluations)."""
        return self.pipeline().ask(question, history, on_text)

    def prepare(self, questions: Sequence[tuple[str, Sequence[Turn]]]) -> None:
        """Embed a burst of questions (each with its thread history) in one batch, so that
        their `quick` answers, asked next, skip the embedding models (measured in
        bench/load.py; civicbot/index/memo.py). Only a speed-up: `quick` is right without it."""
        from civicbot.answer.pipeline import retrieval_query

        retriever = Retriever.from_config(self.snapshot(), self.embedder, self.cfg.retrieval,
                                          self.glossary)
        retriever.prepare([retrieval_query(q, h) for q, h in questions])

    def quick(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """The checked quoted answer or the refusal, without the model (well under 1 s)."""
        return self.pipeline(use_model=False).quick(question, history)

    def wants_model(self, answer: Answer) -> bool:
        """Whether `refine` would ask the model for `answer` (cheap; no generation)."""
        return self.pipeline().wants_model(answer)

    def refine(self, answer: Answer,
               on_text: Callable[[str], None] | None = None) -> Answer | None:
        """`answer` with the model's checked lead in front, or None (see AnswerPipeline)."""
        return self.pipeline().refine(answer, on_text)

    def documents(self) -> list[DocInfo]:
        return sorted(self.snapshot().docs.values(), key=lambda d: d.name)

    def about(self) -> dict[str, str]:
        """Facts for !about. Where the model runs is public: the backend, and with servers
        their hosts (a citizen may check they are the organisation's own)."""
        docs = self.documents()
        llm = self.cfg.llm
        if llm.backend == "server":
            from civicbot.answer.server import host_of

            model = {"model": llm.model or "the servers' default model",
                     "backend": "inference servers (OpenAI-compatible API)",
                     "servers": ", ".join(host_of(u) for u in llm.servers)}
        else:
            path = self.model_path()
            model = {"model": path.name, "model_sha256": _sha256_prefix(path),
                     "backend": "local (inside this process)"}
        return {
            **model,
            "embedding_model": self.embedder.name,
            "documents": str(len(docs)),
            "corpus_updated": self.snapshot().created or "never",
        }




@functools.cache
def _sha256_prefix(path: Path) -> str:
    from civicbot.models import file_sha256

    return file_sha256(path)[:12] if path.exists() else "missing"
