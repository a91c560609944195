"""Every sentence civicbot says to citizens and editors, in Dutch and English: one table,
one lookup (`t`). Also the page label of a citation and the language the bot speaks to the
writer of a message (the detector the answer uses: `civicbot.lang.detect`).

Keys are unique across the table; the sections below say who uses them.
"""

from __future__ import annotations

from civicbot import lang

DEFAULT_LANGUAGE = "nl"

TEXTS: dict[str, dict[str, str]] = {
    # ---- the bot's notices (civicbot/matrix) ----
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
    # a mention without a question
    "bare_mention": {
        "en": "Ask me a question about the documents, or type !help.",
        "nl": "Stel mij een vraag over de documenten, of typ !hulp.",
    },
    # ---- answers (civicbot/answer) ----
    "refused": {
        "nl": "De documenten waarover ik beschik geven hierop geen antwoord, dus ik kan deze "
              "vraag niet betrouwbaar beantwoorden.",
        "en": "The documents I have do not answer this, so I cannot answer this question "
              "reliably.",
    },
    # The documents cover the topic but not the detail asked (a number, a name, a year).
    "partial": {
        "nl": "De documenten beschrijven dit onderwerp ({topic}), maar noemen niet "
              "{missing}. Dit zeggen ze er wel over:",
        "en": "The documents describe this topic ({topic}), but do not say {missing}. This "
              "is what they do say:",
    },
    "kind_number": {"nl": "het gevraagde aantal", "en": "the number asked for"},
    "kind_amount": {"nl": "het gevraagde bedrag", "en": "the amount asked for"},
    "kind_date": {"nl": "de gevraagde datum", "en": "the date asked for"},
    "kind_duration": {"nl": "de gevraagde termijn", "en": "the period asked for"},
    "kind_name": {"nl": "de gevraagde naam", "en": "the name asked for"},
    "and": {"nl": "en", "en": "and"},
    "covers": {
        "nl": "Ik ken onder meer deze documenten: {titles}.",
        "en": "The documents I know include: {titles}.",
    },
    "nearest": {
        "nl": "Van de {count} documenten die ik ken, komen deze het dichtst bij uw vraag: "
              "{titles}.",
        "en": "Of the {count} documents I know, these come closest to your question: "
              "{titles}.",
    },
    "only": {
        "nl": "Het enige document dat ik ken, is: {title}.",
        "en": "The only document I know is: {title}.",
    },
    "empty": {
        "nl": "Er staan nog geen documenten in mijn collectie.",
        "en": "There are no documents in my collection yet.",
    },
    "extractive": {
        "nl": "Dit zeggen de documenten erover:",
        "en": "This is what the documents say:",
    },
    "quote": {
        "nl": "In de bron staat:",
        "en": "The source says:",
    },
    "other_language": {
        "nl": "(de bron is in het Engels)",
        "en": "(the source is in Dutch)",
    },
    "model_lead": {
        "nl": "(De eerste zin is geschreven door het taalmodel en gecontroleerd aan de hand "
              "van de bronnen.)",
        "en": "(The first sentence was written by the language model and checked against the "
              "sources.)",
    },
    "model_leads": {
        "nl": "(De eerste zinnen zijn geschreven door het taalmodel en gecontroleerd aan de "
              "hand van de bronnen.)",
        "en": "(The first sentences were written by the language model and checked against "
              "the sources.)",
    },
    # ---- editors (civicbot/matrix/editing.py) ----
    "not_editor": {
        "en": "Only editors may change the documents. Ask an administrator to add you to "
              "the editors if you should be one.",
        "nl": "Alleen redacteuren mogen de documenten wijzigen. Vraag een beheerder om u als "
              "redacteur toe te voegen als dat de bedoeling is.",
    },
    "no_file": {
        "en": "Send this command as a reply to the file it is about.",
        "nl": "Stuur deze opdracht als antwoord op het bestand waar het om gaat.",
    },
    "bad_name": {
        "en": "The file name {name!r} cannot be used. Rename the file and send it again.",
        "nl": "De bestandsnaam {name!r} is niet bruikbaar. Geef het bestand een andere naam "
              "en stuur het opnieuw.",
    },
    "type": {
        "en": "{name}: files of this type cannot be added. Send a PDF, text (.txt), "
              "Markdown (.md) or HTML file.",
        "nl": "{name}: dit soort bestand kan niet worden toegevoegd. Stuur een PDF-, tekst- "
              "(.txt), Markdown- (.md) of HTML-bestand.",
    },
    "too_large": {
        "en": "{name} is {mb:.1f} MB; the limit is {limit} MB. Send a smaller file.",
        "nl": "{name} is {mb:.1f} MB; de grens is {limit} MB. Stuur een kleiner bestand.",
    },
    "content": {
        "en": "{name} is not what its name says: {what}. Nothing was changed.",
        "nl": "{name} is niet wat de naam zegt: {what}. Er is niets gewijzigd.",
    },
    "exists": {
        "en": "A document named {name} is already there. To replace it, reply to the file "
              "with: !replace {name}",
        "nl": "Er is al een document met de naam {name}. Om het te vervangen, antwoord op het "
              "bestand met: !replace {name}",
    },
    "unknown_doc": {
        "en": "There is no document named {name}. !docs lists them.",
        "nl": "Er is geen document met de naam {name}. !docs toont ze.",
    },
    "from_source": {
        "en": "{name} comes from the configured source {source}; it is updated from there. "
              "To change it, change the source or take it out of [[sources]] in the "
              "configuration.",
        "nl": "{name} komt uit de ingestelde bron {source} en wordt daar vandaan bijgewerkt. "
              "Wijzig de bron, of haal hem uit [[sources]] in de configuratie.",
    },
    "not_stored": {
        "en": "The file could not be stored ({error}). Nothing was changed. Ask the "
              "administrator to check the disk.",
        "nl": "Het bestand kon niet worden opgeslagen ({error}). Er is niets gewijzigd. "
              "Vraag de beheerder de schijf na te kijken.",
    },
    "other_type": {
        "en": "{name} can only be replaced by a file of the same type ({suffix}).",
        "nl": "{name} kan alleen worden vervangen door een bestand van hetzelfde soort "
              "({suffix}).",
    },
    "download": {
        "en": "The file could not be downloaded from the homeserver ({error}). Send it again.",
        "nl": "Het bestand kon niet van de server worden gehaald ({error}). Stuur het opnieuw.",
    },
    "reading": {
        "en": "Reading {name}…",
        "nl": "Bezig met {name}…",
    },
    "added": {"en": "Added", "nl": "Toegevoegd"},
    "replaced": {"en": "Replaced", "nl": "Vervangen"},
    "unchanged": {"en": "Unchanged (the same file is already there)",
                  "nl": "Ongewijzigd (hetzelfde bestand staat er al)"},
    "report": {
        "en": "{status}: {name}\nTitle: {title}\nPages: {pages}, passages: {chunks}, "
              "language: {language}",
        "nl": "{status}: {name}\nTitel: {title}\nPagina's: {pages}, passages: {chunks}, "
              "taal: {language}",
    },
    "left_out": {
        "en": "Left out: pages {pages} ({why})",
        "nl": "Weggelaten: pagina's {pages} ({why})",
    },
    "rejected": {
        "en": "{name} was not added ({reason}): {message}\nNothing was changed.",
        "nl": "{name} is niet toegevoegd ({reason}): {message}\nEr is niets gewijzigd.",
    },
    "removed": {
        "en": "Removed: {name}. It is no longer used in answers.",
        "nl": "Verwijderd: {name}. Het wordt niet meer gebruikt in antwoorden.",
    },
    "no_name": {
        "en": "Say which document: !remove NAME (!docs lists the names).",
        "nl": "Zeg welk document: !remove NAAM (!docs toont de namen).",
    },
    "no_docs": {"en": "There are no documents yet.", "nl": "Er zijn nog geen documenten."},
    "no_history": {"en": "No changes have been recorded yet.",
                   "nl": "Er zijn nog geen wijzigingen vastgelegd."},
    "reindexed": {
        "en": "Checked the corpus folders and sources: {changes}.",
        "nl": "Mappen en bronnen nagelopen: {changes}.",
    },
    "no_changes": {"en": "nothing changed", "nl": "niets gewijzigd"},
    "failed": {
        "en": "That did not work: {error}",
        "nl": "Dat lukte niet: {error}",
    },
    # why pages of an upload were left out (report_text)
    "why_no-text": {"en": "no text layer, scanned?", "nl": "geen tekstlaag, gescand?"},
    "why_garbled": {"en": "garbled text", "nl": "onleesbare tekst"},
}


def t(key: str, language: str, /, **values: object) -> str:
    """The sentence `key` in `language` ("nl" or "en"; another falls back to Dutch), with
    `values` filled in."""
    table = TEXTS[key]
    text = table.get(language) or table[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def page_label(start: int, end: int, language: str = "en") -> str:
    """"p. 3", or "pp. 3–4" (Dutch "p. 3–4"): the one way a page range is written."""
    if end and end != start:
        return t("pages", language, a=start, b=end)
    return t("page", language, n=start)


def language_of(text: str, default: str = DEFAULT_LANGUAGE) -> str:
    """The language to speak to the writer of `text`: the one its answer will have
    (`lang.detect`, as the answer pipeline decides it), so that the bot's notices and the
    answer agree. A command's word says nothing of its writer's language ("!privacy" is
    both): then, as for a text without words, `default` (the room's last answer's)."""
    if text.lstrip().startswith("!"):
        return default
    return lang.detect(text, default)
