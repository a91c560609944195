"""The refusal threshold's calibration (civicbot/evaluate.py): the rule, and its bagging."""

import pytest

from civicbot.errors import ConfigError
from civicbot.evaluate import calibrate, threshold_rule


def test_threshold_refuses_unanswerable_and_as_few_answerable_as_it_can():
    # 20 answerable questions, so at most 2 may be refused; the unanswerable ones score
    # 0.1 and 0.3, the answerable ones 0.2 and from 0.35 up.
    answerable = [0.2] + [0.35 + 0.02 * i for i in range(19)]
    pairs = [(s, True) for s in answerable] + [(0.1, False), (0.3, False)]
    threshold = threshold_rule(pairs, max_false_refusals=0.1)
    # Both unanswerable questions are refused, and of the answerable ones only the one that
    # scores below an unanswerable one: midway between 0.3 and 0.35, not up at 0.37.
    assert threshold == pytest.approx(0.325)
    assert sum(s < threshold for s in answerable) == 1


def test_an_unanswerable_question_above_the_allowance_is_given_up():
    # Refusing the unanswerable 0.5 would refuse 3 of 10 answerable questions (max 1).
    answerable = [0.3, 0.4, 0.45] + [0.6 + 0.01 * i for i in range(7)]
    pairs = [(s, True) for s in answerable] + [(0.2, False), (0.5, False)]
    threshold = threshold_rule(pairs, max_false_refusals=0.1)
    assert threshold == pytest.approx(0.25)


def test_false_refusals_are_not_spent_where_they_buy_less_than_they_cost():
    # 20 answerable questions (2 may be refused) and 20 unanswerable ones. Refusing the
    # unanswerable 0.5 too would refuse the answerable 0.4 and 0.45: 1/20 more of the
    # unanswerable questions for 2/20 more of the answerable ones. The budget allows it;
    # it is a bad trade, and the threshold stays below 0.4.
    answerable = [0.4, 0.45] + [0.6 + 0.01 * i for i in range(18)]
    unanswerable = [0.1 + 0.01 * i for i in range(19)] + [0.5]
    pairs = [(s, True) for s in answerable] + [(s, False) for s in unanswerable]
    threshold = threshold_rule(pairs, max_false_refusals=0.1)
    assert threshold == pytest.approx((0.28 + 0.4) / 2)
    assert not any(s < threshold for s in answerable)
    # When the one more refused is worth it (5 unanswerable questions), it is bought.
    few = [(s, True) for s in answerable] + [(s, False) for s in (0.1, 0.15, 0.2, 0.25, 0.5)]
    assert threshold_rule(few, max_false_refusals=0.1) == pytest.approx(0.55)


def test_a_threshold_that_one_question_decides_is_not_bet_on_it():
    # 40 answerable questions: four score 0.30-0.33, the rest 0.6 and up. Seven unanswerable
    # questions score 0.10-0.13 and one scores 0.35. On these questions as they stand,
    # refusing the four answerable ones (4/40) to refuse the one unanswerable 0.35 (1/8)
    # is worth it, and the rule jumps above them. The trade rests on that single question:
    # most resamples do not make it, and the bagged threshold stays below 0.30.
    answerable = [0.30, 0.31, 0.32, 0.33] + [0.6 + 0.005 * i for i in range(36)]
    low = [0.1 + 0.005 * i for i in range(7)]
    pairs = [(s, True) for s in answerable] + [(s, False) for s in low + [0.35]]
    assert threshold_rule(pairs) == pytest.approx(0.475)
    assert calibrate(pairs) < 0.30
    # The same questions give the same threshold (seeded, and each class sorted before it is
    # resampled, so their order does not matter).
    assert calibrate(pairs) == calibrate(list(reversed(pairs)))
    # Three answerable questions in between and three unanswerable ones above them: the
    # trade no longer rests on one question, most resamples make it, and so does the median.
    answerable = [0.30, 0.31, 0.32] + [0.6 + 0.005 * i for i in range(37)]
    three = [(s, True) for s in answerable] + [(s, False) for s in low + [0.135] + [0.35] * 3]
    assert calibrate(three) == pytest.approx(0.475)


def test_calibration_needs_answerable_questions():
    with pytest.raises(ConfigError):
        calibrate([(0.1, False)])
    with pytest.raises(ConfigError):
        threshold_rule([(0.1, False)])


def test_a_nested_choice_fits_the_quote_chooser_again_for_each_retrieval_setting():
    """Retrieval decides which sentences the chooser learns from: a chooser fitted on
    today's retrieval only held every other retrieval setting back in `eval cv --grid`.
    Settings of the answer alone share one chooser."""
    from civicbot import crossval

    class Lab:  # an honest small stand-in: scores are given per choice
        def __init__(self):
            self.fitted = []

        def fit_quotes(self, rows, ranker, choice=None):
            self.fitted.append(crossval._retrieval_part(choice))
            return f"chooser {len(self.fitted)}"

        def threshold(self, rows, ranker, choice):
            return 0.25

        def records(self, rows, ranker, model, threshold, choice, chooser):
            good = choice["neighbour_weight"] == 0.0 and choice["sentences"] == 2
            return [{"answerable": True, "mode": "extractive", "refused": False, "key_fact": good,
                     "citations": [], "gold_rank": 1, "seconds": 0.0}]

    lab = Lab()
    grid = {"neighbour_weight": (0.3, 0.0), "sentences": (4, 2)}
    choice, threshold, chooser = crossval.choose(lab, [], None, None,
                                                 crossval.grid_choices(grid))
    assert choice == {"neighbour_weight": 0.0, "sentences": 2} and threshold == 0.25
    assert lab.fitted == [{"neighbour_weight": 0.3}, {"neighbour_weight": 0.0}]
    assert chooser == "chooser 2"
    assert crossval.choose(Lab(), [], None, None, crossval.grid_choices(grid),
                           quotes=False)[2] is None
