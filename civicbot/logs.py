"""Logging for the long-running bot: plain text or one JSON object per line. Question texts
and user ids are never logged at INFO or above (the bot only logs them at DEBUG)."""

from __future__ import annotations

import json
import logging
import sys
import time

from civicbot.config import LoggingConfig


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(cfg: LoggingConfig, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if cfg.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else cfg.level)
    for noisy in ("nio", "aiohttp", "urllib3", "httpx", "sentence_transformers", "transformers",
                  "apscheduler"):  # apscheduler logs every job run at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
