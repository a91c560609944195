"""Load: many citizens asking at once, each in a direct chat with the bot, against a local
Synapse on loopback and the real answering service over a small index.

    .venv/bin/python bench/load.py [--corpus DIR] [--citizens N] [--time-limit S]
                                   [--mode now|before|both]

Starts Synapse in a temporary folder (relaxed rate limits, stopped at the end even on
error), builds an index of 4 PDFs, runs the bot in-process with its default queue size and
rate limits, and has N citizens send one question each at the same moment. Per citizen it
measures, as the citizen's client sees it: the first sign of life (the bot typing in the
room, or its first reply), the first useful answer (the first complete answer: quotes with
sources, or a refusal) and the final answer (the last edit of it: the model's lead, if any).

Two ways of answering, measured in the same run (`--mode both`, the default):
- `now`: the quoted answer at once, the model's lead queued and edited in later; nobody is
  told busy, so the checks are: every citizen answered with sources, none busy, none lost,
  none answered twice, and the first useful answer within 1 s (median) and 3 s (p95);
- `before`: the whole answer queued (the bot's path for an answerer without `quick`):
  more citizens than the queue holds are told the bot is busy.
Exit code 1 when a check fails.

With `--servers N` the same citizens then ask again (quotes first) with `[llm] backend =
"server"`: N `llama_cpp.server` processes on loopback (one thread each, the default model)
behind the pool, `[bot] concurrent_answers = N`; the same checks apply, and answers per minute
are printed against the local backend's from the same run. On a machine with as many cores as
servers the servers share those cores, so the ratio shows the pool's overhead, not a speed-up:
that needs servers on other machines (docs/scaling.md).

Before the load, one citizen asks an idle bot: the first sign of life under load is printed
as a ratio to that baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.questions import DOCS, QUESTIONS  # noqa: E402

JOIN_TIMEOUT_S = 60.0
CITIZEN_SYNC_MS = 30_000


class SetupFailed(Exception):
    """Something before the load itself did not work (a one-line reason)."""


@dataclass
class Citizen:
    """One citizen's nio client, its direct chat with the bot and what it saw there."""

    client: Any  # nio.AsyncClient
    question: str
    room_id: str = ""
    question_id: str = ""
    sent_at: float = 0.0  # monotonic, just before the send request
    first_typing_at: float | None = None  # first sync showing the bot typing after sent_at
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (received, ev)
    task: asyncio.Task[None] | None = None

    async def sync_forever(self, bot_id: str) -> None:
        import nio

        while True:
            try:
                resp = await self.client.sync(timeout=CITIZEN_SYNC_MS, full_state=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # a hiccup of the client or server: keep syncing
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            if not isinstance(resp, nio.SyncResponse):
                await asyncio.sleep(0.2)
                continue
            for room_id, info in resp.rooms.join.items():
                if room_id != self.room_id:
                    continue
                self.events.extend((now, ev.source) for ev in info.timeline.events)
                if self.sent_at and self.first_typing_at is None and any(
                    isinstance(ev, nio.TypingNoticeEvent) and bot_id in ev.users
                    for ev in info.ephemeral
                ):
                    self.first_typing_at = now


@dataclass
class Outcome:
    """What one citizen got: "answered", "busy", "error" (the bot apologised) or "nothing"."""

    kind: str
    first_sign_s: float | None
    first_answer_s: float | None  # the first complete answer (quotes or refusal)
    final_s: float | None  # its last version
    answer_threads: int  # the bot's answer replies to this question (must be at most 1)
    with_sources: bool  # the answer lists its sources
    lead: bool  # the final answer has the model's lead
    busy_notices: int
    queued_notices: int


def outcome_of(c: Citizen, bot_id: str) -> Outcome:
    """Read the citizen's room: the bot's thread replies to the question and their edits."""
    from civicbot.answer.messages import say
    from civicbot.matrix.events import FINAL, KIND
    from civicbot.texts import t

    busy_texts = {t("busy", lang) for lang in ("nl", "en")}
    failure_texts = {t(key, lang) for key in ("error", "timeout") for lang in ("nl", "en")}
    replies: list[tuple[float, dict[str, Any]]] = []
    edits: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for received, ev in c.events:
        content = ev.get("content") or {}
        rel = content.get("m.relates_to") or {}
        if ev.get("sender") != bot_id or ev.get("type") != "m.room.message":
            continue
        if (rel.get("rel_type") == "m.thread"
                and (rel.get("m.in_reply_to") or {}).get("event_id") == c.question_id):
            replies.append((received, ev))
        elif rel.get("rel_type") == "m.replace":
            edits.setdefault(str(rel.get("event_id")), []).append((received, ev))

    answers = [(r, ev) for r, ev in replies if ev["content"].get(KIND) == "answer"]
    statuses = [(r, ev) for r, ev in replies if ev["content"].get(KIND) == "status"]
    busy = [(r, ev) for r, ev in statuses if ev["content"].get("body") in busy_texts]
    queued = [ev for _, ev in statuses if ev["content"].get("body") not in busy_texts]
    # Every complete version of the answer: the reply when sent complete (quotes first), and
    # each edit marked final (the whole answer after generation, or the lead edited in).
    finals: list[tuple[float, dict[str, Any]]] = []
    for received, ev in answers:
        if ev["content"].get(FINAL):
            finals.append((received, ev["content"]))
        for edit_received, edit in edits.get(ev["event_id"], []):
            new = edit["content"].get("m.new_content") or {}
            if new.get(FINAL):
                finals.append((edit_received, new))
    finals.sort(key=lambda f: f[0])

    signs = [r for r, _ in replies]
    if c.first_typing_at is not None:
        signs.append(c.first_typing_at)
    first_sign = min(signs) - c.sent_at if signs else None
    sources = {t("sources", lang) + ":" for lang in ("nl", "en")}
    leads = {say(key, lang) for key in ("model_lead", "model_leads") for lang in ("nl", "en")}
    if finals:
        first, last = finals[0], finals[-1]
        kind = "error" if first[1].get("body") in failure_texts else "answered"
        body = str(last[1].get("body", ""))
        return Outcome(kind, first_sign, first[0] - c.sent_at, last[0] - c.sent_at,
                       len(answers), any(h in body for h in sources),
                       any(n in body for n in leads), len(busy), len(queued))
    if busy:
        return Outcome("busy", first_sign, None, busy[0][0] - c.sent_at, len(answers), False,
                       False, len(busy), len(queued))
    return Outcome("nothing", first_sign, None, None, len(answers), False, False, len(busy),
                   len(queued))


def settled(c: Citizen, bot_id: str) -> bool:
    return outcome_of(c, bot_id).kind != "nothing"


def bot_working(bot: Any) -> bool:
    """Quoted answers or leads still in the works (the bot's own bookkeeping)."""
    return bool(getattr(bot, "_quick_running", 0)) or bot.scheduler.current is not None


class WholeAnswers:
    """The service without `quick`/`refine`: the bot then queues whole answers, as before
    answers came in two steps (`--mode before`)."""

    def __init__(self, service: Any):
        self._service = service

    def ask(self, question: str, history: Any = (), on_text: Any = None) -> Any:
        return self._service.ask(question, history, on_text)

    def documents(self) -> Any:
        return self._service.documents()

    def about(self) -> Any:
        return self._service.about()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def distribution(values: Sequence[float]) -> str:
    if not values:
        return "(none)"
    return (f"min {min(values):6.2f}  median {statistics.median(values):6.2f}  "
            f"p90 {percentile(values, 0.9):6.2f}  max {max(values):6.2f} s  (n={len(values)})")


async def call(what: str, request: Any) -> Any:
    """Await one nio request; an error response becomes SetupFailed."""
    import nio

    resp = await request
    if isinstance(resp, nio.ErrorResponse):
        raise SetupFailed(f"{what}: {resp.status_code}: {resp.message}")
    return resp


async def open_direct_chat(c: Citizen, bot_id: str) -> None:
    """Create a direct chat inviting the bot and wait until the bot has joined."""
    import nio

    resp = await call("creating a direct chat", c.client.room_create(
        invite=[bot_id], is_direct=True, preset=nio.RoomPreset.private_chat))
    c.room_id = str(resp.room_id)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while True:
        members = await c.client.joined_members(c.room_id)
        if isinstance(members, nio.JoinedMembersResponse) and any(
                m.user_id == bot_id for m in members.members):
            return
        if time.monotonic() > deadline:
            raise SetupFailed(f"the bot did not join {c.room_id} within {JOIN_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.1)


async def ask(c: Citizen) -> None:
    c.sent_at = time.monotonic()
    resp = await call("sending a question", c.client.room_send(
        c.room_id, "m.room.message", {"msgtype": "m.text", "body": c.question}))
    c.question_id = str(resp.event_id)


async def load(hs: Any, cfg: Any, answerer: Any, accounts: list[dict[str, str]],
               deadline: float) -> tuple[list[Citizen], list[Outcome], Any, float]:
    """Run the bot and the citizens; returns them, their outcomes, the bot and the load time."""
    import nio

    from civicbot.matrix.bot import Bot

    bot = Bot(cfg, answerer)
    bot_task = asyncio.create_task(bot.run())
    citizens = [Citizen(nio.AsyncClient(hs.url, a["user_id"], device_id=a["device_id"]),
                        QUESTIONS[i % len(QUESTIONS)]) for i, a in enumerate(accounts)]
    for c, a in zip(citizens, accounts, strict=True):
        c.client.user_id, c.client.access_token = a["user_id"], a["access_token"]
    try:
        ready = asyncio.create_task(bot.ready.wait())
        await asyncio.wait({bot_task, ready}, timeout=max(1.0, deadline - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)
        if bot_task.done():
            bot_task.result()  # raises what went wrong
        if not ready.done():
            ready.cancel()
            raise SetupFailed("the bot did not become ready in time")

        async def prepare(c: Citizen) -> None:
            await call("first sync", c.client.sync(timeout=0, full_state=False))
            await open_direct_chat(c, bot.user_id)
            c.task = asyncio.create_task(c.sync_forever(bot.user_id))

        await asyncio.wait_for(asyncio.gather(*(prepare(c) for c in citizens)),
                               max(1.0, deadline - time.monotonic()))
        # All chats open, all clients syncing: ask at the same moment.
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await asyncio.gather(*(ask(c) for c in citizens))
        print(f"{len(citizens)} questions sent within {time.monotonic() - started:.2f} s",
              flush=True)
        reported = 0
        while time.monotonic() < deadline:
            if bot_task.done():
                bot_task.result()
                raise SetupFailed("the bot stopped during the load")
            done = sum(settled(c, bot.user_id) for c in citizens)
            if done == len(citizens) and (bot.scheduler.busy or bot_working(bot)):
                done -= 1  # answered, but a lead is still being written
            if done > reported:
                print(f"  {done}/{len(citizens)} settled after "
                      f"{time.monotonic() - started:5.1f} s", flush=True)
                reported = done
            if done == len(citizens):
                break
            await asyncio.sleep(0.1)
        # A moment more to catch a late duplicate answer or a second final edit.
        await asyncio.sleep(min(3.0, max(0.0, deadline - time.monotonic())))
        load_s = time.monotonic() - started
        return citizens, [outcome_of(c, bot.user_id) for c in citizens], bot, load_s
    finally:
        for c in citizens:
            if c.task:
                c.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await c.task
            await c.client.close()
        bot_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await bot_task


async def idle_baseline(hs: Any, cfg: Any, service: Any, account: dict[str, str],
                        deadline: float) -> float | None:
    """The first sign of life for one citizen asking an idle bot (the same bot, homeserver
    and clients as the load): the baseline the load's figures are divided by."""
    import nio

    from civicbot.matrix.bot import Bot

    bot = Bot(cfg, service)
    bot_task = asyncio.create_task(bot.run())
    c = Citizen(nio.AsyncClient(hs.url, account["user_id"], device_id=account["device_id"]),
                QUESTIONS[0])
    c.client.user_id, c.client.access_token = account["user_id"], account["access_token"]
    try:
        await asyncio.wait_for(bot.ready.wait(), max(1.0, deadline - time.monotonic()))
        await call("first sync", c.client.sync(timeout=0, full_state=False))
        await open_direct_chat(c, bot.user_id)
        c.task = asyncio.create_task(c.sync_forever(bot.user_id))
        await asyncio.sleep(1.0)
        await ask(c)
        while time.monotonic() < deadline and not settled(c, bot.user_id):
            await asyncio.sleep(0.1)
        return outcome_of(c, bot.user_id).first_sign_s
    finally:
        if c.task:
            c.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await c.task
        await c.client.close()
        bot_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await bot_task


def report(mode: str, citizens: list[Citizen], outcomes: list[Outcome], bot: Any,
           load_s: float, queue_size: int, time_limit: float) -> tuple[bool, dict[str, str]]:
    """Print the figures and the checks of one mode; returns whether all checks passed and
    the summary line's figures."""
    by_kind: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_kind.setdefault(o.kind, []).append(o)
    n = len(citizens)
    print(f"\n=== mode {mode} ===")
    print("citizen     outcome   first sign  1st answer   final  lead  question")
    for c, o in zip(citizens, outcomes, strict=True):
        def col(x: float | None, w: int) -> str:
            return f"{x:{w}.2f} s" if x is not None else " " * (w - 1) + "-  "
        print(f"{c.client.user_id.split(':')[0][1:]:11} {o.kind:9} {col(o.first_sign_s, 8)} "
              f"{col(o.first_answer_s, 8)} {col(o.final_s, 6)}  {'yes' if o.lead else '   '}  "
              f"{c.question[:44]}")
    print(f"\n{n} citizens, queue size {queue_size}, load phase {load_s:.1f} s")
    print("outcomes: " + ", ".join(f"{k} {len(by_kind.get(k, []))}"
                                   for k in ("answered", "busy", "error", "nothing")))
    print(f"queued notices: {sum(o.queued_notices for o in outcomes)}; "
          f"bot counters: {dict(sorted(bot.counters.items()))}")
    answered = by_kind.get("answered", [])
    firsts = [o.first_answer_s for o in answered if o.first_answer_s is not None]
    finals = [o.final_s for o in answered if o.final_s is not None]
    signs = [o.first_sign_s for o in outcomes if o.first_sign_s is not None]
    print("  first sign of life   " + distribution(signs))
    print("  first useful answer  " + distribution(firsts))
    print("  final answer         " + distribution(finals))
    with_sources = sum(o.with_sources for o in answered)
    leads = sum(o.lead for o in answered)
    print(f"  answers with sources {with_sources}/{n}; with the model's lead {leads}")

    problems: list[str] = []
    for c, o in zip(citizens, outcomes, strict=True):
        who = f"{c.client.user_id} ({c.question[:40]!r})"
        if o.kind == "nothing":
            got = "no sign of life" if o.first_sign_s is None else "a sign of life, no outcome"
            problems.append(f"{who}: nothing within {time_limit:.0f} s ({got})")
        elif o.kind == "error":
            problems.append(f"{who}: the bot apologised instead of answering")
        if o.answer_threads > 1:
            problems.append(f"{who}: answered twice ({o.answer_threads} answer replies)")
        if o.busy_notices > 1 or (o.busy_notices and o.answer_threads):
            problems.append(f"{who}: {o.busy_notices} busy notices and "
                            f"{o.answer_threads} answer replies")
    if mode == "now":
        if by_kind.get("busy"):
            problems.append(f"{len(by_kind['busy'])} citizens were told busy")
        if with_sources < n:
            problems.append(f"only {with_sources}/{n} answers list their sources")
        if firsts and statistics.median(firsts) >= 1.0:
            problems.append(f"median first useful answer {statistics.median(firsts):.2f} s >= 1 s")
        if firsts and percentile(firsts, 0.95) >= 3.0:
            problems.append(f"p95 first useful answer {percentile(firsts, 0.95):.2f} s >= 3 s")
    elif n > queue_size + 1 and not by_kind.get("busy"):
        problems.append(f"{n} questions > queue of {queue_size}, yet nobody was told busy")
    print("checks:")
    print(f"  answered: {len(answered)}/{n}; told busy: {len(by_kind.get('busy', []))}; "
          f"lost (no outcome): {len(by_kind.get('nothing', []))}; answered twice: "
          f"{sum(o.answer_threads > 1 for o in outcomes)}")
    for p in problems:
        print("  PROBLEM " + p)
    print("  all passed" if not problems else f"  {len(problems)} problem(s)")

    def fig(xs: list[float], q: float) -> str:
        return f"{percentile(xs, q):.2f}" if xs else "-"

    summary = {
        "answered": f"{len(answered)}/{n}", "busy": str(len(by_kind.get("busy", []))),
        "lost": str(len(by_kind.get("nothing", []))),
        "twice": str(sum(o.answer_threads > 1 for o in outcomes)),
        "with sources": f"{with_sources}/{n}", "with lead": str(leads),
        "first answer p50": fig(firsts, 0.5), "first answer p95": fig(firsts, 0.95),
        "final p50": fig(finals, 0.5), "final p95": fig(finals, 0.95),
    }
    return not problems, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--citizens", type=int, default=20)
    parser.add_argument("--mode", choices=("now", "before", "both"), default="both",
                        help="now: quotes at once, the model's lead as an edit; before: "
                             "whole answers queued; both (default): before, then now")
    parser.add_argument("--time-limit", type=float, default=900.0,
                        help="seconds for each mode's run, setup included (default 900); "
                        "with --servers, as much again for the servers' part")
    parser.add_argument("--servers", type=int, default=0, metavar="N",
                        help="then the same load against N local inference servers")
    args = parser.parse_args()
    if args.citizens < 1:
        parser.error("--citizens: at least 1")
    t_start = time.monotonic()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from civicbot import config as config_mod
    from civicbot.errors import CivicbotError
    from civicbot.homeserver import Homeserver
    from civicbot.service import Service

    modes = ["before", "now"] if args.mode == "both" else [args.mode]
    results: dict[str, dict[str, str]] = {}
    ok = True
    idle_s: float | None = None
    on_servers: tuple[Any, ...] | None = None
    last: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="civicbot-load-") as tmp:
        hs = Homeserver(Path(tmp) / "synapse", relaxed_rate_limits=True)
        try:
            hs.start()
            print(f"synapse up on {hs.url} after {time.monotonic() - t_start:.1f} s", flush=True)
            service: Any = None
            for mode in modes:
                deadline = time.monotonic() + args.time_limit
                bot_account = hs.register(f"civicbot{mode}", secrets.token_urlsafe(12))
                accounts = [hs.register(f"citizen{mode}{i:02d}", secrets.token_urlsafe(12))
                            for i in range(args.citizens)]
                cfg = config_mod.build(
                    {
                        "index": {"path": str(Path(tmp) / "index")},
                        "matrix": {
                            "homeserver": hs.url,
                            "user_id": bot_account["user_id"],
                            "access_token": bot_account["access_token"],
                            "data_dir": str(Path(tmp) / f"bot-{mode}"),
                        },
                    },
                    env={},
                    base_dir=str(ROOT),
                )
                if service is None:
                    service = Service(cfg)
                    t_ingest = time.monotonic()
                    service.corpus.ingest([args.corpus / d for d in DOCS])
                    print(f"index of {len(service.documents())} documents built in "
                          f"{time.monotonic() - t_ingest:.1f} s", flush=True)
                    # A bot in service has its models loaded; no citizen should pay for it.
                    t_warm = time.monotonic()
                    service.generator.count_tokens("warm-up")
                    service.search("warm-up", 1)
                    service.quick("warm-up")
                    print(f"models loaded in {time.monotonic() - t_warm:.1f} s", flush=True)
                    idle_s = asyncio.run(idle_baseline(
                        hs, cfg, service, hs.register("baseline", secrets.token_urlsafe(12)),
                        deadline))
                    print(f"idle bot: first sign of life after {idle_s or 0:.2f} s", flush=True)
                answerer = WholeAnswers(service) if mode == "before" else service
                print(f"\n--- mode {mode}", flush=True)
                citizens, outcomes, bot, load_s = asyncio.run(
                    load(hs, cfg, answerer, accounts, deadline))
                passed, results[mode] = report(mode, citizens, outcomes, bot, load_s,
                                               cfg.bot.queue_size, args.time_limit)
                ok = ok and passed
                signs = [o.first_sign_s for o in outcomes if o.first_sign_s is not None]
                if signs and idle_s:
                    p95 = percentile(signs, 0.95)
                    print(f"first sign of life p95 with {len(citizens)} citizens: {p95:.2f} s; "
                          f"idle bot {idle_s:.2f} s; ratio {p95 / idle_s:.1f}x "
                          "(target p95 < 1 s)")
                last = outcomes
            if args.servers and service is not None:
                on_servers = against_servers(args.servers, hs, cfg, service, accounts,
                                             time.monotonic() + args.time_limit)
        except (SetupFailed, CivicbotError, TimeoutError) as exc:
            print(f"load: {exc or type(exc).__name__}", file=sys.stderr)
            return 1
        finally:
            hs.stop()
    if on_servers is not None:
        ok = report_servers(on_servers, last, args.servers, cfg.bot.queue_size,
                            args.time_limit) and ok
    if len(results) > 1:
        keys = list(next(iter(results.values())))
        print(f"\n{'':18}" + "".join(f"{m:>12}" for m in results))
        for key in keys:
            print(f"{key:18}" + "".join(f"{results[m][key]:>12}" for m in results))
        print("(seconds from sending the question, as the citizen's client sees it)")
    print(f"\ntotal runtime {time.monotonic() - t_start:.1f} s")
    return 0 if ok else 1


# -- --servers N: the same load against a pool of local inference servers -------------------


def against_servers(n: int, hs: Any, cfg: Any, service: Any, accounts: list[dict[str, str]],
                    deadline: float) -> tuple[Any, ...]:
    """The load again with `[llm] backend = "server"`: `n` llama_cpp.server processes with
    the model the local run used, `[bot] concurrent_answers = n`; the same bot account,
    device and state, as a bot restarted with a new configuration."""
    from civicbot.service import Service
    from tests.llama_server_harness import LlamaServer

    servers = [LlamaServer(service.model_path(), threads=1) for _ in range(n)]
    try:
        t_start = time.monotonic()
        for s in servers:
            try:
                s.start()
            except RuntimeError as exc:
                raise SetupFailed(f"an inference server did not start: {exc}") from exc
        print(f"\n{n} inference servers up after {time.monotonic() - t_start:.1f} s", flush=True)
        pooled = (cfg.replace("llm", backend="server", servers=tuple(s.url for s in servers))
                  .replace("bot", concurrent_answers=n))
        on_pool = Service(pooled, embedder=service.embedder)
        on_pool.generator.count_tokens("warm-up")
        return asyncio.run(load(hs, pooled, on_pool, accounts, deadline))
    finally:
        for s in servers:
            s.stop()


def answers_per_minute(outcomes: list[Outcome]) -> float:
    """Answers finished per minute, counted until the last one arrived."""
    done = [o.final_s for o in outcomes if o.kind == "answered" and o.final_s is not None]
    return len(done) / max(done) * 60 if done else 0.0


def report_servers(run: tuple[Any, ...], local: list[Outcome], n: int, queue_size: int,
                   time_limit: float) -> bool:
    citizens, outcomes, bot, load_s = run
    print(f"\n==== the same citizens against {n} inference servers (concurrent_answers {n})")
    ok, _ = report("servers", citizens, outcomes, bot, load_s, queue_size, time_limit)
    base, pooled = answers_per_minute(local), answers_per_minute(outcomes)
    print(f"\nanswers per minute: local backend {base:.1f}, {n} servers {pooled:.1f}"
          f" (ratio {pooled / base if base else float('nan'):.2f})")
    print("  on this machine the servers share its cores with each other and the bot: the "
          "ratio shows the pool's overhead, not a speed-up")
    return ok


if __name__ == "__main__":
    sys.exit(main())
