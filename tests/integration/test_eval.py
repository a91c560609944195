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
