from civicbot.answer import grounding
from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings, retrieval_query
from civicbot.answer.prompt import build_messages
from civicbot.answer.text import facts, sentences
from civicbot.model import Chunk, Hit, Turn
from tests.fakes import ScriptedGenerator

FRIA = ("Vanaf 2 augustus 2026 moeten gebruiksverantwoordelijken van hoog-risico AI-systemen "
        "voorafgaand aan het gebruik een beoordeling van de gevolgen voor de grondrechten "
        "uitvoeren (FRIA, art. 27).")
FINES = ("Non-compliance with the prohibition of AI practices shall be subject to "
         "administrative fines of up to 35 000 000 EUR or, if the offender is an undertaking, "
         "up to 7 % of its total worldwide annual turnover.")


def _hit(text: str, doc: str = "faq.pdf", page: int = 16, language: str = "nl") -> Hit:
    chunk = Chunk(doc, 0, page, page, 0, len(text), "", text, language)
    return Hit(chunk, doc.removesuffix(".pdf").upper(), 1.0)


def _pipeline(reply: str | None, hits: list[Hit], coverage: float = 0.9) -> AnswerPipeline:
    return AnswerPipeline(
        search=lambda q, k: hits, coverage=lambda q, h: coverage,
        generator=ScriptedGenerator(reply) if reply is not None else None,
        settings=AnswerSettings(refusal_threshold=0.5), titles=lambda: ["FAQ", "AI Act"],
        link=lambda h: f"{h.chunk.doc}#page={h.chunk.page_start}")


def test_facts_and_sentences():
    assert facts("Fines reach 35 000 000 EUR or 7 % [2].") >= {"35000000", "eur"}
    assert "2 augustus 2026" in facts("Het geldt vanaf 2 augustus 2026 voor iedereen.")
    assert [s.text for s in sentences("Eerste zin. Tweede zin [1]. art. 27 geldt.")] == [
        "Eerste zin.", "Tweede zin [1]. art. 27 geldt."]


def test_grounding_keeps_supported_and_drops_invented_sentences():
    answer = ("Gebruikers moeten vanaf 2 augustus 2026 een FRIA uitvoeren [1]. "
              "De boete hiervoor is 10 miljoen euro [1]. Dit geldt ook voor Belgische "
              "gemeenten [3].")
    checked = grounding.check(answer, [FRIA], "nl")
    assert [s.supported for s in checked.sentences] == [True, False, False]
    assert "cites a source that was not given" in checked.sentences[2].why
    assert checked.text() == "Gebruikers moeten vanaf 2 augustus 2026 een FRIA uitvoeren [1]."


def test_uncited_but_supported_sentence_gets_its_source():
    checked = grounding.check("Fines go up to 35 million EUR.", ["unrelated text", FINES], "en")
    assert checked.kept and checked.kept[0].sources == (2,)


def test_generated_answer_passes_the_check():
    reply = "Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1]."
    streamed: list[str] = []
    answer = _pipeline(reply, [_hit(FRIA)]).ask("Wanneer moet een FRIA?", on_text=streamed.append)
    assert answer.mode == "generated" and answer.language == "nl"
    assert "2 augustus 2026" in answer.text
    assert answer.citations[0].doc == "faq.pdf" and answer.citations[0].page_start == 16
    assert "2 augustus 2026" in answer.citations[0].quote
    assert answer.citations[0].link == "faq.pdf#page=16"


def test_fabricated_answer_falls_back_to_quoting_the_sources():
    reply = ("Sinds 1 januari 2024 moet iedere gemeente een AI-register bijhouden [1]. "
             "Burgemeesters kunnen boetes van 500 euro opleggen [1].")
    answer = _pipeline(reply, [_hit(FRIA)]).ask("Vanaf wanneer moet een gebruiker een FRIA doen?")
    assert answer.mode == "extractive"
    assert "2 augustus 2026" in answer.text and "2024" not in answer.text
    assert answer.citations and answer.citations[0].quote in FRIA.replace("\n", " ")


def test_unsupported_model_and_no_model_both_quote():
    answer = _pipeline(None, [_hit(FINES, "act.pdf", 225, "en")]).ask(
        "How high can the fine be for prohibited AI practices?")
    assert answer.mode == "extractive" and "35 000 000" in answer.text


def test_low_coverage_is_refused_in_the_question_language():
    answer = _pipeline("x", [_hit(FRIA)], coverage=0.1).ask(
        "Hoe hoog zijn de leges voor een paspoort?")
    assert answer.refused and answer.mode == "refused" and answer.citations == []
    assert "documenten" in answer.text and "FAQ" in answer.text
    english = _pipeline("x", [_hit(FRIA)], coverage=0.1).ask("What does a passport cost?")
    assert "documents" in english.text


def test_follow_up_is_searched_with_the_previous_question():
    history = [Turn("user", "What does the AI Act say about deep fakes?"),
               Turn("assistant", "…")]
    assert retrieval_query("And when does that apply?", history).startswith("What does the AI")
    assert retrieval_query("What is the maximum GDPR fine for a company?", history) == (
        "What is the maximum GDPR fine for a company?")


def test_prompt_budget_trims_sources_never_the_question():
    sources = [("T", "p. 1", "woord " * 400) for _ in range(5)]
    question = "Wat is de regel voor " + "heel " * 30 + "lange vragen?"
    messages, used = build_messages(question, "nl", sources, lambda t: len(t.split()), 700)
    assert 0 < used < 5
    assert question.strip() in messages[-1]["content"]
    assert sum(len(m["content"].split()) for m in messages) <= 700
