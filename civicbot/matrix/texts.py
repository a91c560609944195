"""The bot's own sentences, in Dutch and English. Pure data plus a tiny language guess."""

from __future__ import annotations

import re

DEFAULT_LANGUAGE = "nl"

_STRINGS: dict[str, dict[str, str]] = {
    "sources": {"en": "Sources", "nl": "Bronnen"},
    "page": {"en": "p. {n}", "nl": "p. {n}"},
    "pages": {"en": "pp. {a}–{b}", "nl": "p. {a}–{b}"},
    "ocr": {"en": "text recognised from a scan — check the original",
            "nl": "tekst herkend uit een scan — controleer het origineel"},
    "ai_note": {
        "en": "Automatically generated answer: it can be wrong, so check the sources.",
        "nl": "Automatisch gegenereerd antwoord: het kan fout zijn, controleer de bronnen.",
    },
    "thinking": {
        "en": "Looking this up in the documents…",
        "nl": "Ik zoek het op in de documenten…",
    },
    "queued": {
        "en": "Another question is being answered first. You are number {n} in the queue; "
        "I will answer here.",
        "nl": "Er wordt eerst een andere vraag beantwoord. U bent nummer {n} in de wachtrij; "
        "ik antwoord hier.",
    },
    "busy": {
        "en": "I am busy with other questions right now. Please try again in a minute.",
        "nl": "Ik ben nu druk met andere vragen. Probeer het over een minuut opnieuw.",
    },
    "rate_limited": {
        "en": "You have asked several questions in a short time. "
        "Please ask again in {s} seconds.",
        "nl": "U heeft in korte tijd veel vragen gesteld. Stel uw vraag over {s} seconden opnieuw.",
    },
    "error": {
        "en": "Sorry, something went wrong while answering. Please try again later.",
        "nl": "Sorry, er ging iets mis bij het beantwoorden. Probeer het later opnieuw.",
    },
    "timeout": {
        "en": "Sorry, writing the answer took too long. Please try a shorter or simpler question.",
        "nl": "Sorry, het antwoord kostte te veel tijd. Probeer een kortere of eenvoudiger vraag.",
    },
    "lost": {
        "en": "Sorry, I was restarted while working on your question and lost it. "
        "Please ask it again.",
        "nl": "Sorry, ik ben herstart terwijl ik met uw vraag bezig was en ben die kwijtgeraakt. "
        "Stel uw vraag alstublieft opnieuw.",
    },
    "stale": {
        "en": "I was offline when you asked this. Please ask again if it is still relevant.",
        "nl": "Ik was offline toen u dit vroeg. Stel uw vraag opnieuw als die nog speelt.",
    },
    "undecryptable": {
        "en": "I could not read your message: it is end-to-end encrypted and I did not get "
        "its key. I have asked your app for it; if I do not answer in a minute, please send "
        "the message again. (If your app only shares keys with verified sessions, allow "
        "this bot's session.)",
        "nl": "Ik kon uw bericht niet lezen: het is end-to-end versleuteld en ik heb de "
        "sleutel niet gekregen. Ik heb uw app erom gevraagd; krijgt u binnen een minuut geen "
        "antwoord, stuur het bericht dan opnieuw. (Deelt uw app alleen sleutels met "
        "geverifieerde sessies, sta dan de sessie van deze bot toe.)",
    },
    "slow_down": {
        "en": "You are sending me many messages in a short time. I will not reply to more "
        "of them for a minute; please wait a moment before asking again.",
        "nl": "U stuurt mij veel berichten in korte tijd. Ik reageer een minuut lang niet op "
        "meer berichten; wacht even voordat u opnieuw iets vraagt.",
    },
    "empty": {
        "en": "Ask me a question about the documents, or type !help.",
        "nl": "Stel mij een vraag over de documenten, of typ !hulp.",
    },
}

_DUTCH = frozenset(
    "de het een en is van wat hoe waar wanneer wie waarom welke ik je u jij mijn mag moet "
    "kan kun kunt niet geen voor met op aan bij over naar dit dat deze die er ook nog wel "
    "zijn heb heeft hebben wordt worden gemeente hoeveel kost".split()
)
_ENGLISH = frozenset(
    "the a an and is are of what how where when who why which i you my me may must can "
    "could not no for with on at to about this that these those there also still do does "
    "have has be been council much cost".split()
)


def t(key: str, language: str, **values: object) -> str:
    """The sentence `key` in `language` ("nl" or "en"), with `values` filled in."""
    table = _STRINGS[key]
    text = table.get(language) or table[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def guess_language(text: str, default: str = DEFAULT_LANGUAGE) -> str:
    """"nl" or "en" by counting common words; `default` when the text gives no clue.
    Only for the bot's own notices before an answer exists: answers carry their language."""
    words = re.findall(r"[a-zà-ÿ']+", text.lower())
    nl = sum(w in _DUTCH for w in words)
    en = sum(w in _ENGLISH for w in words)
    if nl == en:
        return default
    return "nl" if nl > en else "en"
