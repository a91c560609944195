"""The embedded local homeserver for a first start without any Matrix server: Synapse on
loopback, a bot account, a citizen account and a public room, remembered across starts."""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from civicbot.config import Config
from civicbot.errors import MatrixError
from civicbot.homeserver import Homeserver

ROOM_ALIAS = "civicbot"


@dataclass(frozen=True)
class Embedded:
    homeserver: Homeserver
    bot_user: str
    bot_token: str
    citizen_user: str
    citizen_password: str
    room_id: str
    room_alias: str

    def instructions(self) -> str:
        return (
            "civicbot is running on an embedded Matrix homeserver (this machine only).\n"
            f"  Homeserver:  {self.homeserver.url}\n"
            f"  Citizen:     {self.citizen_user}\n"
            f"  Password:    {self.citizen_password}\n"
            f"  Room:        {self.room_alias}  (or start a direct chat with {self.bot_user})\n"
            "Log in with any Matrix client (in Element: Sign in, then Edit the homeserver and "
            "enter the address above), join the room and ask a question.\n"
            f"Everything is kept under {self.homeserver.data_dir}; delete it to start afresh.\n"
            "Press Ctrl-C to stop."
        )


def _create_room(hs: Homeserver, token: str) -> str:
    room = hs.request("POST", "/_matrix/client/v3/createRoom", token=token, body={
        "preset": "public_chat", "room_alias_name": ROOM_ALIAS,
        "name": "Vraag het civicbot / Ask civicbot",
        "topic": "Questions about public policy documents, answered with sources.",
    })
    return str(room["room_id"])


def _save(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    # Created 0600: a token and a password never sit in a world-readable file, not even
    # between a write and a chmod.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def start(cfg: Config) -> tuple[Embedded, Config]:
    """Start (or restart) the embedded homeserver; create the accounts and the room the
    first time. Returns the details and a Config pointing the bot at it."""
    data = cfg.paths.data
    hs = Homeserver(cfg.paths.homeserver).start()
    accounts = data / "embedded-accounts.json"
    try:
        if accounts.exists():
            saved = json.loads(accounts.read_text())
        else:
            bot = hs.register("civicbot", secrets.token_urlsafe(18))
            password = secrets.token_urlsafe(12)
            citizen = hs.register("citizen", password)
            saved = {"bot_user": bot["user_id"], "bot_token": bot["access_token"],
                     "citizen_user": citizen["user_id"], "citizen_password": password,
                     "room_id": _create_room(hs, bot["access_token"])}
            _save(accounts, saved)
        # (Re)join the citizens' room; if it is gone (everyone left), make a new one.
        quoted = urllib.parse.quote(saved["room_id"], safe="")
        try:
            hs.request("POST", f"/_matrix/client/v3/join/{quoted}", {}, saved["bot_token"])
        except MatrixError:
            server = saved["bot_user"].split(":", 1)[1]
            alias = urllib.parse.quote(f"#{ROOM_ALIAS}:{server}", safe="")
            try:
                hs.request("DELETE", f"/_matrix/client/v3/directory/room/{alias}",
                           token=saved["bot_token"])
            except MatrixError:
                pass  # no alias left to move
            saved["room_id"] = _create_room(hs, saved["bot_token"])
            _save(accounts, saved)
    except Exception:
        hs.stop()
        raise
    server_name = saved["bot_user"].split(":", 1)[1]
    embedded = Embedded(hs, saved["bot_user"], saved["bot_token"], saved["citizen_user"],
                        saved["citizen_password"], saved["room_id"],
                        f"#{ROOM_ALIAS}:{server_name}")
    bot_cfg = cfg.replace("matrix", homeserver=hs.url, user_id=saved["bot_user"],
                          access_token=saved["bot_token"], password="")
    return embedded, bot_cfg
