"""Events from room members are hostile until checked: any field may have any type."""

import json

import pytest

from civicbot.matrix import editing
from civicbot.matrix.events import (
    FINAL,
    MAX_CONTENT_BYTES,
    content_bytes,
    current_content,
    edit_content,
    is_redacted,
    parse_message,
    reaction_of,
    redacted_id,
    sanitized,
    thread_root_of,
)
from civicbot.matrix.render import MAX_TEXT_CHARS, Rendered, render_answer
from civicbot.records import Answer, Citation

BOT = "@civicbot:example.org"


def message(ts=1_700_000_000_000, **content):
    return {"type": "m.room.message", "event_id": "$e", "sender": "@alice:example.org",
            "origin_server_ts": ts,
            "content": {"msgtype": "m.text", "body": "parking permit?", **content}}


# What Synapse accepts from any room member (tried against a real one: tests/integration).
MALFORMED = [
    message(**{"m.relates_to": "x"}),
    message(**{"m.mentions": {"user_ids": 5}}),
    message(**{"m.mentions": "everyone"}),
    message(**{"m.relates_to": {"rel_type": "m.thread", "event_id": 7,
                                "m.in_reply_to": "$x"}}),
    message(**{"m.relates_to": {"rel_type": "m.replace", "event_id": ["$x"]},
               "m.new_content": "x"}),
    {"type": "m.reaction", "event_id": "$r", "sender": "@a:x", "content": {"m.relates_to": "x"}},
    {"type": "m.reaction", "event_id": "$r", "sender": "@a:x",
     "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": {}, "key": 1}}},
    {"type": "m.room.message", "event_id": "$f", "sender": "@a:x",
     "content": {"msgtype": "m.file", "body": "x.pdf", "url": "mxc://x/y", "info": "big"}},
    {"type": "m.room.message", "event_id": "$f", "sender": "@a:x",
     "content": {"msgtype": "m.file", "body": "x.pdf", "file": "nope", "info": {"size": "1"}}},
    {"type": "m.room.redaction", "event_id": "$d", "sender": "@a:x", "content": "x",
     "redacts": 5},
    {"type": "m.room.message", "event_id": "$e", "sender": "@a:x", "content": "text",
     "unsigned": "x"},
    {"type": "m.room.message", "event_id": 5, "sender": ["@a:x"], "content": {"body": "hi"}},
    message(body=["not", "text"]),
    message(ts="yesterday", format="org.matrix.custom.html", formatted_body=3),
    "not an object",
    None,
]


@pytest.mark.parametrize("event", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_events_are_read_without_an_exception(event):
    msg = parse_message("!room", event, BOT)
    if msg is not None:  # read as far as it makes sense, with the right types
        assert isinstance(msg.body, str) and isinstance(msg.timestamp_ms, int)
        assert msg.thread_root is None or isinstance(msg.thread_root, str)
        assert msg.mentions is None or all(isinstance(u, str) for u in msg.mentions)
    reaction_of(event)
    redacted_id(event)
    is_redacted(event)
    current_content(event)
    thread_root_of(event)
    clean = sanitized(event)
    # what the editor features read is safe, from the sanitised event and from the raw one
    for ev in (clean, event):
        ref = editing.file_of("!room", ev)
        assert ref is None or (isinstance(ref.name, str) and isinstance(ref.event_id, str))
        assert editing.reply_target(ev) is None or isinstance(editing.reply_target(ev), str)


@pytest.mark.parametrize("content", [
    {"msgtype": "m.file", "url": "mxc://hs/x", "body": "x.pdf", "info": "big"},
    {"msgtype": "m.file", "url": "mxc://hs/x", "body": "x.pdf", "info": {"size": True}},
    {"msgtype": "m.file", "url": "mxc://hs/x", "body": "x.pdf", "info": {"size": -5}},
    {"msgtype": "m.file", "url": "mxc://hs/x", "body": ["x.pdf"], "filename": 7},
    {"msgtype": "m.file", "file": "not an object", "url": "mxc://hs/x", "body": "x.pdf"},
])
def test_a_file_message_with_odd_fields_is_read_without_them(content):
    ref = editing.file_of("!room", {"type": "m.room.message", "event_id": "$f",
                                    "sender": "@editor:hs", "content": content})
    assert ref is not None and ref.url == "mxc://hs/x" and ref.size is None
    assert ref.encryption is None and isinstance(ref.name, str)


def test_a_reply_with_odd_relations_has_no_target():
    for relates in ("x", {"m.in_reply_to": "x"}, {"m.in_reply_to": {"event_id": 5}}):
        assert editing.reply_target({"content": {"m.relates_to": relates}}) is None
    assert editing.reply_target({"content": ["x"]}) is None
    assert editing.reply_target({"content": {"m.relates_to": {
        "m.in_reply_to": {"event_id": "$q"}}}}) == "$q"


def test_malformed_nested_fields_are_dropped_and_the_message_still_read():
    msg = parse_message("!room", message(**{"m.relates_to": "x"}), BOT)
    assert msg is not None and msg.body == "parking permit?" and msg.thread_root is None
    msg = parse_message("!room", message(**{"m.mentions": {"user_ids": 5}}), BOT)
    assert msg is not None and msg.mentions == ()
    assert parse_message("!room", message(ts="x"), BOT).timestamp_ms == 0
    assert reaction_of(MALFORMED[5]) is None and reaction_of(MALFORMED[6]) is None
    file_event = sanitized(MALFORMED[7])
    assert "info" not in file_event["content"]
    ref = editing.file_of("!room", file_event)
    assert ref is not None and ref.size is None and ref.name == "x.pdf"


def test_well_formed_thread_and_redaction_still_read():
    msg = parse_message("!room", message(**{"m.relates_to": {
        "rel_type": "m.thread", "event_id": "$root", "m.in_reply_to": {"event_id": "$root"}}}),
        BOT)
    assert msg is not None and msg.thread_root == "$root"
    assert redacted_id({"type": "m.room.redaction", "content": {"redacts": "$q"}}) == "$q"
    assert redacted_id({"type": "m.room.redaction", "redacts": "$q", "content": {}}) == "$q"
    assert is_redacted({"unsigned": {"redacted_because": {"type": "m.room.redaction"}}})


def _answer(text: str) -> Answer:
    cites = [Citation(i, f"doc{i}.pdf", f"Document {i}", 3, 4, "“quoted” & <b>" * 30,
                      f"https://example.org/doc{i}.pdf") for i in range(1, 7)]
    return Answer("q", text, "generated", "en", cites)


@pytest.mark.parametrize("unit", ["a", "€", "&", "<", "\x01"])
def test_an_edit_of_the_longest_answer_stays_under_the_event_size_limit(unit):
    rendered = render_answer(_answer(unit * (MAX_TEXT_CHARS + 500)))
    content = edit_content("$placeholder", rendered, "answer", final=True)
    assert content_bytes(content) <= MAX_CONTENT_BYTES < 65_536
    new = content["m.new_content"]
    assert new[FINAL] is True and new["body"].startswith(unit * 100)
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$placeholder"}
    json.dumps(content)


def test_a_short_edit_keeps_its_full_fallback_and_markup():
    rendered = Rendered("Hello", "<p>Hello</p>")
    content = edit_content("$p", rendered, "answer", final=False)
    assert content["body"] == "* Hello" and content["formatted_body"] == "* <p>Hello</p>"
    assert content["m.new_content"]["formatted_body"] == "<p>Hello</p>"
    # a long one loses the fallback's full text first, its markup only if that is not enough
    long = Rendered("x" * 20_000, "<p>" + "x" * 20_000 + "</p>")
    content = edit_content("$p", long, "answer", final=True)
    assert len(content["body"]) < 400 and "formatted_body" in content["m.new_content"]
    assert content["m.new_content"]["body"] == "x" * 20_000
