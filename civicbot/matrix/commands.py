"""Commands (`!help`, `!about`, `!sources`, `!privacy`, with Dutch aliases): parsing and
the texts they answer with. Pure: the bot hands in what the answerer knows."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from civicbot.matrix.render import Rendered, render_notice, safe_link
from civicbot.records import DocInfo

# alias -> (command, language the alias implies; None when the word is the same in both)
ALIASES: dict[str, tuple[str, str | None]] = {
    "help": ("help", "en"),
    "hulp": ("help", "nl"),
    "about": ("about", "en"),
    "over": ("about", "nl"),
    "sources": ("sources", "en"),
    "documents": ("sources", "en"),
    "bronnen": ("sources", "nl"),
    "documenten": ("sources", "nl"),
    "privacy": ("privacy", None),
    # editors only (civicbot/matrix/editing.py)
    "add": ("add", "en"),
    "toevoegen": ("add", "nl"),
    "replace": ("replace", "en"),
    "vervang": ("replace", "nl"),
    "remove": ("remove", "en"),
    "verwijder": ("remove", "nl"),
    "docs": ("docs", None),
    "reindex": ("reindex", "en"),
    "herindexeer": ("reindex", "nl"),
    "history": ("history", "en"),
    "geschiedenis": ("history", "nl"),
}
MAX_LISTED_DOCUMENTS = 50

_COMMAND = re.compile(r"^!([A-Za-z][\w-]*)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Command:
    name: str  # "help", "about", "sources", "privacy" or "unknown"
    language: str | None  # implied by the alias, or None
    word: str  # as typed, for the reply to an unknown command
    args: str = ""


def parse_command(text: str) -> Command | None:
    """A command if `text` starts with `!word`, else None (then it is a question)."""
    m = _COMMAND.match(text.strip())
    if not m:
        return None
    word, args = m.group(1), m.group(2).strip()
    name, language = ALIASES.get(word.lower(), ("unknown", None))
    if args.lower() in ("nl", "en"):  # "!privacy en": ask for a language explicitly
        language = args.lower()
    return Command(name=name, language=language, word=word, args=args)


def help_text(language: str) -> Rendered:
    if language == "nl":
        lines = [
            "Ik beantwoord vragen over de beleidsdocumenten van deze organisatie, "
            "met bronvermelding. Stel uw vraag in een privégesprek met mij, of noem mijn "
            "naam in een groepsgesprek. Vervolgvragen kunt u in dezelfde draad stellen.",
            "Opdrachten:\n"
            "!hulp – deze uitleg\n"
            "!over – wat voor assistent dit is en welk model antwoordt\n"
            "!bronnen – de documenten waar ik uit put\n"
            "!privacy – wat er wordt bewaard, en hoe lang",
            "Ik ben een AI-assistent en kan me vergissen: controleer de bronnen.",
        ]
    else:
        lines = [
            "I answer questions about this organisation's policy documents and cite my "
            "sources. Ask me in a direct chat, or mention my name in a group room. "
            "Ask follow-up questions in the same thread.",
            "Commands:\n"
            "!help – this explanation\n"
            "!about – what kind of assistant this is and which model answers\n"
            "!sources – the documents I draw on\n"
            "!privacy – what is stored, and for how long",
            "I am an AI assistant and can be wrong: check the sources.",
        ]
    return render_notice("\n\n".join(lines))


def unknown_text(word: str, language: str) -> Rendered:
    if language == "nl":
        return render_notice(f"Onbekende opdracht !{word}. Typ !hulp voor de mogelijkheden.")
    return render_notice(f"Unknown command !{word}. Type !help to see what I can do.")


# Keys of `Answerer.about()` shown with a label; any other keys are listed as they are.
_ABOUT_LABELS = {
    "model": ("Language model", "Taalmodel"),
    "model_sha256": ("Model sha256", "Model-sha256"),
    "backend": ("Where the model runs", "Waar het model draait"),
    "servers": ("Inference servers", "Inferentieservers"),
    "embedding_model": ("Embedding model", "Embeddingmodel"),
    "documents": ("Documents", "Documenten"),
    "corpus_updated": ("Documents last changed", "Documenten laatst gewijzigd"),
}


def about_text(facts: Mapping[str, str], language: str, source_code_url: str) -> Rendered:
    """The transparency card."""
    nl = language == "nl"
    intro = (
        "Ik ben een AI-assistent: ik zoek in de documenten en laat een taalmodel een "
        "antwoord schrijven met bronnen. Ik kan me vergissen. Alles draait op de eigen "
        "server; er wordt geen externe AI-dienst gebruikt."
        if nl
        else "I am an AI assistant: I search the documents and let a language model write "
        "an answer with sources. I can be wrong. Everything runs on this organisation's own "
        "server; no external AI service is used."
    )
    rows = []
    for key, value in facts.items():
        label = _ABOUT_LABELS.get(key, (key, key))[1 if nl else 0]
        rows.append((label, str(value)))
    code_label = "Broncode" if nl else "Source code"
    link = safe_link(source_code_url)
    body = [intro, ""] + [f"{label}: {value}" for label, value in rows]
    body.append(f"{code_label}: {source_code_url}")
    items = [f"<li>{html.escape(label)}: {html.escape(value)}</li>" for label, value in rows]
    code = (
        f'<a href="{html.escape(link, quote=True)}">{html.escape(link)}</a>'
        if link
        else html.escape(source_code_url)
    )
    items.append(f"<li>{html.escape(code_label)}: {code}</li>")
    return Rendered(
        body="\n".join(body), html=f"<p>{html.escape(intro)}</p><ul>{''.join(items)}</ul>"
    )


def sources_text(documents: Sequence[DocInfo], language: str) -> Rendered:
    """The documents the answers come from: title, date added, pages."""
    nl = language == "nl"
    if not documents:
        return render_notice(
            "Er zijn nog geen documenten geladen." if nl else "No documents are loaded yet."
        )
    heading = (
        f"Ik put uit {len(documents)} documenten:"
        if nl
        else f"I draw on {len(documents)} documents:"
    )
    shown = sorted(documents, key=lambda d: (d.title or d.name).lower())[:MAX_LISTED_DOCUMENTS]
    lines, items = [], []
    for d in shown:
        date = d.added_at[:10] if d.added_at else ""
        pages = f"{d.page_count} p." if d.page_count else ""
        extra = ", ".join(x for x in (date, pages, _origin(d, nl)) if x)
        title = d.title or d.name
        lines.append(f"- {title}" + (f" ({extra})" if extra else ""))
        link = safe_link(d.source)
        shown_title = html.escape(title)
        if link:
            shown_title = f'<a href="{html.escape(link, quote=True)}">{shown_title}</a>'
        items.append(f"<li>{shown_title}" + (f" ({html.escape(extra)})" if extra else "") + "</li>")
    more = len(documents) - len(shown)
    tail = ""
    if more > 0:
        tail = f"… en nog {more}." if nl else f"… and {more} more."
    body = "\n".join([heading, *lines] + ([tail] if tail else []))
    markup = f"<p>{html.escape(heading)}</p><ul>{''.join(items)}</ul>"
    if tail:
        markup += f"<p>{html.escape(tail)}</p>"
    return Rendered(body=body, html=markup)


def _origin(doc: DocInfo, nl: bool) -> str:
    """Where a document came from, for citizens: its public address, or who added it."""
    if doc.source.startswith(("http://", "https://")):
        return doc.source
    if doc.added_by.startswith("@"):
        return "toegevoegd door een redacteur" if nl else "added by an editor"
    if doc.added_by:
        return "uit de documentenmap" if nl else "from the document folder"
    return ""


def privacy_text(language: str, log_questions: bool, encryption: bool = True) -> Rendered:
    """What the bot stores, and for how long; and what end-to-end encryption does and does
    not protect (trust on first use, docs/encryption.md)."""
    if language == "nl":
        crypto = (
            "Versleuteling: in end-to-end versleutelde gesprekken leest en antwoordt de bot "
            "versleuteld. Hij vertrouwt elk apparaat de eerste keer dat hij het ziet, zonder "
            "verificatie (trust on first use): zo kan iedereen hem gebruiken, maar hij kan niet "
            "uitsluiten dat wie een homeserver beheert een apparaat aan uw account of dit "
            "gesprek toevoegt dat de antwoorden ook kan lezen. De sleutels van de bot staan "
            "op de server van deze organisatie; daar wordt uw vraag gelezen om haar te "
            "beantwoorden."
            if encryption
            else "Versleuteling: deze bot leest geen end-to-end versleutelde berichten."
        )
    else:
        crypto = (
            "Encryption: in end-to-end encrypted chats the bot reads and answers encrypted. "
            "It trusts each device the first time it sees it, without verification (trust on "
            "first use): that lets everyone use it, but it cannot rule out that someone who "
            "runs a homeserver adds a device to your account or to this chat that can read "
            "the answers too. The bot's keys are kept on this organisation's server; your "
            "question is read there in order to answer it."
            if encryption
            else "Encryption: this bot does not read end-to-end encrypted messages."
        )
    return render_notice(_stored_text(language, log_questions) + "\n\n" + crypto)


def _stored_text(language: str, log_questions: bool) -> str:
    if language == "nl":
        parts = [
            "Wat deze bot bewaart:",
            "- Zolang een vraag in behandeling is: alleen de kenmerken van het bericht en de "
            "ruimte, zodat de vraag na een herstart nog beantwoord wordt. Die worden "
            "gewist zodra het antwoord er staat.",
            "- Stemmen met 👍/👎 op een antwoord: welk antwoord, welke stem en wanneer – "
            "niet wie er stemde.",
            "- Uw vragen zelf worden niet door de bot opgeslagen of gelogd."
            if not log_questions
            else "- Let op: de beheerder heeft het bewaren van vragen aangezet; de tekst van "
            "vragen waarop gestemd wordt, wordt bij die stem bewaard.",
            "De berichten in dit gesprek staan, zoals alle Matrix-berichten, op de server "
            "van deze organisatie, volgens haar bewaartermijnen. Er wordt niets naar een "
            "externe AI-dienst gestuurd.",
        ]
    else:
        parts = [
            "What this bot stores:",
            "- While a question is being handled: only the ids of the message and the room, "
            "so that the question is still answered after a restart. They are deleted as "
            "soon as the answer is there.",
            "- 👍/👎 votes on an answer: which answer, which vote and when – not who voted.",
            "- Your questions themselves are not stored or logged by the bot."
            if not log_questions
            else "- Note: the administrator has switched question logging on; the text of "
            "questions whose answers get a vote is stored with that vote.",
            "Messages in this conversation are, like all Matrix messages, kept on this "
            "organisation's homeserver according to its retention rules. Nothing is sent to "
            "an external AI service.",
        ]
    editors = (
        "- Wie als redacteur documenten toevoegt, vervangt of verwijdert, staat met zijn "
        "Matrix-naam in het wijzigingslogboek: redacteuren handelen in een openbare rol. "
        "Vragenstellers staan daar nooit in."
        if language == "nl"
        else "- Editors who add, replace or remove documents are recorded with their Matrix "
        "id in the change log: they act in a public role. People asking questions never are."
    )
    return "\n".join(parts[:4]) + "\n" + editors + "\n\n" + parts[4]
