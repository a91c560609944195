"""Hybrid ranking: BM25, a dense embedder and, when the index has it, a cross-lingual model,
fused by weighted z-scores over the union of each signal's best candidates.

Why this fusion (docs/retrieval.md): on Dutch text the small English embedder is much weaker
than language-aware BM25, and reciprocal-rank fusion then drags good lexical rankings down.
Z-scores keep the size of each signal's margin. BM25 and the English embedder cannot see that
an English question and a Dutch passage say the same thing, so the cross-lingual model
(USE multilingual) weighs much more for passages in the other language than in the question's
own, and BM25 also scores other-language passages with a word-by-word translation of the
question. Finally a passage next to a strong passage of the same document is pulled up a
little: answers often straddle a passage boundary, and the neighbour carries the context."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from civicbot import lang, rank
from civicbot.answer.extractive import Asked, asked
from civicbot.answer.question import Question
from civicbot.config import RetrievalConfig
from civicbot.glossary import Glossary, builtin
from civicbot.index.crosslingual import shared_use, surface_words, window_starts
from civicbot.index.embed import embed_queries
from civicbot.index.store import Snapshot
from civicbot.lang import analyse, term_weights
from civicbot.protocols import Embedder
from civicbot.rank import PassageText, Query
from civicbot.records import DocInfo, Hit

RERANK = rank.RERANK
CANDIDATES = 100  # per signal; the union is fused
TRANSLATION_WEIGHT = 0.5  # a translated match is weaker evidence than the question's own words


def centred_by_language(scores: np.ndarray, languages: np.ndarray) -> np.ndarray:
    """`scores` as z-scores, except that each language's are centred on that language's own
    mean: (s - mean of its language) / std of all. A question's words match passages in its
    own language directly and passages in the other language only through a word-by-word
    translation at `TRANSLATION_WEIGHT`, so pooled BM25 puts every other-language passage
    below the own-language ones whatever they say. Centred per language, a passage counts by
    how far it stands above the others of its language, as in merging the results of two
    collections (docs/retrieval.md, "Each language on its own scale"). The spread stays the
    pooled one: a language with few candidates is not stretched to look as decisive. With
    one language it is `rank.zscore`."""
    std = float(scores.std())
    if std <= 1e-9:
        return np.zeros_like(scores, dtype=float)
    centred = np.empty(len(scores), dtype=float)
    for language in np.unique(languages):
        own = languages == language
        centred[own] = scores[own] - scores[own].mean()
    return centred / std


def neighbour_boost(scores: np.ndarray, docs: np.ndarray, weight: float) -> np.ndarray:
    """max(f, (1 - weight) f + weight max(f[prev], f[next])) where prev and next are the
    adjacent passages of the same document; -inf (not a candidate) stays -inf and never
    lifts a neighbour."""
    if weight <= 0 or len(scores) < 2:
        return scores
    same_doc = docs[1:] == docs[:-1]
    nxt = np.full(len(scores), -np.inf)
    prv = np.full(len(scores), -np.inf)
    nxt[:-1] = np.where(same_doc, scores[1:], -np.inf)
    prv[1:] = np.where(same_doc, scores[:-1], -np.inf)
    best = np.maximum(nxt, prv)
    lifted = np.where(np.isfinite(best), (1 - weight) * scores + weight * best, scores)
    return np.where(np.isfinite(scores), np.maximum(scores, lifted), scores)


@dataclass
class Ranking:
    """Candidate passages (indices into the snapshot's chunks), best first, with their
    scores; `reranked` are the ones the learned ranker scored, `features` their features."""

    order: np.ndarray
    scores: np.ndarray
    lexical: np.ndarray
    dense: np.ndarray
    reranked: np.ndarray
    features: np.ndarray


_DEFAULTS = RetrievalConfig()


@dataclass
class Retriever:
    """Searches one snapshot. The cross-lingual signals are used when `crosslingual` is on
    and the snapshot was built with them; otherwise ranking is BM25 plus the embedder.
    It is the answer pipeline's evidence source (protocols.EvidenceSource) for that
    snapshot: search, neighbours, coverage, translations, titles and links."""

    snapshot: Snapshot
    embedder: Embedder
    # Defaults: the [retrieval] section's (config.py declares them, once).
    dense_weight: float = _DEFAULTS.dense_weight
    crosslingual: bool = _DEFAULTS.crosslingual
    # Weight of the cross-lingual model for passages in the question's language and in the
    # other language (where BM25 and the English embedder see little).
    crosslingual_weight_same: float = _DEFAULTS.crosslingual_weight_same_language
    crosslingual_weight_other: float = _DEFAULTS.crosslingual_weight
    neighbour_weight: float = _DEFAULTS.neighbour_weight
    # BM25 centred on each language's own mean (`centred_by_language`), not pooled.
    lexical_by_language: bool = _DEFAULTS.lexical_by_language
    # How much a match of the question's word-by-word translation counts against a match of
    # its own words (for a passage in another language).
    translation_weight: float = TRANSLATION_WEIGHT
    use: Embedder | None = None  # the cross-lingual model; None: the shared USE
    glossary: Glossary = field(default_factory=builtin)
    # The learned ranker (civicbot/rank.py); None: the hand-set fusion alone.
    ranker: rank.LinearModel | None = field(default_factory=rank.serving_ranker)
    _translations: dict[str, dict[str, Translation]] = field(default_factory=dict, repr=False)
    _use_vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, snapshot: Snapshot, embedder: Embedder, cfg: RetrievalConfig,
                    glossary: Glossary | None = None) -> Retriever:
        """A retriever with the weights of the [retrieval] section; `glossary` is the
        built-in one with the deployer's (see `Service.glossary`)."""
        return cls(snapshot, embedder, dense_weight=cfg.dense_weight,
                   crosslingual=cfg.crosslingual,
                   crosslingual_weight_same=cfg.crosslingual_weight_same_language,
                   crosslingual_weight_other=cfg.crosslingual_weight,
                   neighbour_weight=cfg.neighbour_weight,
                   lexical_by_language=cfg.lexical_by_language,
                   glossary=glossary or builtin())

    def search(self, query: str | Question, k: int = 10,
               docs: set[str] | None = None) -> list[Hit]:
        """The `k` best passages for `query` (a question value or a plain query), optionally
        only from the documents `docs`."""
        ranking = self.rank(query, docs)
        if ranking is None:
            return []
        chunks = self.snapshot.chunks
        titles = self.snapshot.titles
        return [Hit(chunk=chunks[i], title=titles.get(chunks[i].doc, chunks[i].doc),
                    score=float(s), lexical=float(ranking.lexical[i]),
                    dense=float(ranking.dense[i]))
                for i, s in zip(ranking.order[:k].tolist(), ranking.scores[:k], strict=True)]

    def rank(self, query: str | Question, docs: set[str] | None = None,
             features: bool = False) -> Ranking | None:
        """Every candidate passage for `query`, best first: the hand-set fusion picks and
        orders the candidates, and the learned ranker (when there is one) reorders the
        fusion's best `RERANK`; their features are worked out for it, or when `features`
        (to train it). None when nothing can be ranked. A question value brings its
        language and the kind of fact it asks; for a plain query they are worked out here."""
        question = query if isinstance(query, Question) else None
        text: str = question.query if question is not None else str(query)
        chunks = self.snapshot.chunks
        if not chunks or not text.strip():
            return None
        n_chunks = len(chunks)
        languages = self._languages()
        question_language = question.language if question is not None else lang.detect(text)
        lexical = self.snapshot.lexical.scores(text, question_language)
        dense = (self.snapshot.dense.scores(embed_queries(self.embedder, [text])[0])
                 if self.dense_weight > 0 else np.zeros(n_chunks, np.float32))
        cross = None
        if self.crosslingual and self.snapshot.crosslingual is not None:
            lexical, cross = self._crosslingual(text, question_language, lexical, languages)
        if docs is not None:
            mask = np.array([c.doc in docs for c in chunks])
            lexical, dense = (np.where(mask, s, -np.inf) for s in (lexical, dense))
            cross = None if cross is None else np.where(mask, cross, -np.inf)
        signals = [lexical, *([dense] if self.dense_weight > 0 else []),
                   *([cross] if cross is not None else [])]
        n = min(CANDIDATES, n_chunks)
        candidates = np.unique(np.concatenate([np.argsort(-s)[:n] for s in signals]))
        candidates = candidates[np.isfinite(lexical[candidates])]
        if len(candidates) == 0:
            return None
        base = np.full(n_chunks, -np.inf)
        lexical_z = (centred_by_language(lexical[candidates], languages[candidates])
                     if self.lexical_by_language else rank.zscore(lexical[candidates]))
        base[candidates] = ((1 - self.dense_weight) * lexical_z
                            + self.dense_weight * rank.zscore(dense[candidates]))
        if cross is not None:
            weight = np.where(languages[candidates] == question_language,
                              self.crosslingual_weight_same, self.crosslingual_weight_other)
            base[candidates] += weight * rank.zscore(cross[candidates])
        doc_ids = self._doc_ids()
        fused = neighbour_boost(base, doc_ids, self.neighbour_weight)
        order = candidates[np.argsort(-fused[candidates], kind="stable")]
        top = order[:RERANK]
        what = question.asked if question is not None else asked(text)
        x = (self._features(text, question_language, what, top, base, fused, lexical, dense,
                            cross)
             if self.ranker is not None or features else np.zeros((len(top), 0)))
        scores = fused[order].astype(float)
        if self.ranker is not None and len(top) > 1:
            learned = self.ranker.score(x)
            reordered = np.argsort(-learned, kind="stable")
            rest = scores[len(top):]
            # Below the reordered candidates, the rest keep the fusion's order and scores.
            shift = (learned.min() - 1.0 - rest.max()) if len(rest) else 0.0
            order = np.concatenate([top[reordered], order[len(top):]])
            scores = np.concatenate([learned[reordered], rest + shift])
            x = x[reordered]
            top = top[reordered]
        return Ranking(order, scores, lexical, dense, top, x)

    def _features(self, query: str, question_language: str, what: Asked | None,
                  top: np.ndarray,
                  base: np.ndarray, fused: np.ndarray, lexical: np.ndarray,
                  dense: np.ndarray, cross: np.ndarray | None) -> np.ndarray:
        chunks = self.snapshot.chunks
        texts = self._texts()
        titles = self.snapshot.titles
        picked = [chunks[i] for i in top.tolist()]
        for i in top.tolist():
            if i not in texts:
                texts[i] = rank.passage_text(chunks[i], titles.get(chunks[i].doc, ""))
        doc_ids = self._doc_ids()
        neighbour = np.full(len(top), -np.inf)
        for j, i in enumerate(top.tolist()):
            for d in (i - 1, i + 1):
                if 0 <= d < len(chunks) and doc_ids[d] == doc_ids[i]:
                    neighbour[j] = max(neighbour[j], base[d])
        infos = self.snapshot.docs
        doc_chunks = [infos[c.doc].chunks if c.doc in infos else 1 for c in picked]
        signals = {"fused": fused[top], "lexical": lexical[top], "dense": dense[top],
                   "cross": cross[top] if cross is not None else np.zeros(len(top))}
        return rank.features(self.query_side(query, question_language, what), picked,
                             [texts[i] for i in top.tolist()], signals, neighbour,
                             doc_chunks)

    def query_side(self, query: str, question_language: str,
                   what: Asked | None) -> Query:
        """The question's terms (with their weights, `term_weights`) in each language of the
        corpus: its own in its language, its translation in the others."""
        terms = {}
        own = list(dict.fromkeys(analyse(query, question_language)))
        terms[question_language] = (own, term_weights(own, question_language))
        for language, translated in self.translations(query, question_language).items():
            words = list(dict.fromkeys(analyse(translated, language)))
            terms[language] = (words, term_weights(words, language))
        return rank.Query(terms, frozenset(rank.ngrams(query)),
                          frozenset(rank.numbers(query)), frozenset(rank.names(query)),
                          what, question_language)

    # Per-snapshot caches: what features need of each passage is worked out once.
    def _cache(self) -> dict:  # type: ignore[type-arg]
        return self.snapshot.__dict__.setdefault("_ranking_cache", {})

    def _texts(self) -> dict[int, PassageText]:
        return self._cache().setdefault("texts", {})

    def _languages(self) -> np.ndarray:
        cache = self._cache()
        if "languages" not in cache:
            cache["languages"] = np.array([c.language for c in self.snapshot.chunks])
        return cache["languages"]

    def _doc_ids(self) -> np.ndarray:
        cache = self._cache()
        if "docs" not in cache:
            cache["docs"] = np.array([c.doc for c in self.snapshot.chunks])
        return cache["docs"]

    def neighbours(self, hits: list[Hit]) -> list[Hit]:
        """The passages next to `hits` that are not among them, each scored as the hit it
        neighbours: where a sentence is cut by a passage boundary, or a list's items run on
        into the next passage, the answer is there."""
        seen = {(h.chunk.doc, h.chunk.chunk_no) for h in hits}
        titles = self.snapshot.titles
        out = []
        for hit in hits:
            for chunk in self.snapshot.neighbours(hit.chunk):
                if (chunk.doc, chunk.chunk_no) not in seen:
                    seen.add((chunk.doc, chunk.chunk_no))
                    out.append(Hit(chunk, titles.get(chunk.doc, chunk.doc), hit.score))
        return out

    def prepare(self, queries: Sequence[str]) -> None:
        """Embed the queries of a burst of questions (and the words their translation looks
        up) in one batch per model, ahead of their searches (civicbot/index/memo.py)."""
        queries = [q for q in dict.fromkeys(queries) if q.strip()]
        if not queries:
            return
        if self.dense_weight > 0:
            remember = getattr(self.embedder, "remember", None)
            if remember is not None:
                remember(queries)
        if self.crosslingual and self.snapshot.crosslingual is not None:
            use = self.use or shared_use()
            remember = getattr(use, "remember", None)
            if remember is not None:
                words = list(dict.fromkeys(w for q in queries for w in surface_words(q)))
                remember(queries)
                for language in self.snapshot.crosslingual.vocabulary:
                    self.snapshot.crosslingual.translate_words(words, language, use.embed)

    def translations(self, query: str, language: str | None = None) -> dict[str, str]:
        """The question translated into each other language of the corpus: the glossary's
        terms as the glossary gives them, the other words word by word through the
        cross-lingual model's shared space; empty without that model. `language` is the
        question's (detected when not given)."""
        return {lang_: t.text for lang_, t in self._translated(query, language).items()}

    def _translated(self, query: str, language: str | None = None) -> dict[str, Translation]:
        """`translations`, with what coverage needs of each (`Translation`), remembered for
        the few questions being answered."""
        index = self.snapshot.crosslingual
        if not self.crosslingual or index is None:
            return {}
        remembered = self._translations.get(query)  # (another answer may clear it meanwhile)
        if remembered is not None:
            return remembered
        question_language = language or lang.detect(query)
        out = {}
        for language in index.vocabulary:
            if language == question_language:
                continue
            known, rest = self.glossary.translate(query, question_language, language)
            words = list(dict.fromkeys(surface_words(rest)))
            pairs = index.word_pairs(words, language, (self.use or shared_use()).embed)
            if known or pairs:
                out[language] = Translation.of(known, pairs, question_language, language)
        if len(self._translations) > 16:
            self._translations.clear()
        self._translations[query] = out
        return out

    def _crosslingual(self, query: str, question_language: str, lexical: np.ndarray,
                      languages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BM25 with other-language passages also scored on the question translated word by
        word into their language, and the cross-lingual model's passage scores."""
        index = self.snapshot.crosslingual
        assert index is not None
        for language, translated in self.translations(query, question_language).items():
            glossed = self.translation_weight * self.snapshot.lexical.scores(translated, language)
            lexical = np.where(languages == language, np.maximum(lexical, glossed), lexical)
        return lexical, index.passage_scores(self._use_vector(query))

    def _use_vector(self, query: str) -> np.ndarray:
        """The cross-lingual model's vector of `query`, remembered for the few questions
        being answered (search and the quote chooser's `windows` both need it)."""
        vector = self._use_vectors.get(query)
        if vector is None:  # (two answers at once may both embed it: harmless)
            vector = (self.use or shared_use()).embed([query])[0]
            if len(self._use_vectors) > 16:
                self._use_vectors.clear()
            self._use_vectors[query] = vector
        return vector

    def windows(self, question: str, hit: Hit) -> tuple[tuple[int, float], ...]:
        """The first word and the cross-lingual model's cosine with `question` of each
        30-word window of the passage of `hit`: the index holds their vectors already, so
        the quote chooser learns how well the text around a sentence matches at no cost of
        embedding (docs/answering.md, "Learned quotes"). Empty without the cross-lingual
        index."""
        index = self.snapshot.crosslingual
        position = self.snapshot.position(hit.chunk)
        if index is None or position is None:
            return ()
        cosines = index.window_scores(position, self._use_vector(question))
        starts = window_starts(len(hit.chunk.text.split()))
        if len(starts) != len(cosines):  # not this passage's windows: nothing to say
            return ()
        return tuple(zip(starts, cosines.tolist(), strict=True))

    def coverage(self, question: str, hit: Hit) -> float:
        """`coverage` of the question, or of its translation for a passage in another
        language (an English question answered by a Dutch passage), whichever is higher."""
        own = coverage(question, hit)
        translated = self._translated(question).get(hit.chunk.language)
        return max(own, translated.coverage(hit)) if translated else own

    def titles(self) -> list[str]:
        """The titles of the snapshot's documents, sorted."""
        return sorted({d.title for d in self.snapshot.docs.values()})

    def link(self, hit: Hit, page: int | None = None) -> str:
        """Where a citation of `hit` on `page` points (see `link`)."""
        return link(self.snapshot.docs.get(hit.chunk.doc), hit, page)


@dataclass(frozen=True)
class Translation:
    """A question in another language of the corpus. `text` is what BM25 scores: the
    glossary's terms and the other words translated one by one. `terms` is what coverage
    counts: each of the question's terms, weighed, with the translated terms any of which
    covers it in a passage.

    A translated word weighs by the rarity of the question's own word, not of its
    translation: the nearest neighbour of a common word ("change") is often a rare one
    ("wijzigingsbesluit"), and weighed as rare its absence made a passage that answers look
    poorly covered (docs/answering.md, "A translated word weighs as the question's own
    word"). A glossary term was chosen by a person and keeps its own weight."""

    text: str
    terms: tuple[tuple[float, frozenset[str]], ...]

    @classmethod
    def of(cls, glossed: Sequence[str], pairs: Sequence[tuple[str, str]], source: str,
           target: str) -> Translation:
        """From the glossary's terms (in `target`) and the (word, translation) pairs of the
        other words of a question in `source`."""
        terms: list[tuple[float, frozenset[str]]] = []
        given = list(dict.fromkeys(t for term in glossed for t in analyse(term, target)))
        terms += [(w, frozenset([t])) for t, w in
                  zip(given, term_weights(given, target), strict=True)]
        seen: set[tuple[str, ...]] = set()
        for word, translation in pairs:
            own, theirs = analyse(word, source), analyse(translation, target)
            if own and theirs and tuple(own) not in seen:
                seen.add(tuple(own))
                terms.append((sum(term_weights(own, source)), frozenset(theirs)))
        return cls(" ".join([*glossed, *(t for _, t in pairs)]), tuple(terms))

    def coverage(self, hit: Hit) -> float:
        """The weighted share of the question's terms the passage of `hit` covers, counted
        in its translation (`coverage` for a passage in the question's own language)."""
        total = sum(w for w, _ in self.terms)
        if not total:
            return 0.0
        have = _passage_terms(_covered_text(hit), hit.chunk.language)
        return sum(w for w, theirs in self.terms if theirs & have) / total


def coverage(question: str, hit: Hit) -> float:
    """How much of the question a passage covers: the weighted share of the question's terms
    (analysed in the passage's language) that occur in the passage or its document's title.
    A term weighs by how rare it is in ordinary text of that language (`term_weights`), not
    in the corpus, so the share means the same in a corpus of one document and of ten
    thousand: a question about something the documents don't mention scores low however well
    its common words match."""
    language = hit.chunk.language
    terms = list(dict.fromkeys(analyse(question, language)))
    if not terms:
        return 0.0
    weights = term_weights(terms, language)
    have = _passage_terms(_covered_text(hit), language)
    total = sum(weights)
    if not total:
        return 0.0
    return sum(w for t, w in zip(terms, weights, strict=True) if t in have) / total


def _covered_text(hit: Hit) -> str:
    """What coverage reads of a passage: its document's title too. A question names the
    document it is about ("onder de AVG", "the AI omnibus"), and the passage that answers it
    seldom repeats the name: the title says it once for all of them. (With titles cut before
    the act's name in brackets this lost key facts held out; with the name kept it gains,
    docs/answering.md "The document's title counts".)"""
    return f"{hit.title}\n{hit.chunk.heading}\n{hit.chunk.text}"


@functools.lru_cache(maxsize=4096)
def _passage_terms(text: str, language: str) -> frozenset[str]:
    """A passage's analysed terms, remembered: every question reads its passages' coverage
    several times (refusal, evidence, quotes), and a burst of questions the same passages."""
    return frozenset(analyse(text, language))


def link(info: DocInfo | None, hit: Hit, page: int | None = None) -> str:
    """A link to the cited page (by default the passage's first): the public source with
    #page=N, or the file name."""
    anchor = f"#page={page or hit.chunk.page_start}"
    if info is not None and info.source.startswith(("http://", "https://")):
        return info.source + anchor
    return hit.chunk.doc + anchor
