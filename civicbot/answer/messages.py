"""What civicbot says to citizens, in Dutch and English."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
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
    "ocr": {
        "nl": "tekst herkend uit een scan — controleer het origineel",
        "en": "text recognised from a scan — check the original",
    },
}


def say(key: str, language: str, **values: str) -> str:
    texts = TEXTS[key]
    return texts.get(language, texts["en"]).format(**values)
