"""Language knowledge in one place: folding, words, detection (Dutch or English), stemming
and function words. index/, ingest/ and answer/ take what they know of language from here."""

from __future__ import annotations

import functools
import math
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


# Who asks and who is asked, not what is asked: citizens ask in the first person ("mag ik",
# "mijn gemeente", "our municipality") or address someone ("kunt u"), and letters in a corpus
# are written the same way (a Woo decision: "ik heb besloten", "uw verzoek", "mijn
# ministerie"). Policy text uses these words rarely, so BM25 weighed them as telling and matched
# letters to questions on grammar alone (docs/retrieval.md, "Who asks is not what is asked").
# Each language's own words: a Dutch question's "I" is the roman numeral of "bijlage I", never
# a pronoun, and an English question's "u" is more often the U of "U.S." than chat for "you".
SPEAKER_WORDS = {
    "nl": frozenset("ik mij me mijn wij we ons onze jij je jou jouw jullie u uw".split()),
    "en": frozenset("i me my mine we our ours you your yours".split()),
}
# English writes the pronoun and the numeral alike; the numeral follows a capitalised name of a
# part ("Annex I", "Title I", "Chapter I"), the pronoun a verb or the start of a sentence
# ("Can I", "do I", "If I").
_NUMERAL_I = re.compile(r"(?<![.?!:;]\s)(?<!^)\b[A-Z][^\W\d_]*\s+I\b")


def without_speaker(text: str, language: str) -> str:
    """The words of `text` less those that, in `language`, only say who asks or is asked
    (`SPEAKER_WORDS`)."""
    speaker = SPEAKER_WORDS.get(language, frozenset())
    numerals = {m.end() for m in _NUMERAL_I.finditer(text)} if language == "en" else set()
    return " ".join(m.group() for m in _WORD.finditer(text)
                    if fold(m.group()) not in speaker or m.end() in numerals)


@functools.cache
def stopwords() -> frozenset[str]:
    """Function words of Dutch and English."""
    from bm25s.stopwords import STOPWORDS_DUTCH, STOPWORDS_EN

    return frozenset(STOPWORDS_DUTCH) | frozenset(STOPWORDS_EN)


# How much a word tells, from how often ordinary text uses it, not from the corpus: an idf
# computed over the documents in the index says little when they are few (in a corpus of one
# passage every word it holds has the same idf, "de" and "spaarrente" alike, and a word it
# lacks weighs five times as much), so a coverage built on it refused answerable questions on
# a library's small corpus that it answered in a large one (docs/answering.md, "Term weights").
# The frequencies are wordfreq's (Speer, 2022; its "small" list of each language, the words
# used at least once per million), summed over the words that share a stem. A term's weight is
# the idf it would have in a background collection of BACKGROUND_PASSAGES passages of
# BACKGROUND_WORDS words each; a term the list lacks (a rarer word, a name, a number of two
# digits or more) weighs as one of those passages would make it: the most.
BACKGROUND_PASSAGES = 1_000_000
BACKGROUND_WORDS = 180


@functools.cache
def _background(language: str) -> dict[str, float]:
    """Stem → its share of the words of ordinary text in `language`."""
    from wordfreq import get_frequency_dict

    shares: dict[str, float] = {}
    for word, share in get_frequency_dict(language, wordlist="small").items():
        stems = analyse(word, language)
        if len(stems) == 1:
            shares[stems[0]] = shares.get(stems[0], 0.0) + share
    return shares


def term_weights(terms: list[str], language: str) -> list[float]:
    """How much each analysed term (see `analyse`) of `language` tells: high for rare words,
    names and numbers, low for function words. The same whatever the corpus and its size."""
    shares = _background(language) if language in LANGUAGES else {}
    n = BACKGROUND_PASSAGES
    out = []
    for term in terms:
        # The share of background passages that hold the term at least once.
        df = n * -math.expm1(-BACKGROUND_WORDS * shares.get(term, 0.0))
        out.append(math.log1p((n - df + 0.5) / (df + 0.5)))
    return out
