"""End-to-end encrypted rooms against a real Synapse: citizens with encrypting nio clients,
the bot with encryption on (the default). Every wait is a poll with a time limit."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

import nio
import pytest
from e2e_harness import encrypted_citizen, encrypted_direct_room
from matrix_harness import (
    WordLookupAnswerer,
    bot_config,
    eventually,
    run,
    running_bot,
    service_config,
)

from civicbot import config as config_mod
from civicbot import doctor_facts, doctor_network
from civicbot.matrix import crypto, editing
from civicbot.matrix.events import FINAL, KIND
from tests.conftest import CORPUS, MOTIE

pytestmark = pytest.mark.slow


def _bot_devices(bot) -> object:
    async def devices() -> list[str]:
        resp = await bot.client.devices()
        assert isinstance(resp, nio.DevicesResponse), resp
        return sorted(d.id for d in resp.devices)

    return devices()


def test_encrypted_direct_chat_gets_threaded_edited_answer_with_citations(
    homeserver, bot_account, answerer, tmp_path
):
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")
    assert cfg.matrix.encryption  # on by default

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            encrypted_citizen(homeserver, tmp_path / "citizens") as c,
        ):
            room = await encrypted_direct_room(c, bot)
            qid, reply, final = await c.ask(room, "How much is a parking permit?", bot.user_id)
            assert answerer.calls[0][0] == "How much is a parking permit?"  # it was decrypted
            assert reply["content"]["msgtype"] == "m.notice"
            rel = reply["content"]["m.relates_to"]
            assert rel["rel_type"] == "m.thread" and rel["event_id"] == qid
            assert "120 euros" in final["body"]
            assert "Sources:" in final["body"] and "Parkeerbeleid 2024" in final["body"]
            assert 'href="https://example.org/docs/parkeerbeleid.pdf#page=4"' in (
                final["formatted_body"])
            edits = c.edits_of(room, reply["event_id"])
            assert 1 <= len(edits) <= cfg.bot.max_edits  # streamed, throttled
            # On the wire the question, the reply and its edits are encrypted; the relations
            # stay in the clear so that threads and edits work on the server.
            for event_id in (qid, reply["event_id"], edits[-1]["event_id"]):
                raw = await c.raw_event(room, event_id)
                assert raw["type"] == "m.room.encrypted" and "body" not in raw["content"]
            raw_edit = await c.raw_event(room, edits[-1]["event_id"])
            assert raw_edit["content"]["m.relates_to"]["rel_type"] == "m.replace"
            # A follow-up in the encrypted thread: the bot reads the (encrypted) thread back.
            _, _, final = await c.ask(room, "And how long is it valid?", bot.user_id,
                                      thread_root=qid)
            question, history = answerer.calls[-1]
            assert [t.role for t in history] == ["user", "assistant"]
            assert history[0].text == "How much is a parking permit?"
            assert "Parkeerbeleid" in final["body"]
            return bot.client.device_id

    device_id = run(scenario())
    store = crypto.store_file(tmp_path / "bot", bot_account["user_id"], device_id)
    assert store.is_file()
    state = crypto.encryption_state(cfg)
    assert state.ok and state.store == store and state.keys_uploaded is True
    result = doctor_network.check_encryption(doctor_facts.Doctor(cfg))
    assert result.ok and "its keys are on the homeserver" in result.what, result


def test_restart_reads_new_encrypted_messages_with_the_same_device(homeserver, tmp_path):
    # A password login: the case in which every login would otherwise make a new device.
    password = secrets.token_urlsafe(12)
    account = homeserver.register(f"civicbotpw{secrets.token_hex(3)}", password)
    cfg = config_mod.build({
        "matrix": {"homeserver": homeserver.url, "user_id": account["user_id"],
                   "password": password, "data_dir": str(tmp_path / "bot")},
        "bot": {"edit_interval_s": 0.1, "max_edits": 10},
    }, env={})
    answerer = WordLookupAnswerer()

    async def scenario():
        async with encrypted_citizen(homeserver, tmp_path / "citizens") as c:
            async with running_bot(cfg, answerer) as bot:
                bot_id, device = bot.user_id, bot.client.device_id
                identity = dict(bot.client.olm.account.identity_keys)
                devices = await _bot_devices(bot)
                room = await encrypted_direct_room(c, bot)
                await c.ask(room, "parking permit?", bot_id)
            # The bot is down: this encrypted question and its key wait on the homeserver.
            q2 = await c.send(room, "When is the waste collected?")
            async with running_bot(cfg, answerer) as bot:
                assert bot.client.device_id == device
                assert dict(bot.client.olm.account.identity_keys) == identity
                assert await _bot_devices(bot) == devices  # no new device on the server
                reply = await c.wait_reply(room, q2, bot_id, kind="answer")
                final = await c.wait_final(room, reply)
                assert "Tuesday" in final["body"]
                _, _, final = await c.ask(room, "any subsidy for insulation?", bot_id)
                assert "1.500 euro" in final["body"]
            # The citizen saw the same device all along: no new session to trust.
            assert [d.id for d in c.devices_of(bot_id)] == [device]

    run(scenario(), timeout=150)
    state = crypto.encryption_state(cfg)
    assert state.store_present and state.identity_key and state.device_id


def test_undecryptable_message_gets_one_notice_and_a_key_request(
    homeserver, bot_account, answerer, tmp_path, monkeypatch
):
    monkeypatch.setattr(crypto, "KEY_GRACE_S", 0.5)
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            encrypted_citizen(homeserver, tmp_path / "citizens") as c,
        ):
            room = await encrypted_direct_room(c, bot)
            # The citizen's app withholds its room key from the bot's device, as apps do
            # that only share keys with verified sessions.
            (bot_device,) = await c.wait_sees(room, bot.user_id)
            c.client.blacklist_device(bot_device)
            q1 = await c.send(room, "How much is a parking permit?")
            notice = await c.wait_reply(room, q1, bot.user_id, kind="status")
            body = notice["content"]["body"]
            assert "send the message again" in body and "opnieuw" in body  # both languages
            assert notice["content"]["m.mentions"] == {"user_ids": [c.user_id]}
            # the bot asked for the missing key
            raw = await c.raw_event(room, q1)
            assert raw["content"]["session_id"] in bot.client.outgoing_key_requests
            # more messages of the same session: no more notices
            q2 = await c.send(room, "And the waste collection?")
            await eventually(lambda: bot.counters["undecryptable_messages"] >= 2,
                             what="the bot to give up waiting for the second key")
            # The citizen allows the bot's device again: a new session, read and answered.
            c.client.unblacklist_device(bot_device)
            c.client.ignore_device(bot_device)
            _, _, final = await c.ask(room, "any subsidy for insulation?", bot.user_id)
            assert "1.500 euro" in final["body"]
            statuses = [ev for ev in c.events[room] if ev.get("sender") == bot.user_id
                        and (ev.get("content") or {}).get(KIND) == "status"]
            assert [ev["event_id"] for ev in statuses] == [notice["event_id"]]
            assert c.replies_to(room, q2, bot.user_id) == []
            assert bot.counters["undecryptable_notices"] == 1

    run(scenario())


def test_encrypted_pdf_upload_is_downloaded_and_decrypted(
    homeserver, bot_account, answerer, tmp_path, shared
):
    pdf = min(CORPUS.glob("*.pdf"), key=lambda p: p.stat().st_size)
    data = pdf.read_bytes()
    cfg = bot_config(homeserver, bot_account, tmp_path / "bot")

    async def scenario():
        async with (
            running_bot(cfg, answerer) as bot,
            encrypted_citizen(homeserver, tmp_path / "citizens", prefix="editor") as editor,
        ):
            room = await encrypted_direct_room(editor, bot)
            up, keys = await editor.client.upload(
                lambda *_: data, content_type="application/pdf", filename=pdf.name,
                encrypt=True, filesize=len(data))
            assert isinstance(up, nio.UploadResponse), up
            content = {
                "msgtype": "m.file", "body": pdf.name, "filename": pdf.name,
                "info": {"mimetype": "application/pdf", "size": len(data)},
                "file": {"url": up.content_uri, **keys},
            }
            resp = await editor.client.room_send(room, "m.room.message", content,
                                                 ignore_unverified_devices=True)
            event_id = resp.event_id

            async def as_bot_sees_it():
                got = await bot.client.room_get_event(room, event_id)
                return crypto.decrypted_source(bot.client, room, got.event)

            source = await as_bot_sees_it()
            while source.get("type") != "m.room.message":  # the key may be a sync away
                await asyncio.sleep(0.1)
                source = await as_bot_sees_it()
            assert "url" not in source["content"]  # an encrypted file, not a plain one
            # the editors' upload path (issue 5) downloads and decrypts through the link's
            # one download function
            ref = editing.file_of(room, source)
            assert ref is not None and ref.encryption is not None
            got = await bot.link.download(ref.url, ref.encryption)
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
            # a plain (unencrypted) upload goes through the same function
            up2, _ = await editor.client.upload(
                lambda *_: data, content_type="application/pdf", filename=pdf.name,
                filesize=len(data))
            assert await bot.link.download(up2.content_uri) == data
            # tampered ciphertext hash: a clear error, nothing half-read
            bad = {**ref.encryption, "hashes": {"sha256": "A" * 43}}
            with pytest.raises(crypto.AttachmentError, match="could not be decrypted"):
                await bot.link.download(ref.url, bad)
            with pytest.raises(crypto.AttachmentError, match="too large"):
                await bot.link.download(ref.url, ref.encryption, max_bytes=len(data) - 1)

    run(scenario())


def test_editors_encrypted_pdf_upload_is_ingested_and_answered_from(
    homeserver, bot_account, tmp_path, shared, embedder
):
    """The whole editor path in an encrypted chat: the encrypted file is fetched, decrypted,
    ingested by the real service, reported in the thread, and used in the next answer."""
    from civicbot.service import Service

    motie = shared / "corpus" / MOTIE
    data = motie.read_bytes()
    corpus = tmp_path / "corpus"

    async def scenario():
        async with encrypted_citizen(homeserver, tmp_path / "citizens", prefix="editor") as ed:
            cfg = service_config(tmp_path, homeserver, bot_account,
                                 editors={"users": [ed.user_id]})
            service = Service(cfg, embedder=embedder)
            async with running_bot(cfg, service) as bot:
                room = await encrypted_direct_room(ed, bot)
                up, keys = await ed.client.upload(
                    lambda *_: data, content_type="application/pdf", filename=motie.name,
                    encrypt=True, filesize=len(data))
                assert isinstance(up, nio.UploadResponse), up
                sent = await ed.client.room_send(room, "m.room.message", {
                    "msgtype": "m.file", "body": motie.name, "filename": motie.name,
                    "info": {"mimetype": "application/pdf", "size": len(data)},
                    "file": {"url": up.content_uri, **keys},
                }, ignore_unverified_devices=True)
                upload = sent.event_id

                def report():
                    for ev in ed.replies_to(room, upload, bot.user_id):
                        content = ev["content"]
                        if content.get(KIND) == "editor" and content.get(FINAL):
                            return content["body"]
                    return None

                said = await eventually(report, 300, "the bot's report on the encrypted upload")
                assert motie.name in said and ("Added" in said or "Toegevoegd" in said)
                assert (corpus / motie.name).read_bytes() == data
                assert [d.name for d in service.documents()] == [motie.name]
                # the report itself travelled encrypted
                raw = await ed.raw_event(room, next(
                    ev["event_id"] for ev in ed.replies_to(room, upload, bot.user_id)))
                assert raw["type"] == "m.room.encrypted"
                _, _, final = await ed.ask(
                    room, "Wat vraagt de motie over negatieve spaarrente?", bot.user_id,
                    timeout=300)
                assert motie.name in final["body"] and "p. 1" in final["body"]

    run(scenario(), timeout=900)
