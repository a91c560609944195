"""Language knowledge in one place: folding, words, detection (Dutch or English), stemming
and function words. index/, ingest/ and answer/ take what they know of language from here."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

LANGUAGES = ("nl", "en")
_STEMMER_NAMES = {"nl": "dutch", "en": "english"}

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
def _identifier() -> Any:  # py3langid has no type hints
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


@functools.cache
def _stemmer(language: str) -> Any:  # PyStemmer has no type hints
    import Stemmer

    return Stemmer.Stemmer(_STEMMER_NAMES[language])


def analyse(text: str, language: str) -> list[str]:
    """Words of `text`, folded and stemmed in `language` (PyStemmer's Snowball).

    The lexical index stores these stems: changing this changes the index format."""
    return list(_stemmer(language).stemWords(_WORD.findall(fold(text))))


def analyse_query(text: str) -> list[str]:
    """A query is analysed in both languages, so an English question still matches a Dutch
    passage on shared terms (names, numbers, loan words) and vice versa."""
    seen: dict[str, None] = {}
    for language in LANGUAGES:
        for token in analyse(text, language):
            seen.setdefault(token, None)
    return list(seen)


@functools.cache
def stopwords() -> frozenset[str]:
    """Function words of Dutch and English."""
    from bm25s.stopwords import STOPWORDS_DUTCH, STOPWORDS_EN

    return frozenset(STOPWORDS_DUTCH) | frozenset(STOPWORDS_EN)
