from civicbot.ingest.chunk import chunk_document
from civicbot.records import Document, Page


def _doc(*pages: str) -> Document:
    return Document("d.pdf", "T", "x", len(pages), "nl",
                    tuple(Page(i + 1, t) for i, t in enumerate(pages)))


def test_offsets_quote_the_page_verbatim():
    body = "\n".join(f"Zin nummer {i} van deze alinea gaat over regels." for i in range(80))
    doc = _doc(body, "Artikel 5\nDe tweede pagina begint met een artikel.")
    chunks = chunk_document(doc, budget=60, overlap=10)
    assert len(chunks) > 3
    for c in chunks:
        if c.page_start == c.page_end:
            page = doc.pages[c.page_start - 1].text
            assert page[c.char_start : c.char_end] == c.text
    assert chunks[-1].page_start == 2 and chunks[-1].heading.startswith("Artikel 5")


def test_articles_and_questions_start_new_chunks():
    text = ("Artikel 1\n" + "Eerste artikel tekst hier. " * 30 + "\nArtikel 2\n"
            + "Tweede artikel tekst. " * 30 + "\nWat moet een aanbieder doen?\n"
            + "Een aanbieder moet registreren. " * 10)
    chunks = chunk_document(_doc(text), budget=200, overlap=20)
    starts = [c.text.split("\n")[0] for c in chunks]
    assert starts == ["Artikel 1", "Artikel 2", "Wat moet een aanbieder doen?"]
    assert chunks[2].heading == "Artikel 2 > Wat moet een aanbieder doen?"


def test_budget_split_overlaps_and_long_paragraphs_are_cut_at_sentences():
    para = " ".join(f"Dit is zin {i} met wat woorden erin." for i in range(100))
    chunks = chunk_document(_doc(para), budget=100, overlap=20)
    assert len(chunks) >= 5
    assert all(len(c.text.split()) <= 160 for c in chunks)
    assert chunks[0].text.split()[-1] in chunks[1].text


def test_chunks_span_pages():
    doc = _doc("Begin van een zin die doorloopt", "op de volgende pagina en eindigt.")
    (chunk,) = chunk_document(doc)
    assert (chunk.page_start, chunk.page_end) == (1, 2)
    assert chunk.text == "Begin van een zin die doorloopt\nop de volgende pagina en eindigt."
