"""Matrix events as plain dicts in, decisions and message contents out. Pure: no nio.

Room ids are opaque strings throughout (room version 12 ids have no `:server` part).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from civicbot.matrix.render import Rendered

# Namespaced keys on the bot's own messages: what a message is ("answer", "status",
# "command") and whether an answer is complete. Clients ignore them; the bot reads them
# back to build a thread's history and tests read them to know an answer is final.
KIND = "org.civicbot.kind"
FINAL = "org.civicbot.final"


@dataclass(frozen=True)
class Incoming:
    """A text message from a citizen, as far as the bot cares."""

    event_id: str
    room_id: str
    sender: str
    body: str
    formatted_body: str
    thread_root: str | None  # set when the message was written inside a thread
    timestamp_ms: int
    mentions: tuple[str, ...] | None  # m.mentions user ids, None when the key is absent


def parse_message(room_id: str, event: dict[str, Any], own_user_id: str) -> Incoming | None:
    """The citizen message in `event`, or None for what the bot must ignore: its own
    messages, notices (other bots), edits, non-text messages, redacted events."""
    if event.get("type") != "m.room.message" or event.get("sender") == own_user_id:
        return None
    content = event.get("content") or {}
    if content.get("msgtype") != "m.text" or "m.new_content" in content:
        return None
    relates = content.get("m.relates_to") or {}
    if relates.get("rel_type") == "m.replace":
        return None
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        return None
    thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
    mentions = content.get("m.mentions")
    user_ids = None
    if isinstance(mentions, dict):
        user_ids = tuple(u for u in mentions.get("user_ids", ()) if isinstance(u, str))
    formatted = ""
    if content.get("format") == "org.matrix.custom.html":
        formatted = content.get("formatted_body")
    return Incoming(
        event_id=str(event.get("event_id", "")),
        room_id=room_id,
        sender=str(event.get("sender", "")),
        body=strip_reply_fallback(body),
        formatted_body=formatted if isinstance(formatted, str) else "",
        thread_root=thread_root if isinstance(thread_root, str) else None,
        timestamp_ms=int(event.get("origin_server_ts") or 0),
        mentions=user_ids,
    )


def strip_reply_fallback(body: str) -> str:
    """Remove the quoted `> <@user> ...` lines older clients put before a reply."""
    lines = body.splitlines()
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    return "\n".join(lines).strip()


def _name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True)
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![\w@])@?(?:{alternatives})(?![\w])", re.IGNORECASE)


def is_mentioned(msg: Incoming, own_user_id: str, names: Iterable[str]) -> bool:
    """Whether `msg` addresses the bot: an intentional mention (m.mentions), a pill link to
    it, or its user id or display name in the text."""
    if msg.mentions is not None and own_user_id in msg.mentions:
        return True
    if own_user_id and f"matrix.to/#/{own_user_id}" in msg.formatted_body:
        return True
    pattern = _name_pattern([own_user_id, *names, own_user_id.split(":", 1)[0]])
    return bool(pattern and pattern.search(msg.body))


def strip_mention(body: str, own_user_id: str, names: Iterable[str]) -> str:
    """The question without the bot's name in front ("civicbot: what is ...")."""
    pattern = _name_pattern([own_user_id, *names, own_user_id.split(":", 1)[0]])
    text = body.strip()
    if pattern:
        m = pattern.match(text)
        if m:
            text = text[m.end():].lstrip(" \t:,;-–").strip()
    return text


def thread_relation(thread_root: str, reply_to: str) -> dict[str, Any]:
    """`m.relates_to` for a message in the thread on `thread_root`, replying to `reply_to`."""
    return {
        "rel_type": "m.thread",
        "event_id": thread_root,
        # Clients without thread support show the message as a reply to the question.
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": reply_to},
    }


def notice_content(
    rendered: Rendered,
    kind: str,
    thread_root: str,
    reply_to: str,
    mention: str | None = None,
    final: bool = True,
) -> dict[str, Any]:
    """An m.notice in the thread on `thread_root`, replying to `reply_to`."""
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": rendered.body,
        "format": "org.matrix.custom.html",
        "formatted_body": rendered.html,
        "m.relates_to": thread_relation(thread_root, reply_to),
        # Notify only the citizen who asked, never the whole room.
        "m.mentions": {"user_ids": [mention]} if mention else {},
        KIND: kind,
        FINAL: final,
    }
    return content


def edit_content(original_id: str, rendered: Rendered, kind: str, final: bool) -> dict[str, Any]:
    """An edit replacing the message `original_id` with `rendered`."""
    new = {
        "msgtype": "m.notice",
        "body": rendered.body,
        "format": "org.matrix.custom.html",
        "formatted_body": rendered.html,
        # No new mentions: an edit must not notify anyone again.
        "m.mentions": {},
        KIND: kind,
        FINAL: final,
    }
    return {
        "msgtype": "m.notice",
        "body": "* " + rendered.body,
        "format": "org.matrix.custom.html",
        "formatted_body": "* " + rendered.html,
        "m.new_content": new,
        "m.mentions": {},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original_id},
    }


def reaction_of(event: dict[str, Any]) -> tuple[str, str] | None:
    """(target event id, key) of an m.reaction event, else None."""
    if event.get("type") != "m.reaction":
        return None
    relates = (event.get("content") or {}).get("m.relates_to") or {}
    target, key = relates.get("event_id"), relates.get("key")
    if relates.get("rel_type") != "m.annotation" or not isinstance(target, str):
        return None
    if not isinstance(key, str):
        return None
    return target, key


def redacted_id(event: dict[str, Any]) -> str | None:
    """The event an m.room.redaction removes (top-level before room v11, in content after)."""
    if event.get("type") != "m.room.redaction":
        return None
    target = (event.get("content") or {}).get("redacts") or event.get("redacts")
    return target if isinstance(target, str) else None


def current_content(event: dict[str, Any]) -> dict[str, Any]:
    """An event's content with its latest edit applied, when the server bundled one."""
    content = event.get("content") or {}
    edit = ((event.get("unsigned") or {}).get("m.relations") or {}).get("m.replace")
    if isinstance(edit, dict):
        new = (edit.get("content") or {}).get("m.new_content")
        if isinstance(new, dict):
            return new
    return content
