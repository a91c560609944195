"""End-to-end encryption at the Matrix edge: the crypto store, the key upkeep a hand-driven
sync loop owes the protocol, undecryptable messages, encrypted attachments and the
encryption state `civicbot doctor` reports.

Like bot.py this module talks to nio (the two are the bot's Matrix edge); the rest of
civicbot never sees an encrypted event. Design notes: docs/encryption.md.

Trust policy (trust on first use): the bot shares its room keys with every device of the
people in a room and reads messages from any device, without interactive verification
(`ignore_unverified_devices=True`). nio pins the first signing key it sees for a device id
and refuses a changed key for the same id. A public bot cannot ask every citizen to verify
it; the price is that a device added to a citizen's account (or to the room) by whoever
controls a homeserver would also be able to read the bot's answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nio import AsyncClient, ErrorResponse, MegolmEvent
from nio.crypto import decrypt_attachment
from nio.exceptions import EncryptionError, LocalProtocolError

from civicbot.errors import MatrixError
from civicbot.texts import t
from civicbot.web import http_json

log = logging.getLogger(__name__)

STORE_DIR = "crypto"  # under matrix.data_dir
# A room key usually arrives in the same sync as the message, sometimes a moment later:
# wait this long before telling a citizen the bot cannot read their message.
KEY_GRACE_S = 5.0
KEEP_WAITING = 500  # undecryptable events kept for a key that may still come
KEEP_TOLD = 5000  # (room, sender, session) triples whose sender has been told


class AttachmentError(MatrixError):
    """An uploaded file could not be downloaded or decrypted."""


def store_dir(data_dir: Path) -> Path:
    """The crypto store folder (private, created when missing)."""
    folder = data_dir / STORE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def store_file(data_dir: Path, user_id: str, device_id: str) -> Path:
    """nio's SQLite store for one account and device (nio names it user_device.db)."""
    return data_dir / STORE_DIR / f"{user_id}_{device_id}.db"


# -- keeping the keys flowing -------------------------------------------------------------


Request = tuple[str, Callable[[], Awaitable[Any]]]


def due_requests(client: AsyncClient) -> list[Request]:
    """The requests nio says are due, as (what, request) pairs for the caller's retry loop.

    `sync_forever` does this by itself; the bot drives `sync()` and so does it here: upload
    the device's keys, learn the devices of the people in encrypted rooms, open Olm sessions
    with them, and send the to-device messages (room keys, key requests) nio has queued.
    """
    if client.olm is None:
        return []
    due: list[Request] = []
    if client.should_upload_keys:
        due.append(("uploading the encryption keys", client.keys_upload))
    if client.should_query_keys:
        due.append(("reading the devices in encrypted rooms", client.keys_query))
    if client.should_claim_keys:
        users = client.get_users_for_key_claiming()
        due.append(("opening encrypted sessions", lambda: client.keys_claim(users)))
    if client.outgoing_to_device_messages:
        due.append(("sending encryption messages", client.send_to_device_messages))
    return due


def explain_upload_failure(exc: MatrixError) -> str:
    """A hint for the one failure that needs a person: the server already holds other keys
    for this device (the crypto store was lost or copied from elsewhere)."""
    if "exists" in str(exc).lower() or "M_INVALID" in str(exc):
        return (f"{exc}. The homeserver already holds other encryption keys for this device: "
                "the crypto store in the data folder was lost or does not belong to this "
                "device. Log the bot in as a new device (a new access token, or delete "
                "state.json when logging in by password) so encrypted rooms work again.")
    return str(exc)


# -- reading encrypted events -------------------------------------------------------------


def decrypted_source(client: AsyncClient, room_id: str, event: Any) -> dict[str, Any]:
    """The plain event dict of `event` (a nio Event): decrypted when it is an encrypted
    message the bot has the key for, else as it came (the caller ignores what it cannot
    read). For events fetched outside sync (a thread's history, a journalled question)."""
    source = dict(event.source)
    if isinstance(event, MegolmEvent) and client.olm is not None:
        plain = _decrypt(client, room_id, event)
        if plain is not None:  # nio drops the server's `unsigned` (bundled edits): keep it
            plain["unsigned"] = {**(source.get("unsigned") or {}), **(plain.get("unsigned") or {})}
            source = plain
    # The server bundles an event's latest edit; in an encrypted room that edit is
    # encrypted too (events.current_content reads the edited text from it).
    relations = (source.get("unsigned") or {}).get("m.relations") or {}
    edit = relations.get("m.replace")
    if isinstance(edit, dict) and edit.get("type") == "m.room.encrypted" and client.olm:
        parsed = MegolmEvent.from_dict(edit)
        plain = _decrypt(client, room_id, parsed) if isinstance(parsed, MegolmEvent) else None
        if plain is not None:
            source["unsigned"] = {**source["unsigned"],
                                  "m.relations": {**relations, "m.replace": plain}}
    return source


def _decrypt(client: AsyncClient, room_id: str, event: MegolmEvent) -> dict[str, Any] | None:
    event.room_id = event.room_id or room_id
    try:
        return dict(client.decrypt_event(event).source)
    except (EncryptionError, LocalProtocolError) as exc:
        log.debug("event %s stays encrypted: %s", event.event_id, exc)
        return None


def relation_thread_root(source: dict[str, Any]) -> str | None:
    """The thread an encrypted event belongs to (relations stay in the clear)."""
    rel = (source.get("content") or {}).get("m.relates_to") or {}
    root = rel.get("event_id") if rel.get("rel_type") == "m.thread" else None
    return root if isinstance(root, str) else None


def undecryptable_text(language: str | None) -> str:
    """What the citizen is told: in the room's language when known, else in both (the bot
    cannot read the message to guess its language)."""
    if language in ("nl", "en"):
        return t("undecryptable", language)
    return t("undecryptable", "nl") + "\n\n" + t("undecryptable", "en")


@dataclass
class _Waiting:
    room_id: str
    event: MegolmEvent
    since: float


class Undecryptable:
    """Messages the bot could not decrypt: kept (bounded) until their room key arrives,
    and remembered per (room, sender, session) so the sender is told only once."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self._told: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def add(self, room_id: str, event: MegolmEvent) -> None:
        self._waiting[event.event_id] = _Waiting(room_id, event, time.monotonic())
        while len(self._waiting) > KEEP_WAITING:
            self._waiting.popitem(last=False)

    def still_waiting(self, event_id: str) -> bool:
        return event_id in self._waiting

    def first_notice(self, room_id: str, sender: str, session_id: str) -> bool:
        """True the first time for this sender's session in this room, then False."""
        key = (room_id, sender, session_id)
        if key in self._told:
            return False
        self._told[key] = None
        while len(self._told) > KEEP_TOLD:
            self._told.popitem(last=False)
        return True

    def retry(self, client: AsyncClient) -> list[tuple[str, dict[str, Any]]]:
        """(room id, decrypted event) for the waiting messages whose key has arrived."""
        if client.olm is None or not self._waiting:
            return []
        ready = []
        for event_id, waiting in list(self._waiting.items()):
            ev = waiting.event
            if client.olm.inbound_group_store.get(waiting.room_id, ev.sender_key, ev.session_id):
                del self._waiting[event_id]
                source = decrypted_source(client, waiting.room_id, ev)
                if source.get("type") != "m.room.encrypted":
                    ready.append((waiting.room_id, source))
        return ready


async def request_key(client: AsyncClient, event: MegolmEvent) -> None:
    """Ask for a missing room key: from the bot's own other devices (nio's request, which
    also lets nio accept the answer) and from the sending device, which may share the key
    again. Neither is obliged to answer; the citizen is told to send the message again."""
    if event.session_id not in client.outgoing_key_requests:
        with contextlib.suppress(LocalProtocolError):  # already requested
            resp = await client.request_room_key(event)
            _raise_for(resp, "requesting a room key")
    assert client.user_id and client.device_id
    message = event.as_key_request(event.sender, client.device_id, device_id=event.device_id)
    resp = await client.to_device(message)
    _raise_for(resp, "requesting a room key from the sender")


def _raise_for(resp: Any, what: str) -> None:
    if isinstance(resp, ErrorResponse):
        raise MatrixError(f"{what}: {resp.status_code}: {resp.message}")


# -- files ------------------------------------------------------------------------------


def decrypt_file(data: bytes, encrypted: dict[str, Any]) -> bytes:
    """The plaintext of a downloaded encrypted attachment, given the event's `file` object
    (key, iv, sha256 of the ciphertext). Raises AttachmentError when it does not fit."""
    try:
        return bytes(decrypt_attachment(
            data, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"]))
    except (KeyError, TypeError, ValueError, EncryptionError) as exc:
        raise AttachmentError(f"the encrypted file could not be decrypted ({exc})") from exc


# -- the state `civicbot doctor` reports ------------------------------------------------


@dataclass(frozen=True)
class EncryptionState:
    enabled: bool
    store: Path | None  # the store file of the bot's current device, None before a login
    store_present: bool
    device_id: str
    identity_key: str  # the device's ed25519 key, from the store ("" when unknown)
    keys_uploaded: bool | None  # per the homeserver; None when not asked (no token)
    problem: str  # a sentence saying what is wrong and what to do, "" when all is well

    @property
    def ok(self) -> bool:
        return not self.problem


def encryption_state(cfg: Any, homeserver: str = "", token: str = "",
                     timeout: float = 10.0) -> EncryptionState:
    """The bot's encryption state: its store in the data folder (from the last login) and,
    with a token of the bot's account (default: matrix.access_token), whether the homeserver
    holds the device's keys (`/keys/query`)."""
    m = cfg.matrix
    homeserver, token = homeserver or m.homeserver, token or m.access_token
    if not m.encryption:
        return EncryptionState(False, None, False, "", "", None, "")
    data_dir = cfg.paths.data
    try:
        state = json.loads((data_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    user_id, device_id = str(state.get("user_id", "")), str(state.get("device_id", ""))
    if not (user_id and device_id):
        return EncryptionState(True, None, False, "", "", None,
                               "the bot has not logged in yet: the crypto store is made at the "
                               "first start")
    path = store_file(data_dir, user_id, device_id)
    identity = _stored_identity_key(path)
    if not path.exists() or not identity:
        return EncryptionState(True, path, path.exists(), device_id, "", None,
                               f"no encryption keys in {path}: start the bot once to create them")
    uploaded = None
    problem = ""
    if homeserver and token:
        try:
            uploaded = _server_key(homeserver, token, user_id, device_id, timeout) == identity
        except MatrixError as exc:
            problem = f"could not ask the homeserver for the device keys: {exc}"
        if uploaded is False:
            problem = (f"the homeserver does not hold this store's keys for device {device_id}: "
                       "start the bot to upload them; if they differ, the store does not belong "
                       "to this device (log in as a new device)")
    return EncryptionState(True, path, True, device_id, identity, uploaded, problem)


def _stored_identity_key(path: Path) -> str:
    """The ed25519 key of the Olm account pickled in nio's store ("" when absent). Read via
    nio's own store class, so the store format stays nio's business."""
    if not path.exists():
        return ""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT user_id, device_id FROM accounts LIMIT 1").fetchone()
    except sqlite3.Error:
        return ""
    if not row:
        return ""
    from nio import AsyncClientConfig
    from nio.store import DefaultStore

    store = DefaultStore(row[0], row[1], str(path.parent), AsyncClientConfig.pickle_key,
                         path.name)
    try:
        account = store.load_account()
    finally:
        store.database.close()
    return str(account.identity_keys["ed25519"]) if account else ""


def _server_key(homeserver: str, token: str, user_id: str, device_id: str,
                timeout: float) -> str:
    """The ed25519 key the homeserver holds for the device (a MatrixError when it cannot
    say)."""
    _, data = http_json("POST", homeserver.rstrip("/") + "/_matrix/client/v3/keys/query",
                        {"device_keys": {user_id: [device_id]}}, token, timeout)
    device = ((data.get("device_keys") or {}).get(user_id) or {}).get(device_id) or {}
    return str((device.get("keys") or {}).get(f"ed25519:{device_id}", ""))
