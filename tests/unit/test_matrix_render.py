from civicbot.matrix.render import (
    answer_text_from_body,
    render_answer,
    render_notice,
    render_partial,
    safe_link,
    shorten,
)
from civicbot.records import Answer, Citation


def _answer(**kw):
    c = Citation(1, "a.pdf", "Plan <2024>", 3, 4, "Quote with <b>tags</b> & more " * 30,
                 "https://example.org/a.pdf#page=3")
    base = dict(question="q", text="Answer <script>x</script> [1]", mode="generated",
                language="en", citations=[c])
    return Answer(**{**base, **kw})


def test_final_answer_has_sources_with_quotes_and_links_escaped():
    r = render_answer(_answer())
    assert r.body.startswith("Answer <script>x</script> [1]\n\nSources:\n[1] Plan <2024>, pp. 3–4")
    assert "<https://example.org/a.pdf#page=3>" in r.body
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html
    assert '<a href="https://example.org/a.pdf#page=3">Plan &lt;2024&gt;</a>' in r.html
    assert "<blockquote>Quote with &lt;b&gt;tags&lt;/b&gt; &amp; more" in r.html
    assert "it can be wrong" in r.body


def test_dutch_answer_gets_dutch_labels_and_single_page():
    c = Citation(2, "b.pdf", "Nota", 5, 5, "citaat", "", ocr=True)
    r = render_answer(_answer(language="nl", citations=[c]))
    # no public address: the file name tells the citizen which document to ask for
    assert ("Bronnen:\n[2] Nota (b.pdf), p. 5 "
            "(tekst herkend uit een scan — controleer het origineel)") in r.body
    assert "<a " not in r.html  # no link when there is none
    assert "Automatisch gegenereerd" in r.body


def test_unsafe_links_are_dropped():
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("file:///etc/passwd") is None
    assert safe_link("docs/a.pdf") is None
    assert safe_link("https://example.org/x") == "https://example.org/x"
    c = Citation(1, "a.pdf", "A", 1, 1, "q", "javascript:alert(1)")
    r = render_answer(_answer(citations=[c]))
    assert "javascript" not in r.html and "javascript" not in r.body


def test_refusal_without_citations_has_no_sources_heading():
    r = render_answer(_answer(mode="refused", citations=[], text="The documents do not say."))
    assert "Sources" not in r.body and "<ul>" not in r.html


def test_partial_and_notice():
    assert render_partial("", "nl").body.startswith("Ik zoek")
    p = render_partial("Half an ans", "en")
    assert p.body == "Half an ans …" and p.html == "<p>Half an ans …</p>"
    n = render_notice("line one\nline <two>\n\nsecond")
    assert n.html == "<p>line one<br>line &lt;two&gt;</p><p>second</p>"


def test_quotes_are_shortened_at_a_word():
    s = shorten("word " * 100, 30)
    assert len(s) <= 30 and s.endswith("…") and not s.endswith(" …")


def test_answer_text_is_recovered_from_a_final_body_for_history():
    r = render_answer(_answer())
    assert answer_text_from_body("* " + r.body) == "Answer <script>x</script> [1]"
    nl = render_answer(_answer(language="nl", citations=[]))
    assert answer_text_from_body(nl.body) == "Answer <script>x</script> [1]"
