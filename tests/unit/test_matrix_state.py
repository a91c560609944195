import json

import pytest

from civicbot.errors import MatrixError
from civicbot.matrix.events import (
    edit_content,
    is_mentioned,
    notice_content,
    parse_message,
    reaction_of,
    strip_mention,
)
from civicbot.matrix.feedback import feedback_stats, record_retraction, record_vote, vote_from_key
from civicbot.matrix.render import Rendered
from civicbot.matrix.state import KEEP_DONE, BotState

BOT = "@civicbot:example.org"


def test_journal_survives_a_restart_and_never_accepts_twice(tmp_path):
    s = BotState.load(tmp_path)
    s.bind_account(BOT, "DEV1")
    s.set_sync_token("s1")
    assert s.accept("$q1", "!room", "$q1")
    assert not s.accept("$q1", "!room", "$q1")
    s.set_placeholder("$q1", "$p1")
    again = BotState.load(tmp_path)
    assert (again.device_id, again.next_batch) == ("DEV1", "s1")
    assert again.pending["$q1"].placeholder == "$p1"
    again.finish("$q1", answer_id="$p1", thread_root="$q1")
    third = BotState.load(tmp_path)
    assert not third.pending and third.seen("$q1")
    assert "$p1" in third.answers and "$q1" in third.threads
    assert oct((tmp_path / "state.json").stat().st_mode & 0o777) == "0o600"


def test_state_keeps_only_ids_and_is_bounded(tmp_path):
    s = BotState.load(tmp_path)
    for i in range(KEEP_DONE + 10):
        s.done.add(f"$e{i}")
    s.save()
    data = json.loads((tmp_path / "state.json").read_text())
    assert len(data["done"]) == KEEP_DONE and data["done"][-1] == f"$e{KEEP_DONE + 9}"
    assert set(data) == {"version", "user_id", "device_id", "next_batch", "pending", "done",
                         "answers", "threads"}


def test_state_of_another_account_is_dropped(tmp_path):
    s = BotState.load(tmp_path)
    s.bind_account(BOT, "DEV1")
    s.set_sync_token("s1")
    s.bind_account("@other:example.org", "DEV2")
    assert s.next_batch == "" and s.device_id == "DEV2"


def test_damaged_state_is_a_clear_error(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(MatrixError, match="damaged"):
        BotState.load(tmp_path)


def test_feedback_votes_are_summed_and_retractions_honoured(tmp_path):
    assert vote_from_key("👍🏽") == "up" and vote_from_key("👎️") == "down"
    assert vote_from_key("🎉") is None
    record_vote(tmp_path, "$a1", "up", "$r1")
    record_vote(tmp_path, "$a1", "down", "$r2")
    record_vote(tmp_path, "$a2", "up", "$r3")
    record_vote(tmp_path, "$a2", "up", "$r3")  # replayed: counted once
    record_retraction(tmp_path, "$r2")
    stats = feedback_stats(tmp_path)
    assert (stats.up, stats.down, stats.answers) == (2, 0, 2)
    assert feedback_stats(tmp_path / "nothing-here").total == 0


def _msg(content, sender="@alice:example.org"):
    return {"type": "m.room.message", "event_id": "$e", "sender": sender,
            "origin_server_ts": 1, "content": content}


def test_which_messages_are_ignored():
    assert parse_message("!r", _msg({"msgtype": "m.text", "body": "hi"}), BOT).body == "hi"
    assert parse_message("!r", _msg({"msgtype": "m.text", "body": "hi"}, sender=BOT), BOT) is None
    assert parse_message("!r", _msg({"msgtype": "m.notice", "body": "bot"}), BOT) is None
    edit = {"msgtype": "m.text", "body": "* hi", "m.new_content": {"body": "hi"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}
    assert parse_message("!r", _msg(edit), BOT) is None
    fallback = {"msgtype": "m.text", "body": "> <@bob:x> earlier\n> more\n\nreal question"}
    assert parse_message("!r", _msg(fallback), BOT).body == "real question"
    threaded = {"msgtype": "m.text", "body": "more?",
                "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    assert parse_message("!opaque-v12-id", _msg(threaded), BOT).thread_root == "$root"


def test_mentions_and_stripping():
    def incoming(body, **content):
        return parse_message("!r", _msg({"msgtype": "m.text", "body": body, **content}), BOT)

    assert is_mentioned(incoming("x", **{"m.mentions": {"user_ids": [BOT]}}), BOT, [])
    assert is_mentioned(incoming("Civic Bot: what?"), BOT, ["Civic Bot"])
    assert is_mentioned(incoming("ask @civicbot please"), BOT, [])
    assert not is_mentioned(incoming("civicbots are great"), BOT, [])
    assert not is_mentioned(incoming("hello all"), BOT, ["Civic Bot"])
    assert strip_mention("Civic Bot: what is X?", BOT, ["Civic Bot"]) == "what is X?"
    assert strip_mention(f"{BOT} what is X?", BOT, []) == "what is X?"
    assert strip_mention("what does civicbot do?", BOT, []) == "what does civicbot do?"


def test_reply_and_edit_contents():
    r = Rendered("plain", "<p>plain</p>")
    c = notice_content(r, "answer", "$root", "$q", mention="@alice:x", final=False)
    assert c["msgtype"] == "m.notice"
    assert c["m.relates_to"]["rel_type"] == "m.thread"
    assert c["m.relates_to"]["m.in_reply_to"] == {"event_id": "$q"}
    assert c["m.mentions"] == {"user_ids": ["@alice:x"]}
    e = edit_content("$p", r, "answer", final=True)
    assert e["body"] == "* plain" and e["m.new_content"]["body"] == "plain"
    assert e["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$p"}
    assert "m.relates_to" not in e["m.new_content"]
    reaction = {"type": "m.reaction", "content": {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": "$p", "key": "👍"}}}
    assert reaction_of(reaction) == ("$p", "👍")


def test_deferred_saves_write_one_snapshot_when_the_owner_asks(tmp_path):
    s = BotState.load(tmp_path)
    s.bind_account(BOT, "DEV1")  # saved at once: no owner has deferred saves yet
    calls = []
    s.defer_saves(lambda: calls.append(1))
    s.set_sync_token("s2")
    assert s.accept("$q1", "!room", "$q1")
    s.mark_done("$c1")
    assert len(calls) == 3 and s.dirty
    assert BotState.load(tmp_path).next_batch == ""  # nothing written yet
    data = s.snapshot()
    s.finish("$q1")  # a change after the snapshot is not in it
    s.write(data)
    again = BotState.load(tmp_path)
    assert again.next_batch == "s2" and "$q1" in again.pending and again.seen("$c1")
    s.defer_saves(None)
    s.mark_done("$c2")  # saving at once again
    assert BotState.load(tmp_path).seen("$c2") and not BotState.load(tmp_path).pending


def test_an_older_snapshot_written_late_does_not_overwrite_a_newer_one(tmp_path):
    s = BotState.load(tmp_path)
    s.set_sync_token("s1")
    older = s.snapshot()
    s.set_sync_token("s2")
    s.write(s.snapshot())
    s.write(older)  # e.g. a writer thread that ran late at shutdown
    assert BotState.load(tmp_path).next_batch == "s2"


def test_two_states_of_one_folder_save_at_once(tmp_path):
    """A bot restarted in the same process writes the state file while the old one's last
    save may still run in a worker thread: they shared one temporary name, and one writer's
    rename failed under the other (seen in CI as a failed login)."""
    import threading

    errors: list[BaseException] = []

    def work(token: str) -> None:
        state = BotState.load(tmp_path)
        try:
            for i in range(100):
                state.set_sync_token(f"{token}{i}")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert BotState.load(tmp_path).next_batch[1:] == "99"
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".*.tmp")) == []
