from civicbot.ingest.clean import normalise, running_lines, strip_running_lines
from civicbot.ingest.quality import page_problem


def test_normalise_ligatures_hyphens_and_spaces():
    text = "Het e\ufb03ciënte  risico-\ngebaseerde kader\r\nAI-\nverordening\n- lijst"
    assert normalise(text) == "Het efficiënte risicogebaseerde kader\nAI-verordening\n- lijst"


def test_normalise_removes_toc_dot_leaders():
    assert normalise("1 Inleiding ........................ 7") == "1 Inleiding 7"


def test_running_headers_and_page_numbers_are_removed():
    bodies = ["Scope of the rules.", "Obligations of providers.", "Penalties apply.",
              "Entry into force.", "Final provisions."]
    pages = [f"5662/24 RB/ek {n}\nTREE.2.B LIMITE EN\n{body}\n{n}"
             for n, body in enumerate(bodies, 1)]
    shapes = running_lines(pages)
    assert strip_running_lines(pages[2], shapes) == "Penalties apply."


def test_articles_opening_every_page_are_kept():
    pages = [f"Artikel {n}\nDe regel nummer {n} luidt anders dan de vorige." for n in range(1, 6)]
    assert strip_running_lines(pages[1], running_lines(pages)).startswith("Artikel 2")


def test_short_documents_keep_their_lines():
    pages = ["Title\nBody", "Title\nMore"]
    assert running_lines(pages) == set()


def test_quality_gate():
    dutch = ("De AI-verordening beschrijft de vereisten die worden gesteld aan AI-systemen en "
             "de regels die aanbieders en gebruikers moeten volgen wanneer zij deze systemen "
             "ontwikkelen en gebruiken. Dit is een gewone pagina met tekst.")
    assert page_problem(dutch) is None
    assert page_problem("") == "no-text"
    assert page_problem("• • • •\n•") == "no-text"
    assert page_problem("/1/2/3/4/5/7/8/2/9/4/10/11/3/5/7/8/2/9/4/10/12/3/13/14 " * 10) == "garbled"
    garbage = " ".join("xq" + "zvbk" * (i % 3 + 1) for i in range(60))
    assert page_problem(garbage) == "garbled"
