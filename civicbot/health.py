"""The optional HTTP listener for operators ([health] in the config; loopback by default):

    /healthz   200 "ok" while the bot syncs with its homeserver and its index is loaded,
               503 with the reason otherwise (for Docker's HEALTHCHECK, a load balancer, ...)
    /metrics   Prometheus text format, written by prometheus_client (civicbot.metrics)

It runs in a daemon thread with the standard library's threading HTTP server: two read-only
endpoints need nothing more, and nothing here ever blocks the bot's event loop."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from civicbot import metrics
from civicbot.config import HealthConfig
from civicbot.errors import CivicbotError

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# A sync long-poll returns at least every 30 s (SYNC_TIMEOUT_MS); three missed ones mean
# the bot is stuck or cut off from its homeserver.
MAX_SYNC_AGE_S = 90.0


class _Handler(BaseHTTPRequestHandler):
    server_version = "civicbot"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        path = self.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            ok, reason = metrics.health(MAX_SYNC_AGE_S)
            self._reply(200 if ok else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
        elif path == METRICS_PATH:
            self._reply(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
        else:
            self._reply(404, f"not found; try {HEALTH_PATH} or {METRICS_PATH}\n".encode(),
                        "text/plain; charset=utf-8")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("health listener: " + format, *args)


class HealthServer:
    """The listener, serving in a daemon thread until `stop()`."""

    def __init__(self, host: str, port: int):
        try:
            self._server = ThreadingHTTPServer((host, port), _Handler)
        except OSError as exc:
            raise CivicbotError(
                f"health.port: cannot listen on {host}:{port} ({exc.strerror}); choose another "
                "[health] port or set [health] enabled = false") from exc
        self._server.daemon_threads = True
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="civicbot-health", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics on %s%s and %s", self.url, HEALTH_PATH, METRICS_PATH)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start(cfg: HealthConfig) -> HealthServer | None:
    """Start the listener when [health] enabled is true."""
    return HealthServer(cfg.host, cfg.port).start() if cfg.enabled else None
