"""Known translations of policy terms between Dutch and English.

An English question about a Dutch document (or the reverse) is matched through a word-by-word
translation made by the cross-lingual model (civicbot/index/crosslingual.py). That works for
plain words but not for acronyms and terms of art: "AVG" is the GDPR, a "datalek" is a
"personal data breach", a "boete" is a "fine" — the nearest vocabulary word of "boete" by
embedding is "undue". A glossary of such terms, written by people, is translated first; the
model translates the rest. The built-in list is `civicbot/data/glossary.tsv`; a deployer adds
their own with `[retrieval] glossary` (the same format)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from civicbot.config import Config
from civicbot.errors import ConfigError
from civicbot.lang import fold


@dataclass(frozen=True)
class Glossary:
    """Pairs of (Dutch, English) terms."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, source: str = "glossary") -> Glossary:
        pairs = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = [p.strip() for p in line.split("\t")]
            if len(parts) != 2 or not all(parts):
                raise ConfigError(f"{source}, line {number}: expected a Dutch term, a tab and "
                                  f"the English term, found {line.strip()!r}")
            pairs.append((parts[0], parts[1]))
        return cls(tuple(pairs))

    @classmethod
    def load(cls, path: Path) -> Glossary:
        try:
            return cls.parse(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read the glossary {path}: {exc.strerror}") from exc

    def __add__(self, other: Glossary) -> Glossary:
        return Glossary(self.pairs + other.pairs)

    @functools.cached_property
    def _patterns(self) -> dict[tuple[str, str], list[tuple[re.Pattern[str], str]]]:
        out: dict[tuple[str, str], list[tuple[re.Pattern[str], str]]] = {}
        for nl, en in self.pairs:
            for source, target, term, translation in (("nl", "en", nl, en), ("en", "nl", en, nl)):
                pattern = re.compile(rf"(?<![\w-]){re.escape(fold(term))}(?![\w-])")
                out.setdefault((source, target), []).append((pattern, translation))
        for patterns in out.values():  # longest terms first: "geldboete" before "boete"
            patterns.sort(key=lambda p: -len(p[0].pattern))
        return out

    def translate(self, text: str, source: str, target: str) -> tuple[list[str], str]:
        """The `target`-language terms of the glossary terms in `text` (in language
        `source`), and the rest of the text (folded) with those terms taken out."""
        rest = fold(text)
        found: list[str] = []
        for pattern, translation in self._patterns.get((source, target), []):
            if pattern.search(rest):
                found.append(translation)
                rest = pattern.sub(" ", rest)
        return list(dict.fromkeys(found)), rest


@functools.cache
def builtin() -> Glossary:
    """The glossary that comes with civicbot."""
    text = resources.files("civicbot").joinpath("data/glossary.tsv").read_text(encoding="utf-8")
    return Glossary.parse(text, "civicbot/data/glossary.tsv")


def configured(path: Path | None) -> Glossary:
    """The built-in glossary with the deployer's file, when there is one."""
    return builtin() + Glossary.load(path) if path is not None else builtin()


def for_config(cfg: Config) -> Glossary:
    """The glossary `cfg` asks for: built in, plus `[retrieval] glossary` (relative to the
    config's folder). A ConfigError when that file cannot be read or parsed."""
    path = cfg.retrieval.glossary
    return configured(cfg.resolve(path) if path else None)
