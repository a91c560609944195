"""End-to-end encryption helpers for the Matrix tests: a citizen whose nio client encrypts
(its own crypto store in a temporary folder) and does the key upkeep a real client does."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import nio
from matrix_harness import Citizen, eventually, new_user

from civicbot.homeserver import Homeserver

ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class EncryptedCitizen(Citizen):
    """A citizen with end-to-end encryption, like Element by default: it creates encrypted
    rooms, uploads its device keys, shares room keys with every device in the room (trust
    on first use, like the bot) and reads encrypted replies (events are kept decrypted)."""

    def __init__(self, hs: Homeserver, account: dict[str, str], store: Path):
        self.user_id = account["user_id"]
        self.hs, self.token = hs, account["access_token"]
        store.mkdir(parents=True, exist_ok=True)
        self.client = nio.AsyncClient(
            hs.url, self.user_id, device_id=account["device_id"], store_path=str(store),
            config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
        )
        self.client.restore_login(self.user_id, account["device_id"], account["access_token"])
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._task = None

    async def __aenter__(self) -> EncryptedCitizen:
        await self._ok(await self.client.keys_upload())
        await super().__aenter__()
        return self

    async def _sync(self, timeout: int) -> None:
        await super()._sync(timeout)
        # What sync_forever would do between syncs.
        if self.client.outgoing_to_device_messages:
            await self.client.send_to_device_messages()
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()
        if self.client.should_claim_keys:
            await self.client.keys_claim(self.client.get_users_for_key_claiming())

    async def create_room(
        self, invite: Sequence[str], room_version: str | None = None, direct: bool = False
    ) -> str:
        resp = await self._ok(await self.client.room_create(
            invite=list(invite), is_direct=direct, room_version=room_version,
            preset=nio.RoomPreset.private_chat, initial_state=[ENCRYPTION_STATE],
        ))
        return str(resp.room_id)

    def devices_of(self, user_id: str) -> list[Any]:
        return list(self.client.device_store.active_user_devices(user_id))

    async def wait_sees(self, room_id: str, user_id: str) -> list[Any]:
        """Wait until this client knows `user_id` is in the encrypted room and has their
        device keys: only then does its next message carry a key for them."""

        def ready() -> list[Any]:
            room = self.client.rooms.get(room_id)
            if room is None or not room.encrypted or user_id not in room.users:
                return []
            return self.devices_of(user_id)

        return await eventually(ready, what=f"{self.user_id} to see the devices of {user_id}")

    async def raw_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        """The event as the server stores it (nio's room_get_event would decrypt it)."""
        path = (f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}"
                f"/event/{urllib.parse.quote(event_id, safe='')}")
        return dict(await asyncio.to_thread(self.hs.request, "GET", path, None, self.token))


@contextlib.asynccontextmanager
async def encrypted_citizen(
    hs: Homeserver, store_root: Path, prefix: str = "citizen"
) -> AsyncIterator[EncryptedCitizen]:
    account = new_user(hs, prefix)
    store = store_root / f"{account['user_id'][1:].split(':')[0]}-{secrets.token_hex(2)}"
    async with EncryptedCitizen(hs, account, store) as c:
        yield c


async def encrypted_direct_room(c: EncryptedCitizen, bot: Any) -> str:
    """An encrypted direct chat with the bot, once the bot has joined and the citizen
    knows the bot's device (a sender must see the join before its first message)."""
    room_id = await c.create_room([bot.user_id], direct=True)
    await c.wait_joined(room_id, bot.user_id)
    await c.wait_sees(room_id, bot.user_id)
    return room_id
