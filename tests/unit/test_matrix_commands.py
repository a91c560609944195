from civicbot.matrix.commands import (
    MAX_LISTED_DOCUMENTS,
    about_text,
    help_text,
    parse_command,
    privacy_text,
    sources_text,
)
from civicbot.records import DocInfo


def test_parse_commands_and_dutch_aliases():
    assert parse_command("what is !help?") is None
    assert parse_command("hello") is None
    assert parse_command("!!!") is None
    c = parse_command("  !HELP ")
    assert (c.name, c.language) == ("help", "en")
    assert (parse_command("!hulp").name, parse_command("!hulp").language) == ("help", "nl")
    assert parse_command("!over").name == "about"
    assert parse_command("!bronnen").name == "sources"
    assert parse_command("!documents").name == "sources"
    assert parse_command("!privacy").language is None
    assert parse_command("!privacy en").language == "en"
    unknown = parse_command("!weather today")
    assert (unknown.name, unknown.word, unknown.args) == ("unknown", "weather", "today")


def test_help_in_both_languages():
    assert "!sources" in help_text("en").body and "!bronnen" in help_text("nl").body


def test_about_card_is_escaped_and_links_the_source_code():
    facts = {"model": "smol<lm>.gguf", "model_sha256": "abc123", "documents": "3",
             "extra": "x"}
    r = about_text(facts, "en", "https://example.org/civicbot")
    assert "Language model: smol<lm>.gguf" in r.body and "extra: x" in r.body
    assert "smol&lt;lm&gt;.gguf" in r.html
    assert '<a href="https://example.org/civicbot">' in r.html
    assert "no external AI service" in r.body
    assert "Taalmodel: smol<lm>.gguf" in about_text(facts, "nl", "x").body


def test_sources_list_is_sorted_capped_and_dated():
    docs = [DocInfo(f"d{i}.pdf", f"Doc {i:03d}", "0" * 64, 2, "nl", 1,
                    added_at="2024-01-02T03:04:05", source="https://example.org/d")
            for i in range(MAX_LISTED_DOCUMENTS + 5)]
    r = sources_text(list(reversed(docs)), "en")
    # when and from where each document was added
    assert r.body.splitlines()[1] == "- Doc 000 (2024-01-02, 2 p., https://example.org/d)"
    uploaded = DocInfo("u.pdf", "Upload", "0" * 64, 1, "nl", 1, added_at="2024-02-03T00:00:00",
                       source="/srv/corpus", added_by="@librarian:example.org")
    body = sources_text([uploaded], "nl").body
    assert "(2024-02-03, 1 p., toegevoegd door een redacteur)" in body
    assert "@librarian" not in body  # citizens see the role; the audit log keeps the id
    assert r.body.endswith("… and 5 more.")
    assert sources_text([], "nl").body == "Er zijn nog geen documenten geladen."


def test_privacy_text_follows_question_logging():
    assert "not stored or logged" in privacy_text("en", log_questions=False).body
    assert "question logging on" in privacy_text("en", log_questions=True).body
    assert "niet door de bot opgeslagen" in privacy_text("nl", log_questions=False).body
