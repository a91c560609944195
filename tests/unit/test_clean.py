from civicbot.ingest.clean import drop_contents, normalise, running_lines, strip_running_lines
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


def test_a_table_of_contents_is_left_out():
    """Its entries hold every heading of the document, so broad questions matched it and got
    an entry quoted as the answer. A wrapped title and a page number on a line of its own are
    part of it; the heading "Inhoud" goes with it; the text after it stays."""
    page = ("Inhoud\n\n1. Inleiding en leeswijzer 4\n2. Inventarisatie AI & Algoritmes 5\n"
            "2.1. Kies een registratiemethode 5\nWelke impact assessments (bijv. IAMA en DPIA)\n"
            "moeten we uitvoeren? 9\nHoe organiseren we AI-governance?\n11\n"
            "4. AI-modellen voor algemene doeleinden met een systeemrisico 15\n"
            "Deze handreiking is bedoeld voor overheidsorganisaties.")
    assert drop_contents(page, number=3, page_count=24) == (
        "Deze handreiking is bedoeld voor overheidsorganisaties.")


def test_lists_that_are_not_a_table_of_contents_stay():
    # A cover page's distribution codes with counts: one word each.
    cover = "EJUSTICE 3\nCOSI 6\nIXIM 15\nENFOPOL 21"
    assert drop_contents(cover, number=1, page_count=300) == cover
    # Figures out of order, or beyond the document's pages, are a table of data.
    table = ("Regio Noord en Oost 12\nRegio Zuid en West 4\nRegio Midden 9\n"
             "Regio Randstad 7\nRegio Caribisch Nederland 3")
    assert drop_contents(table, number=2, page_count=40) == table
    amounts = ("Aantal verzoeken in 2021 120\nAantal verzoeken in 2022 180\n"
               "Aantal verzoeken in 2023 260\nAantal verzoeken in 2024 310")
    assert drop_contents(amounts, number=2, page_count=40) == amounts
    # Three entries are too few to tell.
    short = "Inleiding tot de regeling 2\nDe aanvraag indienen 3\nBezwaar maken 4"
    assert drop_contents(short, number=1, page_count=10) == short
    # A law citing its articles at line ends, far into the document, points back, not ahead.
    law = ("as referred to in Article 5\nthe obligations laid down in Article 9\n"
           "without prejudice to Article 12\nthe conditions set out in Article 14")
    assert drop_contents(law, number=100, page_count=270) == law
    assert drop_contents(law, number=2, page_count=270) != law  # shaped like contents there


def test_a_long_line_is_read_in_linear_time():
    """A pattern for contents entries backtracked quadratically on a long line (27 s for a
    page of 8,000 words without a break); a hostile PDF has such pages. Timing is measured
    outside the tests; here a line that would have taken hours is simply handled."""
    line = "woord " * 200_000
    assert drop_contents(line, number=1, page_count=10) == line
    contents = "\n".join(f"Hoofdstuk over onderwerp {n} {n + 2}" for n in range(1, 40))
    assert drop_contents(contents + "\n" + line, number=1, page_count=50) == line.strip()


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
