"""The grounding check on a labelled set of traps (tests/data/grounding_traps.jsonl): broken
sentences (cut off, fragments, words run together or garbled) and numbers or dates that the
source attaches to something else, beside true sentences that must be kept."""

import json
from pathlib import Path

import pytest

from civicbot.answer import grounding

TRAPS = [json.loads(line) for line in
         (Path(__file__).parents[1] / "data" / "grounding_traps.jsonl").read_text().splitlines()
         if line.strip()]


def test_the_set_has_traps_and_true_sentences_in_both_languages():
    assert {t["keep"] for t in TRAPS} == {True, False}
    assert {t["language"] for t in TRAPS if t["keep"]} == {"en", "nl"}
    assert sum(not t["keep"] for t in TRAPS) >= 10


@pytest.mark.parametrize("trap", TRAPS, ids=[t["case"] for t in TRAPS])
def test_trap(trap):
    checked = grounding.check(trap["sentence"], [trap["source"]], trap["language"])
    assert len(checked.sentences) == 1, checked
    got = checked.sentences[0]
    assert got.supported == trap["keep"], got.why or "kept"
    if not trap["keep"]:
        assert got.why  # a reason for the log
