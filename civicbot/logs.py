"""Logging for the long-running bot: plain text or one JSON object per line. Question texts
and user ids are never logged: civicbot's own messages leave them out, and `Redact`, on
every handler, takes Matrix user ids and event contents out of what libraries log (nio's
encryption warnings name the sender: "undecryptable Megolm event from @someone:server")."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

from civicbot.config import LoggingConfig

# A Matrix user id: @localpart:server[:port] (server names may be IPv6 literals), also as
# it appears URL-encoded in a request path (%40localpart%3Aserver).
_USER_ID = re.compile(
    r"(?:@|%40)[\w.=\-/+]+(?::|%3A)(?:\[[0-9A-Fa-f:.]+\]|[\w\-]+(?:\.[\w\-]+)*)"
    r"(?:(?::|%3A)\d+)?", re.IGNORECASE)
# Signs that a message quotes an event (its content, or a schema error showing the value).
_EVENT_KEYS = ("content", "body", "formatted_body", "ciphertext", "m.relates_to",
               "Failed validating", "On instance")
_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """`text` without Matrix user ids, and without anything that looks like an event's
    content: from the first brace or quote of such a message on, the rest is dropped."""
    text = _USER_ID.sub("@[user]", text)
    if any(key in text for key in _EVENT_KEYS):
        cut = min((i for i in (text.find("{"), text.find("'"), text.find('"'), text.find("\n"))
                   if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut].rstrip() + " [event content left out]"
    return text


class Redact(logging.Filter):
    """On a handler: rewrites each record it passes without user ids and event contents.
    (On a handler, not a logger: records of every library reach it, also nio's.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: show it without its arguments
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_traceback(record.exc_text)
        return True


def redact_traceback(text: str) -> str:
    """A traceback with its exception messages redacted; the frames (file, line, code) are
    kept as they are, apart from user ids."""
    lines = []
    for line in text.splitlines():
        if line.startswith((" ", "Traceback", "During handling", "The above exception")):
            lines.append(_USER_ID.sub("@[user]", line))
        else:  # "SomeError: its message", which may quote what an event said
            lines.append(redact(line))
    return "\n".join(lines)


def redact_handlers(logger: logging.Logger | None = None) -> None:
    """Put `Redact` on every handler of `logger` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact())


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
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else cfg.level)
    # apscheduler logs every job run at INFO; peewee (nio's key store) logs its SQL at DEBUG,
    # with the bot's pickled encryption account in it: never wanted, even with -v. faiss logs
    # each CPU variant it fails to load as a ModuleNotFoundError at INFO, which reads like a
    # fault to an operator although the portable build then loads.
    for noisy in ("nio", "aiohttp", "urllib3", "httpx", "sentence_transformers", "transformers",
                  "apscheduler", "peewee", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
