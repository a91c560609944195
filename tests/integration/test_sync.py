"""Scheduled sources with the real embedder and real PDFs of ../shared/corpus, served from a
loopback HTTP server; and questions asked without pause while a sync replaces documents."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from matrix_harness import service_config

from civicbot.service import Service
from civicbot.sync import Syncer
from tests.conftest import MOTIE, TOZO
from tests.unit.test_sources import Site, serving

pytestmark = pytest.mark.slow


def service_for(tmp_path, embedder, sources) -> Service:
    # The multilingual windows are tested elsewhere; here they would only slow each commit.
    cfg = service_config(tmp_path, retrieval={"crosslingual": False},
                         sync={"timeout_s": 30.0}, sources=sources)
    return Service(cfg, embedder=embedder)


def test_public_sources_are_added_updated_revalidated_and_kept(tmp_path, shared, embedder):
    motie = (shared / "corpus" / MOTIE).read_bytes()
    tozo = (shared / "corpus" / TOZO).read_bytes()
    site = Site(files={"motie.pdf": motie, "tozo.pdf": tozo})
    with serving(site):
        sources = [{"url": f"{site.url}/motie.pdf",
                    "sha256": "70e218be8e2fdb77bb2dea8c4396a6f7b19e2dbb9a7e3ed5f9a2c2693bb59874"},
                   {"url": f"{site.url}/tozo.pdf", "name": "tozo-kamervragen.pdf"}]
        service = service_for(tmp_path, embedder, sources)
        syncer = Syncer(service.curator, service.cfg)

        first = syncer.run_round()
        assert [(s.name, s.status) for s in first.sources] == [
            ("motie.pdf", "added"), ("tozo-kamervragen.pdf", "added")]
        docs = service.documents()
        assert {d.name: d.page_count for d in docs} == {"motie.pdf": 1, "tozo-kamervragen.pdf": 3}
        # answers cite the public address, with the page
        hit = service.search("negatieve spaarrente grensspaarsaldo", 1)[0]
        assert hit.chunk.doc == "motie.pdf"
        answer = service.pipeline(use_model=False).ask("Wat vraagt de motie over negatieve "
                                                       "spaarrente?")
        assert answer.citations[0].link == f"{site.url}/motie.pdf#page=1"

        # unchanged: the server sees conditional requests and answers 304
        second = syncer.run_round()
        assert [s.status for s in second.sources] == ["not-modified", "not-modified"]
        assert site.answers("motie.pdf") == [200, 304] and site.answers("tozo.pdf") == [200, 304]

        # changed at the source: downloaded again and re-ingested (tozo.pdf now serves the
        # EUPL decision)
        site.files["tozo.pdf"] = (shared / "corpus" / (
            "en_eu_oj_commission_implementing_decision_2017-863_eupl.pdf")).read_bytes()
        third = syncer.run_round()
        assert [s.status for s in third.sources] == ["not-modified", "replaced"]
        assert {d.name: d.page_count for d in service.documents()}["tozo-kamervragen.pdf"] == 6

        # failing: 404, then 500; the last good copy keeps serving, reported once
        site.status["tozo.pdf"] = 404
        fourth = syncer.run_round()
        assert fourth.sources[1].status == "failed" and "404" in fourth.sources[1].message
        assert len(fourth.notices) == 1 and "tozo-kamervragen.pdf" in fourth.notices[0]
        site.status["tozo.pdf"] = 500
        fifth = syncer.run_round()
        assert fifth.sources[1].status == "failed" and fifth.notices == []
        assert {d.name: d.page_count for d in service.documents()}["tozo-kamervragen.pdf"] == 6
        assert service.search("EUPL licence compatible", 1)[0].chunk.doc == "tozo-kamervragen.pdf"

        # a sha256 mismatch is refused: the motie now serves other bytes
        site.files["motie.pdf"] = tozo
        sixth = syncer.run_round()
        assert sixth.sources[0].status == "failed" and "sha256" in sixth.sources[0].message
        kept = (tmp_path / "data" / "sources" / "motie.pdf").read_bytes()
        assert hashlib.sha256(kept).hexdigest() == sources[0]["sha256"]
        assert {d.name: d.page_count for d in service.documents()}["motie.pdf"] == 1

        # recovery is said once too
        del site.status["tozo.pdf"]
        seventh = syncer.run_round()
        assert any("works again" in n and "tozo" in n for n in seventh.notices)

    history = [(r.action, r.name) for r in service.curator.history()]
    assert history == [("added", "motie.pdf"), ("added", "tozo-kamervragen.pdf"),
                       ("replaced", "tozo-kamervragen.pdf"), ("rejected", "motie.pdf")]


def test_questions_never_meet_a_half_built_index(tmp_path, shared, embedder):
    """Citizens ask without pause while sync rounds replace a document back and forth. Every
    search and every answer must succeed, and every citation must pair a title with passages
    of the same version, as some complete generation held them."""
    versions = [(shared / "corpus" / MOTIE).read_bytes(), (shared / "corpus" / TOZO).read_bytes()]
    site = Site(files={"wisselend.pdf": versions[0]})
    with serving(site):
        service = service_for(tmp_path, embedder,
                              [{"url": f"{site.url}/wisselend.pdf"}])
        (tmp_path / "corpus" / "vast.pdf").write_bytes(
            (shared / "corpus" / "en_eu_oj_commission_implementing_decision_2017-863_eupl.pdf"
             ).read_bytes())
        syncer = Syncer(service.curator, service.cfg)
        syncer.run_round()

        complete: set[tuple[str, str, str]] = set()  # (doc, title, passage) per generation

        def remember() -> None:
            snap = service.store.load(service.embedder.name)
            complete.update((c.doc, snap.docs[c.doc].title, c.text) for c in snap.chunks)

        remember()
        stop = threading.Event()
        seen: list[tuple[str, str, str]] = []
        failures: list[BaseException] = []
        asked = [0]
        questions = ["Wat vraagt de motie over negatieve spaarrente?",
                     "Wat is de rente op een Tozo-lening?",
                     "Which licences are compatible with the EUPL?"]

        def citizen(n: int) -> None:
            pipeline_use = n % 2 == 0
            while not stop.is_set():
                q = questions[asked[0] % len(questions)]
                try:
                    if pipeline_use:
                        answer = service.pipeline(use_model=False).ask(q)
                        snap_titles = {h.chunk.doc: h.title for h in answer.hits}
                        seen.extend((h.chunk.doc, snap_titles[h.chunk.doc], h.chunk.text)
                                    for h in answer.hits)
                    else:
                        hits = service.search(q, 5)
                        assert hits, q
                        seen.extend((h.chunk.doc, h.title, h.chunk.text) for h in hits)
                except BaseException as exc:  # noqa: BLE001 - every failure counts
                    failures.append(exc)
                asked[0] += 1

        threads = [threading.Thread(target=citizen, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        try:
            for round_no in range(1, 7):
                site.files["wisselend.pdf"] = versions[round_no % 2]
                result = syncer.run_round()
                assert [s.status for s in result.sources] == ["replaced"]
                remember()
                # let every citizen ask on this version before the next swap, so both
                # versions are served (a poll with a limit, not a pause)
                target, deadline = asked[0] + 6, time.monotonic() + 30
                while asked[0] < target and not failures and time.monotonic() < deadline:
                    stop.wait(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
    assert failures == []
    assert asked[0] > 0 and seen
    assert set(seen) <= complete  # nothing from a half-built index
    # both versions were served while the questions ran
    titles = {title for doc, title, _ in seen if doc == "wisselend.pdf"}
    assert len(titles) == 2, titles
