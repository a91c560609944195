"""The extractive answer: the passages' most relevant sentences, quoted verbatim. Used when
the model's answer does not survive the grounding check, or when there is no model time."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from civicbot.answer.text import Span, sentences
from civicbot.lang import analyse_query, stopwords
from civicbot.records import Chunk


@dataclass(frozen=True)
class Quote:
    source: int  # 1-based passage number
    text: str
    score: float = 0.0  # share of the question's terms the sentence holds, weighted
    start: int = 0  # offsets of the sentence in its passage
    end: int = 0


# What kind of fact a question asks for. A question that asks for a number, an amount, a date,
# a duration or a name is answered by a sentence that holds one; "when" and "wanneer" alone
# are not enough ("when is an organisation required to ...?" asks for a condition).
_ASKS = {
    "date": re.compile(
        r"\b(welke datum|op welke dag|vanaf wanneer|sinds wanneer|tot wanneer|in welk jaar|"
        r"what date|which date|from what date|from when|since when|by when|until when|"
        r"in what year|which year|"
        # "when does it apply / enter into force" asks for a date, "when is X required" not
        r"when (does|do|will|did) .{1,60}\b(apply|start|begin|take effect|enter into force|"
        r"come into force|become applicable)|"
        r"wanneer .{0,60}\b(in werking|van toepassing|ingaan|(gaat|gaan) .{1,40} in\s*(\?|$)))",
        re.I),
    "duration": re.compile(
        r"\b(hoe lang|hoe vaak|hoe snel|hoe spoedig|binnen welke (termijn|periode|tijd)|"
        r"binnen hoeveel|looptijd|how long|how often|how quickly|how soon|for how long|"
        r"within (what|which|how many)|what period)\b", re.I),
    "amount": re.compile(
        r"\b((wat|hoeveel) (kost|kosten)|hoe duur|wat betaal|"
        r"how much (does|do|did|will|would) .{1,60} cost|what (does|do) .{1,60} cost|"
        r"what is the (annual |yearly )?(budget|price|fee|cost)|what are the (costs|fees))\b",
        re.I),
    "number": re.compile(
        r"\b(hoeveel|hoe (hoog|groot|veel)|welk (percentage|bedrag|aandeel)|"
        r"how (many|much|large|high|big)|what (share|percentage|proportion|amount)|"
        r"what is the (annual )?rate)\b", re.I),
    # Who or what by name: an authority, a minister, a firm, a program. Bare "wie"/"who" is
    # left out: "who takes over?" may be answered by "nobody" or "the provider".
    "name": re.compile(
        r"\b(welke? (\w+ ){0,2}(minister|staatssecretaris|bureau|organisatie|instantie|"
        r"toezichthouder|autoriteit|bedrijf|leverancier|programma|software|browsers?|"
        r"schermlezers?)|which (\w+ ){0,2}(minister|authority|authorities|body|bodies|"
        r"organisation|organization|agency|company|firm|office|programme|program|software|"
        r"licences|licenses|licence|license))\b", re.I),
}
_NUMBER_WORDS = (
    r"twee|drie|vier|vijf|zes|zeven|acht|negen|tien|elf|twaalf|dertien|veertien|"
    r"vijftien|twintig|dertig|honderd|duizend|miljoen|miljard|two|three|four|five|six|seven|"
    r"eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|twenty|thirty|hundred|thousand|"
    r"million|billion")
# A duration need not be counted exactly: "een aantal maanden", "a few weeks", "binnen een
# maand" answer "how long" as well as "drie maanden" does.
_SOME = (r"een|één|one|an?|aantal|enkele|paar|meerdere|several|few|number of|couple of|"
         r"a couple of")
_PERIOD = (rf"\b(\d+|{_NUMBER_WORDS}|{_SOME})[ -](\w+ )?(jaar|jaren|maand|maanden|week|weken|"
           r"dag|dagen|uur|uren|kalenderdagen|werkdagen|year|years|month|months|weeks|day|days|"
           r"hour|hours)\b")
# A moment fixed by reference: "within one month", "24 maanden na de inwerkingtreding", "not
# later than 72 hours after". A period alone is not one ("met twee maanden verlengd").
_RELATIVE = re.compile(
    rf"\b(within|binnen|uiterlijk|later than)\s+({_PERIOD})|({_PERIOD})\s+(after|following|"
    r"from|before|na|nadat|vanaf|voor|vóór)\b", re.I)
_HOLDS = {
    "amount": re.compile(r"€|%|\b(euro|eur|cent|procent|percent|gratis|kosteloos|free of charge)\b",
                         re.I),
    "date": re.compile(r"\b(1[89]|20)\d\d\b"),
    "duration": re.compile(_PERIOD, re.I),
    # In digits: "hoe hoog", "what share" are not answered by "twee soorten afwegingen"; a
    # count in words ("veertien instellingen") answers "how many X" (see `_counts`).
    "number": re.compile(r"\d"),
}

# "How many X": X names what is counted, unless it is a unit of time or money.
_HOW_MANY = re.compile(r"\b(hoeveel|how many)\s+((?:[\w-]+\s*){1,4})", re.I)
_COUNT_UNITS = {
    "duration": {"tijd", "uur", "uren", "dagen", "weken", "maanden", "jaar", "jaren",
                 "keer", "time", "hours", "days", "weeks", "months", "years", "times"},
    "amount": {"geld", "rente", "procent", "euro", "money", "interest", "percent"},
}
_CONJUNCTIONS = {"en", "of", "and", "or"}
_MORE = {"extra", "meer", "additional", "more"}  # "hoeveel extra tijd" asks for time
_NUMBER_TOKEN = re.compile(rf"^(\d[\d.,]*|{_NUMBER_WORDS})$", re.I)
COUNT_REACH = 2  # the counted word is one of the two after the number ("61 normen", "14 grote X")



@dataclass(frozen=True)
class QuoteRules:
    """How quotes are chosen among the candidate sentences. The defaults are the hand-set ones
    of earlier work: `civicbot eval cv ../shared/eval/train.jsonl --folds 5 --no-ranker
    --no-refusal --grid` chose other values on the fitting folds, and those lost on the
    held-out folds (docs/answering.md, "Quote constants")."""

    sentences: int = 3  # quoted at most
    type_missing: float = 0.2  # score factor for a sentence without the kind of fact asked
    rank_decay: float = 0.3  # the k-th passage weighs 1 / (1 + rank_decay (k - 1))
    near_best: float = 0.6  # other quotes must score at least this share of the best one
    other_passage: float = 0.7  # ... and, from another passage than the best one's, this


RULES = QuoteRules()


@dataclass(frozen=True)
class Asked:
    """What kind of fact a question asks for: "amount", "date", "duration", "number" or
    "name"; for "how many X", `counted` holds the stems of X (in both languages' analysis),
    and a sentence answers only if it puts a number right before one of them."""

    kind: str
    counted: frozenset[str] = frozenset()
    # "hoeveel X" may ask for an amount of X ("hoeveel elektriciteit": "135 GWh"); English
    # says "how much" for that, and "how many X" is answered by a count of X only.
    measured: bool = False
    question_words: frozenset[str] = frozenset()  # folded words of the question (for names)

    def held_by(self, text: str) -> bool:
        """Whether `text` holds this kind of fact."""
        if self.kind == "name":
            return _holds_name(text, self.question_words)
        if self.kind == "date":  # "Verordening (EU) 2024/1689" names a law, not a date
            text = _REFERENCE.sub(" ", text)
            # A law dates by reference as often as by the calendar: "within one month",
            # "24 months after its entry into force" answer "by when" / "from when".
            if _RELATIVE.search(text):
                return True
        if self.kind == "number":
            text = _NOT_A_QUANTITY.sub(" ", text)
            if self.counted:
                return _counts(text, self.counted, self.measured)
        return bool(_HOLDS[self.kind].search(text))


def asked(question: str, translate: Callable[[str], str] | None = None) -> Asked | None:
    """What `question` asks for, or None when it asks for no particular kind of fact.
    `translate` gives words in the corpus's other language: the thing counted in "how many
    X" may be named in the passage's language ("how many norms" / "61 normen")."""
    kind = next((kind for kind, pattern in _ASKS.items() if pattern.search(question)), None)
    if kind is None:
        return None
    if kind == "name":
        return Asked(kind, question_words=frozenset(_WORD.findall(question.lower())))
    if kind != "number":
        return Asked(kind)
    m = _HOW_MANY.search(question)
    if m is None:
        return Asked(kind)
    words = m.group(2).split()
    while len(words) > 1 and words[0].lower() in _MORE:
        words.pop(0)
    for unit_kind, units in _COUNT_UNITS.items():
        if words[0].lower() in units:
            return Asked(unit_kind)
    # The counted thing runs to the first stop word other than "and"/"or" ("how many
    # self-employed people took ...", "hoeveel algoritmes en AI-systemen staan er ...").
    counted: set[str] = set()
    stop = stopwords()
    for word in words:
        if word.lower() in _CONJUNCTIONS:
            continue
        if word.lower() in stop:
            break
        stems = set(analyse_query(word.rsplit("-", 1)[-1]))  # the head of "Woo-verzoeken"
        counted |= stems
        if stems and translate is not None:
            counted |= set(analyse_query(translate(word)))
    measured = m.group(1).lower() == "hoeveel"
    return Asked(kind, frozenset(counted), measured=measured) if counted else Asked(kind)


# Not a date: a law's or a file's number starts with its year ("(EU) 2024/1689",
# "Woo/2023/035"); a date in digits ends with it ("12/05/2023").
_REFERENCE = re.compile(r"[\w-]*\b(1[89]|20)\d\d/\d+[\w/-]*")
# Digits that are not an answer to "how many": references ("artikel 75, lid 1", "(87a)",
# "Regulation (EU) 2023/988", "Woo/2023/035"), years, page marks ("5 / 24", "pagina 1 van 7"),
# list and footnote marks at the start or end of a sentence, and web addresses. A "12/3"-like
# token is only tried from its first character: the same matches, in linear time (it was
# cubic on long digit runs: 0.4 s at 800 digits).
_NOT_A_QUANTITY = re.compile(
    r"https?://\S+|www\.\S+|\b\d+ / \d+\b|\b(pagina|page) \d+ (van|of) \d+\b|"
    r"(?<![\w-])[\w-]*\d/\d[\w/-]*|\b(1[89]|20)\d\d\b|\s\d+\.$|"
    r"\b\d{1,2} (jan|feb|febr|mar|mrt|apr|mei|may|jun|jul|aug|sep|sept|okt|oct|nov|dec)[a-z]*\b|"
    r"\b(artikel|article|art\.|artt?\.|lid|leden|paragraph|punt|point|"
    r"annex|bijlage|nummer|nr\.|no\.|p\.|pp\.|blz\.)\s*\d+[a-z]?|^\(?\d+[a-z]?\)?\s|\(\d+[a-z]?\)",
    re.I)
_WORD = re.compile(r"[^\W_][\w\-]*")


# Units of measure: "hoeveel elektriciteit" is answered by "135 GWh", "how much CO2" by
# "640 kton", with no count of the thing named.
_UNITS = frozenset(
    "wh kwh mwh gwh twh pj tj gj w kw mw gw ton tons tonnes tonnen kton mton kt mt kg km "
    "m2 m3 m² m³ liter liters litres ha hectare hectares".split())


def _counts(text: str, counted: frozenset[str], measured: bool = False) -> bool:
    """Whether a number in `text` is followed, within `COUNT_REACH` words, by a word whose
    stem is in `counted`, or (when `measured`) right away by a unit of measure."""
    words = text.split()
    for i, word in enumerate(words):
        if _NUMBER_TOKEN.match(word.strip("(),.;:")):
            if (measured and i + 1 < len(words)
                    and words[i + 1].strip("(),.;:").lower() in _UNITS):
                return True
            after = " ".join(words[i + 1 : i + 1 + COUNT_REACH])
            if counted & set(analyse_query(after)):
                return True
    return False


def _holds_name(text: str, question_words: frozenset[str]) -> bool:
    """Whether `text` names something the question does not: a capitalised word or an
    acronym that does not start the sentence."""
    for word in _WORD.findall(text)[1:]:
        named = word[0].isupper() or (len(word) >= 2 and word.isupper())
        if named and len(word) >= 2 and word.lower() not in question_words:
            return True
    return False


@functools.lru_cache(maxsize=16384)
def terms(text: str) -> frozenset[str]:
    """The analysed terms of `text` (both languages' stems). Remembered: a burst of questions
    over the same passages reads the same sentences again and again."""
    return frozenset(analyse_query(text))


def candidates(question: str, passages: Sequence[str], max_chars: int = 600,
               also: str = "", wanted: Asked | None = None,
               ranks: Sequence[float] | None = None,
               rules: QuoteRules = RULES) -> list[Quote]:
    """Every quotable sentence of `passages` that shares a term with the question, scored:
    the share of the question's terms it holds, lowered when it lacks the kind of fact the
    question asks for and for passages further down the ranking. `also` is the question in
    other words (a translation): a sentence may match those instead; `wanted` is what the
    question asks for (by default `asked(question)`); `ranks` the passages' ranks (by
    default 1, 2, 3, ...)."""
    wanted_terms = terms(question)
    if not wanted_terms:
        return []
    other = terms(also) - wanted_terms if also else set()
    what = wanted if wanted is not None else asked(question)
    out: list[Quote] = []
    seen: set[str] = set()
    for number, passage in enumerate(passages, 1):
        for span in _quotable(passage):
            text = " ".join(span.text.split()).lstrip("#* ")
            # A question restates what was asked (FAQs, parliamentary questions); the
            # sentences after it answer. Overlapping passages repeat sentences.
            if len(text) < 25 or text.endswith("?") or text in seen:
                continue
            have = terms(text)
            share = min(1.0, (len(wanted_terms & have) + len(other & have)) / len(wanted_terms))
            if not share:
                continue
            seen.add(text)
            if what is not None and not what.held_by(text):
                share *= rules.type_missing
            rank = ranks[number - 1] if ranks is not None else number
            rank_weight = 1.0 / (1 + rules.rank_decay * (rank - 1))
            length_penalty = 1.0 if len(text) < 400 else 400 / len(text)
            out.append(Quote(number, text[:max_chars], share * rank_weight * length_penalty,
                             span.start, span.end))
    return out


_CLAUSE = re.compile(r";\s+")  # long enumerations: "constaterende dat ...; verzoekt ..."


def _quotable(passage: str, long: int = 400, list_chars: int = 450) -> list[Span]:
    """The passage's sentences as quotable units: a sentence that introduces a list ("... voor
    zover:") is quoted with the items that follow (they are the answer), and a very long
    sentence is split at its semicolons (a motion's considerations, a list of definitions)."""
    spans = sentences(passage)
    out: list[Span] = []
    for i, span in enumerate(spans):
        if span.text.rstrip().endswith(":"):
            j = i
            while j + 1 < len(spans) and spans[j + 1].end - span.start <= list_chars:
                j += 1
            if j > i:
                out.append(Span(span.start, spans[j].end, passage[span.start : spans[j].end]))
                continue
        if len(span.text) <= long:
            out.append(span)
            continue
        start = span.start
        for m in _CLAUSE.finditer(span.text):
            end = span.start + m.start() + 1
            out.append(Span(start, end, passage[start:end]))
            start = span.start + m.end()
        out.append(Span(start, span.end, passage[start : span.end]))
    return out


def best_sentences(question: str, passages: Sequence[str], max_chars: int = 600,
                   also: str = "", wanted: Asked | None = None,
                   ranks: Sequence[float] | None = None,
                   rules: QuoteRules = RULES) -> list[Quote]:
    """Up to `rules.sentences` sentences that hold the most of the question's terms, favouring
    passages that ranked higher and sentences with the kind of fact asked for; quoted as they
    stand, in document order. Another passage than the best sentence's is quoted (and so
    cited) only when its sentence is nearly as good: every citation is one more for the
    citizen to check. (Weighing terms by idf was tried and found more quotes of the right
    page but fewer of the facts asked for on dev.jsonl.)"""
    return pick(candidates(question, passages, max_chars, also, wanted, ranks, rules), rules)


def pick(scored: Sequence[Quote], rules: QuoteRules = RULES) -> list[Quote]:
    """The quotes among `scored` candidates: the best, and up to `rules.sentences` in all
    that score at least `near_best` of it (`other_passage` of it from another passage);
    in document order."""
    ranked = sorted(scored, key=lambda q: -q.score)
    if not ranked:
        return []
    best = ranked[0]
    picked = [q for q in ranked[: rules.sentences] if q.score >= rules.near_best * best.score
              and (q.source == best.source or q.score >= rules.other_passage * best.score)]
    picked.sort(key=lambda q: (q.source, q.start))
    return picked


REPEAT_SHARE = 0.8  # of the shorter sentence's word trigrams (docs/answering.md, "Repeats")


def repeats(a: str, b: str, share: float = REPEAT_SHARE) -> bool:
    """Whether two quotes say the same: at least `share` of the shorter one's word trigrams
    are in the other. Passages overlap by 40 words and a list is quotable whole and item by
    item, so the same sentence can be picked twice, cut differently."""
    def trigrams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.casefold())
        return {tuple(words[i:i + 3]) for i in range(max(1, len(words) - 2))}

    x, y = trigrams(a), trigrams(b)
    return len(x & y) >= share * min(len(x), len(y))


def focus(question: str, passage: str, max_words: int = 110) -> str:
    """The part of `passage` around its sentence most relevant to `question`, about
    `max_words` long: small models read faster and stray less with less text."""
    spans = sentences(passage)
    if len(passage.split()) <= max_words or not spans:
        return passage
    wanted = terms(question)
    best = max(range(len(spans)), key=lambda i: len(wanted & terms(spans[i].text)))
    lo = hi = best
    count = len(spans[best].text.split())
    while count < max_words and (lo > 0 or hi < len(spans) - 1):
        if hi < len(spans) - 1:
            hi += 1
            count += len(spans[hi].text.split())
        if count < max_words and lo > 0:
            lo -= 1
            count += len(spans[lo].text.split())
    return passage[spans[lo].start : spans[hi].end]


def quote_pages(chunk: Chunk, start: int, end: int) -> tuple[int, int]:
    """The first and last page of `chunk.text[start:end]`. A passage's text joins the slices
    of its pages with a line break, and the last page's slice is that page's first `char_end`
    characters, so the last page starts `char_end` characters before the end; pages between
    the first and the last (a passage over three pages, rare) are not told apart."""
    first, last = chunk.page_start, chunk.page_end
    boundary = len(chunk.text) - chunk.char_end
    if first == last or not 0 < boundary < len(chunk.text) or chunk.text[boundary - 1] != "\n":
        return first, last
    if start >= boundary:
        return last, last
    if end < boundary:
        return first, last - 1
    return first, last


def short_quote(quote: str, limit: int = 300) -> str:
    """`quote` on one line, cut at a word to at most `limit` characters (a title is cut by
    `titles.clip_title`, which keeps the name in brackets)."""
    quote = " ".join(quote.split())
    return quote if len(quote) <= limit else quote[: limit - 1].rsplit(" ", 1)[0] + " …"
