"""The one table of civicbot's sentences and its one lookup."""

from __future__ import annotations

import re
from pathlib import Path

from civicbot import texts
from civicbot.answer.messages import say
from civicbot.lang import detect


def test_every_sentence_is_there_in_both_languages_once():
    assert all(set(entry) == {"nl", "en"} for entry in texts.TEXTS.values())
    source = Path(texts.__file__).read_text(encoding="utf-8")
    keys = re.findall(r'^    "([a-z_-]+)": \{', source, re.M)
    assert len(keys) == len(set(keys)) == len(texts.TEXTS)  # no key written twice


def test_the_answers_lookup_is_the_one_lookup():
    assert say("ocr", "nl") == texts.t("ocr", "nl")
    assert say("partial", "en", topic="parking", missing="the amount asked for") == texts.t(
        "partial", "en", topic="parking", missing="the amount asked for")
    assert texts.t("queued", "de", n=2) == texts.t("queued", "nl", n=2)  # the default


def test_page_labels_are_written_one_way():
    assert texts.page_label(3, 3) == "p. 3"
    assert texts.page_label(3, 4) == "pp. 3–4"
    assert texts.page_label(3, 4, "nl") == "p. 3–4"
    assert texts.page_label(5, 0) == "p. 5"  # no end page known


def test_the_bot_speaks_the_language_the_answer_will_have():
    for question in ("Hoeveel kost een parkeervergunning?", "What does a permit cost?",
                     "parkeren", "waste collection"):
        assert texts.language_of(question) == detect(question)
    assert texts.language_of("", default="en") == "en"
    assert texts.language_of("!help", default="en") == "en"  # a command says nothing
