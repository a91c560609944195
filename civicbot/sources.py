"""Public documents fetched by URL: conditional HTTP downloads with a size limit and a time
limit, safe file names, and the small state file that remembers validators and failures.

Plain stdlib `urllib`: it is all a conditional GET needs, and no HTTP client library is
installed with civicbot. Revalidation follows RFC 9110 §13: `If-None-Match` with the last
ETag, `If-Modified-Since` with the last `Last-Modified`; a 304 means the copy we have is
current and nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import tempfile
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from civicbot import __version__
from civicbot.errors import CivicbotError
from civicbot.web import Refused, SourceOpener

USER_AGENT = f"civicbot/{__version__} (+document sync)"
MAX_NAME = 120  # characters: names stay readable in listings
# 255 bytes is the name limit of common file systems (a character takes up to 4 in UTF-8);
# the attic prefixes a 23-byte time stamp.
MAX_NAME_BYTES = 200


class SourceFailed(CivicbotError):
    """A source could not be fetched (network, HTTP status, too large, wrong sha256)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # http-404, network, timeout, too-large, sha256-mismatch, ...


def safe_file_name(raw: str) -> str | None:
    """A file name from an untrusted string (an upload's name, the end of a URL): the last
    path component only, no control characters, no leading dots or spaces (hidden files), at
    most MAX_NAME characters and MAX_NAME_BYTES bytes in UTF-8 (file systems count bytes, and
    the attic adds a time prefix), extension kept. None when nothing usable remains."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    # " .  .x.pdf": dots and spaces in any mix would leave a hidden ".x.pdf" after a strip.
    name = re.sub(r"\s+", " ", name).lstrip(". ").rstrip()
    if name in ("", ".", ".."):
        return None
    if len(name) > MAX_NAME or len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext.encode()) <= 10:
            name = _clip(stem, MAX_NAME - len(ext) - 1,
                         MAX_NAME_BYTES - len(ext.encode()) - 1).rstrip() + "." + ext
        else:
            name = _clip(name, MAX_NAME, MAX_NAME_BYTES)
    return name or None


def _clip(text: str, chars: int, size: int) -> str:
    """The longest start of `text` of at most `chars` characters and `size` bytes in UTF-8."""
    return text[:chars].encode()[:size].decode(errors="ignore")


def name_from_url(url: str) -> str | None:
    """The file name a URL's path ends in."""
    path = urllib.parse.urlsplit(url).path
    return safe_file_name(urllib.parse.unquote(path.rsplit("/", 1)[-1]))


@dataclass(frozen=True)
class Fetched:
    """The outcome of one conditional GET: `path` is None when the server said 304."""

    path: Path | None
    sha256: str = ""
    etag: str = ""
    last_modified: str = ""


# What a server may say a document is, by the file name's extension. A PDF is often sent as
# a generic binary; an HTML page where a PDF was expected (a login or error page) is refused.
_TYPES = {
    ".pdf": {"application/pdf", "application/x-pdf", "application/octet-stream",
             "binary/octet-stream", "application/download", "application/force-download"},
    ".html": {"text/html", "application/xhtml+xml"},
    ".htm": {"text/html", "application/xhtml+xml"},
    ".txt": {"text/plain", "application/octet-stream"},
    ".md": {"text/markdown", "text/x-markdown", "text/plain", "application/octet-stream"},
    ".markdown": {"text/markdown", "text/x-markdown", "text/plain", "application/octet-stream"},
}


def check_type(name: str, content_type: str) -> None:
    """SourceFailed("wrong-type") when a server's Content-Type contradicts the file name.
    No Content-Type at all is accepted (the reader checks the bytes anyway)."""
    declared = content_type.split(";", 1)[0].strip().lower()
    allowed = _TYPES.get(Path(name).suffix.lower())
    if declared and allowed is not None and declared not in allowed:
        raise SourceFailed("wrong-type", (
            f"the server sent {declared}, not a {Path(name).suffix.lower()} file (a login or "
            "error page?); check the URL"))


def fetch(url: str, dest: Path, etag: str = "", last_modified: str = "",
          timeout: float = 60.0, max_bytes: int = 100_000_000, homeserver: str = "") -> Fetched:
    """GET `url` into the file `dest` unless the validators show our copy is current.
    The file is complete and fsync'd when this returns; on failure nothing is left.
    `timeout` bounds the whole download (redirects included), not each read; redirects
    follow the rules of `civicbot.web.SourceOpener` (`homeserver`: the address never to go to).
    """
    headers = {"User-Agent": USER_AGENT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file of its own: two downloads to the same name never share one.
    fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".part")
    part = Path(part_name)
    opener = SourceOpener(url, homeserver, timeout)
    try:
        # Only http(s) addresses get here (config checks them), never file:// or others.
        with os.fdopen(fd, "wb") as fh, opener, opener.open(request, timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise SourceFailed("too-large", (
                    f"the file is {int(length) / 1e6:.1f} MB, more than the limit of "
                    f"{max_bytes / 1e6:.0f} MB ([sync] max_file_mb)"))
            check_type(dest.name, resp.headers.get("Content-Type", "") or "")
            digest = hashlib.sha256()
            size = 0
            while block := resp.read(1 << 16):
                size += len(block)
                if size > max_bytes:
                    raise SourceFailed("too-large", f"the file is larger than the limit of "
                                       f"{max_bytes / 1e6:.0f} MB ([sync] max_file_mb)")
                digest.update(block)
                fh.write(block)
            if opener.expired:  # the deadline shut the socket: what came is not all
                raise TimeoutError
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, dest)
        return Fetched(dest, digest.hexdigest(), resp.headers.get("ETag", "") or "",
                       resp.headers.get("Last-Modified", "") or "")
    except SourceFailed:
        raise
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(None, etag=etag, last_modified=last_modified)
        raise SourceFailed(f"http-{exc.code}", f"the server answered {exc.code} "
                           f"{exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        refused = exc if isinstance(exc, Refused) else reason  # urllib may wrap it
        if isinstance(refused, Refused):
            raise SourceFailed("refused-redirect", (
                f"refused: the download led to {refused.reason}")) from exc
        if opener.expired or isinstance(reason, TimeoutError):
            raise SourceFailed("timeout", f"not downloaded within {timeout:g} s") from exc
        raise SourceFailed("network", f"the server cannot be reached ({reason})") from exc
    finally:
        part.unlink(missing_ok=True)


class SyncState:
    """What the sync remembers between rounds and restarts, in one small JSON file:
    per source its validators, last good sha256 and whether it is failing; per watched file
    its size, mtime and sha256 (so unchanged files are not hashed again) and the sha256 of
    versions that were rejected (so they are not read and reported again every round).

    The bot fetches each source and watches the folders in threads of their own, which all
    save this state: a save writes a copy taken under a lock, through a temporary file of its
    own thread, so two saves never trip over each other's file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        data: dict[str, Any] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}  # only a cache of validators: losing it costs one full download
        self.sources: dict[str, dict[str, Any]] = data.get("sources", {})
        self.files: dict[str, list[Any]] = data.get("files", {})
        self.rejected: dict[str, str] = data.get("rejected", {})

    def source(self, url: str) -> dict[str, Any]:
        with self._lock:
            return self.sources.setdefault(url, {})

    def save(self) -> None:
        with self._lock:
            # Copies (each one step under the GIL), so another thread updating its own
            # source while this one writes cannot change a dict under json's feet.
            data = {"sources": {url: dict(s) for url, s in list(self.sources.items())},
                    "files": dict(self.files), "rejected": dict(self.rejected)}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(
                f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
