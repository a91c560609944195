"""Editor commands of the README that the upload tests do not cover, on the session's real
Synapse with the real service over a small fresh index: `!add` and `!replace NAME` in reply
to a file someone posted in a citizens' room, `!reindex` after a file was put in the corpus
folder by hand, and a non-default `[editors] power_level` deciding who is an editor."""

from __future__ import annotations

import io

import pytest
from matrix_harness import citizen, run, running_bot
from test_editors import editor_reply
from test_editors_room import editors_room, refused, service_for, set_level

from tests.conftest import TOZO

pytestmark = pytest.mark.slow

OLD = "# Afvalinzameling\n\nHet gft-afval wordt in de gemeente Teststad op maandag opgehaald.\n"
NEW = "# Afvalinzameling\n\nHet gft-afval wordt in de gemeente Teststad op vrijdag opgehaald.\n"


async def post_text_file(c, room: str, name: str, text: str) -> str:  # type: ignore[no-untyped-def]
    """Upload a Markdown file and post it as an m.file message, as a Matrix client does."""
    data = text.encode()
    resp, _ = await c.client.upload(io.BytesIO(data), content_type="text/markdown",
                                    filename=name, filesize=len(data))
    content = {"msgtype": "m.file", "body": name, "filename": name, "url": resp.content_uri,
               "info": {"size": len(data), "mimetype": "text/markdown"}}
    return str((await c.client.room_send(room, "m.room.message", content)).event_id)


async def command_in_reply(c, room: str, text: str, to: str, bot_id: str) -> str:  # type: ignore[no-untyped-def]
    """`text` as a reply to the event `to`, mentioning the bot (a group room)."""
    content = {"msgtype": "m.text", "body": text, "m.mentions": {"user_ids": [bot_id]},
               "m.relates_to": {"m.in_reply_to": {"event_id": to}}}
    return str((await c.client.room_send(room, "m.room.message", content)).event_id)


def test_add_replace_and_reindex_by_an_editor_of_a_non_default_power_level(
    homeserver, bot_account, tmp_path, shared, embedder
):
    async def scenario():
        async with (
            citizen(homeserver, "owner") as owner,
            citizen(homeserver, "moderator") as moderator,
            citizen(homeserver, "manager") as manager,
            citizen(homeserver) as resident,
        ):
            bot_id = bot_account["user_id"]
            desk = await editors_room(owner, [moderator, manager], bot_id)
            await set_level(owner, desk, moderator.user_id, 50)  # the default level: not enough
            await set_level(owner, desk, manager.user_id, 75)
            service = service_for(homeserver, bot_account, tmp_path, embedder,
                                  editors={"room": desk, "power_level": 75})
            service.curator.ingest([shared / "corpus" / TOZO], by="cli")

            def names() -> set[str]:
                return {d.name for d in service.documents()}

            async with running_bot(service.cfg, service) as bot:
                await owner.wait_joined(desk, bot.user_id)
                square = await resident.create_room([bot.user_id, manager.user_id,
                                                     moderator.user_id])
                await manager.join(square)
                await moderator.join(square)
                await resident.wait_joined(square, bot.user_id)

                # a resident posts a file in the citizens' room: nothing happens by itself
                posted = await post_text_file(resident, square, "afval.md", OLD)
                # the moderator (power 50 < 75) may not add it, the manager (75) may
                attempt = await command_in_reply(moderator, square, "!add", posted, bot_id)
                assert refused(await editor_reply(moderator, square, attempt, bot_id, 60))
                assert names() == {TOZO}
                add = await command_in_reply(manager, square, "!add", posted, bot_id)
                report = await editor_reply(manager, square, add, bot_id)
                assert "Added" in report or "Toegevoegd" in report
                assert names() == {TOZO, "afval.md"}
                assert "maandag" in service.search("gft-afval Teststad", 1)[0].chunk.text

                # a newer version, posted under another name, replaces the document by name
                newer = await post_text_file(resident, square, "afval-2026.md", NEW)
                replace = await command_in_reply(manager, square, "!replace afval.md", newer,
                                                 bot_id)
                report = await editor_reply(manager, square, replace, bot_id)
                assert "Replaced" in report or "Vervangen" in report
                assert names() == {TOZO, "afval.md"}
                assert "vrijdag" in service.search("gft-afval Teststad", 1)[0].chunk.text
                assert (tmp_path / "corpus" / "afval.md").read_text() == NEW

                # a file put in the corpus folder by hand is taken in by !reindex
                (tmp_path / "corpus" / "openingstijden.md").write_text(
                    "# Openingstijden\n\nHet stadhuis van Teststad is op woensdag open tot "
                    "20.00 uur.\n")
                reindex = await manager.send(desk, "!reindex")
                said = await editor_reply(manager, desk, reindex, bot_id, 120)
                assert "openingstijden.md: added" in said, said
                assert "openingstijden.md" in names()

            history = [(r.action, r.name, r.by) for r in service.curator.history()]
            assert ("added", "afval.md", manager.user_id) in history
            assert ("replaced", "afval.md", manager.user_id) in history
            assert not any(by == moderator.user_id for _, _, by in history)

    run(scenario(), timeout=600)
