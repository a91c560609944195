"""Which rooms the bot is in: invitations are decided at once (allowed inviters,
matrix.max_rooms, matrix.max_rooms_per_inviter) and joined or declined in the background,
a few at a time; rooms everyone has left are left and forgotten. Talks to Matrix only
through the `Link`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from civicbot.config import Config
from civicbot.matrix import events
from civicbot.matrix.link import Link

log = logging.getLogger(__name__)

JOINS_AT_ONCE = 2  # invitations are joined in the background, a few at a time
JOIN_PATIENCE_S = 120.0


class Rooms:
    """The bot's memberships: invitations in, empty rooms out."""

    def __init__(self, link: Link, cfg: Config):
        self.link = link
        self.cfg = cfg
        self.counters = link.counters
        self.known: set[str] = set()  # the joined rooms of the last sync
        self._joins = asyncio.Semaphore(JOINS_AT_ONCE)
        self.joining: set[str] = set()  # invitations being accepted or declined
        self._declining: set[str] = set()
        self._leaving: set[str] = set()
        # Rooms joined on each user's invitation since the start, in memory only (as the
        # queue's user ids are): for matrix.max_rooms_per_inviter.
        self._invited_by: dict[str, set[str]] = {}

    def synced(self) -> None:
        """After a sync: joined rooms no longer count as being joined."""
        self.known = self.link.joined()
        self.joining -= self.known

    def on_invite(self, room_id: str, info: Any) -> None:
        """Decide on an invitation at once and join (or decline) in the background: a join
        can take the homeserver seconds, and 30 invitations must not hold up the answers."""
        if (room_id in self.joining or room_id in self._declining
                or room_id in self.link.joined()):
            return
        inviter = ""
        for ev in getattr(info, "invite_state", None) or ():
            src = events.obj(getattr(ev, "source", None))
            if (
                getattr(ev, "state_key", src.get("state_key")) == self.link.user_id
                and getattr(ev, "membership", "") == "invite"
            ):
                inviter = events.text(getattr(ev, "sender", None)) or ""
        if not inviter:
            inviter = self.link.inviter(room_id)
        refusal = self._refusal(inviter)
        if refusal:
            log.info("declining an invitation to room %s: %s", room_id, refusal)
            self._declining.add(room_id)
            self.link.spawn(self._settle(room_id, inviter, join=False),
                            f"declining an invitation to room {room_id}")
        else:
            log.info("joining room %s on invitation", room_id)
            self.joining.add(room_id)
            self._invited_by.setdefault(inviter, set()).add(room_id)
            self.link.spawn(self._settle(room_id, inviter, join=True),
                            f"joining room {room_id}")

    def _refusal(self, inviter: str) -> str:
        """Why an invitation from `inviter` is declined, or "" to accept it."""
        m = self.cfg.matrix
        if not self._may_invite(inviter):
            return "the inviter is not on an allowed server"
        joined = self.link.joined()
        if len(joined | self.joining) >= m.max_rooms:
            return f"the bot is in {m.max_rooms} rooms already (matrix.max_rooms)"
        mine = self._invited_by.get(inviter, set())
        mine &= joined | self.joining  # rooms since left no longer count
        if len(mine) >= m.max_rooms_per_inviter:
            return ("the inviter has invited the bot into "
                    f"{m.max_rooms_per_inviter} rooms already (matrix.max_rooms_per_inviter)")
        return ""

    async def _settle(self, room_id: str, inviter: str, join: bool) -> None:
        try:
            async with self._joins:
                if join:
                    await self.link.join(room_id, patience=JOIN_PATIENCE_S)
                else:
                    await self.link.leave(room_id)
        except BaseException:
            # e.g. a 403 when the invitation was withdrawn meanwhile: forget the room
            self.joining.discard(room_id)
            self._invited_by.get(inviter, set()).discard(room_id)
            raise
        finally:
            self._declining.discard(room_id)
        self.counters["invitations_joined" if join else "invitations_declined"] += 1
        # A joined room stays in `joining` until sync shows it among the bot's rooms, so
        # that it counts towards matrix.max_rooms meanwhile.

    def _may_invite(self, inviter: str) -> bool:
        m = self.cfg.matrix
        if not inviter:
            return False
        if inviter in m.allowed_users:
            return True
        servers = m.allowed_servers or (self.link.user_id.split(":", 1)[1],)
        return ":" in inviter and inviter.split(":", 1)[1] in servers

    def leave_if_alone(self, room_id: str) -> None:
        """Leave a private room or direct chat once everyone else has gone."""
        room = self.link.room(room_id)
        if room is None or room.joined_count > 1 or room.invited_count > 0:
            return
        # A public room is where citizens come to ask (e.g. the one `civicbot start` creates):
        # it waits for them. Private rooms and direct chats are left once everyone has gone.
        if room.join_rule == "public" or room_id in self._leaving:
            return
        log.info("leaving room %s: nobody else is in it", room_id)
        self._leaving.add(room_id)

        async def leave() -> None:
            try:
                await self.link.leave(room_id)
            finally:
                self._leaving.discard(room_id)

        self.link.spawn(leave(), f"leaving room {room_id}")
