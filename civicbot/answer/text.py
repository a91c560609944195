"""Sentences, citations and checkable facts in text: pure helpers for the answer step."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (or a line break before a list item) followed by a capital, digit,
# bullet or citation; abbreviations like "art. 27" or "o.a." are not followed by a capital.
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'‘“(\[]?[A-ZÀ-Ý0-9•\-])|\n(?=\s*[•\-–*]|\s*[a-z]\)\s)")
_NUMBER = re.compile(r"\d+(?:[ .,]\d{3})*(?:[.,]\d+)?%?")
_MONTHS = ("januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|"
           "december|january|february|march|may|june|july|august|october")
_LIST_MARK = re.compile(r"^\s*(\d{1,2}[.)]|[-•*])\s+", re.M)  # "1. ", "2) ", "- " list items
_DATE = re.compile(rf"\b\d{{1,2}} ({_MONTHS}) \d{{4}}\b", re.I)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


_ABBREVIATIONS = re.compile(
    r"\b(art|artt|nr|nrs|no|p|pp|blz|lid|jo|bijv|vgl|zgn|resp|ca|o\.a|m\.b\.t|i\.e|e\.g|etc|"
    r"cf|par|hfst|ch|sec|para|mr|dr|prof|ir|drs|st|vs)\.$", re.I)


def sentences(text: str) -> list[Span]:
    """Sentences of `text` with their offsets (whitespace at the edges left out)."""
    spans: list[Span] = []
    pos = 0
    glue = False
    for m in [*_SENT_END.finditer(text), None]:
        end = m.start() if m else len(text)
        piece = text[pos:end]
        lead = len(piece) - len(piece.lstrip())
        body = piece.strip()
        if body:
            start = pos + lead
            if glue and spans:  # the previous piece ended in an abbreviation ("art. 27")
                start = spans.pop().start
            spans.append(Span(start, pos + lead + len(body), text[start:pos + lead + len(body)]))
            glue = bool(_ABBREVIATIONS.search(body))
        pos = m.end() if m else len(text)
    return spans


def cited_numbers(text: str) -> list[int]:
    """The source numbers cited as [1], [2, 3] in `text`."""
    out: list[int] = []
    for m in re.finditer(r"\[([\d ,;]+)\]", text):
        out.extend(int(n) for n in re.split(r"[ ,;]+", m.group(1)) if n.isdigit())
    return out


def strip_citations(text: str) -> str:
    return re.sub(r"\s*\[[\d ,;]+\]", "", text).strip()


def digits(value: str) -> str:
    """A number without separators: "35 000 000" and "35.000.000" both give "35000000"."""
    return re.sub(r"[ .,]", "", value)


def facts(text: str) -> set[str]:
    """Checkable facts: numbers (as digits), dates, and names (capitalised words that do not
    start a sentence). Each must occur in the passages an answer cites."""
    found: set[str] = set()
    clean = _LIST_MARK.sub("", strip_citations(text))
    for m in _NUMBER.finditer(clean):
        value = digits(m.group(0).rstrip("%"))
        if value:
            found.add(value)
    for m in _DATE.finditer(clean):
        found.add(m.group(0).lower())
    for sent in sentences(clean):
        tokens = re.findall(r"[^\W\d_][\w\-]*", sent.text)
        for tok in tokens[1:]:
            if tok[0].isupper() and len(tok) > 2 and not tok.isupper():
                found.add(tok.lower())
            elif tok.isupper() and len(tok) >= 2:  # acronyms: AVG, GDPR, FRIA
                found.add(tok.lower())
    return found


def named_numbers(text: str) -> set[str]:
    """The numbers `text` names, among its `facts`: a number, or the numbered part of a name
    written as one compound ("covid-19" of "COVID-19-besmettingen", "g4" of "G4-regio's"):
    the compound's other parts are words, which a passage may write apart or inflect."""
    out: set[str] = set()
    for fact in facts(text):
        if fact.isdigit():
            out.add(fact)
        elif any(ch.isdigit() for ch in fact):
            parts = fact.split("-")
            last = max(i for i, part in enumerate(parts) if any(ch.isdigit() for ch in part))
            out.add("-".join(parts[: last + 1]))
    return out


def fact_present(fact: str, passage: str) -> bool:
    """Whether `fact` (from `facts`) occurs in `passage`."""
    if fact.isdigit():
        numbers = {digits(m.group(0).rstrip("%")) for m in _NUMBER.finditer(passage)}
        # "35 miljoen" / "35 million" states the number written "35 000 000" in the passage.
        return fact in numbers or any(
            n.startswith(fact) and set(n[len(fact):]) == {"0"} and len(n) - len(fact) >= 3
            for n in numbers)
    return fact in " ".join(passage.lower().split())
