"""Quality figures the issues ask for, measured with the real default models in CI."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.slow


# The benchmark runs beside the rest of the suite (tests/conftest.py, "long benchmarks").
@pytest.mark.background([sys.executable, "-m", "civicbot.cli", "eval", "beir",
                         SHARED / "bench" / "legalqa-nl", "--json"], timeout=1800)
def test_legalqa_retrieval_reaches_the_target(shared, background):
    out = background
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10",
                           "n_queries"}
    assert result["n_queries"] == 102
    # Target 0.70; 0.79 with multilingual-e5-small as the dense model (0.72 with MiniLM),
    # guarded with a margin: the ranking must keep transferring to a corpus nobody tuned on.
    assert result["ndcg_at_10"] >= 0.76, result


def test_dev_retrieval_keeps_its_figure(corpus_index, tmp_path):
    """hit@5 on the answerable questions of ../shared/eval/dev.jsonl (the answer figures, which
    take the model ~15 s a question, are measured by `civicbot eval qa`; see the README).
    0.86 with the English MiniLM, whose fusion weights were chosen on dev.jsonl; 0.80 with
    multilingual-e5-small, chosen because it wins where nobody tuned: cross-validated on
    train.jsonl (hit@5 0.79 -> 0.82, hit@1 0.58 -> 0.63) and on LegalQA-NL (nDCG@10 0.72 ->
    0.79). The three dev questions it loses rank 6th instead of 5th (docs/retrieval.md).
    Target 0.85, not met; this floor guards the figure."""
    from civicbot import config as config_mod
    from civicbot import evaluate
    from civicbot.service import Service
    from tests.conftest import SHARED

    cfg = config_mod.build({"index": {"path": str(corpus_index.path)}}, env={},
                           base_dir=str(ROOT))
    result = evaluate.qa(SHARED / "eval" / "dev.jsonl", cfg, retrieval_only=True,
                         service=Service(cfg, embedder=corpus_index.embedder))
    assert result["n_answerable"] == 50
    assert result["hit_at_5"] >= 0.78, result


def test_dev_answers_reach_the_key_fact_and_refusal_targets_by_quoting_alone(corpus_index):
    """The dev.jsonl figures of the quoting path every answer has, with everything chosen on
    train.jsonl (docs/answering.md). False refusals (0.06) meet their target. Refusals of
    unanswerable questions: the 0.87 this test once guarded came from a refusal threshold
    chosen on dev.jsonl itself, which refused 0.23 of train.jsonl's answerable questions.
    Key facts were 0.64 and refusals 0.67 with the English MiniLM (its fusion weights chosen
    on dev.jsonl); with multilingual-e5-small, chosen on train.jsonl's cross-validation and
    LegalQA-NL (see test_dev_retrieval_keeps_its_figure), they were 0.58 and 0.53 (three and
    two questions); with the quote chooser's window feature key facts were 0.64 (target 0.60),
    and with the chooser's own picking constants, chosen by cross-validation on train.jsonl
    (docs/answering.md, "Quote constants"), they are 0.62. Refusals (target 0.75) are not
    met; these floors guard the figures, and the cross-validated ones, which say more, are
    guarded by the test below. Citation accuracy (0.52, target 0.75) is reported, not
    asserted. BM25 centred per language (docs/retrieval.md) let a year in a sixth passage on
    another subject count for "Qredits in 2024" and refusals fell to 0.47, which this test
    caught; a named number now counts only where an answer may quote it (chosen on train's
    cross-validation, where it won every figure), and dev's refusals are 0.53."""
    from civicbot import config as config_mod
    from civicbot import evaluate
    from civicbot.service import Service
    from tests.conftest import SHARED

    cfg = config_mod.build({"index": {"path": str(corpus_index.path)}}, env={},
                           base_dir=str(ROOT))
    result = evaluate.qa(SHARED / "eval" / "dev.jsonl", cfg, use_model=False,
                         service=Service(cfg, embedder=corpus_index.embedder))
    assert (result["n_answerable"], result["n_unanswerable"]) == (50, 15)
    assert result["key_fact_rate"] >= 0.58, result
    assert result["refusal_accuracy"] >= 0.5, result
    assert result["false_refusal_rate"] <= 0.1, result


def test_cross_validated_answers_on_train_keep_their_figures(corpus_index):
    """`civicbot eval cv ../shared/eval/train.jsonl --folds 5 --no-ranker --no-refusal`: the
    default answer path, its learned quote chooser and refusal threshold refitted on four
    folds grouped by document and scored on the fifth (docs/answering.md). The figures it
    gives with multilingual-e5-small as the dense model (hit@1 0.63, hit@5 0.82, key facts
    0.53, citations 0.52, refusals 0.28 at 0.10 false refusals; with MiniLM 0.58, 0.79, 0.49,
    0.49, 0.27 at 0.09), with a margin for the index's OCR text: a change that loses on
    questions it was not fitted on fails here. The chooser's window feature traded citations
    for key facts (0.51 / 0.53 before it, 0.53 / 0.52 with it, taken by key facts plus
    citations): the key-fact floor rose by two points and the citation floor fell by one, and
    their sum, the objective the choice was made by, has a floor of its own. The chooser's
    own picking constants (four sentences, 0.8 from another passage, a figure looked for in
    the top passages and their neighbours) raised key facts to 0.56 and citations to 0.54:
    the key-fact floor and the floor of the sum rose with them. Coverage's term weights from
    ordinary text instead of the index's idf (docs/answering.md, "Term weights") raised key
    facts and citations a little (0.563, 0.545) and cut the false refusals (0.08), but refuse
    16 of the 67 unanswerable questions, not 19 (0.24, was 0.28): the price of a threshold that
    holds on a corpus of one document (false refusals there 0.05, not 0.22), which the issue
    asks for (item 4). The refusal floor moved down by those three questions, from 0.24 to
    0.20; the floors of the other figures stay where they were."""
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
    assert result["hit_at_1"] >= 0.60, result
    assert result["hit_at_5"] >= 0.80, result
    assert result["key_fact_rate"] >= 0.53, result
    assert result["citation_accuracy"] >= 0.50, result
    assert result["key_fact_rate"] + result["citation_accuracy"] >= 1.07, result
    assert result["refusal_accuracy"] >= 0.20, result
    assert result["false_refusal_rate"] <= 0.11, result
