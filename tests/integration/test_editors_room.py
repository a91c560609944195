"""The editors' room on a real Synapse, with the real service over a small fresh index:
editors derived from power level there (and losing the role when demoted), and a failing
`[[sources]]` entry said once in that room, its recovery once too (docs/editors.md)."""

from __future__ import annotations

import pytest
from matrix_harness import citizen, eventually, run, running_bot, service_config
from test_editors import editor_reply, send_file

from civicbot.matrix.events import KIND
from civicbot.service import Service
from tests.conftest import MOTIE, TOZO
from tests.unit.test_sources import Site, serving

pytestmark = pytest.mark.slow


def refused(text: str) -> bool:
    """The refusal for a non-editor (in the room's language for an upload)."""
    return "Only editors" in text or "Alleen redacteuren" in text


def service_for(homeserver, bot_account, tmp_path, embedder, **sections) -> Service:
    # The multilingual windows are tested elsewhere; here they would only slow ingestion.
    cfg = service_config(tmp_path, homeserver, bot_account,
                         retrieval={"crosslingual": False}, **sections)
    return Service(cfg, embedder=embedder)


async def set_level(c, room: str, user_id: str, level: int | None) -> None:
    """Change one user's power level as a client does (None: drop the entry, as Element's
    /deop does, so the room's default applies)."""
    resp = await c.client.room_get_state_event(room, "m.room.power_levels")
    content = dict(resp.content)
    users = dict(content.get("users") or {})
    if level is None:
        users.pop(user_id, None)
    else:
        users[user_id] = level
    content["users"] = users
    await c._ok(await c.client.room_put_state(room, "m.room.power_levels", content))


async def editors_room(owner, members, bot_id: str) -> str:
    """A private room created by `owner`, joined by `members`, with the bot invited."""
    room = await owner.create_room([*(m.user_id for m in members), bot_id])
    for m in members:
        await m.join(room)
    return room


def test_editors_are_those_with_power_in_the_editors_room(
        homeserver, bot_account, tmp_path, shared, embedder):
    async def scenario():
        async with citizen(homeserver, "owner") as owner, \
                citizen(homeserver, "officer") as officer, citizen(homeserver) as member:
            room = await editors_room(owner, [officer, member], bot_account["user_id"])
            await set_level(owner, room, officer.user_id, 50)  # a moderator: an editor
            service = service_for(homeserver, bot_account, tmp_path, embedder,
                                  editors={"room": room})  # no `users`: power level only
            assert service.cfg.editors.users == ()
            service.curator.ingest([shared / "corpus" / TOZO], by="cli")

            def names():
                return {d.name for d in service.documents()}

            async with running_bot(service.cfg, service) as bot:
                bot_id = bot.user_id
                await owner.wait_joined(room, bot_id)

                # a member at power level 0: refused, nothing changes
                attempt = await member.send(room, f"!remove {TOZO}")
                assert refused(await editor_reply(member, room, attempt, bot_id, 60))
                theirs = await send_file(member, room, shared / "corpus" / MOTIE)
                assert refused(await editor_reply(member, room, theirs, bot_id, 60))
                assert names() == {TOZO}
                assert not (tmp_path / "corpus" / MOTIE).exists()

                # the power-50 member is an editor: uploads and removes
                upload = await send_file(officer, room, shared / "corpus" / MOTIE)
                report = await editor_reply(officer, room, upload, bot_id)
                assert "Added" in report or "Toegevoegd" in report
                removal = await officer.send(room, f"!remove {TOZO}")
                assert "Removed" in await editor_reply(officer, room, removal, bot_id, 120)
                assert names() == {MOTIE}

                # demoted (the entry dropped, so the room's default 0 applies): no longer
                await set_level(owner, room, officer.user_id, None)
                late = await officer.send(room, f"!remove {MOTIE}")
                assert refused(await editor_reply(officer, room, late, bot_id, 60))
                assert names() == {MOTIE}

            history = [(r.action, r.name, r.by) for r in service.curator.history()]
            assert history == [("added", TOZO, "cli"), ("added", MOTIE, officer.user_id),
                               ("removed", TOZO, officer.user_id)]

    run(scenario(), timeout=600)


def test_a_failing_source_is_told_once_in_the_editors_room_and_so_is_its_recovery(
        homeserver, bot_account, tmp_path, shared, embedder):
    site = Site(files={"motie.pdf": (shared / "corpus" / MOTIE).read_bytes()})

    async def scenario():
        async with citizen(homeserver, "owner") as owner:
            room = await editors_room(owner, [], bot_account["user_id"])
            url = f"{site.url}/motie.pdf"
            service = service_for(homeserver, bot_account, tmp_path, embedder,
                                  editors={"room": room},
                                  sync={"timeout_s": 10.0},
                                  sources=[{"url": url, "every": "2s"}])

            def notices() -> list[str]:
                return [e["content"]["body"] for e in owner.events.get(room, [])
                        if e.get("sender") == bot_id and e.get("type") == "m.room.message"
                        and e["content"].get(KIND) == "editor"
                        and "Source motie.pdf" in e["content"].get("body", "")]

            async with running_bot(service.cfg, service) as bot:
                bot_id = bot.user_id
                await owner.wait_joined(room, bot_id)
                await eventually(lambda: room in bot.client.rooms, 30, "the bot in the room")
                await eventually(lambda: "motie.pdf" in {d.name for d in service.documents()},
                                 120, "the first round to add the source")
                good = {d.name: d.sha256 for d in service.documents()}["motie.pdf"]

                # failing: said once, however many rounds fail
                site.status["motie.pdf"] = 500
                said = await eventually(notices, 60, "the failure notice")
                assert len(said) == 1 and said[0].startswith("⚠")
                assert "500" in said[0] and "last good copy" in said[0]
                failed_before = site.answers("motie.pdf").count(500)
                # two more failing rounds have finished once a third request comes in
                # (one round of a source at a time)
                await eventually(lambda: site.answers("motie.pdf").count(500)
                                 >= failed_before + 3, 60, "more failing rounds")
                assert {d.name: d.sha256 for d in service.documents()} == {"motie.pdf": good}

                # recovered (the server answers the conditional request with 304): said once
                del site.status["motie.pdf"]
                await eventually(lambda: len(notices()) >= 2, 60, "the recovery notice")
                await eventually(lambda: site.answers("motie.pdf")[-2:] == [304, 304], 60,
                                 "a further good round")
                # The bot sends a source's notices in order, one round at a time: a repeated
                # failure notice would sit before the recovery notice.
                assert notices() == [said[0], f"✓ Source motie.pdf ({url}) works again."]

    with serving(site):
        run(scenario(), timeout=600)
