"""What the checks of `civicbot doctor` (civicbot/doctor.py) share: the `Result` each returns
and the `Doctor` they look at, the configuration plus the answers several checks need and that
are found out once (the homeserver's address and /versions, the bot's token, the index)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from civicbot.config import Config
from civicbot.web import HttpProblem, http_json

if TYPE_CHECKING:  # the index is loaded only by the checks that need it
    from civicbot.index.store import IndexStore, Snapshot

_HTTP_TIMEOUT_S = 10.0
# The doctor waits less for a homeserver than the bot does: it reports, it does not serve.
_http = functools.partial(http_json, timeout=_HTTP_TIMEOUT_S)


class Result(NamedTuple):
    ok: bool
    what: str
    fix: str = ""
    warning: bool = False  # passes, but shown with ⚠ and its fix: something to look at


class Doctor:
    """What the checks look at: the configuration, and the homeserver details they share."""

    def __init__(self, cfg: Config, config_path: str = ""):
        self.cfg = cfg
        self.config_path = config_path
        self.bot_user = ""
        self._login_token = ""

    # -- the homeserver: the configured one, or the embedded one when none is -------------

    @property
    def embedded(self) -> bool:
        return not self.cfg.matrix.homeserver

    @functools.cached_property
    def embedded_accounts(self) -> dict[str, str] | None:
        path = self.cfg.paths.data / "embedded-accounts.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None

    @functools.cached_property
    def homeserver_url(self) -> str:
        if not self.embedded:
            return self.cfg.matrix.homeserver.rstrip("/")
        secrets = self.cfg.paths.homeserver / "secrets.json"
        try:
            port = int(json.loads(secrets.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return ""
        return f"http://127.0.0.1:{port}"

    @functools.cached_property
    def versions(self) -> tuple[dict[str, Any] | None, str]:
        """The homeserver's /versions answer, or (None, why it could not be had)."""
        if not self.homeserver_url:
            return None, "no address"
        try:
            return _http("GET", self.homeserver_url + "/_matrix/client/versions")[1], ""
        except HttpProblem as exc:
            return None, str(exc)

    @functools.cached_property
    def token(self) -> tuple[str, str]:
        """(access token, problem): the bot's token, checked with /whoami. With a password,
        a token of a short-lived device that `close()` logs out again."""
        if self.versions[0] is None:
            return "", "unreachable"
        m = self.cfg.matrix
        if self.embedded:
            accounts = self.embedded_accounts or {}
            token, user = accounts.get("bot_token", ""), accounts.get("bot_user", "")
        elif m.access_token:
            token, user = m.access_token, m.user_id
        elif m.user_id and m.password:
            try:
                _, reply = _http("POST", self.homeserver_url + "/_matrix/client/v3/login", {
                    "type": "m.login.password", "password": m.password,
                    "identifier": {"type": "m.id.user", "user": m.user_id},
                    "initial_device_display_name": "civicbot doctor (logged out at once)"})
            except HttpProblem as exc:
                return "", f"login refused: {exc}"
            token = self._login_token = str(reply["access_token"])
            user = m.user_id
        else:
            return "", "no credentials"
        try:
            _, who = _http("GET", self.homeserver_url + "/_matrix/client/v3/account/whoami",
                           token=token)
        except HttpProblem as exc:
            return "", f"token refused: {exc}"
        if user and who.get("user_id") != user:
            return "", f"the token belongs to {who.get('user_id')}, not to {user}"
        self.bot_user = str(who.get("user_id", ""))
        return token, ""

    def close(self) -> None:
        """Log out the device a password check made, so none is left behind."""
        if self._login_token:
            try:
                _http("POST", self.homeserver_url + "/_matrix/client/v3/logout", {},
                      token=self._login_token)
            except HttpProblem:
                pass

    # -- the index ------------------------------------------------------------------------

    @functools.cached_property
    def store(self) -> IndexStore:
        from civicbot.index.store import IndexStore

        return IndexStore(self.cfg.paths.index.resolve())

    @functools.cached_property
    def loaded(self) -> tuple[Snapshot | None, str]:
        """(the serving generation or None, why it could not be loaded or "")."""
        try:
            return (self.store.load() if self.store.exists() else None), ""
        except Exception as exc:  # a damaged file may fail in faiss, numpy or json
            return None, str(exc) or type(exc).__name__

    @property
    def snapshot(self) -> Snapshot | None:
        return self.loaded[0]

    def model_path(self) -> Path:
        return self.cfg.paths.llm_model


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"
