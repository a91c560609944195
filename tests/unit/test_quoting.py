"""The learned quote chooser (civicbot/quoting.py): its fit, its features, and the packaged
model choosing in the answer path."""

from __future__ import annotations

import numpy as np

from civicbot import quoting, rank
from civicbot.answer.extractive import QuoteRules, asked
from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings
from civicbot.records import Chunk, Hit
from tests.fakes import FixedSource


def _hit(text: str, doc: str = "wet.pdf", no: int = 0) -> Hit:
    return Hit(Chunk(doc, no, 1, 1, 0, len(text), "", text, "nl"), "Wet", 1.0 - no / 10,
               dense=0.5)


def test_the_fit_learns_which_feature_marks_the_sentence_that_answers():
    rng = np.random.default_rng(0)
    telling = quoting.FEATURES.index("typed_held")
    groups = []
    for _ in range(60):
        x = rng.normal(size=(12, len(quoting.FEATURES)))
        states = np.zeros(12, bool)
        states[rng.integers(12)] = True
        x[states, telling] += 3.0
        groups.append((x, states))
    groups.append((rng.normal(size=(5, len(quoting.FEATURES))), np.zeros(5, bool)))  # left out
    model = quoting.fit_quotes(groups)
    assert int(np.argmax(model.coef)) == telling
    assert rank.LinearModel.from_json(model.to_json()).to_json() == model.to_json()


def test_features_are_shares_flags_and_ranks_of_the_question_and_its_passages():
    question = "Wanneer treedt de wet over bodemkwaliteit in werking?"
    passages = [quoting.Passage("De wet over bodemkwaliteit regelt de kwaliteit van de bodem. "
                                "De wet treedt op 1 januari 2027 in werking.", 1.0, False, 0.8,
                                0.6, 2.0, "wet.pdf", "nl"),
                quoting.Passage("Over bodemkwaliteit gaat ook een andere regeling van het rijk.",
                                2.0, False, 0.4, 0.3, 1.0, "regeling.pdf", "en")]
    quotes, x = quoting.featurise(question, question, "", "nl", asked(question), passages)
    assert x.shape == (len(quotes), len(quoting.FEATURES))
    col = {name: i for i, name in enumerate(quoting.FEATURES)}
    by_text = {q.text: row for q, row in zip(quotes, x, strict=True)}
    dated = by_text["De wet treedt op 1 januari 2027 in werking."]
    other = by_text["Over bodemkwaliteit gaat ook een andere regeling van het rijk."]
    assert dated[col["held"]] == 1.0 and dated[col["typed_held"]] == 1.0
    assert other[col["typed_lacking"]] == 1.0 and other[col["held"]] == 0.0
    assert dated[col["inverse_rank"]] == 1.0 and other[col["inverse_rank"]] == 0.5
    assert other[col["other_language"]] == 1.0 and other[col["same_doc"]] == 0.0
    assert dated[col["score"]] > other[col["score"]]
    assert 0.0 < dated[col["share"]] <= 1.0 and 0.0 <= dated[col["rare_share"]] <= 1.0
    # Passages without cross-lingual windows say nothing about the text around a sentence.
    assert np.isnan(x[:, col["window"]]).all()
    assert np.isfinite(np.delete(x, col["window"], axis=1)).all()
    assert quoting.featurise("?", "?", "", "nl", None, passages)[1].shape == (
        0, len(quoting.FEATURES))


def test_the_packaged_chooser_quotes_the_sentence_that_holds_what_is_asked():
    """The shipped model (fitted on train.jsonl) prefers the sentence with the date over one
    that repeats more of the question's words, where the hand-set score needed its 0.2."""
    model = quoting.packaged_quotes()
    assert model is not None and model.features == quoting.FEATURES
    hits = [_hit("De Omgevingswet vervangt regels over ruimte, wonen en natuur. Wanneer de "
                 "Omgevingswet in werking treedt, vervalt de Wet ruimtelijke ordening. "
                 "De Omgevingswet is op 1 januari 2024 in werking getreden.")]
    settings = AnswerSettings(refusal_threshold=0.0, quote_model=model,
                              quotes=QuoteRules(sentences=1))
    answer = AnswerPipeline(FixedSource(hits, 0.9), None, settings).ask(
        "Vanaf wanneer is de Omgevingswet in werking getreden?")
    assert answer.mode == "extractive"
    assert "1 januari 2024" in answer.text
    assert [c.doc for c in answer.citations] == ["wet.pdf"]


def test_without_a_chooser_the_hand_set_score_decides_as_before():
    hits = [_hit("De subsidie bedraagt € 5.000 per woning. Aanvragen kan tot 1 juli.")]
    settings = AnswerSettings(refusal_threshold=0.0)
    assert settings.quote_model is None
    answer = AnswerPipeline(FixedSource(hits, 0.9), None, settings).ask(
        "Hoeveel subsidie krijg je per woning?")
    assert "€ 5.000 per woning" in answer.text


def test_the_window_feature_is_the_best_window_weighed_by_how_much_of_the_sentence_it_holds():
    text = " ".join(f"w{i}" for i in range(60)) + ". Dit is de zin die telt."
    start = text.index("Dit")
    # Windows of 30 words at 0, 15 and 30 (the last ends at the text's end, word 66).
    p = quoting.Passage(text, 1.0, False, 0.5, 0.5, 1.0, "a.pdf", "nl",
                        ((0, 0.9), (15, 0.2), (36, 0.6)))
    # The sentence is words 60-65, all inside the last window: its cosine counts in full.
    assert quoting.window_match(p, start, len(text)) == 0.6
    # Words 10-19 (ten words): the first window holds all ten, the second five of them.
    first, end = text.index("w10 "), text.index("w20 ")
    assert quoting.window_match(p, first, end) == 0.9
    halved = quoting.Passage(text, 1.0, False, 0.5, 0.5, 1.0, "a.pdf", "nl",
                             ((0, 0.1), (15, 0.8)))
    assert abs(quoting.window_match(halved, first, end) - 0.4) < 1e-9
    no_windows = quoting.Passage(text, 1.0, False, 0.5, 0.5, 1.0, "a.pdf", "nl")
    assert np.isnan(quoting.window_match(no_windows, start, len(text)))


def test_a_chooser_treats_a_missing_window_feature_as_average():
    """An index without the cross-lingual side (`[retrieval] crosslingual = false`) has no
    windows: the chooser reads the feature at its mean, so it neither helps nor hurts."""
    model = quoting.packaged_quotes()
    assert model is not None
    quotes, x = quoting.featurise(
        "Hoeveel subsidie krijg je per woning?", "Hoeveel subsidie krijg je per woning?", "",
        "nl", None, [quoting.Passage("De subsidie bedraagt € 5.000 per woning. Aanvragen kan "
                                     "tot 1 juli.", 1.0, False, 0.8, 0.5, 1.0, "a.pdf", "nl")])
    chosen = quoting.choose(model, quotes, x, {1}, QuoteRules())
    at_mean = x.copy()
    at_mean[:, quoting.FEATURES.index("window")] = model.mean[quoting.FEATURES.index("window")]
    expected = 1.0 / (1.0 + np.exp(-model.score(at_mean)))
    assert [q.score for q in chosen] == [float(e) for e in sorted(expected, reverse=True)
                                         ][:len(chosen)]


def test_with_the_chooser_a_figure_is_quoted_from_a_top_passage_or_its_neighbour_only():
    """A typed question: the figure just past the best passage's end (its neighbour) is
    quoted; the same figure in the sixth passage is not (every passage competing cited
    passages off the gold page for no more key facts, docs/answering.md)."""
    model = quoting.packaged_quotes()
    assert model is not None
    best = Chunk("omnibus.pdf", 7, 82, 82, 0, 60, "", "Het AI-bureau kan dwangsommen "
                 "opleggen aan aanbieders van AI-modellen die de regels overtreden.", "nl")
    after = Chunk("omnibus.pdf", 8, 82, 82, 60, 140, "", "Die dwangsommen van het AI-bureau "
                  "bedragen niet meer dan 5 % van de gemiddelde dagelijkse omzet.", "nl")
    filler = [_hit(f"Het AI-bureau publiceert verslag {n} over het toezicht op AI-modellen.",
                   "verslag.pdf", n) for n in range(1, 5)]
    far = _hit("Dwangsommen van het AI-bureau bedragen niet meer dan 3 % van de omzet.",
               "ander.pdf", 9)
    question = "Hoe hoog mogen de dwangsommen van het AI-bureau zijn?"

    def ask(neighbours: list[Chunk]) -> str:
        source = FixedSource([Hit(best, "Omnibus", 2.0, dense=0.5), *filler, far],
                             neighbours=lambda hits: [Hit(c, "Omnibus", 2.0, dense=0.5)
                                                      for c in neighbours])
        settings = AnswerSettings(refusal_threshold=0.0, quote_model=model)
        assert not settings.all_compete
        return AnswerPipeline(source, None, settings).ask(question).text

    assert "5 %" in ask([after]) and "3 %" not in ask([after])
    assert "3 %" not in ask([])  # the sixth passage does not compete


def test_repeats_are_the_same_sentence_cut_differently_not_sentences_that_share_words():
    from civicbot.answer.extractive import repeats

    full = ("To complement this system, the Commission may take individual decisions "
            "designating a general-purpose AI model as a model with systemic risk.")
    assert repeats(full, full[full.index("the Commission"):])
    assert repeats("• Voorgelegde wijzigingsvoorstellen voor het 7e actieprogramma.",
                   "Geadviseerd besluit: • Voorgelegde wijzigingsvoorstellen voor het 7e "
                   "actieprogramma.")
    assert not repeats(full, "The Commission may take individual decisions on fines for "
                             "providers of general-purpose AI models.")
