"""The question value: what the answer path needs to know about a question, worked out once
(its language, what to search with, the kind of fact it asks for) and passed down to
retrieval, refusal and quoting, instead of each layer detecting them again."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from civicbot import lang
from civicbot.answer.extractive import Asked
from civicbot.records import Turn

# A follow-up leans on the conversation: it is short, or refers back ("and when does that
# start?", "en wat geldt daarvoor?").
_FOLLOW_UP = re.compile(
    r"^(and|but|also|what about|en|maar|ook|en wat|hoe zit het)\b|\b(that|this|it|they|those|"
    r"these|dat|dit|die|deze|het|hij|zij|ze|daarvan|daarvoor|daarbij|hiervoor)\b", re.I)


def retrieval_query(question: str, history: Sequence[Turn]) -> str:
    """The text to search with: a follow-up question is joined with the previous question,
    so "and when does that start?" is searched together with what "that" is."""
    earlier = [t.text for t in history if t.role == "user"]
    if earlier and (len(lang.words(question)) <= 8 or _FOLLOW_UP.search(question)):
        return f"{earlier[-1]}\n{question}"
    return question


@dataclass(frozen=True)
class Question:
    """A question as the answer path sees it: `text` as asked, `query` what is searched
    (a follow-up with the question before it), `language` the question's, and `asked` the
    kind of fact the query asks for (None: no particular kind)."""

    text: str
    query: str
    language: str
    asked: Asked | None
