"""The `civicbot` command. Errors become one line on stderr and an exit code:
0 all well, 1 something failed (e.g. a rejected file), 2 usage or configuration errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicbot import __version__, cli_eval
from civicbot import config as config_mod
from civicbot.errors import CivicbotError, ConfigError
from civicbot.texts import page_label, t

if TYPE_CHECKING:  # the commands import what they need when they run: a quick --help
    from civicbot.corpus import Progress
    from civicbot.records import Answer, Turn
    from civicbot.service import Service

log = logging.getLogger("civicbot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="civicbot", description=(
        "A civic assistant that answers questions about public policy documents "
        "with a local open model."))
    p.add_argument("--version", action="version", version=f"civicbot {__version__}")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: ./config.toml when present, else built-in defaults)")
    p.add_argument("--index", metavar="DIR", help="index folder (overrides [index] path)")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("ingest", help="add or update documents in the index")
    s.add_argument("paths", nargs="*", type=Path,
                   help="files or folders (default: the configured corpus folders)")
    s.add_argument("--rebuild", action="store_true",
                   help="throw the index away and build it again (e.g. after changing model)")

    s = sub.add_parser("docs", help="list or remove documents")
    docs = s.add_subparsers(dest="docs_command", metavar="ACTION")
    d = docs.add_parser("list", help="the documents in the index")
    d.add_argument("--json", action="store_true")
    d = docs.add_parser("remove", help="take documents out of the index")
    d.add_argument("names", nargs="+")
    d = docs.add_parser("history", help="every change of the documents: what, who, when")
    d.add_argument("--json", action="store_true")

    sub.add_parser("sync", help=(
        "one sync round now: apply changes in the corpus folders and fetch the [[sources]]"))

    s = sub.add_parser("search", help="ranked passages for a query")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("ask", help="answer one question, with sources")
    s.add_argument("question")
    s.add_argument("--json", action="store_true")

    sub.add_parser("chat", help="a conversation in the terminal")
    s = sub.add_parser("models", help="put the embedded default models in place, or pull "
                       "another GGUF model")
    mo = s.add_subparsers(dest="models_command", metavar="ACTION")
    m = mo.add_parser("pull", help="download a GGUF model into models/ (resumable, verified)")
    m.add_argument("url", help="the address of the .gguf file")
    m.add_argument("--sha256", default="", metavar="HEX",
                   help="refuse the download unless it has this sha256 (the model page lists it)")
    m.add_argument("--use", action="store_true",
                   help="also set [llm] model_path in the config file to the new model")

    sub.add_parser("start", help=(
        "ingest the corpus and run the bot (on an embedded local homeserver when no "
        "homeserver is configured)"))

    sub.add_parser("run", help="run the Matrix bot against the configured homeserver")
    sub.add_parser("stats", help="feedback counts (thumbs up and down) on answers")
    sub.add_parser("doctor", help=(
        "check the installation (config, homeserver, models, index, disk, memory); "
        "exit 0 only when all is well"))

    cli_eval.add_parser(sub)
    return p


def _setup_logging(verbose: bool) -> None:
    from civicbot.logs import redact_handlers

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    redact_handlers()


def _progress_bar() -> Progress | None:
    """A progress callback for ingestion: a bar on a terminal, nothing when piped."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = None

    def update(name: str, done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="file", file=sys.stderr, leave=False)
        bar.n = done
        bar.set_postfix_str(name[:40])
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def cmd_ingest(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.service import Service

    service = Service(cfg)
    folders = list(cfg.paths.corpus)
    paths = args.paths or folders
    if not args.paths:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
    reports = service.curator.ingest(paths, by="cli", prune_folders=[] if args.paths else folders,
                                     progress=_progress_bar(), rebuild=args.rebuild)
    for r in reports:
        print(r.describe())
    if not reports:
        where = ", ".join(str(p) for p in paths)
        print(f"No documents found in {where}. Put PDF, text, Markdown or HTML files there "
              "and run `civicbot ingest` again.")
    rejected = sum(not r.ok for r in reports)
    total = len(service.corpus.documents())
    print(f"{total} documents in the index; {rejected} file(s) rejected.")
    return 1 if rejected else 0


def cmd_docs(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.service import Service

    service = Service(cfg)
    if args.docs_command == "history":
        records = service.curator.history()
        if args.json:
            print(json.dumps([dataclasses.asdict(r) for r in records], ensure_ascii=False,
                             indent=1))
        for r in records if not args.json else ():
            print(r.describe())
        if not records and not args.json:
            print("No changes have been recorded yet.")
        return 0
    if args.docs_command == "remove":
        reports = service.curator.remove(args.names, by="cli")
        for report in reports:
            print(report.describe())
        return 0 if all(report.ok for report in reports) else 1
    docs = sorted(service.corpus.documents().values(), key=lambda d: d.name)
    if getattr(args, "json", False):
        print(json.dumps([dataclasses.asdict(d) for d in docs], ensure_ascii=False, indent=1))
        return 0
    for d in docs:
        print(f"{d.name}\t{d.title}\t{d.page_count} p.\t{d.chunks} passages\t{d.language}"
              f"\t{d.added_at}")
    if not docs:
        print("The index holds no documents yet; add some with `civicbot ingest`.")
    return 0


def cmd_sync(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.service import Service
    from civicbot.sync import Syncer

    service = Service(cfg)
    result = Syncer(service.curator, cfg).run_round()
    for r in result.folders:
        if r.status != "unchanged":
            print(r.describe())
    for s in result.sources:
        print(s.describe())
    if not cfg.sources:
        print("No [[sources]] are configured; the corpus folders were checked.")
    rejected = sum(not r.ok for r in result.folders)
    print(f"{len(service.corpus.documents())} documents in the index; "
          f"{sum(not s.ok for s in result.sources)} source(s) failed; {rejected} file(s) rejected.")
    return 0 if result.ok and not rejected else 1


def cmd_search(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.service import Service

    hits = Service(cfg).search(args.query, args.k)
    if args.json:
        print(json.dumps([{
            "doc": h.chunk.doc, "title": h.title, "page_start": h.chunk.page_start,
            "page_end": h.chunk.page_end, "score": round(h.score, 4),
            "heading": h.chunk.heading, "text": h.chunk.text, "ocr": h.chunk.ocr,
        } for h in hits], ensure_ascii=False, indent=1))
        return 0
    for rank, h in enumerate(hits, 1):
        pages = page_label(h.chunk.page_start, h.chunk.page_end)
        snippet = " ".join(h.chunk.text.split())[:300]
        print(f"{rank}. {h.chunk.doc} ({pages}) score {h.score:.2f}\n   {snippet}\n")
    if not hits:
        print("Nothing found.")
    return 0


def _print_answer(answer: Answer) -> None:
    print(answer.text)
    if answer.citations:
        print()
        for c in answer.citations:
            pages = page_label(c.page_start, c.page_end)
            print(f"[{c.number}] {c.title} — {c.doc}, {pages} ({c.link})\n    “{c.quote}”")
            if c.ocr:
                print(f"    ({t('ocr', answer.language)})")


def _answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text, "refused": answer.refused, "mode": answer.mode,
        "language": answer.language, "seconds": round(answer.seconds, 2),
        "citations": [dataclasses.asdict(c) for c in answer.citations],
    }


def cmd_ask(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.service import Service

    service = Service(cfg)
    if args.json:
        print(json.dumps(_answer_json(service.ask(args.question)), ensure_ascii=False, indent=1))
    else:
        _answer_in_two_steps(service, args.question, [])
    return 0


def _answer_in_two_steps(service: Service, question: str, history: Sequence[Turn]) -> Answer:
    """Print the quoted answer (or the refusal) at once, then the model's checked lead when
    it adds one, as the bot does; returns the final answer."""
    answer = service.quick(question, history)
    _print_answer(answer)
    if not service.wants_model(answer):
        return answer
    refined = service.refine(answer)
    if refined is None:
        return answer
    lead = refined.text.removesuffix(answer.text).strip()
    print(f"\n{lead}")
    return refined


def cmd_chat(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.records import Turn
    from civicbot.service import Service

    service = Service(cfg)
    history: list[Turn] = []
    print("Ask a question about the documents (empty line or Ctrl-D to stop).")
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            break
        if not question:
            break
        answer = _answer_in_two_steps(service, question, history)
        history += [Turn("user", question), Turn("assistant", answer.text)]
    return 0


def cmd_models(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.index.embed import model_location
    from civicbot.models import ensure_default_llm

    if getattr(args, "models_command", None) == "pull":
        return _models_pull(args, cfg)
    print(f"embedding model: {model_location(cfg.embedding.model)}")
    if cfg.llm.model_path:
        path = cfg.paths.llm_model
        if not path.exists():
            raise CivicbotError(f"llm.model_path: {path} does not exist")
    else:
        path = ensure_default_llm(cfg.paths.models)
    print(f"language model: {path}")
    return 0


def _models_pull(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.models import file_sha256, pull, use_model

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total or None, initial=done, unit="B", unit_scale=True,
                       file=sys.stderr, disable=not sys.stderr.isatty())
        bar.update(done - bar.n)

    try:
        path = pull(args.url, cfg.paths.models, args.sha256, progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"language model: {path} (sha256 {args.sha256.lower() or file_sha256(path)})")
    setting = f"{config_mod.MODELS_DIR}/{path.name}"
    if args.use:
        config_path = Path(args.config or "config.toml")
        use_model(config_path, setting)
        print(f"set in {config_path}: [llm] model_path = \"{setting}\"")
    else:
        print(f"to use it, put in config.toml under [llm]:\nmodel_path = \"{setting}\"")
    return 0


def _bot_logging(cfg: config_mod.Config, verbose: bool) -> None:
    from civicbot.logs import setup

    setup(cfg.logging, verbose)


def cmd_run(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.matrix.bot import run
    from civicbot.service import Service

    if not cfg.matrix.homeserver:
        raise ConfigError("matrix.homeserver: not set; set it (and matrix.user_id with an "
                          "access token or password), or use `civicbot start` for an embedded "
                          "local homeserver")
    _bot_logging(cfg, args.verbose)
    run(cfg, Service(cfg))
    return 0


def cmd_stats(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot.matrix.feedback import feedback_stats

    stats = feedback_stats(cfg.paths.data)
    print(f"answers with feedback: {stats.answers}\n👍 {stats.up}\n👎 {stats.down}\n"
          f"votes: {stats.total}")
    return 0


def _adopt_starter_sources(cfg: config_mod.Config, service: Service) -> config_mod.Config:
    """A first run with nothing to ask about: fetch the starter documents, and keep them as
    the configured sources so the bot's schedule keeps them current. Returns the config the
    bot runs with; `service` keeps the one it was built with, as its corpus, curator and
    models were built from it (the sources are no setting of the service)."""
    import dataclasses

    from civicbot.sync import Syncer, starter_sources

    starter = starter_sources(cfg, service.corpus.documents())
    if not starter:
        return cfg
    cfg = dataclasses.replace(cfg, sources=starter)
    print(f"No documents of your own yet: fetching {len(starter)} starter documents from "
          f"public sources ({cfg.sync.starter_sources}).", flush=True)
    reports, _ = Syncer(service.curator, cfg).fetch_sources()
    for report in reports:
        print(report.describe())
    if not any(r.ok for r in reports):
        print("The starter documents could not be fetched (no internet access?). Carrying on "
              "with what is in the corpus folders; the bot tries the sources again on its "
              "schedule.")
    return cfg


def cmd_start(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    """The README's first command: ingest the configured corpus, then serve Matrix."""
    from civicbot.matrix.bot import run
    from civicbot.service import Service

    service = Service(cfg)
    folders = list(cfg.paths.corpus)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    reports = service.curator.ingest(folders, by="folder", prune_folders=folders,
                                     progress=_progress_bar())
    for r in reports:
        if r.status != "unchanged":
            print(r.describe())
    cfg = _adopt_starter_sources(cfg, service)
    count = len(service.corpus.documents())
    print(f"{count} documents in the index.")
    if count == 0:
        print("The corpus is empty: put PDF, text, Markdown or HTML files in "
              f"{', '.join(str(f) for f in folders)} and start again (or run "
              "`civicbot ingest`). The bot will say it has no documents until then.")
    _bot_logging(cfg, args.verbose)
    if cfg.matrix.homeserver:
        run(cfg, service)
        return 0
    from civicbot import embedded

    local, bot_cfg = embedded.start(cfg)
    try:
        print(local.instructions(), flush=True)
        # Only the bot's login changes; the service, built from `cfg`, reads none of it.
        run(bot_cfg, service)
    finally:
        local.homeserver.stop()
    return 0


COMMANDS = {"ingest": cmd_ingest, "docs": cmd_docs, "search": cmd_search, "eval": cli_eval.cmd_eval,
            "ask": cmd_ask, "chat": cmd_chat, "models": cmd_models, "run": cmd_run,
            "stats": cmd_stats, "start": cmd_start, "sync": cmd_sync}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    if not args.command:
        parser.print_help()
        return 2
    if args.command == "doctor":  # reports a broken config as one of its checks
        from civicbot.doctor import main as doctor

        return doctor(args.config, args.index)
    try:
        cfg = config_mod.load(args.config)
        if args.index:
            cfg = cfg.replace("index", path=str(Path(args.index).resolve()))
        return COMMANDS[args.command](args, cfg)
    except ConfigError as exc:
        print(f"civicbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except CivicbotError as exc:
        print(f"civicbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("civicbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
