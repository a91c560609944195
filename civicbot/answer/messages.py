"""What civicbot says to citizens in answers: the sentences are in the one table of
`civicbot.texts`; `say` is kept as the answer side's name for its lookup."""

from __future__ import annotations

from civicbot.texts import t


def say(key: str, language: str, **values: str) -> str:
    """The sentence `key` of civicbot.texts in `language`."""
    return t(key, language, **values)
