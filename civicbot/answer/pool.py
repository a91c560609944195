"""A pool of OpenAI-compatible inference servers behind the Generator protocol, so the same
prompt, budgeting, grounding check and extractive fallback apply wherever the model runs.

- Each request goes to the healthy server with the fewest generations in flight (at most
  `max_concurrent` each; when all are full the request waits, within its time limit).
- A server that fails or falls silent is taken out for `cooldown_s` and the request is
  retried on another one. With every server out, `stream` raises ModelError: the pipeline
  then quotes the sources, and the log and /metrics say why.
- A retry restarts the generation from the beginning; text never reaches the reader twice.
  Every request carries the same `seed`, so the same model on another server writes the same
  text again: the replay is swallowed up to what was already yielded and only what follows is
  passed on. Should the replay differ from what was yielded (another model, another build),
  the generation stops with ModelError rather than splice two answers together: the citizen
  gets the quoted answer, never a sentence from one server glued to the rest of another's.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from civicbot import metrics
from civicbot.answer.server import ServerClient, ServerFailed
from civicbot.errors import ConfigError, GenerationTimeout, ModelError

if TYPE_CHECKING:
    from civicbot.config import LlmConfig

log = logging.getLogger(__name__)

COOLDOWN_S = 30.0  # how long a failed server is left alone before it gets requests again
SEED = 7  # any fixed value: what matters is that a retry uses the same one
# Without a tokenizer endpoint: bytes / 2.5 over-counts every tokenizer we measured (English
# ~4, Dutch ~3 characters per token), so a prompt built on it fits the context.
_BYTES_PER_TOKEN = 2.5


@dataclass(eq=False)
class _Member:
    client: ServerClient
    in_flight: int = 0
    down_until: float = 0.0


class ServerPool:
    """Generations spread over servers; see the module's docstring."""

    def __init__(
        self,
        clients: Sequence[ServerClient],
        *,
        temperature: float = 0.1,
        max_tokens: int = 200,
        time_limit_s: float = 60.0,
        max_concurrent: int = 4,
        n_ctx: int = 2048,
        cooldown_s: float = COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not clients:
            raise ConfigError('llm.servers: required with backend = "server"')
        self._members = [_Member(c) for c in clients]
        model = clients[0].model
        self.name = model or "the servers' model"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.time_limit_s = time_limit_s
        self.max_concurrent = max_concurrent
        self.cooldown_s = cooldown_s
        self._n_ctx = n_ctx
        self._context: int | None = None
        self._clock = clock
        self._cond = threading.Condition()
        self._turn = 0  # rotates the tie-break among equally loaded servers
        for m in self._members:
            metrics.server_up(m.client.host, True)

    @classmethod
    def from_config(cls, llm: LlmConfig, env: Mapping[str, str]) -> ServerPool:
        """A pool of `[llm] servers`; the API key is read from the environment variable that
        `[llm] api_key_env` names."""
        key = ""
        if llm.api_key_env:
            key = env.get(llm.api_key_env, "")
            if not key:
                raise ConfigError(f"llm.api_key_env: the environment variable "
                                  f"{llm.api_key_env} is not set (it should hold the servers' "
                                  "API key)")
        clients = [ServerClient(url, llm.model, key, llm.timeout_s) for url in llm.servers]
        return cls(clients, temperature=llm.temperature, max_tokens=llm.max_tokens,
                   time_limit_s=llm.time_limit_s, max_concurrent=llm.max_concurrent,
                   n_ctx=llm.n_ctx)

    @property
    def hosts(self) -> list[str]:
        return [m.client.host for m in self._members]

    def close(self) -> None:
        for m in self._members:
            m.client.close()

    # ---- the Generator protocol ------------------------------------------------------------

    @property
    def context_size(self) -> int:
        """The smallest context a server reports (a request may land on any of them), else
        `[llm] n_ctx`."""
        if self._context is None:
            sizes = [n for m in self._healthy(set()) if (n := self._ask_context(m))]
            if not sizes:
                return self._n_ctx
            self._context = min(sizes)
        return self._context

    def count_tokens(self, text: str) -> int:
        """The servers' own count where one offers it, else a safe over-estimate."""
        for m in self._healthy(set()):
            try:
                n = m.client.count_tokens(text)
            except ServerFailed as exc:
                self._failed(m, exc)
                continue
            if n is not None:
                return n
            break  # the servers run one model: if one has no tokenizer, estimate
        return math.ceil(len(text.encode("utf-8")) / _BYTES_PER_TOKEN)

    def stream(
        self, messages: list[dict[str, str]], max_tokens: int | None = None
    ) -> Iterator[str]:
        """Yield the reply piece by piece from one server, moving to another when it fails.
        Raises ModelError when no server can answer, GenerationTimeout (after yielding what
        was written) when the time limit passes."""
        deadline = self._clock() + self.time_limit_s
        shown = ""  # what the reader has been given: a retry must not give it again
        tried: set[_Member] = set()
        while True:
            member = self._acquire(tried, deadline)
            started = self._clock()
            left = deadline - self._clock()
            if left <= 0:  # a retry after the time limit: what was shown is all there is
                self._release(member)
                raise GenerationTimeout(f"The model did not finish within "
                                        f"{self.time_limit_s:g} s; the reply was cut off.")
            pieces = member.client.stream_chat(messages, max_tokens or self.max_tokens,
                                               self.temperature, seed=SEED, time_limit_s=left)
            text = ""
            try:
                for piece in pieces:
                    text += piece
                    if len(text) <= len(shown):
                        continue  # replaying what was shown; compared once it is passed
                    if not text.startswith(shown):
                        raise ModelError(_DIVERGED.format(host=member.client.host))
                    new, shown = text[len(shown):], text
                    yield new
                    if self._clock() > deadline:
                        raise GenerationTimeout(
                            f"The model did not finish within {self.time_limit_s:g} s; "
                            "the reply was cut off.")
                if text != shown:  # the replay ended before it caught up: another text
                    raise ModelError(_DIVERGED.format(host=member.client.host))
                metrics.server_answered(member.client.host, self._clock() - started)
                return
            except GeneratorExit:  # the reader has what it needs (a complete lead)
                metrics.server_answered(member.client.host, self._clock() - started)
                raise
            except ServerFailed as exc:
                self._failed(member, exc)
                tried.add(member)
                log.warning("retrying the answer on another server (%d characters were "
                            "already shown and will not be repeated)", len(shown))
            finally:
                pieces.close()
                self._release(member)

    # ---- membership ------------------------------------------------------------------------

    def _healthy(self, tried: set[_Member]) -> list[_Member]:
        now = self._clock()
        with self._cond:
            return [m for m in self._members if m not in tried and m.down_until <= now]

    def _acquire(self, tried: set[_Member], deadline: float) -> _Member:
        with self._cond:
            while True:
                healthy = self._healthy(tried)
                if not healthy:
                    hosts = ", ".join(self.hosts)
                    log.warning("no inference server can answer (%s: all failed or taken out "
                                "for %g s); the citizen gets the quoted answer", hosts,
                                self.cooldown_s)
                    metrics.servers_all_down()
                    raise ModelError(f"no inference server can answer ({hosts})")
                free = [m for m in healthy if m.in_flight < self.max_concurrent]
                if free:
                    n, turn = len(self._members), self._turn
                    chosen = min(free, key=lambda m: (
                        m.in_flight, (self._members.index(m) - turn) % n))
                    self._turn += 1
                    chosen.in_flight += 1
                    metrics.server_in_flight(chosen.client.host, chosen.in_flight)
                    return chosen
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise ModelError("every inference server stayed busy for the whole time "
                                     "limit; raise [llm] max_concurrent or add servers")
                # Woken by a release; the timeout also lets a server's cooldown run out.
                self._cond.wait(timeout=min(remaining, 1.0))

    def _release(self, member: _Member) -> None:
        with self._cond:
            member.in_flight -= 1
            metrics.server_in_flight(member.client.host, member.in_flight)
            self._cond.notify_all()

    def _failed(self, member: _Member, exc: Exception) -> None:
        with self._cond:
            member.down_until = self._clock() + self.cooldown_s
            self._cond.notify_all()
        log.warning("inference server %s failed (%s); taken out for %g s",
                    member.client.host, exc, self.cooldown_s)
        metrics.server_failed(member.client.host)

    def _ask_context(self, member: _Member) -> int | None:
        try:
            return member.client.context_size()
        except ServerFailed:
            return None

    def up(self) -> dict[str, bool]:
        """Each server's host and whether it takes requests now (not in its cooldown)."""
        now = self._clock()
        with self._cond:
            return {m.client.host: m.down_until <= now for m in self._members}


_DIVERGED = ("{host} wrote a different answer than the server that failed, whose beginning "
             "was already shown; stopping rather than joining two answers")
