"""The retriever of one snapshot is the answer pipeline's evidence source: the pipeline
answers through it alone (search, coverage, translations, titles, links), end to end over a
small real index."""

from civicbot.answer.pipeline import AnswerPipeline, AnswerSettings
from civicbot.corpus import Corpus
from civicbot.index.store import IndexStore
from civicbot.retrieve import Retriever
from tests.fakes import HashingEmbedder
from tests.unit.test_crosslingual import BilingualEmbedder


def test_the_retriever_answers_for_the_pipeline(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "huur.md").write_text(
        "# Huurtoeslag\n\nDe huurtoeslag is een bijdrage in de huur voor mensen met een laag "
        "inkomen. Je vraagt huurtoeslag aan bij de Belastingdienst.", encoding="utf-8")
    (folder / "parking.txt").write_text(
        "Parking permits are issued by the municipality. A resident permit costs a yearly "
        "fee and is valid in one zone of the city.", encoding="utf-8")
    embedder = HashingEmbedder()
    corpus = Corpus(IndexStore(tmp_path / "index"), embedder, use=BilingualEmbedder())
    corpus.ingest([folder])
    snapshot = IndexStore(tmp_path / "index").load(embedder.name)
    source = Retriever(snapshot, embedder, use=corpus.use)
    assert source.titles() == sorted(d.title for d in snapshot.docs.values())

    pipeline = AnswerPipeline(source, None, AnswerSettings(refusal_threshold=0.15))
    question = pipeline.question("Waar vraag ik huurtoeslag aan?")
    hits = source.search(question, 2)
    assert hits[0].chunk.doc == "huur.md"
    assert source.coverage(question.query, hits[0]) > source.coverage(question.query, hits[1])
    answer = pipeline.ask("Waar vraag ik huurtoeslag aan?")
    assert answer.mode == "extractive" and "Belastingdienst" in answer.text
    assert answer.citations[0].link == "huur.md#page=1"
    refused = pipeline.ask("Hoe hoog is de hondenbelasting in Zwolle?")
    assert refused.refused and refused.citations == []


def _index(tmp_path, name, files):  # type: ignore[no-untyped-def]
    folder = tmp_path / name / "corpus"
    folder.mkdir(parents=True)
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    embedder = HashingEmbedder()
    corpus = Corpus(IndexStore(tmp_path / name / "index"), embedder, use=BilingualEmbedder())
    corpus.ingest([folder])
    return Retriever(IndexStore(tmp_path / name / "index").load(embedder.name), embedder,
                     use=corpus.use)


def test_coverage_means_the_same_in_a_corpus_of_one_document_and_of_many(tmp_path):
    """A library's first upload is its whole corpus. Weighed by the corpus's idf, the
    motion's own words weighed a fifth of a word it lacks when it stood alone, and the issue's
    question about its savings threshold was refused there and answered in a large corpus."""
    motion = {"motie.md": "# Motie negatieve spaarrente\n\nDe Kamer, constaterende dat veel "
                          "financiële instellingen een negatieve spaarrente hanteren vanaf "
                          "€ 100.000; verzoekt de regering een grensspaarsaldo te definiëren."}
    others = {f"nota-{i}.md": f"# Nota {i}\n\nDe gemeente besluit over de {topic} in wijk {i}; "
                              f"de regering en de Kamer volgen het besluit over de {topic}."
              for i, topic in enumerate(["parkeervergunning", "huurtoeslag", "afvalinzameling",
                                         "bibliotheek", "zwembad", "fietspaden"] * 5)}
    question = "Vanaf welk bedrag rekenen banken volgens de motie een negatieve spaarrente?"
    covered = []
    for name, files in (("alone", motion), ("many", {**motion, **others})):
        source = _index(tmp_path, name, files)
        hit = next(h for h in source.search(question, 10) if h.chunk.doc == "motie.md")
        covered.append(source.coverage(question, hit))
    assert covered[0] == covered[1] > 0.5


def test_term_weights_are_high_for_rare_words_and_numbers_and_low_for_function_words():
    from civicbot.lang import analyse, term_weights

    de, regering, spaarrente, year = term_weights(
        analyse("de regering spaarrente 2019", "nl"), "nl")
    assert de < regering < spaarrente == year
    the, government = term_weights(analyse("the government", "en"), "en")
    assert the < government


def test_who_asks_is_not_searched_for_only_what_is_asked():
    """A citizen asks in the first person and a Woo decision is written in it ("ik heb
    besloten", "mijn ministerie"): BM25 matched the two on those words alone."""
    from civicbot.index.lexical import LexicalIndex
    from civicbot.lang import without_speaker

    letter = ("Ik heb besloten uw verzoek gedeeltelijk toe te kennen. Deze e-mailadressen "
              "worden door ambtenaren van mijn ministerie gebruikt voor hun werk.")
    guidance = ("Ambtenaren mogen ChatGPT niet zomaar gebruiken: generatieve AI met "
                "consumentenvoorwaarden is voor de overheid niet toegestaan.")
    filler = [f"De gemeente besluit over de {t}." for t in ("huurtoeslag", "zwembad", "fietspad")]
    index = LexicalIndex.build([letter, guidance, *filler], ["nl"] * 5)
    scores = index.scores("Mag ik als ambtenaar ChatGPT gebruiken voor mijn werk?", "nl")
    assert scores[1] > scores[0]
    assert not index.scores("Ik en mijn, u en uw?", "nl").any()
    assert not index.scores("What are my rights and our duties?", "en")[0]
    assert without_speaker("Kunt u mij zeggen wat mijn rechten zijn?", "nl") == (
        "Kunt zeggen wat rechten zijn")
    # "us" may be the United States; a word in capitals is folded like any other
    assert without_speaker("Which rules apply to us and to YOUR firm?", "en") == (
        "Which rules apply to us and to firm")
    # each language's own words: Dutch has no pronoun "I", so that is "bijlage I", and
    # an English question's "U" is the U of "U.S."
    assert without_speaker("Wat staat er in bijlage I?", "nl") == "Wat staat er in bijlage I"
    assert without_speaker("Do I need a U.S. permit?", "en") == "Do need a U S permit"
    # English writes the numeral as the pronoun: after a part's name it is the numeral
    assert without_speaker("Can I read Annex I? If I ask", "en") == "Can read Annex I If ask"


def test_a_translated_word_weighs_as_the_question_s_own_word_not_as_its_translation():
    """The nearest Dutch word of a common English word can be a rare one: weighed as that
    rare word, its absence from a passage that answers (permits for parking, in Dutch) made
    the passage look poorly covered, and cross-lingual questions were refused twice as often
    as others."""
    from civicbot.records import Chunk, Hit
    from civicbot.retrieve import Translation, coverage

    text = ("Een vergunning voor parkeren vraagt u aan bij de gemeente. De vergunning kost "
            "120 euro per jaar.")
    hit = Hit(Chunk("p.pdf", 0, 1, 1, 0, len(text), "", text, "nl"), "p", 1.0)
    pairs = [("change", "wijzigingsbesluit"), ("parking", "parkeren"), ("permit", "vergunning"),
             ("permits", "vergunning")]
    translation = Translation.of(["gemeente"], pairs, "en", "nl")
    assert translation.text == "gemeente wijzigingsbesluit parkeren vergunning vergunning"
    assert len(translation.terms) == 4  # "permits" is "permit" again: counted once
    assert translation.coverage(hit) > 0.8 > 0.6 > coverage(translation.text, hit)
    assert Translation.of([], [], "en", "nl").coverage(hit) == 0.0


def test_coverage_counts_the_document_title_that_names_what_the_question_is_about():
    """"Onder de AVG": the GDPR's articles seldom say "General Data Protection Regulation",
    its title does. A question that names the act is as well covered by the article that
    answers it as one that does not."""
    from civicbot.records import Chunk, Hit
    from civicbot.retrieve import Translation, coverage

    text = ("The data subject shall have the right to obtain from the controller the erasure "
            "of personal data concerning him or her without undue delay.")
    chunk = Chunk("gdpr.pdf", 0, 40, 40, 0, len(text), "Article 17", text, "en")
    named = Hit(chunk, "Position of the Council … (General Data Protection Regulation)", 1.0)
    unnamed = Hit(chunk, "Position of the Council", 1.0)
    question = "Does the General Data Protection Regulation give me a right to erasure?"
    assert coverage(question, named) > 0.8 > 0.6 > coverage(question, unnamed)
    assert coverage("Do I have a right to erasure?", named) > 0.8
    translated = Translation.of(["general data protection regulation"], [("recht", "right")],
                                "nl", "en")
    assert translated.coverage(named) > translated.coverage(unnamed)
