"""Answering questions in Matrix: admission, the quoted answer at once, the model's lead
(or, for an answerer without two steps, the whole answer) streamed in as edits, the thread
history, and recovery of journalled questions after a restart.

Talks to Matrix only through the `Link`. The answerer is blocking and runs in a worker
thread; its progress callbacks hop back onto the event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp

from civicbot import metrics
from civicbot.config import Config
from civicbot.errors import CivicbotError, GenerationTimeout, MatrixError
from civicbot.matrix import events
from civicbot.matrix.burst import Burst
from civicbot.matrix.link import Link
from civicbot.matrix.queue import Scheduler
from civicbot.matrix.render import Rendered, render_answer, render_notice, render_partial
from civicbot.matrix.state import BotState
from civicbot.protocols import Answerer
from civicbot.records import Answer, Turn
from civicbot.texts import language_of, t

log = logging.getLogger(__name__)

HISTORY_TURNS = 10
QUICK_WORKERS = 2


@dataclass(eq=False)  # identity, not equality: the queue finds jobs by `is`
class Job:
    """A question waiting for, or getting, its answer. Lives in memory only."""

    event_id: str
    room_id: str
    thread_root: str
    sender: str
    text: str
    language: str
    in_thread: bool
    placeholder: str = ""
    received: float = field(default_factory=time.monotonic)  # for the latency metrics
    signalled: bool = False  # the citizen has seen a first reply
    quoted: Answer | None = None  # the answer sent at once, waiting for the model's lead


@dataclass
class _Progress:
    text: str = ""
    sent: str = ""  # the text of the last edit sent
    done: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Answering:
    """The questions of one bot, from admission to the last edit."""

    def __init__(self, link: Link, cfg: Config, answerer: Answerer, state: BotState,
                 room_language: dict[str, str]):
        self.link = link
        self.cfg = cfg
        self.answerer = answerer
        self.state = state
        self.room_language = room_language  # shared with routing and editing
        self.counters = link.counters
        self.questions: dict[str, str] = {}  # answer id -> question, only with log_questions
        # An answerer that can answer in two steps (quotes at once, the model's lead later)
        # is used so: citizens get the quoted answer at once and only the model waits in the
        # queue. One that cannot (a plain `ask`) has whole answers queued, as before.
        self.quotes_first = all(callable(getattr(answerer, name, None))
                                for name in ("quick", "refine", "wants_model"))
        # The one place generation is gated: one job at a time, `queue_size` waiting.
        self.scheduler: Scheduler[Job] = Scheduler(
            self._refine if self.quotes_first else self._answer, cfg.bot.queue_size,
            cfg.bot.rate_limit_per_minute, workers=cfg.answer_workers,
        )
        self._quick_running = 0  # quoted answers being worked out or sent
        self._quick_idle = asyncio.Event()
        self._quick_idle.set()
        # Quoted answers are worked out first come, first served, two at a time (one per
        # core): twenty worked out all at once would share the cores and all finish late;
        # in turn, half of them are done in half that time.
        self._quick_pool = ThreadPoolExecutor(QUICK_WORKERS, thread_name_prefix="quick")
        # Questions of one sync batch are embedded in one call (matrix/burst.py).
        prepare = getattr(answerer, "prepare", None)
        self._burst: Burst[tuple[str, list[Turn]]] | None = None
        if callable(prepare):
            async def prepare_all(items: list[tuple[str, list[Turn]]]) -> None:
                await asyncio.get_running_loop().run_in_executor(
                    self._quick_pool, prepare, items)

            self._burst = Burst(prepare_all)

    def close(self) -> None:
        self._quick_pool.shutdown(wait=False, cancel_futures=True)

    # -- admission -------------------------------------------------------------------------

    def admit(self, job: Job, rate_limited: bool) -> None:
        """Start answering `job`, or tell the citizen why not (rate limit, busy)."""
        if not self.quotes_first:
            self._admit_whole(job, rate_limited)
            return
        # Rate limits per citizen stay; a full generation queue never turns anyone away.
        wait = self.scheduler.limiter.check(job.sender) if rate_limited else 0.0
        if wait > 0:
            log.info("question %s in room %s: rate_limited", job.event_id, job.room_id)
            self._turn_away(job, "rate_limited", wait)
            return
        log.info("question %s in room %s: answering", job.event_id, job.room_id)
        # The sign that the bot heard the question: at once, whatever is before it in turn
        # (twenty questions at once wait a second or so for their quoted answers). Sent
        # later, even by a tenth of a second, the notices meet the answers at the homeserver
        # and slow them (measured with bench/load.py: first useful answer p50 1.08 s -> 1.33
        # and 1.55 s, docs/answering.md).
        self.link.spawn(self.link.typing(job.room_id, True), "typing notice")
        self._quick_running += 1
        self._quick_idle.clear()
        self.link.spawn(self._answer_now(job), "answering a question")

    def withdraw(self, event_id: str) -> None:
        """A question was deleted before its turn: take it out of the queue unanswered.
        (One being answered already is answered: its reply is on its way.)"""
        for job in self.scheduler.queue.order():
            if job.event_id == event_id and self.scheduler.queue.remove(job):
                self.state.finish(event_id)
                metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
                log.info("question %s was deleted before its turn; not answering it", event_id)
                return

    def _turn_away(self, job: Job, status: str, retry_after: float = 0.0) -> None:
        self.counters[status] += 1
        metrics.turned_away(status)
        self.state.finish(job.event_id)
        text = (t("busy", job.language) if status == "busy"
                else t("rate_limited", job.language, s=max(1, round(retry_after))))
        self.link.spawn(self._reply_status(job, text), f"telling a citizen: {status}")

    def _admit_whole(self, job: Job, rate_limited: bool) -> None:
        """Queue the whole answer (an answerer without `quick`): busy when the queue is full."""
        admission = self.scheduler.offer(job.sender, job, rate_limited=rate_limited)
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        log.info("question %s in room %s: %s%s", job.event_id, job.room_id, admission.status,
                 f" (place {admission.position})" if admission.position else "")
        if admission.status in ("busy", "rate_limited"):
            self._turn_away(job, admission.status, admission.retry_after)
            return
        self.link.spawn(self.link.typing(job.room_id, True), "typing notice")
        if admission.status == "queued":
            self.link.spawn(
                self._reply_status(job, t("queued", job.language, n=admission.position)),
                "telling a citizen their place in the queue",
            )

    async def _reply_status(self, job: Job, text: str) -> None:
        if job.placeholder:  # recovered after a restart: reuse the message already there
            await self.link.edit(job.room_id, job.placeholder, render_notice(text), final=True)
        else:
            await self.link.notice(job.room_id, job.thread_root, job.event_id,
                                   render_notice(text), "status", mention=job.sender)
        _alive(job)

    def _answered(self, job: Job, answer: Answer) -> None:
        """Remember the answer's language for the room (and its question, if logged)."""
        self.room_language[job.room_id] = answer.language
        if self.cfg.bot.log_questions:
            self.questions[job.placeholder] = job.text

    def _typing_off(self, job: Job) -> None:
        """Clear the typing notice of `job` once no quoted answer is being worked out or
        sent: those go first. Cleared at once, twenty notices met twenty answers at the
        homeserver and delayed them (bench/load.py: first useful answer p50 1.38 s -> 1.08 s
        with this wait; docs/answering.md)."""

        async def later() -> None:
            await self._quick_idle.wait()
            await self.link.typing(job.room_id, False)

        self.link.spawn(later(), "typing notice")

    # -- quotes first ----------------------------------------------------------------------

    async def _answer_now(self, job: Job) -> None:
        """The quoted answer (or the refusal), worked out in a thread and sent as soon as it
        is ready; then the model's lead is queued, when the model can add one."""
        answer: Answer | None = None
        try:
            history = await self._history(job) if job.in_thread else []
            try:
                if self._burst is not None:
                    await self._burst.join((job.text, history))
                quoted: Answer = await asyncio.get_running_loop().run_in_executor(
                    self._quick_pool, self.answerer.quick,  # type: ignore[attr-defined]
                    job.text, history)
                answer, rendered = quoted, render_answer(quoted)
            except Exception as exc:
                rendered = _apology(job, exc)
            if job.placeholder:  # recovered after a restart: the message is there already
                await self.link.edit(job.room_id, job.placeholder, rendered, final=True)
            else:
                job.placeholder = await self.link.notice(job.room_id, job.thread_root,
                                                         job.event_id, rendered, "answer",
                                                         mention=job.sender)
        finally:
            # Until it is sent: the homeserver needs the cores too (bench/load.py).
            self._quick_running -= 1
            if not self._quick_running:
                self._quick_idle.set()
        _alive(job)
        metrics.first_answer(time.monotonic() - job.received)
        # The citizen has an answer: a restart now must not answer again (the lead is lost).
        self.state.finish(job.event_id, answer_id=job.placeholder, thread_root=job.thread_root)
        self.counters["answered"] += 1
        if answer is None:
            self._typing_off(job)
            metrics.question_finished(None, time.monotonic() - job.received)
            return
        self._answered(job, answer)
        log.info("question %s answered (%s)", job.event_id, answer.mode)
        try:
            wanted = await asyncio.to_thread(self.answerer.wants_model,  # type: ignore[attr-defined]
                                             answer)
        except Exception:  # no lead then; the answer stands
            log.exception("question %s: deciding on the model's lead failed", job.event_id)
            wanted = False
        if not wanted:
            self._typing_off(job)
            metrics.refinement("not_asked")
            metrics.question_finished(answer.mode, time.monotonic() - job.received)
            return
        job.quoted = answer
        admission = self.scheduler.offer(job.sender, job, rate_limited=False)
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        if admission.status == "busy":  # the quoted answer stays as it is
            self._typing_off(job)
            self.counters["refinements_skipped"] += 1
            metrics.refinement("skipped_busy")
            metrics.question_finished(answer.mode, time.monotonic() - job.received)

    async def _refine(self, job: Job) -> None:
        """Have the model write its lead for an answer already sent, and edit the lead in
        (throttled, capped edits); nothing is edited when it adds nothing."""
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        quoted = job.quoted
        assert quoted is not None
        # Quoted answers first: a generation started now would slow every one of them.
        await self._quick_idle.wait()
        progress = _Progress()

        def render(text: str) -> Rendered:
            return render_answer(dataclasses.replace(quoted, text=text, mode="generated"))

        on_text = _feeder(progress)
        typing = asyncio.create_task(self.link.keep_typing(job.room_id))
        editor = asyncio.create_task(self._stream_edits(job, progress, render, final=True))
        refined: Answer | None = None
        outcome = "nothing"
        try:
            refined = await asyncio.to_thread(self.answerer.refine,  # type: ignore[attr-defined]
                                              quoted, on_text)
            outcome = "added" if refined is not None else "nothing"
        except Exception:  # the quoted answer stands; the model is not worth an apology
            log.exception("question %s: the model's lead failed", job.event_id)
            outcome = "error"
        finally:
            await _close_edits(progress, editor)
            await _cancel(typing)
        final = refined.text if refined is not None else quoted.text
        if progress.sent and progress.sent != final:
            # What was shown changes (a lead shown, then not kept): a visible edit says so.
            await self.link.edit(job.room_id, job.placeholder,
                                 render_answer(refined or quoted), final=True)
        elif refined is not None and not progress.sent:
            await self.link.edit(job.room_id, job.placeholder, render_answer(refined),
                                 final=True)
        metrics.refinement(outcome)
        metrics.question_finished((refined or quoted).mode, time.monotonic() - job.received)
        self._typing_off(job)
        log.info("question %s: the model's lead %s", job.event_id,
                 "was added" if refined is not None else "added nothing")

    # -- whole answers (an answerer without `quick`) --------------------------------------

    async def _answer(self, job: Job) -> None:
        """Answer one question: placeholder, streamed edits, final edit with sources."""
        metrics.QUEUE_LENGTH.set(len(self.scheduler.queue))
        typing = asyncio.create_task(self.link.keep_typing(job.room_id))
        try:
            if not job.placeholder:
                job.placeholder = await self.link.notice(
                    job.room_id, job.thread_root, job.event_id,
                    render_notice(t("thinking", job.language)), "answer",
                    mention=job.sender, final=False,
                )
                self.state.set_placeholder(job.event_id, job.placeholder)
            _alive(job)
            history = await self._history(job) if job.in_thread else []
            rendered, answer = await self._generate(job, history)
            await self.link.edit(job.room_id, job.placeholder, rendered, final=True)
        finally:
            await _cancel(typing)
        if answer is not None:
            self._answered(job, answer)
        self.state.finish(job.event_id, answer_id=job.placeholder, thread_root=job.thread_root)
        self.counters["answered"] += 1
        metrics.question_finished(answer.mode if answer is not None else None,
                                  time.monotonic() - job.received)
        self._typing_off(job)
        log.info("question %s answered (%s)", job.event_id,
                 answer.mode if answer is not None else "error")

    async def _generate(self, job: Job, history: list[Turn]) -> tuple[Rendered, Answer | None]:
        progress = _Progress()
        on_text = _feeder(progress)
        editor = asyncio.create_task(self._stream_edits(job, progress))
        answer: Answer | None = None
        try:
            answer = await asyncio.to_thread(self.answerer.ask, job.text, history, on_text)
            rendered = render_answer(answer)
        except Exception as exc:
            rendered = _apology(job, exc)
        finally:
            await _close_edits(progress, editor)
        return rendered, answer

    async def _stream_edits(self, job: Job, progress: _Progress,
                            render: Callable[[str], Rendered] | None = None,
                            final: bool = False) -> None:
        """Edit the answer message as text arrives: at most one edit per edit_interval_s and
        max_edits - 1 in all (the last one is reserved for the final answer). `render` makes
        the message of the text so far (default: the text with a cursor)."""
        edits, sent = 0, ""
        while edits < self.cfg.bot.max_edits - 1:
            await progress.changed.wait()
            progress.changed.clear()
            if progress.done:
                return
            text = progress.text
            if text.strip() and text != sent:
                rendered = render(text) if render else render_partial(text, job.language)
                await self.link.edit(job.room_id, job.placeholder, rendered, final=final)
                sent, edits = text, edits + 1
                progress.sent = text
                self.counters["edits"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.finished.wait(), self.cfg.bot.edit_interval_s)
            if progress.done:
                return

    # -- the thread ------------------------------------------------------------------------

    async def _history(self, job: Job) -> list[Turn]:
        """The thread's earlier messages as conversation turns (best effort: a failure
        means an answer without context, not no answer)."""
        try:
            sources = await self.link.thread_events(job.room_id, job.thread_root)
        except (CivicbotError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("question %s: reading the thread failed (%s); answering without it",
                        job.event_id, exc)
            return []
        turns = events.thread_turns(sources, job.event_id, job.room_id, self.link.user_id,
                                    self.link.names(job.room_id))
        return turns[-HISTORY_TURNS:]

    # -- after a restart -------------------------------------------------------------------

    async def recover(self) -> None:
        """Answer the questions journalled before a crash or restart, or say they were lost."""
        for pending in list(self.state.pending.values()):
            if any(j.event_id == pending.event_id for j in self.scheduler.queue.order()):
                continue
            msg = None
            try:
                source = await self.link.event(pending.room_id, pending.event_id,
                                               "reading a journalled question")
                if events.is_redacted(source):  # deleted by its writer: nothing to answer
                    log.info("journalled question %s was deleted; not answering it",
                             pending.event_id)
                    self.state.finish(pending.event_id)
                    continue
                msg = events.parse_message(pending.room_id, source, self.link.user_id)
            except MatrixError as exc:
                log.warning("journalled question %s cannot be read: %s", pending.event_id, exc)
            names = self.link.names(pending.room_id)
            text = events.strip_mention(msg.body, self.link.user_id, names) if msg else ""
            language = language_of(text)
            job = Job(pending.event_id, pending.room_id, pending.thread_root,
                      msg.sender if msg else "", text, language,
                      in_thread=bool(msg and msg.thread_root), placeholder=pending.placeholder)
            if not text:
                log.info("journalled question %s was lost; telling the citizen", job.event_id)
                self.state.finish(job.event_id)
                self.link.spawn(self._reply_status(job, t("lost", language)), "apologising")
                continue
            log.info("answering journalled question %s after a restart", job.event_id)
            self.admit(job, rate_limited=False)


def _apology(job: Job, exc: Exception) -> Rendered:
    """What the citizen reads when answering failed; the failure is logged (our own
    errors as a line, anything else with its traceback)."""
    if isinstance(exc, GenerationTimeout):
        return render_notice(t("timeout", job.language))
    if isinstance(exc, CivicbotError):
        log.warning("question %s could not be answered: %s", job.event_id, exc)
    else:
        log.error("question %s: the answerer failed", job.event_id, exc_info=exc)
    return render_notice(t("error", job.language))


def _alive(job: Job) -> None:
    """The citizen saw a first reply to their question (for the metrics)."""
    if not job.signalled:
        job.signalled = True
        metrics.first_sign_of_life(time.monotonic() - job.received)


def _feeder(progress: _Progress) -> Callable[[str], None]:
    """The answerer's `on_text` (called in its worker thread) feeding `progress` on the loop."""
    loop = asyncio.get_running_loop()

    def update(text: str) -> None:  # on the event loop
        if not progress.done:
            progress.text = text
            progress.changed.set()

    def on_text(text: str) -> None:  # in the worker thread
        loop.call_soon_threadsafe(update, text)

    return on_text


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_edits(progress: _Progress, editor: asyncio.Task[None]) -> None:
    """End a streamed answer: let the editor finish the edit it may be sending, so that no
    partial edit can land after the final one."""
    progress.done = True
    progress.finished.set()
    progress.changed.set()
    try:
        await editor
    except CivicbotError as exc:
        log.warning("streaming edits stopped: %s", exc)
