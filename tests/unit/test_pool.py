"""The pool of inference servers: spreading, taking out, retrying without repeating text, and
giving up. Small honest servers stand in here; tests/integration/test_server_backend.py runs
the same pool against real `llama_cpp.server` processes."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from civicbot import metrics
from civicbot.answer.pool import ServerPool
from civicbot.answer.server import ServerClient, ServerFailed, host_of
from civicbot.errors import ConfigError, GenerationTimeout, ModelError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedServer:
    """A server that writes `text` in pieces of `step` characters, failing after `fail_after`
    pieces (None: never), and counting requests."""

    def __init__(self, host: str, text: str = "The permit costs 120 euros.", step: int = 4,
                 fail_after: int | None = None, tokens: int | None = None,
                 n_ctx: int | None = None):
        self.host, self.model, self.text, self.step = host, "", text, step
        self.fail_after, self.tokens, self.n_ctx = fail_after, tokens, n_ctx
        self.requests = 0
        self.gate: threading.Event | None = None

    def stream_chat(self, messages, max_tokens, temperature, seed=None, time_limit_s=None):
        self.requests += 1
        assert seed is not None  # retries depend on it
        for i in range(0, len(self.text), self.step):
            if self.gate is not None and i > 0:  # the first piece comes at once
                self.gate.wait(5)
            if self.fail_after is not None and i // self.step >= self.fail_after:
                raise ServerFailed(f"{self.host} broke off")
            yield self.text[i : i + self.step]

    def count_tokens(self, text: str) -> int | None:
        return self.tokens

    def context_size(self) -> int | None:
        return self.n_ctx

    def close(self) -> None:
        pass


MESSAGES = [{"role": "user", "content": "What does a permit cost?"}]


def test_a_server_failing_midway_is_replaced_and_no_text_is_given_twice() -> None:
    broken = ScriptedServer("a:1", fail_after=3)
    good = ScriptedServer("b:1")
    pool = ServerPool([broken, good], clock=Clock())
    pieces = list(pool.stream(MESSAGES))
    assert "".join(pieces) == good.text  # each character once, in order
    assert broken.requests == 1 and good.requests == 1
    assert pool.up() == {"a:1": False, "b:1": True}


def test_a_replay_that_differs_from_what_was_shown_stops_rather_than_splices() -> None:
    broken = ScriptedServer("a:1", fail_after=3)
    other = ScriptedServer("b:1", text="Another model words it differently.")
    pool = ServerPool([broken, other], clock=Clock())
    shown = []
    with pytest.raises(ModelError, match="different answer"):
        for piece in pool.stream(MESSAGES):
            shown.append(piece)
    assert "".join(shown) == broken.text[:12]  # only the first server's beginning, once


def test_with_every_server_down_the_pool_gives_up_and_counts_it() -> None:
    before = metrics.ERRORS.labels("servers_down")._value.get()
    pool = ServerPool([ScriptedServer("a:1", fail_after=0), ScriptedServer("b:1", fail_after=0)],
                      clock=Clock())
    with pytest.raises(ModelError, match="no inference server can answer"):
        list(pool.stream(MESSAGES))
    assert metrics.ERRORS.labels("servers_down")._value.get() == before + 1
    assert metrics.SERVER_UP.labels("a:1")._value.get() == 0


def test_a_failed_server_is_left_alone_for_its_cooldown_then_tried_again() -> None:
    clock = Clock()
    flaky = ScriptedServer("a:1", fail_after=0)
    steady = ScriptedServer("b:1")
    pool = ServerPool([flaky, steady], clock=clock, cooldown_s=30)
    list(pool.stream(MESSAGES))
    list(pool.stream(MESSAGES))
    assert flaky.requests == 1 and steady.requests == 2
    clock.now += 31
    flaky.fail_after = None
    list(pool.stream(MESSAGES))
    list(pool.stream(MESSAGES))
    assert flaky.requests == 2  # back in the rotation


def test_requests_go_to_the_server_with_the_fewest_in_flight() -> None:
    a, b = ScriptedServer("a:1"), ScriptedServer("b:1")
    a.gate = threading.Event()  # a's answer waits after its first piece until released
    pool = ServerPool([a, b], clock=Clock(), max_concurrent=2)
    first = pool.stream(MESSAGES)
    started = next(first)
    assert a.requests == 1 and pool._members[0].in_flight == 1
    assert "".join(pool.stream(MESSAGES)) == b.text and b.requests == 1  # not onto busy a
    a.gate.set()
    assert started + "".join(first) == a.text
    assert [m.in_flight for m in pool._members] == [0, 0]


def test_when_every_server_is_full_a_request_waits_within_its_time_limit() -> None:
    a = ScriptedServer("a:1")
    a.gate = threading.Event()
    pool = ServerPool([a], max_concurrent=1, time_limit_s=0.3)
    busy = pool.stream(MESSAGES)
    assert next(busy)
    with pytest.raises(ModelError, match="busy"):
        list(pool.stream(MESSAGES))
    busy.close()  # a reader that stops early frees the slot
    a.gate.set()
    assert "".join(pool.stream(MESSAGES)) == a.text


def test_the_time_limit_cuts_a_long_answer_after_what_was_written() -> None:
    clock = Clock()
    server = ScriptedServer("a:1", text="x" * 40)
    pool = ServerPool([server], clock=clock, time_limit_s=10)
    got = []
    with pytest.raises(GenerationTimeout):
        for piece in pool.stream(MESSAGES):
            got.append(piece)
            clock.now += 6
    assert "".join(got) == "x" * 8


def test_token_counts_and_context_come_from_the_servers_else_a_safe_estimate() -> None:
    pool = ServerPool([ScriptedServer("a:1", tokens=7, n_ctx=4096),
                       ScriptedServer("b:1", tokens=7, n_ctx=1024)], clock=Clock(), n_ctx=2048)
    assert pool.count_tokens("anything") == 7
    assert pool.context_size == 1024  # a request may land on the smaller one
    silent = ServerPool([ScriptedServer("a:1")], n_ctx=2048)
    assert silent.context_size == 2048
    text = "De gemeente verstrekt een parkeervergunning voor bewoners."
    assert silent.count_tokens(text) >= len(text) / 2.5  # over, never under, the real count


def test_from_config_reads_the_key_from_the_named_environment_variable() -> None:
    from civicbot.config import build

    cfg = build({"llm": {"backend": "server", "servers": ["http://10.0.0.5:8080/v1"],
                         "api_key_env": "POOL_TEST_KEY"}}, env={})
    with pytest.raises(ConfigError, match="POOL_TEST_KEY"):
        ServerPool.from_config(cfg.llm, {})
    pool = ServerPool.from_config(cfg.llm, {"POOL_TEST_KEY": "s3cret"})
    assert pool.hosts == ["10.0.0.5:8080"]
    assert pool._members[0].client._http.headers["Authorization"] == "Bearer s3cret"
    pool.close()


def test_host_of_never_shows_credentials() -> None:
    assert host_of("http://user:pw@10.0.0.5:8080/v1") == "10.0.0.5:8080"
    assert host_of("https://llm.example.org/v1") == "llm.example.org"
    assert host_of("http://[fd00::5]:8080/v1") == "[fd00::5]:8080"


# -- one server's client: what arrives over HTTP is checked -----------------------------------


def _client(handler) -> ServerClient:  # type: ignore[no-untyped-def]
    return ServerClient("http://10.0.0.5:8080/v1", transport=httpx.MockTransport(handler))


def _sse(*events: str) -> bytes:
    return "".join(f"{e}\n\n" for e in events).encode()


def _chunk(text: str, finish: str | None = None) -> str:
    return "data: " + json.dumps({"choices": [{"delta": {"content": text},
                                               "finish_reason": finish}]})


def test_the_client_reads_server_sent_events_and_skips_comments() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        return httpx.Response(200, content=_sse(": keep-alive", _chunk("De rente "),
                                                _chunk("is 2%."), _chunk("", "stop"),
                                                "data: [DONE]"))

    pieces = list(_client(handler).stream_chat(MESSAGES, 20, 0.1, seed=7))
    assert pieces == ["De rente ", "is 2%."]
    assert seen["stream"] is True and seen["seed"] == 7 and seen["max_tokens"] == 20


@pytest.mark.parametrize(("response", "failed"), [
    (httpx.Response(503, json={"error": {"message": "loading model"}}), True),
    (httpx.Response(429, text="slow down"), True),
    (httpx.Response(400, json={"error": "the prompt is longer than the context"}), False),
    (httpx.Response(200, content=_sse(_chunk("half an"))), True),  # cut off: no end
    (httpx.Response(200, content=_sse("data: {not json")), True),
    (httpx.Response(200, content=_sse('data: {"error": "out of memory"}')), True),
])
def test_server_trouble_is_a_failure_to_retry_elsewhere_a_bad_request_is_not(
        response: httpx.Response, failed: bool) -> None:
    with pytest.raises(ModelError) as caught:
        list(_client(lambda request: response).stream_chat(MESSAGES, 20, 0.1))
    assert isinstance(caught.value, ServerFailed) is failed
    assert "10.0.0.5:8080" in str(caught.value)


def test_a_server_sending_only_keep_alives_cannot_hold_an_answer_forever() -> None:
    def pings():  # type: ignore[no-untyped-def]
        for _ in range(200):
            time.sleep(0.01)
            yield b": ping\n\n"

    client = _client(lambda request: httpx.Response(200, content=pings()))
    started = time.monotonic()
    with pytest.raises(GenerationTimeout):
        list(client.stream_chat(MESSAGES, 20, 0.1, time_limit_s=0.2))
    assert time.monotonic() - started < 1.0


def test_an_unreachable_server_is_a_failure() -> None:
    from civicbot.homeserver import free_port

    client = ServerClient(f"http://127.0.0.1:{free_port()}/v1", timeout_s=2)
    with pytest.raises(ServerFailed, match="unreachable"):
        list(client.stream_chat(MESSAGES, 20, 0.1))
    with pytest.raises(ServerFailed):
        client.model_names()
    assert client.context_size() is None
