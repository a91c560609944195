"""Matrix events as plain dicts in, decisions and message contents out. Pure: no nio.

Room ids are opaque strings throughout (room version 12 ids have no `:server` part).

Events come from anyone in a room, and the homeserver checks only that they are JSON: any
field may have any type (`"m.relates_to": "x"`, `"m.mentions": {"user_ids": 5}`). Every
reader here takes nested objects through `obj()`/`text()`, so a malformed field makes an
event ignored, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from civicbot.matrix.commands import parse_command
from civicbot.matrix.render import Rendered, answer_text_from_body
from civicbot.records import Turn

# Namespaced keys on the bot's own messages: what a message is ("answer", "status",
# "command") and whether an answer is complete. Clients ignore them; the bot reads them
# back to build a thread's history and tests read them to know an answer is final.
KIND = "org.civicbot.kind"
FINAL = "org.civicbot.final"


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str | None:
    """`value` if it is a string, else None."""
    return value if isinstance(value, str) else None


def content_of(event: Any) -> dict[str, Any]:
    """An event's content, {} when the event or its content is not an object."""
    return obj(obj(event).get("content"))


# Nested fields the bot and the editor features read as objects. `sanitized` drops them
# when they are anything else, so code reading them with `.get` (nio's, or ours) is safe.
_OBJECT_FIELDS = ("m.relates_to", "m.mentions", "m.new_content", "info", "file")


def sanitized(event: Any) -> dict[str, Any]:
    """A copy of `event` whose content and known nested fields are objects (dropped when
    they are not) and whose event id, sender and type are strings (empty when not)."""
    event = obj(event)
    content = dict(content_of(event))
    for key in _OBJECT_FIELDS:
        if key in content and not isinstance(content[key], dict):
            del content[key]
    relates = content.get("m.relates_to")
    if relates is not None and "m.in_reply_to" in relates:
        if not isinstance(relates["m.in_reply_to"], dict):
            content["m.relates_to"] = {k: v for k, v in relates.items() if k != "m.in_reply_to"}
    clean = {**event, "content": content, "unsigned": obj(event.get("unsigned"))}
    for key in ("event_id", "sender", "type"):
        clean[key] = text(event.get(key)) or ""
    return clean


def event_id_of(event: Any) -> str:
    """The event's id, or "" when it has none that is a string."""
    return text(obj(event).get("event_id")) or ""


def thread_root_of(event: Any) -> str | None:
    """The root of the thread `event` was written in (relations stay in the clear, also in
    encrypted events), else None."""
    relates = obj(content_of(event).get("m.relates_to"))
    return text(relates.get("event_id")) if relates.get("rel_type") == "m.thread" else None


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
    messages, notices (other bots), edits, non-text messages, redacted events, and events
    whose id, sender or body is not a string."""
    event = obj(event)
    if event.get("type") != "m.room.message" or event.get("sender") == own_user_id:
        return None
    event_id, sender = text(event.get("event_id")), text(event.get("sender"))
    if not event_id or not sender:
        return None
    content = content_of(event)
    if content.get("msgtype") != "m.text" or "m.new_content" in content:
        return None
    relates = obj(content.get("m.relates_to"))
    if relates.get("rel_type") == "m.replace":
        return None
    body = text(content.get("body"))
    if not body or not body.strip():
        return None
    mentions = content.get("m.mentions")
    user_ids = None
    if isinstance(mentions, dict):
        listed = mentions.get("user_ids")
        listed = listed if isinstance(listed, list) else []
        user_ids = tuple(u for u in listed if isinstance(u, str))
    formatted = ""
    if content.get("format") == "org.matrix.custom.html":
        formatted = text(content.get("formatted_body")) or ""
    timestamp = event.get("origin_server_ts")
    return Incoming(
        event_id=event_id,
        room_id=room_id,
        sender=sender,
        body=strip_reply_fallback(body),
        formatted_body=formatted,
        thread_root=thread_root_of(event),
        timestamp_ms=timestamp if isinstance(timestamp, int) and timestamp > 0 else 0,
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


# Synapse refuses events over 65,536 bytes, signatures and hashes included; an edit carries
# its text up to four times (body and HTML, in the fallback and in m.new_content). Content
# is kept under this many bytes, so that the final edit always lands (else the citizen is
# left with the placeholder for good).
MAX_CONTENT_BYTES = 60_000
_FALLBACK_CHARS = 300


def content_bytes(content: dict[str, Any]) -> int:
    """The size of `content` as the homeserver will count it (compact UTF-8 JSON)."""
    return len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())


def edit_content(original_id: str, rendered: Rendered, kind: str, final: bool,
                 limit: int = MAX_CONTENT_BYTES) -> dict[str, Any]:
    """An edit replacing the message `original_id` with `rendered`, at most `limit` bytes:
    a long message first loses the full text of its fallback (clients without edits see its
    beginning), then its HTML, then the end of its text."""

    def build(body: str, html: str | None, fallback: str | None) -> dict[str, Any]:
        new: dict[str, Any] = {"msgtype": "m.notice", "body": body}
        if html is not None:
            new.update(format="org.matrix.custom.html", formatted_body=html)
        # No new mentions: an edit must not notify anyone again.
        new.update({"m.mentions": {}, KIND: kind, FINAL: final})
        content: dict[str, Any] = {"msgtype": "m.notice", "body": "* " + (fallback or body)}
        if fallback is None and html is not None:
            content.update(format="org.matrix.custom.html", formatted_body="* " + html)
        content.update({"m.new_content": new, "m.mentions": {},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": original_id}})
        return content

    content = build(rendered.body, rendered.html, None)
    if content_bytes(content) <= limit:
        return content
    short = rendered.body[:_FALLBACK_CHARS].rstrip() + "…"
    content = build(rendered.body, rendered.html, short)
    if content_bytes(content) <= limit:
        return content
    body = rendered.body
    content = build(body, None, short)
    while content_bytes(content) > limit:
        excess = content_bytes(content) - limit
        # JSON escaping makes a character cost 1 to 6 bytes: cut at least what is over.
        body = body[: max(0, len(body) - max(excess // 2, 64))].rstrip()
        content = build(body + " …", None, short)
    return content


def reaction_of(event: dict[str, Any]) -> tuple[str, str] | None:
    """(target event id, key) of an m.reaction event, else None."""
    if obj(event).get("type") != "m.reaction":
        return None
    relates = obj(content_of(event).get("m.relates_to"))
    target, key = text(relates.get("event_id")), text(relates.get("key"))
    if relates.get("rel_type") != "m.annotation" or target is None or key is None:
        return None
    return target, key


def redacted_id(event: dict[str, Any]) -> str | None:
    """The event an m.room.redaction removes (top-level before room v11, in content after)."""
    event = obj(event)
    if event.get("type") != "m.room.redaction":
        return None
    return text(content_of(event).get("redacts")) or text(event.get("redacts"))


def is_redacted(event: dict[str, Any]) -> bool:
    """Whether the server says `event` was redacted (its content is gone)."""
    return bool(obj(obj(event).get("unsigned")).get("redacted_because"))


def current_content(event: dict[str, Any]) -> dict[str, Any]:
    """An event's content with its latest edit applied, when the server bundled one."""
    content = content_of(event)
    relations = obj(obj(obj(event).get("unsigned")).get("m.relations"))
    edit = relations.get("m.replace")
    if isinstance(edit, dict):
        new = content_of(edit).get("m.new_content")
        if isinstance(new, dict):
            return new
    return content


def thread_turns(sources: list[dict[str, Any]], event_id: str, room_id: str, user_id: str,
                 names: list[str]) -> list[Turn]:
    """The conversation in a thread before the message `event_id` (sources oldest first):
    the citizens' messages that are not commands, and the bot's final answers."""
    turns: list[Turn] = []
    for src in sources:
        if src.get("event_id") == event_id:
            break
        if src.get("type") != "m.room.message":
            continue
        if src.get("sender") == user_id:
            content = current_content(src)
            if content.get(KIND) == "answer" and content.get(FINAL):
                turns.append(Turn("assistant", answer_text_from_body(str(content["body"]))))
            continue
        msg = parse_message(room_id, src, user_id)
        if msg is None:
            continue
        text = strip_mention(msg.body, user_id, names)
        if text and parse_command(text) is None:
            turns.append(Turn("user", text))
    return turns
