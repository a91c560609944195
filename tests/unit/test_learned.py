"""The learned models' plumbing: folds grouped by document, the figures from per-question
records, the pairwise ranker's fit and the refusal classifier's threshold."""

from __future__ import annotations

import numpy as np

from civicbot import crossval, evaluate, quoting, rank, refusal
from civicbot.answer.extractive import RULES
from tests.fakes import FixedSource


def _rows() -> list[dict]:
    rows = []
    for i in range(30):
        doc = f"{'nl' if i % 3 else 'en'}_doc{i % 6}.pdf"
        rows.append({"id": f"q{i}", "question": f"vraag {i}", "lang": "nl", "answerable": True,
                     "gold": [{"doc": doc, "pages": [1]}], "must_contain_any": ["x"]})
    for i in range(10):
        rows.append({"id": f"u{i}", "question": f"onbeantwoordbaar {i}", "lang": "en",
                     "answerable": False, "gold": [], "must_contain_any": []})
    return rows


def test_folds_keep_a_documents_questions_together_and_spread_the_rest():
    rows = _rows()
    fold = crossval.folds(rows, 3)
    assert fold == crossval.folds(rows, 3)  # deterministic
    by_doc: dict[str, set[int]] = {}
    for row, f in zip(rows, fold, strict=True):
        if row["answerable"]:
            by_doc.setdefault(row["gold"][0]["doc"], set()).add(f)
    assert all(len(fs) == 1 for fs in by_doc.values())
    answerable = [f for r, f in zip(rows, fold, strict=True) if r["answerable"]]
    assert sorted(answerable.count(f) for f in range(3)) == [10, 10, 10]
    assert len({f for r, f in zip(rows, fold, strict=True) if not r["answerable"]}) > 1


def test_figures_from_records_per_language_and_crosslingual():
    rows = _rows()
    recs = []
    for i, row in enumerate(rows):
        rec = {"id": row["id"], "lang": row["lang"], "answerable": row["answerable"],
               "crosslingual": evaluate.crosslingual(row), "mode": "extractive",
               "refused": False, "seconds": 0.1,
               "citations": [{"doc": "d", "pages": [1, 1], "on_gold": i % 2 == 0}]}
        if row["answerable"]:
            rec["gold_rank"] = 1 if i < 15 else None
            rec["key_fact"] = i < 10
        else:
            rec.update(mode="partial", refused=True, citations=[])
        recs.append(rec)
    result = evaluate.summarise(recs)
    assert result["hit_at_1"] == 0.5 and result["hit_at_5"] == 0.5
    assert result["key_fact_rate"] == round(10 / 30, 4)
    assert result["citation_accuracy"] == 0.5
    assert result["refusal_accuracy"] == 1.0 and result["false_refusal_rate"] == 0.0
    groups = evaluate.by_group(recs)
    assert groups["en"]["n_unanswerable"] == 10 and groups["nl"]["n_answerable"] == 30
    # "en_doc*" gold documents asked about in Dutch are the cross-lingual questions.
    assert groups["crosslingual"]["n_answerable"] == 10


def test_the_pairwise_ranker_learns_which_feature_marks_the_relevant_passage():
    rng = np.random.default_rng(0)
    groups = []
    telling = rank.FEATURES.index("cover_text")
    for _ in range(40):
        x = rng.normal(size=(30, len(rank.FEATURES)))
        relevant = np.zeros(30, bool)
        relevant[rng.integers(30)] = True
        x[relevant, telling] += 3.0
        groups.append((x, relevant))
    model = rank.fit_ranker(groups)
    assert int(np.argmax(model.coef)) == telling
    again = rank.LinearModel.from_json(model.to_json())
    assert again.to_json() == model.to_json()
    x, relevant = groups[0]
    assert int(np.argmax(again.score(x))) == int(np.flatnonzero(relevant)[0])


def test_the_refusal_threshold_is_chosen_on_held_out_probabilities():
    rng = np.random.default_rng(1)
    n = 120
    answerable = rng.random(n) < 0.7
    x = rng.normal(size=(n, len(refusal.FEATURES)))
    x[:, 0] += np.where(answerable, 1.5, -1.5)
    model = refusal.fit_refusal(x, answerable, [i % 4 for i in range(n)])
    p = np.array([model.probability(v) for v in x])
    assert 0 < model.threshold < 1
    assert np.mean(p[answerable] < model.threshold) <= 0.15
    assert np.mean(p[~answerable] < model.threshold) >= 0.6
    assert refusal.RefusalModel.from_json(model.to_json()).threshold == round(model.threshold, 6)


MOTION = ("Constaterende dat veel banken een negatieve spaarrente hanteren vanaf € 100.000; "
          "verzoekt de regering hierover in gesprek te gaan met de banken.")


def _hit(text: str, coverage_doc: str = "motie.pdf"):
    from civicbot.records import Chunk, Hit

    chunk = Chunk(coverage_doc, 0, 1, 1, 0, len(text), "", text, "nl")
    return Hit(chunk, "Motie over negatieve rente", 1.0, dense=0.6)


def _refusal_model() -> refusal.RefusalModel:
    """A classifier fitted on evidence like a library's: answered questions are well
    covered and hold what they ask; some unanswerable ones are about other topics (low
    coverage), others ask for a detail (a year) the well-covering passages lack."""
    rng = np.random.default_rng(2)
    col = {name: i for i, name in enumerate(refusal.FEATURES)}
    x, y = [], []
    for i in range(90):
        v = rng.normal(0, 0.05, len(refusal.FEATURES))
        kind = i % 3
        cover = 0.2 if kind == 1 else 0.8
        for name in ("cover_best", "cover_top3", "cover_typed", "quote"):
            v[col[name]] += cover
        if kind == 2:
            v[col["numbers_missing"]] = 1.0
        # As the one passage of the tests below gives them: the same for every question.
        v[col["score_best"]] += 1.0
        v[col["dense_best"]] += 0.6
        v[col["same_doc"]] += 1.0
        x.append(v)
        y.append(kind == 0)
    return refusal.fit_refusal(np.vstack(x), np.array(y), [i % 5 for i in range(90)])


def test_a_covered_topic_without_the_asked_detail_gets_a_partial_answer():
    from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings

    hits = [_hit(MOTION)]
    pipeline = AnswerPipeline(FixedSource(hits, 0.8, titles=["Motie"]), None,
                              AnswerSettings(refusal_model=_refusal_model()))
    answer = pipeline.ask("Welke negatieve spaarrente rekenden de banken in 2019?")
    assert answer.mode == "partial" and answer.refused
    assert answer.text.startswith("De documenten beschrijven")
    assert "maar noemen niet “2019”" in answer.text
    assert "€ 100.000" in answer.text  # what they do say, quoted ...
    assert [c.doc for c in answer.citations] == ["motie.pdf"]  # ... and cited
    # Asked without the detail, the same passage answers.
    answered = pipeline.ask("Vanaf welk bedrag rekenen banken een negatieve spaarrente?")
    assert answered.mode == "extractive" and not answered.refused
    assert "100.000" in answered.text


def test_a_question_about_another_topic_is_refused_not_partly_answered():
    from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings

    hits = [_hit(MOTION)]
    pipeline = AnswerPipeline(FixedSource(hits, 0.2, titles=["Motie"]), None,
                              AnswerSettings(refusal_model=_refusal_model()))
    answer = pipeline.ask("Hoeveel kost een paspoort in 2024?")
    assert answer.mode == "refused" and answer.citations == []


def test_the_grid_starts_with_todays_defaults_and_sets_the_answer_settings():
    from civicbot.answer.pipeline import AnswerSettings

    choices = crossval.grid_choices({"quote_sources": (3, 1), "sentences": (3, 2, 1)})
    assert len(choices) == 6 and choices[0] == {"quote_sources": 3, "sentences": 3}
    defaults = AnswerSettings(quote_model=quoting.packaged_quotes())  # as served
    first = crossval.with_choice(defaults, crossval.grid_choices()[0])
    assert (first.quote_rules, first.all_compete) == (defaults.quote_rules, defaults.all_compete)
    assert (first.quote_sources, first.neighbours) == (defaults.quote_sources, defaults.neighbours)
    chosen = crossval.with_choice(defaults, {"quote_sources": 1, "sentences": 2,
                                             "neighbours": False})
    assert (chosen.quote_sources, chosen.quote_rules.sentences, chosen.neighbours) == (1, 2, False)
    assert chosen.quote_rules.near_best == defaults.quote_rules.near_best
    # Without a chooser the hand-set score keeps its own rules.
    hand_set = AnswerSettings()
    assert hand_set.quote_rules == RULES and hand_set.all_compete
    assert defaults.quote_rules == quoting.PICK and not defaults.all_compete
