"""The health listener and the metrics it serves, without a bot: the state is fed through the
same functions the bot calls. The bot's own wiring is tested in
tests/integration/test_metrics.py against a real homeserver."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from civicbot import health, metrics
from civicbot.config import HealthConfig
from civicbot.errors import CivicbotError


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a /metrics page, parsed by the Prometheus client library."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much one series grew between two readings (a new series starts from 0)."""
    key = (name, tuple(sorted(labels.items())))
    return after[key] - before.get(key, 0.0)


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    metrics.reset_liveness()
    srv = health.start(HealthConfig(enabled=True, port=0))
    assert srv is not None
    try:
        yield srv
    finally:
        srv.stop()
        metrics.reset_liveness()


def test_healthz_is_503_with_the_reason_until_the_bot_syncs_and_the_index_loads(server):
    status, body = _get(server.url + "/healthz")
    assert status == 503 and "not synced" in body
    metrics.matrix_synced()
    status, body = _get(server.url + "/healthz")
    assert status == 503 and "index is not loaded" in body
    metrics.index_loaded(3, 42)
    assert _get(server.url + "/healthz") == (200, "ok\n")
    metrics.index_failed("the index at x was built with another model")
    status, body = _get(server.url + "/healthz")
    assert status == 503 and "another model" in body


def test_a_stale_sync_makes_the_bot_unhealthy():
    metrics.reset_liveness()
    metrics.matrix_synced(now=1000.0)
    metrics.index_loaded(1, 1)
    assert metrics.health(90, now=1050.0) == (True, "ok")
    ok, reason = metrics.health(90, now=1200.0)
    assert not ok and "200 s ago" in reason
    metrics.reset_liveness()


def test_metrics_are_prometheus_text_with_the_documented_series(server):
    before = samples(_get(server.url + "/metrics")[1])
    metrics.question_finished("extractive", 4.2)
    metrics.question_finished(None, 1.0)
    metrics.turned_away("busy")
    metrics.sync_finished(False, when=1_700_000_000.0)
    metrics.index_loaded(7, 99)
    status, text = _get(server.url + "/metrics")
    assert status == 200
    after = samples(text)

    assert moved(before, after, "civicbot_questions_total", outcome="extractive") == 1
    assert moved(before, after, "civicbot_questions_total", outcome="error") == 1
    assert moved(before, after, "civicbot_questions_total", outcome="generated") == 0
    assert moved(before, after, "civicbot_extractive_fallbacks_total") == 1
    assert moved(before, after, "civicbot_errors_total", kind="answer") == 1
    assert moved(before, after, "civicbot_questions_turned_away_total", reason="busy") == 1
    assert moved(before, after, "civicbot_answer_latency_seconds_count", outcome="extractive") == 1
    assert after[("civicbot_last_sync_timestamp_seconds", ())] == 1_700_000_000.0
    assert after[("civicbot_last_sync_ok", ())] == 0
    assert after[("civicbot_documents", ())] == 7 and after[("civicbot_chunks", ())] == 99
    assert ("civicbot_queue_length", ()) in after
    assert ("process_resident_memory_bytes", ()) in after
    metrics.sync_finished(True)
    assert samples(_get(server.url + "/metrics")[1])[("civicbot_last_sync_ok", ())] == 1


def test_other_paths_are_404_and_a_taken_port_is_a_clear_error(server):
    status, body = _get(server.url + "/")
    assert status == 404 and "/healthz" in body
    with pytest.raises(CivicbotError, match=r"health.port: cannot listen"):
        health.HealthServer("127.0.0.1", server.port)


def test_disabled_means_no_listener():
    assert health.start(HealthConfig(enabled=False)) is None
