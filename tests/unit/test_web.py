"""Downloads that redirect, lie about their type, dribble, or race; tokens on redirects.
Real HTTP servers on loopback (127.0.0.1 and 127.0.0.2, which Linux both serves)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from civicbot import web
from civicbot.sources import SourceFailed, fetch
from civicbot.web import Reach, Refused, http_json, is_public


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    dribble: float = 0.0  # seconds between bytes


@dataclass
class Server:
    routes: dict[str, Route | Callable[[], Route]]
    url: str = ""
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    httpd: Any = None


@contextlib.contextmanager
def serving(routes: dict, host: str = "127.0.0.1") -> Iterator[Server]:
    server_ = Server(routes)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            server_.seen.append((self.path, dict(self.headers)))
            route = server_.routes.get(self.path, Route(404))
            route = route() if callable(route) else route
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            if route.dribble:
                self.end_headers()  # no length: the body ends when the connection does
                try:
                    for byte in route.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(route.dribble)
                except OSError:  # the client gave up (as it should)
                    pass
                return
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server_.url = f"http://{host}:{httpd.server_address[1]}"
    server_.httpd = httpd
    try:
        yield server_
    finally:
        httpd.shutdown()
        httpd.server_close()


def moved(to: str) -> Route:
    return Route(302, headers={"Location": to})


PDF = b"%PDF-1.4\n" + b"x" * 1000


def test_public_and_non_public_addresses():
    for address in ("93.184.216.34", "2606:4700::1111"):
        assert is_public(address), address
    for address in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.169.254",
                    "100.64.0.1", "0.0.0.0", "::1", "fe80::1%eth0", "fd00::1",
                    "::ffff:127.0.0.1", "224.0.0.1"):
        assert not is_public(address), address


def test_a_redirect_to_loopback_is_refused(tmp_path, monkeypatch):
    # 127.0.0.2 stands in for a public server: the source's own address. The redirect to
    # 127.0.0.1 (the machine the bot runs on) must not be followed.
    monkeypatch.setattr(web, "is_public", lambda address: address == "127.0.0.2")
    with serving({"/secret.pdf": Route(body=PDF)}, host="127.0.0.1") as inside, \
            serving({}, host="127.0.0.2") as public:
        public.routes["/doc.pdf"] = moved(f"{inside.url}/secret.pdf")
        public.routes["/fine.pdf"] = moved("/here.pdf")
        public.routes["/here.pdf"] = Route(body=PDF, headers={"Content-Type": "application/pdf"})
        with pytest.raises(SourceFailed, match="non-public address") as info:
            fetch(f"{public.url}/doc.pdf", tmp_path / "doc.pdf")
        assert info.value.reason == "refused-redirect"
        assert inside.seen == [] and not (tmp_path / "doc.pdf").exists()
        # a redirect on the source's own (public) server is followed
        fetched = fetch(f"{public.url}/fine.pdf", tmp_path / "fine.pdf")
        assert fetched.path is not None and fetched.path.read_bytes() == PDF
    assert list(tmp_path.iterdir()) == [tmp_path / "fine.pdf"]  # no partial files


def test_the_address_is_checked_where_the_socket_connects(monkeypatch):
    # A name that looked public when the redirect was checked but connects to loopback
    # (DNS rebinding) is refused by the connection itself.
    monkeypatch.setattr(web, "is_public", lambda address: address == "127.0.0.2")
    with serving({"/x.pdf": Route(body=PDF)}, host="127.0.0.1") as inside:
        monkeypatch.setattr(web, "_addresses", lambda host, port: {"127.0.0.2"})
        opener = web.SourceOpener(f"{inside.url}/x.pdf", deadline_s=10)
        import urllib.request

        with opener, pytest.raises(OSError) as info:
            opener.open(urllib.request.Request(f"{inside.url}/x.pdf"), 10)
        assert "non-public" in str(info.value)
        assert inside.seen == []


def test_redirects_off_https_and_to_the_homeserver_are_refused(tmp_path):
    reach = Reach(https_only=True, private_ok=True)
    with pytest.raises(Refused, match="off https"):
        reach.check_url("http://example.org/x.pdf")
    with pytest.raises(Refused, match="off https"):
        reach.check_url("file:///etc/passwd")
    # a source on loopback may redirect on loopback, but never to the homeserver's port
    with serving({"/_matrix/client/versions": Route(body=b"{}")}) as homeserver, \
            serving({}) as site:
        site.routes["/x.pdf"] = moved(f"{homeserver.url}/_matrix/client/versions")
        with pytest.raises(SourceFailed, match="the homeserver"):
            fetch(f"{site.url}/x.pdf", tmp_path / "x.pdf", homeserver=homeserver.url)
        assert homeserver.seen == []


def test_the_content_type_must_fit_the_name(tmp_path):
    login = Route(body=b"<html>Please log in</html>", headers={"Content-Type": "text/html"})
    with serving({"/plan.pdf": login, "/plan.html": login,
                  "/raw.pdf": Route(body=PDF, headers={
                      "Content-Type": "application/octet-stream"})}) as site:
        with pytest.raises(SourceFailed, match="text/html") as info:
            fetch(f"{site.url}/plan.pdf", tmp_path / "plan.pdf")
        assert info.value.reason == "wrong-type"
        assert fetch(f"{site.url}/plan.html", tmp_path / "plan.html").path is not None
        assert fetch(f"{site.url}/raw.pdf", tmp_path / "raw.pdf").path is not None


def test_one_deadline_for_the_whole_download(tmp_path):
    # one byte every 0.2 s: each read is quick, the whole would take 20 s
    slow = Route(body=b"x" * 100, dribble=0.2, headers={"Content-Type": "text/plain"})
    with serving({"/slow.txt": slow}) as site:
        started = time.monotonic()
        with pytest.raises(SourceFailed) as info:
            fetch(f"{site.url}/slow.txt", tmp_path / "slow.txt", timeout=1.5)
        assert info.value.reason == "timeout"
        assert time.monotonic() - started < 6
    assert not (tmp_path / "slow.txt").exists()
    assert list(tmp_path.iterdir()) == []


def test_two_downloads_of_the_same_name_do_not_share_a_temporary_file(tmp_path):
    bodies = {"/a/report.txt": b"A" * 40, "/b/report.txt": b"B" * 40}
    routes = {path: Route(body=body, dribble=0.01, headers={"Content-Type": "text/plain"})
              for path, body in bodies.items()}
    results: dict[str, object] = {}
    with serving(routes) as site:
        def get(path: str) -> None:
            try:
                results[path] = fetch(f"{site.url}{path}", tmp_path / "report.txt")
            except SourceFailed as exc:
                results[path] = exc

        threads = [threading.Thread(target=get, args=(p,)) for p in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for path, body in bodies.items():
        got = results[path]
        assert not isinstance(got, SourceFailed), got
        assert got.sha256 == hashlib.sha256(body).hexdigest()  # type: ignore[attr-defined]
    assert (tmp_path / "report.txt").read_bytes() in bodies.values()
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_a_token_does_not_follow_a_redirect_to_another_host():
    with serving({"/whoami": Route(body=b'{"user_id": "@x:y"}')}, host="127.0.0.2") as other, \
            serving({}) as homeserver:
        homeserver.routes["/away"] = moved(f"{other.url}/whoami")
        homeserver.routes["/here"] = moved("/whoami")
        homeserver.routes["/whoami"] = Route(body=b'{"user_id": "@x:y"}')
        assert http_json("GET", f"{homeserver.url}/away", token="SECRET")[1] == {
            "user_id": "@x:y"}
        assert "Authorization" not in other.seen[-1][1]
        http_json("GET", f"{homeserver.url}/here", token="SECRET")  # the same origin: kept
        assert homeserver.seen[-1][0] == "/whoami"
        assert homeserver.seen[-1][1].get("Authorization") == "Bearer SECRET"


def self_signed(tmp_path):
    """A certificate and key for 127.0.0.1, made here."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_deadline_also_cuts_an_https_download(tmp_path, monkeypatch):
    import ssl

    cert, key = self_signed(tmp_path)
    client = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(ssl, "_create_default_https_context", lambda: client)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    slow = Route(body=b"x" * 100, dribble=0.2, headers={"Content-Type": "text/plain"})
    quick = Route(body=b"complete", headers={"Content-Type": "text/plain"})
    with serving({"/slow.txt": slow, "/quick.txt": quick}) as site:
        httpd_socket = site.httpd.socket
        site.httpd.socket = server_ctx.wrap_socket(httpd_socket, server_side=True)
        url = site.url.replace("http://", "https://")
        fetched = fetch(f"{url}/quick.txt", tmp_path / "downloads" / "quick.txt", timeout=10)
        assert fetched.path is not None and fetched.path.read_bytes() == b"complete"
        started = time.monotonic()
        with pytest.raises(SourceFailed) as info:
            fetch(f"{url}/slow.txt", tmp_path / "downloads" / "slow.txt", timeout=1.5)
        assert info.value.reason == "timeout", info.value
        assert time.monotonic() - started < 6
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["quick.txt"]


def test_json_request_failures_are_one_matrix_error_with_the_status_and_errcode():
    from civicbot.errors import MatrixError
    from civicbot.homeserver import free_port
    from civicbot.web import HttpProblem

    refused = b'{"errcode": "M_FORBIDDEN", "error": "Invalid password"}'
    with serving({"/login": Route(status=403, body=refused),
                  "/junk": Route(body=b"<html>not json</html>")}) as homeserver:
        with pytest.raises(HttpProblem) as caught:
            http_json("GET", f"{homeserver.url}/login")
        assert isinstance(caught.value, MatrixError)
        assert (caught.value.status, caught.value.errcode) == (403, "M_FORBIDDEN")
        assert str(caught.value) == "HTTP 403 M_FORBIDDEN Invalid password"
        with pytest.raises(HttpProblem, match="unreachable"):
            http_json("GET", f"{homeserver.url}/junk")  # a reply that is not JSON
    with pytest.raises(HttpProblem, match="unreachable") as caught:
        http_json("GET", f"http://127.0.0.1:{free_port()}/x", timeout=2)
    assert caught.value.status == 0
