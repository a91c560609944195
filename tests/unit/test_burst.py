"""Questions that arrive together are embedded together (matrix/burst.py, index/memo.py)."""

from __future__ import annotations

import asyncio
import unicodedata

import numpy as np
import pytest

from civicbot.index.crosslingual import CrossLingualIndex, translate
from civicbot.index.memo import VectorMemo
from civicbot.lang import fold
from civicbot.matrix.burst import Burst
from tests.fakes import HashingEmbedder


def test_memo_answers_only_when_every_text_is_remembered_and_forgets_the_oldest():
    model = HashingEmbedder()
    memo = VectorMemo(size=3)
    memo.remember(["a b", "c d", "a b"], model.embed)
    assert model.calls == 1 and model.texts_embedded == 2  # once, without the repeat
    got = memo.get(["c d", "a b"])
    assert got is not None and np.allclose(got, model.embed(["c d", "a b"]))
    assert memo.get(["a b", "never seen"]) is None
    memo.remember(["c d", "e f", "g h"], model.embed)  # "c d" is known: two new, one out
    assert memo.get(["a b"]) is None and memo.get(["c d", "e f", "g h"]) is not None


def test_a_burst_runs_its_work_once_for_everything_joined_in_the_same_turn():
    calls: list[list[int]] = []

    async def work(items: list[int]) -> None:
        calls.append(items)
        await asyncio.sleep(0.01)

    async def main() -> None:
        burst: Burst[int] = Burst(work)
        await asyncio.gather(*(burst.join(i) for i in range(5)))
        await burst.join(99)  # later: a burst of its own

    asyncio.run(main())
    assert calls == [[0, 1, 2, 3, 4], [99]]


def test_a_failing_burst_is_logged_and_everyone_goes_on(caplog):
    async def work(items: list[int]) -> None:
        raise RuntimeError("model gone")

    async def main() -> None:
        burst: Burst[int] = Burst(work)
        await asyncio.gather(burst.join(1), burst.join(2))

    asyncio.run(main())
    assert "preparing 2 questions at once failed" in caplog.text


def test_remembered_word_translations_are_the_translations():
    model = HashingEmbedder()
    vocabulary = ["huur", "vergunning", "rent permit"]
    index = CrossLingualIndex("test", np.zeros((0, 64), np.float32), np.zeros(0, np.int64),
                              {"nl": vocabulary}, {"nl": model.embed(vocabulary)})
    words = ["huur", "banaan", "vergunning", "huur"]
    want = translate(model.embed(words), vocabulary, model.embed(vocabulary))
    calls = model.calls
    assert index.translate_words(words, "nl", model.embed) == want
    assert model.calls == calls + 1  # one product for the new words
    assert index.translate_words(words[:2], "nl", model.embed) == want[:1]
    assert model.calls == calls + 1  # remembered
    assert index.translate_words(["huur"], "en", model.embed) == []


@pytest.mark.parametrize("text", ["Financiële STEUN", "plain ASCII text", "café naïef € ½ ﬁ", ""])
def test_fold_is_lower_case_without_marks(text):
    expected = "".join(ch for ch in unicodedata.normalize("NFKD", text.lower())
                       if not unicodedata.combining(ch))
    assert fold(text) == expected
