"""The term glossary that translates a question for passages in the other language."""

import pytest

from civicbot.errors import ConfigError
from civicbot.glossary import Glossary, builtin, configured
from civicbot.retrieve import Retriever
from tests.fakes import HashingEmbedder
from tests.unit.test_crosslingual import BilingualEmbedder, _chunk, _snapshot


def test_builtin_terms_are_translated_longest_first_and_taken_out_of_the_rest():
    known, rest = builtin().translate(
        "Binnen welke termijn moet een datalek volgens de AVG gemeld worden?", "nl", "en")
    assert {"personal data breach", "GDPR"} <= set(known)
    assert "datalek" not in rest and "avg" not in rest and "gemeld" in rest
    known, _ = builtin().translate("Hoe hoog is de geldboete?", "nl", "en")
    assert known == ["administrative fine"]  # not also "fine" from "boete" inside it
    known, _ = builtin().translate("Which fines does the GDPR set?", "en", "nl")
    assert {"boetes", "AVG"} <= set(known)
    # whole words only: "avg" inside another word is not the AVG
    assert builtin().translate("gavgem", "nl", "en")[0] == []


def test_a_deployers_glossary_adds_terms_and_a_bad_line_is_a_clear_error(tmp_path):
    own = tmp_path / "terms.tsv"
    own.write_text("# ours\nOmgevingswet\tEnvironment and Planning Act\n", encoding="utf-8")
    known, _ = configured(own).translate("Wat regelt de Omgevingswet?", "nl", "en")
    assert known == ["Environment and Planning Act"]
    assert configured(None) is builtin()
    own.write_text("Omgevingswet Environment and Planning Act\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"terms.tsv, line 1: expected a Dutch term, a tab"):
        configured(own)
    with pytest.raises(ConfigError, match="cannot read the glossary"):
        configured(tmp_path / "missing.tsv")


def test_glossary_terms_let_keyword_search_match_the_other_language():
    corpus = [_chunk("gdpr.md", "A personal data breach shall be notified to the supervisory "
                     "authority without undue delay.", "en"),
              _chunk("bins.md", "Waste bins are emptied every week by the city.", "en"),
              _chunk("huur.md", "Huurtoeslag vraagt u aan bij de Belastingdienst.", "nl")]
    use = BilingualEmbedder()
    snapshot = _snapshot(corpus, use)
    question = "Wanneer moet een datalek bij de toezichthouder gemeld worden?"
    with_terms = Retriever(snapshot, HashingEmbedder(), use=use)
    assert "personal data breach" in with_terms.translations(question)["en"]
    hit = next(h for h in with_terms.search(question, 3) if h.chunk.doc == "gdpr.md")
    assert hit.lexical > 0  # BM25 matched "personal data breach", "supervisory authority"
    without = Retriever(snapshot, HashingEmbedder(), use=use, glossary=Glossary())
    assert "breach" not in without.translations(question).get("en", "")
    assert next(h for h in without.search(question, 3) if h.chunk.doc == "gdpr.md").lexical == 0


def test_the_builtin_glossary_parses():
    assert len(builtin().pairs) > 50
    assert all(nl and en for nl, en in builtin().pairs)
