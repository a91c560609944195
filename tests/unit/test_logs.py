"""The log filter keeps Matrix user ids and event contents out of every handler."""

import io
import json
import logging

import pytest

from civicbot.config import LoggingConfig
from civicbot.logs import Redact, redact, redact_handlers, setup


@pytest.fixture
def captured():
    """A logger with one handler writing to a buffer, redacted as `civicbot run` does."""
    stream = io.StringIO()
    logger = logging.getLogger("test-redaction")
    handler = logging.StreamHandler(stream)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    redact_handlers(logger)
    yield logger, stream
    logger.handlers.clear()


def test_user_ids_are_redacted_in_every_form(captured):
    logger, stream = captured
    logger.warning("Curve key for user %s not found", "@alice.smith:example.org")
    logger.warning("Received a undecryptable Megolm event from @bob:[::1]:8448 in !room:x")
    logger.info("GET /_matrix/client/v3/profile/%40carol%3Alocalhost%3A8008/displayname")
    text = stream.getvalue()
    assert "alice" not in text and "bob" not in text and "carol" not in text
    assert text.count("@[user]") == 3
    assert "!room:x" in text  # room ids are not personal: kept for the operator


def test_event_contents_are_left_out(captured):
    logger, stream = captured
    event = {"type": "m.room.message", "sender": "@dave:x",
             "content": {"msgtype": "m.text", "body": "my secret question"}}
    logger.warning("Error validating event: %s", event)
    logger.warning("'x' is not of type 'object'\n\nFailed validating 'type' in schema\n\n"
                   "On instance['content']['m.relates_to']:\n    'my secret question'")
    text = stream.getvalue()
    assert "secret" not in text and "dave" not in text
    assert text.count("[event content left out]") == 2


def test_exception_messages_are_redacted_but_frames_kept(captured):
    logger, stream = captured
    try:
        raise KeyError("my secret question from @erin:x")
    except KeyError:
        logger.exception("handling failed")
    text = stream.getvalue()
    assert "erin" not in text and "Traceback" in text and "test_logs.py" in text


def test_plain_messages_pass_unchanged():
    assert redact("question $abc in room !xyz answered (generated)") == (
        "question $abc in room !xyz answered (generated)")
    assert redact("send this to user@example.org") == "send this to user@example.org"


def test_setup_redacts_the_bot_handler_in_json_too(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup(LoggingConfig(level="INFO", format="json"))
        assert any(isinstance(f, Redact) for h in root.handlers for f in h.filters)
        logging.getLogger("nio.crypto").warning("Curve key for user @frank:x not found")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "Curve key for user @[user] not found"


def test_libraries_probing_their_own_builds_stay_out_of_the_operators_log(capsys):
    """faiss tries its CPU-specific builds first and logs each one it cannot load as a
    ModuleNotFoundError at INFO; with the portable build loaded, nothing is wrong."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup(LoggingConfig(level="INFO", format="text"))
        # What faiss's loader logs when the bot first loads an index (once per process).
        logging.getLogger("faiss.loader").info(
            "Could not load library with AVX512 support due to: ModuleNotFoundError()")
        logging.getLogger("civicbot.matrix.bot").info("ready (1 rooms)")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "ready (1 rooms)" in err
    assert "faiss" not in err and "ModuleNotFoundError" not in err
