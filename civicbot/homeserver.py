"""An embedded Synapse homeserver on loopback: for the test suite, and for a library that
wants one command to start a private Matrix server next to the bot.

Synapse runs as a child process in its own process group (so stopping it never signals us),
with SQLite in `data_dir`, no federation listener, and users registered through the
shared-secret admin API instead of open registration.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from civicbot.errors import MatrixError
from civicbot.web import HttpProblem, http_json

_STARTUP_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0

# Generous enough that a test suite never meets them; one test keeps Synapse's defaults
# (relaxed_rate_limits=False) to exercise the bot's back-off.
_RELAXED = {"per_second": 1000, "burst_count": 1000}
_RELAXED_LIMITS: dict[str, Any] = {
    "rc_message": _RELAXED,
    "rc_registration": _RELAXED,
    "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
    "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
    "rc_joins_per_room": _RELAXED,
    "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
    "rc_room_creation": _RELAXED,
    "rc_media_create": _RELAXED,
    "rc_key_requests": _RELAXED,
    "rc_3pid_validation": _RELAXED,
    "rc_admin_redaction": _RELAXED,
    "rc_delayed_event_mgmt": _RELAXED,
    "rc_reports": _RELAXED,
    "rc_profile": _RELAXED,
    "rc_user_directory": _RELAXED,
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Twisted binds with SO_REUSEADDR, so a port in TIME_WAIT is usable for Synapse.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class Homeserver:
    """A Synapse child process serving the client API on 127.0.0.1.

    `port=None` reuses the port this data folder used last time when it is free (so a
    configured bot keeps finding its server), otherwise picks a free one.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int | None = None,
        room_version: str | None = None,
        relaxed_rate_limits: bool = True,
        server_name: str = "localhost",
    ):
        self.data_dir = Path(data_dir).resolve()
        self.server_name = server_name
        self.room_version = room_version
        self.relaxed_rate_limits = relaxed_rate_limits
        self._process: subprocess.Popen[bytes] | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self._secrets = self._load_or_create_secrets()
        if port is None:
            last = self._secrets.get("port")
            port = last if isinstance(last, int) and _port_is_free(last) else free_port()
        self.port = port
        if self._secrets.get("port") != port:
            self._secrets["port"] = port
            self._write_json(self._secrets_path, self._secrets)

    # -- files ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "homeserver.log"

    @property
    def _secrets_path(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def registration_shared_secret(self) -> str:
        return str(self._secrets["registration_shared_secret"])

    def _load_or_create_secrets(self) -> dict[str, Any]:
        if self._secrets_path.exists():
            return dict(json.loads(self._secrets_path.read_text(encoding="utf-8")))
        data: dict[str, Any] = {
            name: secrets.token_urlsafe(32)
            for name in ("registration_shared_secret", "macaroon_secret_key", "form_secret")
        }
        self._write_json(self._secrets_path, data)
        return data

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def config(self) -> dict[str, Any]:
        """The homeserver.yaml contents (JSON is valid YAML, so no YAML writer is needed)."""
        d = self.data_dir
        cfg: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.url + "/",
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "media_store_path": str(d / "media_store"),
            "signing_key_path": str(d / f"{self.server_name}.signing.key"),
            "registration_shared_secret": self._secrets["registration_shared_secret"],
            "macaroon_secret_key": self._secrets["macaroon_secret_key"],
            "form_secret": self._secrets["form_secret"],
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_registration": False,
            "url_preview_enabled": False,
            "federation_domain_whitelist": [],
            "enable_metrics": False,
            "use_presence": False,
        }
        if self.room_version:
            cfg["default_room_version"] = str(self.room_version)
        if self.relaxed_rate_limits:
            cfg.update(_RELAXED_LIMITS)
        return cfg

    # -- process -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Homeserver:
        """Write the config, create the signing key once, start Synapse and wait for it."""
        if self.running:
            return self
        if importlib.util.find_spec("synapse") is None:
            raise MatrixError(
                "Synapse is not installed in this Python environment; "
                "install it with `pip install matrix-synapse`"
            )
        if not _port_is_free(self.port):
            raise MatrixError(f"port {self.port} on 127.0.0.1 is already in use")
        self.config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        os.chmod(self.config_path, 0o600)
        base = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)]
        signing_key = Path(self.config()["signing_key_path"])
        if not signing_key.exists():
            done = subprocess.run(
                [*base, "--generate-keys"],
                cwd=self.data_dir,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode != 0 or not signing_key.exists():
                raise MatrixError(
                    f"Synapse could not generate its signing key: {done.stderr.strip()[-2000:]}"
                )
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._process = subprocess.Popen(
                base,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: signals to us never reach it
            )
        finally:
            log.close()
        self._wait_until_up()
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise MatrixError(
                    f"Synapse exited with code {code} while starting; "
                    f"end of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise MatrixError(
            f"Synapse did not answer on {self.url} within {_STARTUP_TIMEOUT_S:.0f} s; "
            f"end of {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of Synapse's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM Synapse's process group; SIGKILL it if it has not exited after `timeout`."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=timeout)

    def restart(self) -> Homeserver:
        """Stop and start again on the same port with the same data."""
        self.stop()
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while not _port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.start()

    def __enter__(self) -> Homeserver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin API -----------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                token: str = "") -> Any:
        """A JSON request to this homeserver (as the user of `token`, if given)."""
        try:
            return http_json(method, self.url + path, body, token, timeout=30)[1]
        except HttpProblem as exc:
            where = f"homeserver {self.url} " if not exc.status else ""
            raise MatrixError(f"{method} {path}: {where}{exc}") from exc

    def register(self, username: str, password: str, admin: bool = False) -> dict[str, str]:
        """Create a user through the shared-secret admin API; returns its user_id,
        access_token and device_id. A taken name raises MatrixError."""
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, username, password, "admin" if admin else "notadmin"):
            if part != nonce:
                mac.update(b"\x00")
            mac.update(part.encode())
        reply = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return {k: str(reply[k]) for k in ("user_id", "access_token", "device_id")}
