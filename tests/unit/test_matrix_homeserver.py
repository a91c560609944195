import json

from civicbot.homeserver import Homeserver
from civicbot.texts import language_of, t


def test_config_is_loopback_only_without_federation_and_keeps_secrets(tmp_path):
    hs = Homeserver(tmp_path, room_version="10")
    cfg = hs.config()
    (listener,) = cfg["listeners"]
    assert listener["bind_addresses"] == ["127.0.0.1"] and listener["port"] == hs.port
    assert [r["names"] for r in listener["resources"]] == [["client"]]
    assert cfg["enable_registration"] is False and cfg["trusted_key_servers"] == []
    assert cfg["default_room_version"] == "10"
    assert cfg["rc_message"]["per_second"] >= 100
    assert cfg["database"]["name"] == "sqlite3"
    again = Homeserver(tmp_path)
    assert again.registration_shared_secret == hs.registration_shared_secret
    assert again.port == hs.port  # the same data folder keeps its port while it is free
    assert "rc_message" not in Homeserver(tmp_path, relaxed_rate_limits=False).config()
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "secrets.json").read_text())["port"] == hs.port


def test_language_guess_and_texts():
    assert language_of("Hoeveel kost een parkeervergunning in de gemeente?") == "nl"
    assert language_of("How much does a parking permit cost?") == "en"
    assert language_of("!privacy", default="en") == "en"
    assert "3" in t("queued", "en", n=3) and "wachtrij" in t("queued", "nl", n=3)
