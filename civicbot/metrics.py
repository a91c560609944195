"""What an operator watches: Prometheus metrics of the running bot, in one registry of this
process (served at /metrics by `civicbot.health`).

The bot records its own events (questions, first answers, the model's leads and the
generation queue, Matrix sync). Other parts call:

- `sync_finished(ok, when=None)` when a corpus sync of the configured sources ends (the
  scheduled sync job calls it; `when` is a Unix time, default now). It sets
  `civicbot_last_sync_timestamp_seconds` and `civicbot_last_sync_ok` (1 or 0). Only a sync
  that runs inside the bot's process is seen: a separate `civicbot sync` command has its own
  registry.
- `index_loaded(documents, chunks)` / `index_failed(reason)` when the serving index was
  (re)loaded or could not be; /healthz answers 503 while the index is not loaded.
- The pool of inference servers (`[llm] backend = "server"`, civicbot/answer/pool.py):
  `server_up`, `server_in_flight`, `server_answered`, `server_failed`, `servers_all_down`,
  labelled by the server's host:port.

Metric names follow Prometheus conventions (`_total` counters, `_seconds` units)."""

from __future__ import annotations

import threading
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # memory and CPU of the bot process
PlatformCollector(registry=REGISTRY)

QUESTIONS = Counter(
    "civicbot_questions", "Questions that got a final reply, by outcome: generated (the model's "
    "checked answer), extractive (quoted from the documents), partial (the documents cover the "
    "topic but not the detail asked: declined, with a quote of what they do say), refused (the "
    "documents do not answer it), error (something failed; the citizen got an apology)",
    ["outcome"], registry=REGISTRY)
EXTRACTIVE_FALLBACKS = Counter(
    "civicbot_extractive_fallbacks", "Answers quoted from the documents instead of generated "
    "(the model's text did not pass the grounding check, or no model answered in time)",
    registry=REGISTRY)
ERRORS = Counter("civicbot_errors", "Failures while answering, by kind", ["kind"],
                 registry=REGISTRY)
TURNED_AWAY = Counter("civicbot_questions_turned_away",
                      "Questions not queued, by reason (busy: queue full; rate_limited)",
                      ["reason"], registry=REGISTRY)
QUEUE_LENGTH = Gauge("civicbot_queue_length", "Answers waiting for the model (their quoted "
                     "answer already sent; not counting the one being written)",
                     registry=REGISTRY)
# Answers on a CPU take seconds to minutes: buckets up to the default time limit and beyond.
_ANSWER_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300)
ANSWER_LATENCY = Histogram("civicbot_answer_latency_seconds",
                           "From a question's arrival to its final answer", ["outcome"],
                           buckets=_ANSWER_BUCKETS, registry=REGISTRY)
FIRST_SIGN_OF_LIFE = Histogram("civicbot_first_sign_of_life_seconds",
                               "From a question's arrival to the bot's first reply in its "
                               "thread (the placeholder or the place in the queue)",
                               buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
                               registry=REGISTRY)
FIRST_ANSWER = Histogram("civicbot_first_answer_seconds",
                         "From a question's arrival to its first useful answer in the thread "
                         "(the checked quoted answer or the refusal)",
                         buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60), registry=REGISTRY)
REFINEMENTS = Counter(
    "civicbot_refinements", "The model's lead for an answer already sent, by outcome: added "
    "(a checked lead was edited in), nothing (the model added nothing that passed the check), "
    "not_asked (the quote alone answers, or nothing to refine), skipped_busy (the generation "
    "queue was full: the quoted answer stayed as it was), error", ["outcome"],
    registry=REGISTRY)
DOCUMENTS = Gauge("civicbot_documents", "Documents in the serving index", registry=REGISTRY)
CHUNKS = Gauge("civicbot_chunks", "Passages in the serving index", registry=REGISTRY)
INDEX_LOADED = Gauge("civicbot_index_loaded", "1 when the serving index is loaded",
                     registry=REGISTRY)
LAST_SYNC = Gauge("civicbot_last_sync_timestamp_seconds",
                  "When the last corpus sync of the configured sources finished (Unix time)",
                  registry=REGISTRY)
LAST_SYNC_OK = Gauge("civicbot_last_sync_ok", "1 when the last corpus sync succeeded",
                     registry=REGISTRY)
MATRIX_SYNC = Gauge("civicbot_matrix_last_sync_timestamp_seconds",
                    "When the bot last received a sync response from the homeserver",
                    registry=REGISTRY)

SERVER_UP = Gauge("civicbot_llm_server_up", "1 while an inference server takes requests, 0 "
                  "while it is taken out after a failure", ["server"], registry=REGISTRY)
SERVER_IN_FLIGHT = Gauge("civicbot_llm_server_in_flight",
                         "Generations running on an inference server now", ["server"],
                         registry=REGISTRY)
SERVER_LATENCY = Histogram("civicbot_llm_server_generation_seconds",
                           "How long an inference server took for a whole answer", ["server"],
                           buckets=_ANSWER_BUCKETS, registry=REGISTRY)
SERVER_ERRORS = Counter("civicbot_llm_server_errors", "Requests an inference server failed "
                        "(unreachable, timed out, broke off, error status)", ["server"],
                        registry=REGISTRY)

OUTCOMES = ("generated", "extractive", "partial", "refused", "error")
for _outcome in OUTCOMES:  # every series exists from the start, at 0
    QUESTIONS.labels(_outcome)
for _reason in ("busy", "rate_limited"):
    TURNED_AWAY.labels(_reason)
REFINEMENT_OUTCOMES = ("added", "nothing", "not_asked", "skipped_busy", "error")
for _outcome in REFINEMENT_OUTCOMES:
    REFINEMENTS.labels(_outcome)


class _Liveness:
    """What /healthz needs, written by the bot's event loop, read by the HTTP thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_matrix_sync: float | None = None  # time.monotonic()
        self.index_problem: str | None = "the index is not loaded yet"


liveness = _Liveness()


def question_finished(mode: str | None, seconds: float) -> None:
    """A question got its final reply: `mode` is the Answer's mode, None for an error."""
    outcome = mode if mode in OUTCOMES else "error"
    QUESTIONS.labels(outcome).inc()
    if outcome == "extractive":
        EXTRACTIVE_FALLBACKS.inc()
    if outcome == "error":
        ERRORS.labels("answer").inc()
    ANSWER_LATENCY.labels(outcome).observe(seconds)


def first_sign_of_life(seconds: float) -> None:
    FIRST_SIGN_OF_LIFE.observe(seconds)


def first_answer(seconds: float) -> None:
    """The citizen got the quoted answer or the refusal, `seconds` after asking."""
    FIRST_ANSWER.observe(seconds)


def refinement(outcome: str) -> None:
    """What became of the model's lead for one answer (one of REFINEMENT_OUTCOMES)."""
    REFINEMENTS.labels(outcome if outcome in REFINEMENT_OUTCOMES else "error").inc()


def turned_away(reason: str) -> None:
    TURNED_AWAY.labels(reason).inc()


def matrix_synced(now: float | None = None) -> None:
    """The bot received a sync response (its heartbeat)."""
    with liveness.lock:
        liveness.last_matrix_sync = time.monotonic() if now is None else now
    MATRIX_SYNC.set(time.time())


def index_loaded(documents: int, chunks: int) -> None:
    with liveness.lock:
        liveness.index_problem = None
    INDEX_LOADED.set(1)
    DOCUMENTS.set(documents)
    CHUNKS.set(chunks)


def index_failed(reason: str) -> None:
    with liveness.lock:
        liveness.index_problem = reason
    INDEX_LOADED.set(0)
    ERRORS.labels("index").inc()


def sync_finished(ok: bool, when: float | None = None) -> None:
    """A corpus sync of the configured sources ended (`when`: Unix time, default now)."""
    LAST_SYNC.set(time.time() if when is None else when)
    LAST_SYNC_OK.set(1 if ok else 0)
    if not ok:
        ERRORS.labels("sync").inc()


def server_up(server: str, up: bool) -> None:
    SERVER_UP.labels(server).set(1 if up else 0)
    SERVER_IN_FLIGHT.labels(server)
    SERVER_ERRORS.labels(server)


def server_in_flight(server: str, count: int) -> None:
    SERVER_IN_FLIGHT.labels(server).set(count)


def server_answered(server: str, seconds: float) -> None:
    SERVER_LATENCY.labels(server).observe(seconds)
    SERVER_UP.labels(server).set(1)


def server_failed(server: str) -> None:
    SERVER_ERRORS.labels(server).inc()
    SERVER_UP.labels(server).set(0)


def servers_all_down() -> None:
    """No inference server could take a question: it got the quoted answer."""
    ERRORS.labels("servers_down").inc()


def health(max_sync_age_s: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, reason): the bot synced with its homeserver within `max_sync_age_s` and
    the index is loaded."""
    now = time.monotonic() if now is None else now
    with liveness.lock:
        last, problem = liveness.last_matrix_sync, liveness.index_problem
    if last is None:
        return False, "the bot has not synced with its homeserver yet"
    if now - last > max_sync_age_s:
        return False, (f"the bot's last sync with its homeserver was {now - last:.0f} s ago "
                       f"(more than {max_sync_age_s:.0f} s)")
    if problem:
        return False, problem
    return True, "ok"


def reset_liveness() -> None:
    """Forget the heartbeat and the index state (a bot that stopped)."""
    with liveness.lock:
        liveness.last_matrix_sync = None
        liveness.index_problem = "the index is not loaded yet"
    INDEX_LOADED.set(0)
