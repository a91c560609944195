"""/healthz and /metrics of a real bot on a real Synapse (the small harness answerer writes the
answers). The metrics are read with prometheus_client's own parser. The whole stack with the
real models is covered by test_start.py, which also reads /metrics."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from matrix_harness import bot_config, citizen, direct_room, run, running_bot

from civicbot.homeserver import free_port
from tests.unit.test_health import moved, samples

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError as exc:
        return 0, str(exc.reason)


def test_metrics_move_after_questions_and_healthz_is_200_while_running(
    homeserver, bot_account, answerer, tmp_path
):
    port = free_port()
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")
    cfg = cfg.replace("health", enabled=True, port=port)
    base = f"http://127.0.0.1:{port}"

    async def fetch(path: str) -> tuple[int, str]:
        return await asyncio.to_thread(_get, base + path)

    async def scenario() -> None:
        async with running_bot(cfg, answerer) as bot, citizen(homeserver) as c:
            assert await fetch("/healthz") == (200, "ok\n")
            status, text = await fetch("/metrics")
            assert status == 200
            before = samples(text)
            # the harness answerer knows 3 documents of 3 passages each
            assert before[("civicbot_documents", ())] == 3
            assert before[("civicbot_chunks", ())] == 9

            room = await direct_room(c, bot)
            _, _, final = await c.ask(room, "How much is a parking permit?", bot.user_id)
            assert "120 euros" in final["body"]
            _, _, refused = await c.ask(room, "When does the swimming pool open?", bot.user_id)
            assert "do not answer" in refused["body"]

            # the counters move right after the final edit is sent, so the citizen may see
            # the answer a moment before they do
            key = ("civicbot_questions_total", (("outcome", "refused"),))
            after: dict = {}

            async def refreshed() -> bool:
                nonlocal after
                after = samples((await fetch("/metrics"))[1])
                return after[key] > before[key]

            for _ in range(100):
                if await refreshed():
                    break
                await asyncio.sleep(0.1)

            assert moved(before, after, "civicbot_questions_total", outcome="generated") == 1
            assert moved(before, after, "civicbot_questions_total", outcome="refused") == 1
            assert moved(before, after, "civicbot_questions_total", outcome="error") == 0
            assert moved(before, after, "civicbot_answer_latency_seconds_count",
                         outcome="generated") == 1
            assert moved(before, after, "civicbot_first_sign_of_life_seconds_count") == 2
            assert after[("civicbot_queue_length", ())] == 0
            assert after[("civicbot_index_loaded", ())] == 1
            assert after[("civicbot_matrix_last_sync_timestamp_seconds", ())] > 0
            assert (await fetch("/healthz"))[0] == 200
        # stopped: the listener is gone with the bot
        status, _ = await fetch("/healthz")
        assert status == 0

    run(scenario(), timeout=180)


def test_healthz_says_503_with_the_reason_when_the_index_cannot_be_used(
    homeserver, bot_account, tmp_path
):
    from matrix_harness import WordLookupAnswerer

    from civicbot.errors import ModelMismatch

    class BrokenIndex(WordLookupAnswerer):
        def documents(self):  # type: ignore[no-untyped-def]
            raise ModelMismatch("the index was built with the embedding model 'x'; run "
                                "`civicbot ingest --rebuild`")

    port = free_port()
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot").replace(
        "health", enabled=True, port=port)

    async def scenario() -> None:
        async with running_bot(cfg, BrokenIndex()):
            status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
            assert status == 503 and "--rebuild" in body
            text = (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics"))[1]
            assert samples(text)[("civicbot_index_loaded", ())] == 0

    run(scenario(), timeout=120)
