"""HTTP through the standard library, with the guards urllib lacks.

- `open_authorized`: a request that carries an access token drops it when a redirect leaves
  the origin (urllib copies every header to the new request, so a homeserver that redirects
  to another host would hand it the bot's token).
- `http_json`: one JSON request to a Matrix homeserver through `open_authorized`, for the
  code that has no nio client and no event loop (the doctor, the embedded homeserver's admin
  API, the encryption check); failures become one `HttpProblem`.
- `SourceOpener`: downloads of public documents (`[[sources]]`). A source may redirect, but
  not off https, not to a non-public address (loopback, private, link-local, ...) unless the
  source's own address is such, and never to the homeserver's own port: a configured URL that
  redirects is otherwise a way to make the bot fetch from the machine it runs on or its
  network. The address is checked on the connected socket, not only on a name lookup made
  before, so a name that resolves differently the second time gains nothing. One deadline
  covers the whole download: at the deadline its sockets are shut down.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from civicbot.errors import MatrixError


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _KeepAuthOnOrigin(urllib.request.HTTPRedirectHandler):
    """Follows redirects, without `Authorization` once one leaves the first origin."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def open_authorized(req: urllib.request.Request, timeout: float) -> Any:
    """`urllib.request.urlopen`, but a token never follows a redirect to another origin."""
    return urllib.request.build_opener(_KeepAuthOnOrigin()).open(req, timeout=timeout)


class HttpProblem(MatrixError):
    """A JSON request failed: unreachable (`status` 0), or an error status (`status`, and
    the Matrix `errcode` when the reply names one)."""

    def __init__(self, message: str, status: int = 0, errcode: str = ""):
        super().__init__(message)
        self.status, self.errcode = status, errcode


def http_json(method: str, url: str, body: dict[str, Any] | None = None, token: str = "",
              timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    """(status, reply) of a JSON request, as the user of `token` when given."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with open_authorized(req, timeout=timeout) as resp:
            return resp.status, dict(json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read() or b"{}")
        except ValueError:
            err = {}
        err = err if isinstance(err, dict) else {}
        code = str(err.get("errcode", ""))
        raise HttpProblem(f"HTTP {exc.code} {code} {err.get('error', '')}".strip(),
                          exc.code, code) from exc
    except (urllib.error.URLError, OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HttpProblem(f"unreachable ({reason})") from exc


# ---- public documents ------------------------------------------------------------------------


class Refused(urllib.error.URLError):
    """A download would go where sources may not go; `reason` says where and why."""


def is_public(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local,
    shared, reserved, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _addresses(host: str, port: int) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, port,
                                                                type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return set()


@dataclass(frozen=True)
class Reach:
    """Where the download of one source may go."""

    https_only: bool  # the source is https: so must every redirect be
    private_ok: bool  # the source itself is on a non-public address (an intranet, a test)
    forbidden: frozenset[tuple[str, int]] = frozenset()  # (address, port): the homeserver

    @classmethod
    def of(cls, url: str, homeserver: str = "") -> Reach:
        scheme, host, port = _origin(url)
        own = _addresses(host, port)
        forbidden: set[tuple[str, int]] = set()
        if homeserver and _origin(homeserver) != (scheme, host, port):
            _, hs_host, hs_port = _origin(homeserver)
            forbidden = {(a, hs_port) for a in _addresses(hs_host, hs_port)}
        private = bool(own) and not all(is_public(a) for a in own)
        return cls(scheme == "https", private, frozenset(forbidden))

    def check_url(self, url: str) -> None:
        """Refused for a redirect target this source may not reach (by its name)."""
        scheme, host, port = _origin(url)
        if scheme not in ("http", "https") or (self.https_only and scheme != "https"):
            raise Refused(f"a redirect off https (to {scheme}://{host})")
        for address in _addresses(host, port):
            self.check_peer(address, port, host)

    def check_peer(self, address: str, port: int, host: str = "") -> None:
        """Refused for an address (and port) this source may not reach."""
        where = host or address
        if (address, port) in self.forbidden:
            raise Refused(f"the homeserver's own address ({where}:{port})")
        if not self.private_ok and not is_public(address):
            raise Refused(f"a non-public address ({where} is {address})")


class _Watch:
    """The sockets of one download, shut down when its deadline passes."""

    def __init__(self, reach: Reach, check_peers: bool):
        self.reach = reach
        self.check_peers = check_peers
        self.sockets: list[socket.socket] = []
        self.expired = threading.Event()
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self.sockets.append(sock)
            late = self.expired.is_set()
        if late:
            self._shut(sock)

    def expire(self) -> None:
        self.expired.set()
        with self._lock:
            sockets = list(self.sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            # The plain socket's shutdown, also for a TLS socket (whose own shutdown would
            # pull its TLS state from under a read in the other thread): the read wakes up
            # with an end of file or an error.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def _guarded(base: type[http.client.HTTPConnection], watch: _Watch) -> Any:
    """A connection class that checks the address it connected to (before any TLS or any
    byte of the request) and hands its socket to the watch."""

    class Guarded(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            plain = self._create_connection  # type: ignore[has-type]

            def create(address: Any, *rest: Any) -> socket.socket:
                sock = plain(address, *rest)
                watch.add(sock)
                if watch.check_peers:
                    peer = sock.getpeername()
                    try:
                        watch.reach.check_peer(str(peer[0]), int(peer[1]), str(address[0]))
                    except Refused:
                        sock.close()
                        raise
                return sock

            self._create_connection = create

        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)  # for https the TLS socket that now owns the connection

    return Guarded


class _SourceRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, reach: Reach):
        self.reach = reach

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        self.reach.check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class SourceOpener:
    """Opens one source's URL under its `Reach`, with one deadline for the whole download:
    `with SourceOpener(url, homeserver, deadline) as opener: resp = opener.open(request)`;
    `expired` says whether the deadline cut the download short."""

    def __init__(self, url: str, homeserver: str = "", deadline_s: float = 60.0):
        self.reach = Reach.of(url, homeserver)
        scheme = urllib.parse.urlsplit(url).scheme
        # Through a proxy the socket's peer is the proxy: then only the names are checked.
        watch = _Watch(self.reach, check_peers=not urllib.request.getproxies().get(scheme))
        self._watch = watch
        self._timer = threading.Timer(deadline_s, watch.expire)
        self._timer.daemon = True
        http_class = _guarded(http.client.HTTPConnection, watch)
        https_class = _guarded(http.client.HTTPSConnection, watch)

        class Plain(urllib.request.HTTPHandler):
            def http_open(self, req: urllib.request.Request) -> Any:
                return self.do_open(http_class, req)

        class Secure(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> Any:
                return self.do_open(https_class, req,
                                    context=self._context)  # type: ignore[attr-defined]

        self._opener = urllib.request.build_opener(Plain(), Secure(),
                                                   _SourceRedirects(self.reach))

    @property
    def expired(self) -> bool:
        return self._watch.expired.is_set()

    def open(self, request: urllib.request.Request, timeout: float) -> Any:
        return self._opener.open(request, timeout=timeout)

    def __enter__(self) -> SourceOpener:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
