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
