"""Quality figures the issues ask for, measured with the real default models in CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_legalqa_retrieval_reaches_the_target(shared):
    out = subprocess.run(
        [sys.executable, "-m", "civicbot.cli", "eval", "beir",
         str(shared / "bench" / "legalqa-nl"), "--json"],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10",
                           "n_queries"}
    assert result["n_queries"] == 102
    assert result["ndcg_at_10"] >= 0.70, result


def test_dev_retrieval_reaches_the_target(corpus_index, tmp_path):
    """hit@5 on the answerable questions of ../shared/eval/dev.jsonl (the answer figures, which
    take the model ~15 s a question, are measured by `civicbot eval qa`; see the README)."""
    from civicbot import config as config_mod
    from civicbot import evaluate
    from civicbot.service import Service
    from tests.conftest import SHARED

    cfg = config_mod.build({"index": {"path": str(corpus_index.path)}}, env={},
                           base_dir=str(ROOT))
    result = evaluate.qa(SHARED / "eval" / "dev.jsonl", cfg, retrieval_only=True,
                         service=Service(cfg, embedder=corpus_index.embedder))
    assert result["n_answerable"] == 50
    assert result["hit_at_5"] >= 0.85, result


def test_dev_answers_reach_the_key_fact_and_refusal_targets_by_quoting_alone(corpus_index):
    """The dev.jsonl figures of the quoting path every answer has, with everything chosen on
    train.jsonl (docs/answering.md). Key facts (0.64) and false refusals (0.06) meet their
    targets. Refusals of unanswerable questions are 0.67: the 0.87 this test once guarded
    came from a refusal threshold chosen on dev.jsonl itself, which refused 0.23 of
    train.jsonl's answerable questions; the threshold is now calibrated on train.jsonl and
    this floor is what that honest choice gives (target 0.75, not met; the cross-validated
    figures are guarded by the test below). Citation accuracy (0.51, target 0.75) is
    reported, not asserted."""
    from civicbot import config as config_mod
    from civicbot import evaluate
    from civicbot.service import Service
    from tests.conftest import SHARED

    cfg = config_mod.build({"index": {"path": str(corpus_index.path)}}, env={},
                           base_dir=str(ROOT))
    result = evaluate.qa(SHARED / "eval" / "dev.jsonl", cfg, use_model=False,
                         service=Service(cfg, embedder=corpus_index.embedder))
    assert (result["n_answerable"], result["n_unanswerable"]) == (50, 15)
    assert result["key_fact_rate"] >= 0.6, result
    assert result["refusal_accuracy"] >= 0.65, result
    assert result["false_refusal_rate"] <= 0.1, result


def test_cross_validated_answers_on_train_keep_their_figures(corpus_index):
    """`civicbot eval cv ../shared/eval/train.jsonl --folds 5 --no-ranker --no-refusal`: the
    default answer path, its learned quote chooser and refusal threshold refitted on four
    folds grouped by document and scored on the fifth (docs/answering.md). The figures it
    gave when they were chosen (key facts 0.49, citations 0.49, refusals 0.27 at 0.09 false
    refusals), with a margin for the index's OCR text: a change that loses on questions it
    was not fitted on fails here."""
    from civicbot import config as config_mod
    from civicbot import crossval
    from civicbot.service import Service
    from tests.conftest import SHARED

    cfg = config_mod.build({"index": {"path": str(corpus_index.path)}}, env={},
                           base_dir=str(ROOT))
    result = crossval.cross_validate(SHARED / "eval" / "train.jsonl", cfg, k=5, ranker=False,
                                     refusal=False,
                                     service=Service(cfg, embedder=corpus_index.embedder))
    assert (result["n_answerable"], result["n_unanswerable"]) == (192, 67)
    assert result["hit_at_5"] >= 0.77, result
    assert result["key_fact_rate"] >= 0.46, result
    assert result["citation_accuracy"] >= 0.46, result
    assert result["refusal_accuracy"] >= 0.24, result
    assert result["false_refusal_rate"] <= 0.11, result
