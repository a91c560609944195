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
    """The answer targets of dev.jsonl that civicbot meets, guarded on the quoting path every
    answer has (the model adds to it: 0.64 key facts with it; ten minutes, so measured by
    `civicbot eval qa`, see docs/answering.md). Citation accuracy (0.60, target 0.9) is not
    met yet and is reported, not asserted."""
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
    assert result["refusal_accuracy"] >= 0.8, result
    assert result["false_refusal_rate"] <= 0.1, result
