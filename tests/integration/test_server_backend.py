"""`[llm] backend = "server"` against REAL OpenAI-compatible servers on loopback: two
`python -m llama_cpp.server` processes with the default GGUF (one thread each: the machine's
cores are shared), a real index of a real PDF, the real answer pipeline."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from llama_server_harness import LlamaServer

from civicbot import config as config_mod
from civicbot import doctor_facts, doctor_network, metrics
from civicbot.answer.pool import ServerPool
from civicbot.answer.server import ServerClient
from civicbot.homeserver import free_port
from civicbot.models import ensure_default_llm
from civicbot.service import Service
from tests.conftest import ROOT, TOZO

pytestmark = pytest.mark.slow

QUESTION = "Waarom is de rente op een Tozo-lening op 2 procent vastgesteld?"
STORY = [{"role": "user", "content": "Write a long story about a city council meeting."}]


@pytest.fixture(scope="module")
def servers():
    models_dir = Path(os.environ.get("CIVICBOT_TEST_MODELS_DIR", "/tmp/civicbot-test-models"))
    model = ensure_default_llm(models_dir)
    pair = [LlamaServer(model), LlamaServer(model)]
    try:
        for s in pair:
            s.start()
        yield pair
    finally:
        for s in pair:
            s.stop()


@pytest.fixture(scope="module")
def index_path(tmp_path_factory, shared, embedder) -> Path:
    path = tmp_path_factory.mktemp("server-backend") / "index"
    cfg = config_mod.build({"index": {"path": str(path)}}, env={}, base_dir=str(ROOT))
    Service(cfg, embedder=embedder).corpus.ingest([shared / "corpus" / TOZO])
    return path


def _service(index_path: Path, embedder, urls: list[str]) -> Service:
    cfg = config_mod.build({"index": {"path": str(index_path)},
                            "llm": {"backend": "server", "servers": urls, "timeout_s": 20.0}},
                           env={}, base_dir=str(ROOT))
    return Service(cfg, embedder=embedder)


def _pages(answer):
    return {(c.doc, p) for c in answer.citations for p in range(c.page_start, c.page_end + 1)}


def _answers_by(host: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "civicbot_llm_server_generation_seconds_count", {"server": host}) or 0.0


def test_a_streamed_answer_from_a_server_goes_through_the_grounding_check(
        servers, index_path, embedder):
    server = servers[0]
    service = _service(index_path, embedder, [server.url])
    pool = service.generator
    assert isinstance(pool, ServerPool)
    # The server's own tokenizer counts (the estimate would over-count this by far).
    text = "De gemeente verstrekt een parkeervergunning voor bewoners."
    assert 5 < pool.count_tokens(text) < len(text.encode()) / 2.5
    before = _answers_by(f"127.0.0.1:{server.port}")
    shown: list[str] = []
    answer = service.ask(QUESTION, on_text=shown.append)
    assert _answers_by(f"127.0.0.1:{server.port}") == before + 1  # the server wrote the draft
    assert not answer.refused and (TOZO, 1) in _pages(answer)
    # The draft went through the same grounding check as the local model's: checked
    # sentences with their sources, or, when too few pass, the quoted answer.
    assert answer.mode in ("generated", "extractive")
    assert all(piece.strip() for piece in shown)
    print(f"mode {answer.mode}; {len(shown)} streamed views; answer: {answer.text[:300]!r}")
    about = service.about()
    assert about["servers"] == f"127.0.0.1:{server.port}" and "server" in about["backend"]


def test_doctor_checks_a_real_server(servers, tmp_path):
    server = servers[1]
    names = ServerClient(server.url).model_names()
    assert names
    cfg = config_mod.build({"llm": {"backend": "server", "servers": [server.url],
                                    "model": names[0]}}, env={}, base_dir=str(tmp_path))
    result = doctor_network.check_inference_servers(doctor_facts.Doctor(cfg))
    assert result is not None and result.ok, result
    assert "one-token answer" in result.what
    own = doctor_network.check_servers_are_own(doctor_facts.Doctor(cfg))
    assert own is not None and own.ok and not own.warning
    wrong = cfg.replace("llm", model="no-such-model")
    result = doctor_network.check_inference_servers(doctor_facts.Doctor(wrong))
    assert result is not None and not result.ok and "no-such-model" in result.what


def test_a_server_killed_while_it_answers_is_replaced_and_no_text_comes_twice(servers):
    first, second = servers
    # Greedy here, so that the reference is the one text this model writes; the pool's
    # fixed seed makes the default temperature repeatable as well.
    reference = "".join(ServerPool([ServerClient(second.url)], temperature=0.0,
                                   max_tokens=60).stream(STORY))
    pool = ServerPool([ServerClient(first.url, timeout_s=20), ServerClient(second.url)],
                      temperature=0.0, max_tokens=60)
    stream = pool.stream(STORY)
    got = [next(stream) for _ in range(3)]
    assert [m.in_flight for m in pool._members] == [1, 0]  # the first server is answering
    first.kill()
    got += list(stream)
    assert "".join(got) == reference  # completed on the second; nothing shown twice
    assert pool.up() == {f"127.0.0.1:{first.port}": False, f"127.0.0.1:{second.port}": True}


def test_with_every_server_down_the_citizen_gets_the_quoted_answer(
        servers, index_path, embedder, caplog):
    first = servers[0]
    first.kill()  # dead already when this module runs in order; killed here when alone
    nobody = f"http://127.0.0.1:{free_port()}/v1"
    service = _service(index_path, embedder, [first.url, nobody])
    before = metrics.ERRORS.labels("servers_down")._value.get()
    with caplog.at_level(logging.WARNING):
        answer = service.ask(QUESTION)
    assert answer.mode == "extractive" and (TOZO, 1) in _pages(answer)
    assert "“" in answer.text  # the sources' own words
    assert "no inference server can answer" in caplog.text
    assert metrics.ERRORS.labels("servers_down")._value.get() == before + 1
