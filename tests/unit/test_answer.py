from civicbot.answer import grounding
from civicbot.answer.extractive import Quote
from civicbot.answer.messages import say
from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings, retrieval_query
from civicbot.answer.prompt import build_messages
from civicbot.answer.text import facts, sentences
from civicbot.records import Chunk, Hit, Turn
from tests.fakes import FixedSource, ScriptedGenerator

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
        FixedSource(hits, coverage, titles=["FAQ", "AI Act"]),
        ScriptedGenerator(reply) if reply is not None else None,
        AnswerSettings(refusal_threshold=0.5))


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
    reply = ("Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1]. "
             "De boete hiervoor is 10 miljoen euro [1]. "
             "Het gaat om hoog-risico AI-systemen (art. 27) [1].")
    streamed: list[str] = []
    answer = _pipeline(reply, [_hit(FRIA)]).ask("Wanneer moet een FRIA?", on_text=streamed.append)
    assert answer.mode == "generated" and answer.language == "nl"
    assert "2 augustus 2026" in answer.text
    # while it was written, the checked sentence was shown, the made-up one never
    assert streamed and "2 augustus 2026" in streamed[0]
    assert not any("10 miljoen" in text for text in streamed)
    assert "10 miljoen" not in answer.text
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
    # the refusal itself (a quoting answer also speaks of "documenten"), then what it knows
    assert answer.text.startswith(say("refused", "nl")) and "FAQ" in answer.text
    english = _pipeline("x", [_hit(FRIA)], coverage=0.1).ask("What does a passport cost?")
    assert english.text.startswith(say("refused", "en"))


def test_a_refusal_names_the_documents_closest_to_the_question():
    hits = [_hit(FRIA, "faq.pdf"), _hit(FINES, "act.pdf", 9, "en"), _hit(FRIA, "faq.pdf", 17)]
    answer = _pipeline(None, hits, coverage=0.1).ask("What does a passport cost?")
    assert answer.refused
    assert answer.text.endswith("Of the 2 documents I know, these come closest to your "
                                "question: FAQ; ACT.")
    nothing = _pipeline(None, [], coverage=0.1).ask("Wat kost een paspoort?")
    assert nothing.refused and "dichtst" not in nothing.text and "FAQ" in nothing.text


def test_a_refusal_in_a_collection_of_one_document_names_it_as_the_only_one():
    """Not "Van de 1 documenten die ik ken, komen deze het dichtst bij": an editor's first
    upload is often the whole collection."""
    source = FixedSource([_hit(FRIA, "faq.pdf")], 0.1, titles=["FAQ"])
    pipeline = AnswerPipeline(source, None, AnswerSettings(refusal_threshold=0.5))
    dutch = pipeline.ask("Wat kost een paspoort?")
    assert dutch.refused and dutch.text.endswith("Het enige document dat ik ken, is: FAQ.")
    assert pipeline.ask("What does a passport cost?").text.endswith(
        "The only document I know is: FAQ.")


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


def test_answer_types_of_questions_and_sentences():
    from civicbot.answer.extractive import Asked, asked

    assert asked("Hoeveel rijkskennisinstellingen zijn er?").kind == "number"
    assert asked("From what date do the rules apply?").kind == "date"
    assert asked("For how long is the chair appointed?").kind == "duration"
    # "how quickly" asks how long it may take: "within 2 weeks", "binnen drie maanden"
    assert asked("How quickly must the provider report it?").kind == "duration"
    assert asked("Hoe snel moet de autoriteit beslissen?").kind == "duration"
    assert Asked("duration").held_by("It shall notify the Commission within 2 weeks.")
    assert asked("Wat kost een parkeervergunning?").kind == "amount"
    assert Asked("amount").held_by("De rente bedraagt 2%.")
    assert not Asked("amount").held_by("Er zijn 24 pagina's onderzocht.")
    # "when" alone may ask for a condition: no type, nothing is required of the sentence
    assert asked("When is an organisation required to appoint an officer?") is None
    assert asked("Hoeveel instellingen zijn er?").held_by("In Nederland zijn er veertien "
                                                          "instellingen.")
    assert Asked("number").held_by("De boete is ten hoogste 5 % van de omzet.")
    assert not Asked("number").held_by("Er zijn twee soorten afwegingen.")  # not "hoe hoog"
    assert not Asked("number").held_by("Zie artikel 75, lid 1, en https://example.org/2.")
    assert Asked("duration").held_by("The term of office shall be five years.")
    assert not Asked("duration").held_by("The term of office is renewable once.")


def test_when_something_starts_to_apply_asks_for_a_date():
    from civicbot.answer.extractive import Asked, asked

    assert asked("When does the AI Act apply to general-purpose AI models?").kind == "date"
    assert asked("When will the regulation enter into force?").kind == "date"
    assert asked("Wanneer treedt de AI-verordening in werking?").kind == "date"
    assert asked("Wanneer zijn de regels voor verboden AI van toepassing?").kind == "date"
    assert asked("Wanneer gaat de informatieplicht in?").kind == "date"
    # ... but "when" for a condition does not
    assert asked("Wanneer wordt een ministerie zelf als aanbieder gezien?") is None
    assert asked("Wanneer gaat de minister in gesprek met de Kamer?") is None
    # A law's or a file's number starts with a year and is not a date; a date ends with one.
    date = Asked("date")
    assert not date.held_by("Zie artikel 75 van Verordening (EU) 2024/1689 en Woo/2023/035.")
    assert date.held_by("Verordening (EU) 2024/1689 is op 1 augustus 2024 in werking getreden.")
    assert date.held_by("Het verzoek is op 12/05/2023 ontvangen.")
    # A law dates by reference as often as by the calendar: "by when" is answered by "within
    # one month", "from when" by "24 months after its entry into force".
    assert date.held_by("The controller shall inform the data subject within one month.")
    assert date.held_by("Deze verordening is van toepassing 24 maanden na de inwerkingtreding.")
    assert not date.held_by("De Commissie stelt richtsnoeren op voor de aanbieders.")
    # ... but a period alone fixes no moment
    assert not date.held_by("Die termijn wordt met twee maanden verlengd.")
    assert date.held_by("It shall notify not later than 72 hours after having become aware.")


def test_quotes_favour_the_sentence_with_the_kind_of_fact_asked_for():
    general = _hit("De Raad benoemt een voorzitter uit zijn leden. De voorzitter leidt de "
                   "vergaderingen van de Raad en vertegenwoordigt de Raad.", "a.pdf", 3)
    term = _hit("De ambtstermijn van de voorzitter van de Raad is vijf jaar.", "a.pdf", 9)
    answer = _pipeline(None, [general, _hit(FINES, "b.pdf", 5, "en"), term]).ask(
        "Voor hoe lang wordt de voorzitter van de Raad benoemd?")
    assert "vijf jaar" in answer.text
    # only the passage that answers is cited, not every passage that shares words
    assert [(c.doc, c.page_start) for c in answer.citations] == [("a.pdf", 9)]


def test_a_citation_names_the_page_of_the_quoted_sentence():
    from civicbot.answer.extractive import quote_pages

    page_3 = "Artikel 27 regelt de beoordeling."
    page_4 = "Vanaf 2 augustus 2026 geldt de FRIA voor gebruikers van hoog-risico AI."
    text = f"{page_3}\n{page_4}"
    chunk = Chunk("faq.pdf", 0, 3, 4, 120, len(page_4), "", text, "nl")
    start = text.index("Vanaf")
    assert quote_pages(chunk, start, len(text)) == (4, 4)
    assert quote_pages(chunk, 0, len(page_3)) == (3, 3)
    assert quote_pages(chunk, 0, len(text)) == (3, 4)
    answer = _pipeline(None, [Hit(chunk, "FAQ", 1.0)]).ask("Vanaf welke datum geldt de FRIA?")
    assert [(c.page_start, c.page_end) for c in answer.citations] == [(4, 4)]
    assert answer.citations[0].link == "faq.pdf#page=4"


def test_question_naming_a_number_no_passage_has_is_refused():
    pipeline = _pipeline(None, [_hit(FRIA)])
    assert pipeline.ask("Wat verandert er aan de FRIA in 2031?").refused
    assert not pipeline.ask("Wat verandert er aan de FRIA in 2026?").refused


def test_a_number_inside_a_compound_name_is_looked_for_as_the_name():
    from civicbot.answer.text import named_numbers

    # "COVID-19-besmettingen" names COVID-19; the passage writes the compound apart
    named = named_numbers("Waar nemen de COVID-19-besmettingen toe in de G4-regio's?")
    assert {"covid-19", "g4"} <= named and not any("-b" in n or "-r" in n for n in named)
    assert named_numbers("Wat regelt artikel 4 ter sinds 2024?") == {"4", "2024"}
    passage = _hit("Het kernteam bespreekt de cijfers over COVID-19: de besmettingen nemen "
                   "toe in twee G4-regio's, meldt het actiepunt.")
    pipeline = _pipeline(None, [passage])
    assert not pipeline.ask("In welke G4-regio nemen de COVID-19-besmettingen toe?").refused
    assert pipeline.ask("Nemen de COVID-20-besmettingen toe?").refused


def test_durations_and_counts_in_words_hold_the_kind_of_fact_asked():
    from civicbot.answer.extractive import Asked, asked

    for said in ("Het hele proces kan een aantal maanden duren.",
                 "Dit duurt enkele weken.", "It may take a few months.",
                 "The controller shall reply within one month."):
        assert Asked("duration").held_by(said), said
    assert not Asked("duration").held_by("Het proces kent een aantal stappen.")
    parameters = asked("Vanaf hoeveel parameters is een model algemeen inzetbaar?")
    assert parameters is not None and parameters.held_by(
        "Modellen met ten minste een miljard parameters worden geacht algemeen te zijn.")


def test_question_asking_a_number_without_one_in_the_passages_is_refused():
    words = _hit("Gemeenten houden een register bij van hun algoritmes en publiceren het.")
    pipeline = AnswerPipeline(
        FixedSource([words], lambda q, h: 0.9 if "2" in h.chunk.text else 0.8), None,
        AnswerSettings(refusal_threshold=0.5))
    assert pipeline.ask("Hoeveel algoritmes staan in het register?").refused
    assert not pipeline.ask("Wie houdt het register van algoritmes bij?").refused


def test_how_many_is_answered_only_by_a_number_of_the_thing_counted():
    from civicbot.answer.extractive import asked

    requests = asked("Hoeveel Woo-verzoeken heeft het ministerie in 2023 ontvangen?")
    assert requests is not None and requests.kind == "number"
    assert requests.held_by("In 2023 kwamen 312 verzoeken binnen.")
    # a date, a year, an annex number or a regulation's number is not a count of requests
    assert not requests.held_by("U heeft op 1 mei 2022 een verzoek ingediend.")
    assert not requests.held_by("Bijlage nummer 2 bij het verzoek (Woo/2023/035).")
    assert not requests.held_by("Het ministerie handelt verzoeken op drie manieren af.")
    # units make it a duration or an amount, not a count
    # "hoeveel X" may ask for an amount of X, answered by a number with a unit of measure;
    # English asks that with "how much", and "how many X" wants a count of X
    power = asked("Hoeveel elektriciteit bespaart de fabriek?")
    assert power.held_by("Dat scheelt 135 GWh per jaar.")
    assert not power.held_by("Er staan 32 elektrolysers.")
    assert not asked("How many people does the firm employ?").held_by("It uses 25 MW.")
    assert asked("Hoeveel extra tijd krijgen aanbieders?").kind == "duration"
    assert asked("How many more days do providers get?").kind == "duration"
    assert asked("Hoeveel rente rekent Qredits?").kind == "amount"
    # the counted thing may be named in the passage's language (a translation of the word)
    norms = asked("How many norms does the code contain?", lambda word: {"norms": "normen"}
                  .get(word, ""))
    assert norms.held_by("De gedragscode kent 61 normen voor goede onderzoekspraktijken.")
    assert not norms.held_by("De gedragscode kent 5 principes.")


def test_how_many_questions_are_refused_when_no_passage_counts_the_thing_asked():
    listed = _hit("Op hoofdlijnen zijn er drie processen waarvoor algoritmes worden ingezet. "
                  "Het Algoritmeregister is in 2022 gestart.")
    pipeline = _pipeline(None, [listed])
    assert pipeline.ask("Hoeveel algoritmes staan er in het Algoritmeregister?").refused
    counted = _hit("Het Algoritmeregister bevat nu 512 algoritmes van 150 organisaties.")
    answer = _pipeline(None, [counted]).ask("Hoeveel algoritmes staan er in het register?")
    assert not answer.refused and "512 algoritmes" in answer.text


def test_which_authority_questions_prefer_a_sentence_naming_one():
    from civicbot.answer.extractive import asked

    which = asked("Which Dutch authority supervises compliance with MiFIR?")
    assert which is not None and which.kind == "name"
    assert which.held_by("In the Netherlands the AFM supervises it.")
    assert not which.held_by("Supervision of compliance with MiFIR is national.")
    hits = [_hit("Supervision of compliance with MiFIR and its reporting duties is a national "
                 "task in every member state.", "a.pdf", 2, "en"),
            _hit("In the Netherlands the Autoriteit Financiële Markten (AFM) supervises "
                 "compliance with MiFIR.", "a.pdf", 14, "en")]
    answer = _pipeline(None, hits).ask("Which Dutch authority supervises compliance with MiFIR?")
    assert "AFM" in answer.text and answer.citations[0].page_start == 14


def test_a_figure_just_over_the_passage_boundary_is_found_in_the_neighbour():
    first = Chunk("omnibus.pdf", 7, 82, 82, 0, 60, "", "Het AI-bureau kan dwangsommen "
                  "opleggen aan aanbieders van AI-modellen.", "nl")
    after = Chunk("omnibus.pdf", 8, 82, 82, 60, 140, "", "Die dwangsommen bedragen niet meer "
                  "dan 5 % van de gemiddelde dagelijkse omzet.", "nl")
    elsewhere = _hit("Dwangsommen worden bekendgemaakt.", "other.pdf", 3)
    pipeline = AnswerPipeline(
        FixedSource([Hit(first, "Omnibus", 2.0), elsewhere], neighbours=lambda hits: (
            [Hit(after, "Omnibus", 2.0)] if hits[0].chunk is first else [])),
        None, AnswerSettings(refusal_threshold=0.5))
    answer = pipeline.ask("Hoe hoog mogen de dwangsommen van het AI-bureau zijn?")
    assert "5 %" in answer.text
    assert [(c.doc, c.page_start) for c in answer.citations] == [("omnibus.pdf", 82)]


# ---- answer at once: quick, then the model's lead --------------------------------------


def test_quick_quotes_without_ever_asking_the_model():
    pipeline = _pipeline("Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1].",
                         [_hit(FRIA)])
    answer = pipeline.quick("Wanneer moet een FRIA?")
    assert answer.mode == "extractive" and answer.citations
    assert "2 augustus 2026" in answer.text and answer.query == "Wanneer moet een FRIA?"
    assert pipeline.generator.prompts == []  # type: ignore[union-attr]


def test_refine_puts_the_checked_lead_in_front_of_the_unchanged_quotes():
    reply = ("Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1]. "
             "Dit geldt ook voor Belgische gemeenten [1].")
    pipeline = _pipeline(reply, [_hit(FRIA)])
    quoted = pipeline.quick("Wanneer moet een FRIA?")
    shown: list[str] = []
    refined = pipeline.refine(quoted, on_text=shown.append)
    assert refined is not None and refined.mode == "generated"
    lead, note, rest = refined.text.split("\n", 2)
    assert lead == "Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1]."
    assert note == say("model_lead", "nl")
    assert rest.strip() == quoted.text  # the quoted answer as the citizen first saw it
    assert refined.citations == quoted.citations
    assert shown == [refined.text]  # one checked sentence, shown once, never withdrawn
    assert "Belgische" not in refined.text  # the lead is one sentence: no more is written


def test_refine_adds_nothing_for_a_broken_lead_a_refusal_or_no_model():
    hits = [_hit(FRIA)]
    cut_off = _pipeline("Vanaf 2 augustus 2026 moeten gebruikers een", hits)
    assert cut_off.refine(cut_off.quick("Wanneer moet een FRIA?")) is None
    declines = _pipeline("De bronnen bevatten geen informatie hierover.", hits)
    assert declines.refine(declines.quick("Wanneer moet een FRIA?")) is None
    refused = _pipeline("Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1].",
                        hits, coverage=0.1)
    answer = refused.quick("Wat kost een paspoort?")
    assert answer.refused and refused.refine(answer) is None
    assert refused.generator.prompts == []  # type: ignore[union-attr]
    no_model = _pipeline(None, hits)
    assert no_model.refine(no_model.quick("Wanneer moet een FRIA?")) is None


def test_ask_is_quick_then_refine():
    reply = "Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1]."
    answer = _pipeline(reply, [_hit(FRIA)]).ask("Wanneer moet een FRIA?")
    quoted = _pipeline(None, [_hit(FRIA)]).quick("Wanneer moet een FRIA?")
    assert answer.mode == "generated" and answer.text.endswith(quoted.text)


def test_the_model_is_skipped_for_kinds_the_quote_answers_alone():
    pipeline = _pipeline("Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1].",
                         [_hit(FRIA)])
    pipeline.settings.skip_model_kinds = frozenset({"date"})
    dated = pipeline.quick("Vanaf welke datum geldt de FRIA?")
    assert dated.mode == "extractive" and not pipeline.wants_model(dated)
    assert pipeline.refine(dated) is None and pipeline.generator.prompts == []  # type: ignore[union-attr]
    assert pipeline.wants_model(pipeline.quick("Wat moet een gebruiker doen voor een FRIA?"))


def test_the_cli_prints_the_quotes_first_then_the_lead(capsys):
    from civicbot.cli import _answer_in_two_steps

    reply = "Vanaf 2 augustus 2026 moeten gebruikers een FRIA uitvoeren [1]."
    final = _answer_in_two_steps(_pipeline(reply, [_hit(FRIA)]), "Wanneer moet een FRIA?", [])
    out = capsys.readouterr().out
    assert final.mode == "generated"  # type: ignore[attr-defined]
    assert out.index("“Vanaf 2 augustus 2026") < out.index(reply) < out.index(
        say("model_lead", "nl"))


def test_the_question_is_worked_out_once_and_handed_to_the_evidence_source():
    from civicbot.answer.question import Question

    source = FixedSource([_hit(FRIA)], titles=["FAQ"])
    pipeline = AnswerPipeline(source, None, AnswerSettings(refusal_threshold=0.5))
    history = [Turn("user", "Wat is een FRIA volgens de AI-verordening?"),
               Turn("assistant", "…")]
    question = pipeline.question("En vanaf welke datum moet dat?", history)
    assert isinstance(question, Question)
    assert question.query == ("Wat is een FRIA volgens de AI-verordening?\n"
                              "En vanaf welke datum moet dat?")
    assert question.language == "nl" and question.asked.kind == "date"
    answer = pipeline.ask("En vanaf welke datum moet dat?", history)
    # the follow-up was searched as the question it stands for, and quoted for it
    assert source.searched == [question.query]
    assert "2 augustus 2026" in answer.text and answer.query == question.query


def test_the_other_language_note_goes_with_the_quote_it_is_about(monkeypatch):
    # An answer may quote an English and a Dutch passage: "(the source is in Dutch)" on its
    # first line would be false for the English one. The note follows each quote from a
    # passage in the other language, once per passage.
    english = ("From 2 August 2026 deployers of high-risk AI systems must carry out a "
               "fundamental rights impact assessment (FRIA, art. 27) before use.")
    more = "De FRIA wordt gemeld bij de markttoezichtautoriteit met het ingevulde sjabloon."
    hits = [_hit(english, doc="aiact.pdf", language="en"), _hit(f"{FRIA} {more}")]
    pipeline = _pipeline(None, hits)
    quotes = [Quote(1, english), Quote(2, FRIA), Quote(2, more)]
    monkeypatch.setattr(pipeline, "_quotes", lambda question, hits: quotes)
    answer = pipeline.quick("When must a FRIA (art. 27) be carried out?")
    header, first, second, third = answer.text.split("\n")
    note = say("other_language", "en")
    assert header == say("extractive", "en")
    assert first == f"“{english}” [1]"
    assert second == f"“{FRIA}” [2] {note}" and third == f"“{more}” [2]"
    assert [c.doc for c in answer.citations] == ["aiact.pdf", "faq.pdf"]


def test_a_sentence_picked_twice_is_quoted_once_with_each_of_its_sources(monkeypatch):
    # Passages overlap by 40 words, and a list is quotable whole and item by item: the same
    # sentence, cut differently, came twice in one answer (29 of train.jsonl's 259). It is
    # shown once, the longer cut, citing every passage it came from.
    cut = FRIA[FRIA.index("gebruiksverantwoordelijken"):]
    hits = [_hit(FRIA), _hit(f"{cut} Daarna volgt de melding.", doc="faq2.pdf"),
            _hit(FINES, doc="aiact.pdf", language="en")]
    pipeline = _pipeline(None, hits)
    quotes = [Quote(1, FRIA), Quote(2, cut), Quote(3, FINES)]
    monkeypatch.setattr(pipeline, "_quotes", lambda question, hits: quotes)
    answer = pipeline.quick("Wanneer moet een FRIA (art. 27) worden uitgevoerd?")
    header, first, second = answer.text.split("\n")
    assert first == f"“{FRIA}” [1, 2]"
    assert second == f"“{FINES}” [3] {say('other_language', 'nl')}"
    assert [c.doc for c in answer.citations] == ["faq.pdf", "faq2.pdf", "aiact.pdf"]


def test_a_year_the_question_names_must_stand_where_the_answer_could_quote_it():
    """"Qredits in 2024" was answered from the Tozo passages (2021) because the sixth
    passage retrieved, on another subject, said "in 2024": a named number counts only in
    the passages an answer may quote (the top three and their neighbours)."""
    loan = _hit("Qredits rekent op het Corona Overbruggingskrediet het eerste jaar 2% rente.",
                doc="tozo.pdf", page=1)
    other = [_hit(f"Passage {i} over iets anders.", doc=f"d{i}.pdf") for i in range(4)]
    elsewhere = _hit("Het aandeel huishoudens was in 2024 gemiddeld 8%.", doc="eprs.pdf")
    question = "Hoeveel rente rekent Qredits in 2024 op een microkrediet?"
    lower = _pipeline(None, [loan, *other, elsewhere]).ask(question)
    assert lower.refused and not any(c.doc == "tozo.pdf" for c in lower.citations)
    within = _pipeline(None, [loan, elsewhere, *other]).ask(question)
    assert not within.refused and within.citations[0].doc == "tozo.pdf"


def test_a_refusal_names_a_long_titled_act_by_the_name_in_its_brackets():
    """A Council document's title is a paragraph; cut at 90 characters it never reached
    "(General Data Protection Regulation)", and a citizen could not tell which document
    came closest."""
    title = ("Position of the Council at first reading with a view to the adoption of a "
             "REGULATION … (General Data Protection Regulation)")
    hit = Hit(Chunk("gdpr.pdf", 0, 3, 3, 0, len(FINES), "", FINES, "en"), title, 1.0)
    answer = _pipeline(None, [hit], coverage=0.1).ask("What does a passport cost?")
    assert answer.refused and answer.text.endswith(
        "these come closest to your question: Position of the Council at first reading with "
        "a … (General Data Protection Regulation).")
