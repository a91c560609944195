"""The refusal threshold's calibration (civicbot/evaluate.py)."""

import pytest

from civicbot.errors import ConfigError
from civicbot.evaluate import calibrate


def test_threshold_refuses_unanswerable_and_as_few_answerable_as_it_can():
    # 20 answerable questions, so at most 2 may be refused; the unanswerable ones score
    # 0.1 and 0.3, the answerable ones 0.2 and from 0.35 up.
    answerable = [0.2] + [0.35 + 0.02 * i for i in range(19)]
    pairs = [(s, True) for s in answerable] + [(0.1, False), (0.3, False)]
    threshold = calibrate(pairs, max_false_refusals=0.1)
    # Both unanswerable questions are refused, and of the answerable ones only the one that
    # scores below an unanswerable one: midway between 0.3 and 0.35, not up at 0.37.
    assert threshold == pytest.approx(0.325)
    assert sum(s < threshold for s in answerable) == 1


def test_an_unanswerable_question_above_the_allowance_is_given_up():
    # Refusing the unanswerable 0.5 would refuse 3 of 10 answerable questions (max 1).
    answerable = [0.3, 0.4, 0.45] + [0.6 + 0.01 * i for i in range(7)]
    pairs = [(s, True) for s in answerable] + [(0.2, False), (0.5, False)]
    threshold = calibrate(pairs, max_false_refusals=0.1)
    assert threshold == pytest.approx(0.25)


def test_calibration_needs_answerable_questions():
    with pytest.raises(ConfigError):
        calibrate([(0.1, False)])
