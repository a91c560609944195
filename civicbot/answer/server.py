"""One OpenAI-compatible inference server (llama.cpp's server, llama-cpp-python's
`llama_cpp.server`, vLLM, Ollama, LocalAI) over HTTP: the only module that imports httpx.

Streaming uses server-sent events from `/v1/chat/completions`, the seam all of these speak.
Token counts and the context size come from the server where it offers them (llama.cpp and
vLLM: `/tokenize`, `/props`, `/v1/models`; llama-cpp-python: `/extras/tokenize/count`);
otherwise the caller falls back to a safe estimate."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Generator, Iterator
from typing import Any

import httpx

from civicbot.errors import GenerationTimeout, ModelError

log = logging.getLogger(__name__)


class ServerFailed(ModelError):
    """The server could not serve this request (unreachable, timed out, broke off, overloaded
    or refused our credentials): another server may."""


# Statuses that say something about the server, not about the request: try another one.
# Any other 4xx (e.g. 400 for a prompt longer than the context) would fail everywhere.
_SERVER_SIDE = {401, 403, 404, 408, 409, 429}


def host_of(url: str) -> str:
    """`host:port` of a base URL: what logs, metrics and !about show (never credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


class ServerClient:
    """A client of one server at `base_url` (e.g. http://10.0.0.5:8080/v1)."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        api_key: str = "",
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        # llama.cpp's and vLLM's own endpoints (/tokenize, /props) sit beside /v1, not in it.
        self.root = self.base_url.removesuffix("/v1")
        self.host = host_of(base_url)
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # `timeout_s` bounds connecting and each wait for the next bytes, not a whole answer
        # (the pool's time limit does that): a server that falls silent mid-stream has failed.
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers,
                                  transport=transport)
        self._count_via: str | None = None  # the tokenize endpoint that worked, "" for none

    def close(self) -> None:
        self._http.close()

    # ---- generation ------------------------------------------------------------------------

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                    seed: int | None = None,
                    time_limit_s: float | None = None) -> Generator[str, None, None]:
        """Yield the reply's text piece by piece. Raises ServerFailed when the server fails
        (before or during the stream), ModelError when it refuses the request itself, and
        GenerationTimeout when `time_limit_s` passes (checked on every line the server
        sends, so keep-alive comments without text cannot hold an answer forever)."""
        deadline = time.monotonic() + time_limit_s if time_limit_s is not None else None
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "stream": True}
        if self.model:
            body["model"] = self.model
        if seed is not None:
            body["seed"] = seed
        try:
            with self._http.stream("POST", f"{self.base_url}/chat/completions",
                                   json=body) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise self._refusal(resp)
                for data in _sse_data(resp.iter_lines(), deadline, self.host):
                    if data == "[DONE]":
                        return
                    piece, finished = _delta(data, self.host)
                    if piece:
                        yield piece
                    if finished:
                        return
            # A stream that ends without [DONE] or a finish_reason was cut off.
            raise ServerFailed(f"{self.host} ended the answer midway")
        except httpx.TimeoutException as exc:
            raise ServerFailed(f"{self.host} did not answer in time ({_why(exc)})") from exc
        except httpx.HTTPError as exc:
            raise ServerFailed(f"{self.host} is unreachable or broke off ({_why(exc)})") from exc

    def _refusal(self, resp: httpx.Response) -> ModelError:
        try:
            detail = resp.json().get("error", resp.text)
            detail = detail.get("message", detail) if isinstance(detail, dict) else detail
        except (ValueError, AttributeError):
            detail = resp.text
        said = f"{self.host} answered HTTP {resp.status_code}: {str(detail)[:200]}"
        if resp.status_code >= 500 or resp.status_code in _SERVER_SIDE:
            return ServerFailed(said)
        return ModelError(f"{said} (the request itself was refused)")

    # ---- what the server tells about its model ---------------------------------------------

    def model_names(self) -> list[str]:
        """The models the server serves (`/v1/models`). Raises ServerFailed."""
        return [str(m.get("id", "")) for m in self._get_json(f"{self.base_url}/models")
                .get("data", []) if isinstance(m, dict)]

    def context_size(self) -> int | None:
        """Tokens of context per request as the server reports it, or None when it does not:
        llama.cpp's `/props` (per slot), vLLM's `max_model_len` in `/v1/models`."""
        for url, find in ((f"{self.root}/props", _props_n_ctx),
                          (f"{self.base_url}/models", self._models_max_len)):
            try:
                n = find(self._get_json(url))
            except (ServerFailed, ValueError, TypeError, AttributeError):
                continue
            if isinstance(n, int) and n > 0:
                return n
        return None

    def count_tokens(self, text: str) -> int | None:
        """Tokens of `text` by the server's own tokenizer, or None when it offers none. The
        endpoint that works is remembered; a failure raises ServerFailed."""
        if self._count_via == "":
            return None
        tries = [self._count_via] if self._count_via else ["tokenize", "extras"]
        for via in tries:
            try:
                n = self._count(via, text)
            except ServerFailed:
                if self._count_via:
                    raise
                continue
            if n is not None:
                self._count_via = via
                return n
        if self._count_via is None:
            self._count_via = ""
            log.info("%s offers no tokenizer endpoint; estimating token counts", self.host)
        return None

    def _count(self, via: str, text: str) -> int | None:
        if via == "tokenize":  # llama.cpp reads "content", vLLM "prompt"
            body = {"content": text, "prompt": text, "add_special": False,
                    "add_special_tokens": False}
            if self.model:
                body["model"] = self.model
            data = self._post_json(f"{self.root}/tokenize", body)
        else:  # llama-cpp-python
            data = self._post_json(f"{self.root}/extras/tokenize/count",
                                   {"input": text, **({"model": self.model} if self.model else {})})
        if isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        return None

    def _models_max_len(self, data: dict[str, Any]) -> int | None:
        for m in data.get("data", []):
            if not self.model or m.get("id") == self.model:
                n = m.get("max_model_len") or m.get("meta", {}).get("n_ctx_train")
                return int(n) if n else None
        return None

    def _get_json(self, url: str) -> dict[str, Any]:
        return self._json(lambda: self._http.get(url))

    def _post_json(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(lambda: self._http.post(url, json=body))

    def _json(self, request: Any) -> dict[str, Any]:
        try:
            resp = request()
        except httpx.HTTPError as exc:
            raise ServerFailed(f"{self.host} is unreachable ({_why(exc)})") from exc
        if resp.status_code != 200:
            raise ServerFailed(f"{self.host} answered HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise ServerFailed(f"{self.host} answered something other than JSON") from exc
        if not isinstance(data, dict):
            raise ServerFailed(f"{self.host} answered an unexpected JSON value")
        return data


def _sse_data(lines: Iterator[str], deadline: float | None, host: str) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream (comments and other fields skipped;
    the OpenAI streams put one JSON object in each event)."""
    for line in lines:
        if deadline is not None and time.monotonic() > deadline:
            raise GenerationTimeout(f"{host} did not finish within the time limit; the reply "
                                    "was cut off.")
        if line.startswith("data:"):
            yield line[5:].strip()


def _delta(data: str, host: str) -> tuple[str, bool]:
    """(text, finished) of one streamed chunk; a malformed chunk means a broken server."""
    try:
        chunk = json.loads(data)
        if "error" in chunk:
            raise ServerFailed(f"{host} reported an error mid-answer: {str(chunk['error'])[:200]}")
        choice = chunk["choices"][0]
        text = (choice.get("delta") or {}).get("content") or ""
        return str(text), choice.get("finish_reason") is not None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ServerFailed(f"{host} sent a malformed chunk ({exc})") from exc


def _props_n_ctx(data: dict[str, Any]) -> int | None:
    n = (data.get("default_generation_settings") or {}).get("n_ctx") or data.get("n_ctx")
    return int(n) if n else None


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
