"""Answers and notices as Matrix message bodies: a plain-text body and an HTML body.

The HTML is built here from escaped text with a handful of tags from the Matrix spec's
allowed list, so it is sanitised by construction: nothing from a document, a model or a
user is ever passed through as markup. Links are kept only for http(s) URLs.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from civicbot.records import Answer
from civicbot.texts import page_label, t

QUOTE_CHARS = 300
# Matrix events are limited to 64 KiB; answers are far shorter, but a runaway model must
# not make the final edit fail.
MAX_TEXT_CHARS = 12_000
CURSOR = " …"


@dataclass(frozen=True)
class Rendered:
    """A message ready to send: `body` for every client, `html` for clients with markup."""

    body: str
    html: str


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return cut + "…"


def safe_link(url: str) -> str | None:
    """`url` if it is an absolute http(s) URL, else None (no javascript:, file:, ...)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.netloc:
        return url.strip()
    return None


def text_to_html(text: str) -> str:
    """Escaped paragraphs: blank lines separate paragraphs, single newlines become <br>."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )


def render_notice(text: str) -> Rendered:
    """A plain sentence or two (status notices, errors, command replies without lists)."""
    return Rendered(body=text.strip(), html=text_to_html(text))


def render_partial(text: str, language: str) -> Rendered:
    """The answer as far as it has been written, with a cursor showing more is coming."""
    text = text.strip()
    if not text:
        return render_notice(t("thinking", language))
    text = shorten_block(text, MAX_TEXT_CHARS)
    return Rendered(body=text + CURSOR, html=text_to_html(text + CURSOR))


def shorten_block(text: str, limit: int) -> str:
    """Like `shorten` but keeps line breaks."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_answer(answer: Answer) -> Rendered:
    """The final answer: text, then the sources as a list with quotes and links, then a
    one-line reminder that the answer is machine-written."""
    lang = answer.language if answer.language in ("nl", "en") else "nl"
    text = shorten_block(answer.text.strip(), MAX_TEXT_CHARS)
    body = [text]
    parts = [text_to_html(text)]
    if answer.citations:
        heading = t("sources", lang)
        body += ["", heading + ":"]
        items = []
        for c in answer.citations:
            where = page_label(c.page_start, c.page_end, lang)
            ocr = f" ({t('ocr', lang)})" if c.ocr else ""
            quote = shorten(c.quote, QUOTE_CHARS)
            link = safe_link(c.link)
            # Without a public address the file name is how a citizen asks for the document.
            doc = "" if link or c.doc == c.title else f" ({c.doc})"
            line = f"[{c.number}] {c.title}{doc}, {where}{ocr}"
            if link:
                line += f" <{link}>"
            body.append(line)
            if quote:
                body.append(f"    “{quote}”")
            title = html.escape(c.title or c.doc)
            if link:
                title = f'<a href="{html.escape(link, quote=True)}">{title}</a>'
            item = f"[{c.number}] {title}{html.escape(doc)}, {html.escape(where + ocr)}"
            if quote:
                item += f"<blockquote>{html.escape(quote)}</blockquote>"
            items.append(f"<li>{item}</li>")
        parts.append(f"<p><strong>{html.escape(heading)}</strong></p><ul>{''.join(items)}</ul>")
    note = t("ai_note", lang)
    body += ["", note]
    parts.append(f"<p><em>{html.escape(note)}</em></p>")
    return Rendered(body="\n".join(body), html="".join(parts))


def answer_text_from_body(body: str) -> str:
    """The answer alone from a final answer's plain body (sources and note removed): what
    goes into the conversation history of a follow-up question."""
    text = body.removeprefix("* ")
    for lang in ("nl", "en"):
        text = text.split("\n\n" + t("sources", lang) + ":\n", 1)[0]
        text = text.split("\n\n" + t("ai_note", lang), 1)[0]
    return text.removesuffix(CURSOR).strip()
