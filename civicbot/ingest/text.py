"""Readers for plain text, Markdown and HTML. Each returns "pages": a text file is one page;
an HTML page is one page; very long text files are split at form feeds when present."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

from civicbot.errors import CorruptDocument

_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
               "article", "header", "footer", "table", "ul", "ol", "dt", "dd", "pre", "title"}
_SKIP_TAGS = {"script", "style", "nav", "noscript", "svg", "template"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag in {"h1", "h2", "h3", "h4"}:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if not self._skip:
            self.parts.append(data)


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise CorruptDocument(path.name, "this looks like a binary file, not text")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def text_pages(path: Path) -> list[str]:
    """Plain text or Markdown: form feeds separate pages, otherwise the file is one page."""
    text = _decode(path)
    return text.split("\f") if "\f" in text else [text]


def html_pages(path: Path) -> tuple[list[str], str]:
    """Visible text of an HTML file (scripts, styles and navigation left out), and its title."""
    parser = _TextExtractor()
    parser.feed(_decode(path))
    text = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts))
    return [html.unescape(text)], " ".join(parser.title.split())
