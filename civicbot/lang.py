"""Language detection (Dutch or English) and the word lists that go with each language."""

from __future__ import annotations

import functools
import re
import unicodedata

LANGUAGES = ("nl", "en")

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# A question that asks for a language wins over detection ("answer in English").
_ASKED = {
    "en": re.compile(r"\b(in english|answer in english|in het engels)\b", re.I),
    "nl": re.compile(r"\b(in dutch|in het nederlands|answer in dutch)\b", re.I),
}


def fold(text: str) -> str:
    """Lower case without accents: "financiële" and "financiele" are one word."""
    if text.isascii():  # most text: nothing to strip, and stripping is char by char
        return text.lower()
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


@functools.cache
def _identifier():  # type: ignore[no-untyped-def]
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(LANGUAGES))
    return ident


def detect(text: str, default: str = "nl") -> str:
    """The language of `text`: "nl" or "en" (py3langid restricted to the two)."""
    sample = text[:5000]
    if not _WORD.search(sample):
        return default
    for lang, pattern in _ASKED.items():
        if pattern.search(sample):
            return lang
    lang, _ = _identifier().classify(sample)
    return str(lang)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits)."""
    return _WORD.findall(text.lower())
