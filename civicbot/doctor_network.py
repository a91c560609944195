"""The checks of `civicbot doctor` of what is reached over the network: the homeserver, the
bot's login and rooms, end-to-end encryption, and the inference servers (reachable, serving the
model, on the organisation's own network). civicbot/doctor.py lists them in `CHECKS`."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from civicbot.doctor_facts import (
    _HTTP_TIMEOUT_S,
    Doctor,
    Result,
    _http,
)
from civicbot.web import HttpProblem


def check_homeserver(d: Doctor) -> Result:
    if d.embedded:
        if importlib.util.find_spec("synapse") is None:
            return Result(False, "no [matrix] homeserver is configured and the embedded one "
                          "(Synapse) is not installed",
                          "install it with `CIVICBOT_EXTRAS=docker scripts/install.sh` (or "
                          "`.venv/bin/pip install matrix-synapse`), or set [matrix] homeserver")
        data = d.cfg.paths.data.resolve()
        if d.embedded_accounts is None:
            return Result(True, "no [matrix] homeserver configured: `civicbot start` will "
                          f"start an embedded one and create its accounts under {data}")
        if d.versions[0] is None:
            return Result(True, f"embedded homeserver (accounts in {data}) is not running now; "
                          "`civicbot start` starts it")
        return Result(True, f"embedded homeserver running at {d.homeserver_url}")
    versions, problem = d.versions
    if versions is None:
        return Result(False, f"homeserver {d.homeserver_url} is {problem}",
                      "check [matrix] homeserver (the address clients use, e.g. "
                      "https://matrix.example.org), that the server is running, and that this "
                      "machine can reach it (DNS, firewall, proxy)")
    newest = (versions.get("versions") or ["?"])[-1]
    return Result(True, f"homeserver {d.homeserver_url} reachable (Matrix {newest})")


def check_login(d: Doctor) -> Result | None:
    if d.versions[0] is None:
        return None  # unreachable or not running: reported above
    token, problem = d.token
    if token:
        how = " (with its password)" if d._login_token else ""
        return Result(True, f"the bot logs in as {d.bot_user}{how}")
    m = d.cfg.matrix
    if d.embedded:
        return Result(False, f"the embedded homeserver refuses the bot's saved token ({problem})",
                      "stop civicbot, delete "
                      f"{d.cfg.paths.data} (the embedded homeserver's data) and run "
                      "`civicbot start` again to create fresh accounts")
    if problem == "no credentials":
        return Result(False, "the bot has no credentials",
                      "set matrix.access_token, or matrix.user_id and matrix.password")
    if m.access_token:
        return Result(False, f"the homeserver does not accept matrix.access_token ({problem})",
                      "the token is wrong, expired or was logged out: get a new one for the "
                      "bot's account (log in as the bot, e.g. POST /_matrix/client/v3/login, or "
                      "in Element: Settings → Help & About → Access token) and set it as "
                      "matrix.access_token or CIVICBOT_MATRIX_ACCESS_TOKEN")
    return Result(False, f"the bot cannot log in with matrix.user_id and matrix.password "
                  f"({problem})", "check matrix.user_id (e.g. @civicbot:example.org) and "
                  "matrix.password, or use an access token")


def check_rooms(d: Doctor) -> Result | None:
    token = d.token[0] if d.versions[0] is not None else ""
    if not token:
        return None
    try:
        _, joined = _http("GET", d.homeserver_url + "/_matrix/client/v3/joined_rooms",
                          token=token)
    except HttpProblem as exc:
        return Result(False, f"cannot list the bot's rooms ({exc})",
                      "check the homeserver's log; the bot's account may be deactivated")
    rooms = joined.get("joined_rooms", [])
    if not rooms:
        return Result(True, "the bot is in no room yet (invite it to a room or start a "
                      "direct chat with it)")
    return Result(True, f"the bot is in {len(rooms)} room{'s' if len(rooms) != 1 else ''}")


def check_encryption(d: Doctor) -> Result | None:
    """The bot's crypto store and whether the homeserver holds its device keys."""
    from civicbot.matrix.crypto import encryption_state

    token = d.token[0] if d.versions[0] is not None else ""
    state = encryption_state(d.cfg, d.homeserver_url, token)
    if not state.enabled:
        return Result(True, "end-to-end encryption is off ([matrix] encryption = false): "
                      "encrypted rooms are not read")
    if state.store is None:
        return Result(True, "encryption: no crypto store yet (the bot makes it at its first "
                      "start)")
    if not state.ok:
        return Result(False, f"encryption: {state.problem.split(':')[0]}", state.problem)
    where = ("its keys are on the homeserver" if state.keys_uploaded
             else "the homeserver was not asked")
    return Result(True, f"encryption: crypto store {state.store} for device {state.device_id}; "
                  f"{where}")


def check_inference_servers(d: Doctor) -> Result | None:
    """With `[llm] backend = "server"`: each server reachable, serving the configured model,
    and writing a one-token completion."""
    llm = d.cfg.llm
    if llm.backend != "server":
        return None
    from civicbot.answer.server import ServerClient
    from civicbot.errors import ModelError

    key = os.environ.get(llm.api_key_env, "") if llm.api_key_env else ""
    if llm.api_key_env and not key:
        return Result(False, f"inference servers: the environment variable {llm.api_key_env} "
                      "([llm] api_key_env) is not set",
                      f"export {llm.api_key_env}=<the servers' API key> before starting "
                      "civicbot, or set [llm] api_key_env = \"\" when they need none")
    lines, failed = [], []
    for url in llm.servers:
        client = ServerClient(url, llm.model, key, min(llm.timeout_s, _HTTP_TIMEOUT_S * 3))
        try:
            names = client.model_names()
            if llm.model and llm.model not in names:
                failed.append(f"{client.host} does not serve the model {llm.model!r} (it "
                              f"serves: {', '.join(names) or 'none listed'})")
                continue
            started = time.monotonic()
            text = "".join(client.stream_chat([{"role": "user", "content": "Hello"}],
                                              max_tokens=1, temperature=0.0))
            took = time.monotonic() - started
            served = llm.model or (names[0] if names else "its default model")
            lines.append(f"{client.host}: {served}, a one-token answer ({text.strip()!r}) "
                         f"in {took:.1f} s")
        except ModelError as exc:
            failed.append(str(exc))
        finally:
            client.close()
    if failed:
        return Result(False, "inference servers: " + "; ".join(failed + lines),
                      "start the server (e.g. `python -m llama_cpp.server --model FILE "
                      "--host 0.0.0.0 --port 8080`, or llama.cpp's `llama-server`), check "
                      "[llm] servers (base URLs ending in /v1) and [llm] model (a name the "
                      "server lists at /v1/models), and that this machine can reach it")
    return Result(True, "inference servers: " + "; ".join(lines))


def _own_network(host: str) -> bool | None:
    """True when every address `host` resolves to is private, loopback or link-local (the
    deployer's own network), False when one is on the public internet, None when it does
    not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return bool(addresses) and not any(a.is_global for a in addresses)


def check_servers_are_own(d: Doctor) -> Result | None:
    """A server on the public internet may be an external AI provider, which this project
    exists to avoid: warn, naming the address (it may be the deployer's own machine)."""
    llm = d.cfg.llm
    if llm.backend != "server":
        return None
    public = [u for u in llm.servers
              if _own_network(urllib.parse.urlsplit(u).hostname or "") is False]
    if public:
        return Result(True, "inference servers on the public internet: "
                      + ", ".join(urllib.parse.urlsplit(u).netloc for u in public)
                      + " — citizens' questions leave your network",
                      "if these are not your organisation's own machines, this may be an "
                      "external AI provider, which civicbot exists to avoid: run the model on "
                      "your own network (docs/scaling.md)", warning=True)
    unknown = [u for u in llm.servers
               if _own_network(urllib.parse.urlsplit(u).hostname or "") is None]
    if unknown:
        return Result(True, "inference servers: cannot tell where "
                      + ", ".join(urllib.parse.urlsplit(u).netloc for u in unknown)
                      + " is (the name does not resolve here)")
    return Result(True, "inference servers are on this organisation's own network "
                  "(private or loopback addresses)")
