"""Document titles cut to a length that still says which document it is."""

from __future__ import annotations

import re

# The name an act's long title gives it in brackets: "(General Data Protection Regulation)",
# "(digitale omnibus inzake AI)". Two words or more, no digits or full stops: not "(EU)",
# "(COD)", "(OR. en)"; not the EEA marker that follows many acts' titles, nor a reference
# ("(hierna: de minister)", "(see Annex)").
_SHORT_NAME = re.compile(r"\((?=[^()]*\s)(?!text with EEA|voor de EER|hierna|hereinafter|"
                         r"zie |see )"
                         r"([^\W\d_][^()\d.]{4,58}[^\W\d_])\)", re.I)
# How far a name that the cut falls inside may run past the limit before the title is cut
# ahead of it instead.
_OVERRUN = 20


def clip_title(title: str, limit: int) -> str:
    """`title` on one line, cut at a word to about `limit` characters. A long title keeps the
    name in brackets that the cut would lose: "Position of the Council … (General Data
    Protection Regulation)". It is the name people use ("the GDPR", "de omnibus"), so a
    citation or a refusal that lists documents shows it, and BM25, which indexes the title
    with every passage, matches a question that names it (docs/retrieval.md)."""
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    name = next((m for m in _SHORT_NAME.finditer(title) if m.end() > limit - 2), None)
    if name is None or len(name.group(0)) > limit // 2:
        return title[: limit - 1].rsplit(" ", 1)[0] + " …"
    if name.start() < limit and name.end() <= limit + _OVERRUN:  # the cut falls inside it
        return title[: name.end()] + (" …" if name.end() < len(title) else "")
    room = limit - len(name.group(0)) - 3
    return title[:room].rsplit(" ", 1)[0] + " … " + name.group(0)
