"""Editors change the corpus from Matrix: a real Synapse, the real service (real embedder
and language model) over a small fresh index, real PDFs of ../shared/corpus."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from matrix_harness import citizen, direct_room, eventually, run, running_bot, service_config

from civicbot.matrix.events import FINAL, KIND
from civicbot.service import Service
from tests.conftest import MOTIE, TOZO

pytestmark = pytest.mark.slow

CORRUPT = "zz_fixture_corrupt_not_a_pdf.pdf"
QUESTION = "Wat vraagt de motie van Van Dijk en Grinwis over negatieve spaarrente?"


async def send_file(c, room: str, path: Path, reply_to: str | None = None) -> str:
    """Upload `path` and post it as an m.file message, as a Matrix client does."""
    data = path.read_bytes()
    resp, _ = await c.client.upload(io.BytesIO(data), content_type="application/pdf",
                                    filename=path.name, filesize=len(data))
    content = {"msgtype": "m.file", "body": path.name, "filename": path.name,
               "url": resp.content_uri, "info": {"size": len(data),
                                                 "mimetype": "application/pdf"}}
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    sent = await c.client.room_send(room, "m.room.message", content)
    return str(sent.event_id)


async def editor_reply(c, room: str, event_id: str, bot_id: str, timeout: float = 300) -> str:
    """The body of the bot's final editor notice in reply to `event_id`."""
    def found():
        for ev in c.replies_to(room, event_id, bot_id):
            if ev["content"].get(KIND) == "editor" and ev["content"].get(FINAL):
                return ev["content"]["body"]
        return None

    return await eventually(found, timeout, f"the bot's report on {event_id}")


def test_editors_upload_remove_and_see_history(
    homeserver, bot_account, tmp_path, shared, embedder
):
    corpus = tmp_path / "corpus"

    async def scenario():
        async with citizen(homeserver, "editor") as editor, citizen(homeserver) as citizen_:
            cfg = service_config(tmp_path, homeserver, bot_account,
                                 editors={"users": [editor.user_id]})
            service = Service(cfg, embedder=embedder)
            service.curator.ingest([shared / "corpus" / TOZO], by="cli")
            async with running_bot(cfg, service) as bot:
                bot_id = bot.user_id
                desk = await direct_room(editor, bot)

                # an editor's upload is read and reported, then used in answers
                upload = await send_file(editor, desk, shared / "corpus" / MOTIE)
                report = await editor_reply(editor, desk, upload, bot_id)
                assert "Toegevoegd" in report or "Added" in report
                assert MOTIE in report and "1" in report
                assert (corpus / MOTIE).is_file()
                room = await direct_room(citizen_, bot)
                _, _, final = await citizen_.ask(room, QUESTION, bot_id, timeout=300)
                assert MOTIE in final["body"] and "p. 1" in final["body"]

                # the same name again: asked to use !replace, nothing overwritten
                again = await send_file(editor, desk, shared / "corpus" / MOTIE)
                assert f"!replace {MOTIE}" in await editor_reply(editor, desk, again, bot_id)

                # a citizen's upload is refused and changes nothing
                before = {d.name: d.sha256 for d in service.documents()}
                theirs = await send_file(citizen_, room, shared / "corpus" / TOZO)
                refusal = await editor_reply(citizen_, room, theirs, bot_id)
                assert "redacteuren" in refusal or "editors" in refusal
                not_editor = await citizen_.send(room, f"!remove {MOTIE}")
                assert "Only editors" in await editor_reply(citizen_, room, not_editor, bot_id)

                # a corrupt upload is reported and changes nothing
                corrupt = await send_file(editor, desk, shared / "corpus" / CORRUPT)
                said = await editor_reply(editor, desk, corrupt, bot_id)
                assert "niets gewijzigd" in said or "Nothing was changed" in said
                assert not (corpus / CORRUPT).exists()
                assert {d.name: d.sha256 for d in service.documents()} == before

                # !docs lists who added what, from where
                docs_cmd = await editor.send(desk, "!docs")
                listing = await eventually(lambda: next(
                    (e["content"]["body"] for e in editor.replies_to(desk, docs_cmd, bot_id)),
                    None), 60, "the !docs listing")
                assert editor.user_id in listing and "cli" in listing

                # !remove takes it out of answers (and out of the folder)
                removal = await editor.send(desk, f"!remove {MOTIE}")
                assert "Removed" in await editor_reply(editor, desk, removal, bot_id)
                assert not (corpus / MOTIE).exists()
                _, _, after = await citizen_.ask(room, QUESTION, bot_id, timeout=300)
                assert MOTIE not in after["body"]

                # !history shows the changes in order, with who did them
                asked = await editor.send(desk, "!history")
                history = (await editor_reply(editor, desk, asked, bot_id)).splitlines()
                actions = [(line.split()[1], line.split()[2]) for line in history]
                assert actions == [("added", TOZO), ("added", MOTIE), ("rejected", CORRUPT),
                                   ("removed", MOTIE)]
                assert editor.user_id in history[1] and "upload" in history[1]
                assert citizen_.user_id not in "\n".join(history)

    run(scenario(), timeout=1500)


async def reply_with(c, room: str, text: str, to: str) -> str:
    """A plain reply (not in a thread), as an editor replies to a file with a command."""
    content = {"msgtype": "m.text", "body": text,
               "m.relates_to": {"m.in_reply_to": {"event_id": to}}}
    sent = await c.client.room_send(room, "m.room.message", content,
                                    ignore_unverified_devices=True)
    return str(sent.event_id)


def test_replace_names_an_indexed_document_never_a_path(
    homeserver, bot_account, tmp_path, shared, embedder
):
    """`!replace ../x` used to write outside the corpus; a document in a subfolder is
    replaced where it lies, its old file kept in the attic."""
    corpus = tmp_path / "corpus"
    (corpus / "wijk").mkdir(parents=True)
    (corpus / "wijk" / MOTIE).write_bytes((shared / "corpus" / MOTIE).read_bytes())
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(b"%PDF-1.4 not to be touched")
    attic = tmp_path / "data" / "attic"

    async def scenario():
        async with citizen(homeserver, "editor") as editor:
            cfg = service_config(tmp_path, homeserver, bot_account,
                                 editors={"users": [editor.user_id]},
                                 retrieval={"crosslingual": False})
            service = Service(cfg, embedder=embedder)
            service.curator.ingest([corpus], by="cli")
            async with running_bot(cfg, service) as bot:
                bot_id = bot.user_id
                desk = await direct_room(editor, bot)
                upload = await send_file(editor, desk, shared / "corpus" / TOZO)
                await editor_reply(editor, desk, upload, bot_id)  # added as a new document

                for target in ("../outside.pdf", "../../outside.pdf", f"wijk/{MOTIE}"):
                    attempt = await reply_with(editor, desk, f"!replace {target}", upload)
                    said = await editor_reply(editor, desk, attempt, bot_id, 120)
                    assert "no document named" in said or "geen document" in said, said
                assert outside.read_bytes() == b"%PDF-1.4 not to be touched"
                assert not attic.exists() or list(attic.iterdir()) == []

                # the real name: replaced in its subfolder, the old file in the attic
                old = (corpus / "wijk" / MOTIE).read_bytes()
                attempt = await reply_with(editor, desk, f"!replace {MOTIE}", upload)
                said = await editor_reply(editor, desk, attempt, bot_id)
                assert "Replaced" in said or "Vervangen" in said, said
                assert (corpus / "wijk" / MOTIE).read_bytes() == (
                    shared / "corpus" / TOZO).read_bytes()
                assert not (corpus / MOTIE).exists()
                assert [p.read_bytes() for p in attic.iterdir()] == [old]
                assert outside.read_bytes() == b"%PDF-1.4 not to be touched"

    run(scenario(), timeout=1200)
