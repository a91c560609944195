"""`civicbot eval`: the sub-commands that measure retrieval and answer quality (civicbot/
evaluate.py) and cross-validate and train the learned models (civicbot/crossval.py), and
the table they print. civicbot/cli.py adds them to the `civicbot` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from civicbot import config as config_mod
from civicbot.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `eval` command and its kinds, on `sub` (the `civicbot` command's sub-parsers)."""
    s = sub.add_parser("eval", help="measure retrieval and answer quality")
    ev = s.add_subparsers(dest="eval_command", metavar="KIND")
    e = ev.add_parser("beir", help="retrieval on a BEIR-layout folder")
    e.add_argument("folder", type=Path)
    e.add_argument("--json", action="store_true")
    e = ev.add_parser("qa", help="questions in the dev.jsonl format")
    e.add_argument("file", type=Path)
    e.add_argument("--json", action="store_true")
    e.add_argument("--retrieval-only", action="store_true")
    e.add_argument("--extractive", action="store_true",
                   help="answer by quoting only, without the local model (fast)")
    e.add_argument("--details", type=Path, metavar="OUT.jsonl",
                   help="write one line per question (mode, citations, confidence, ...)")
    e = ev.add_parser("cv", help=(
        "cross-validate the learned ranker and refusal classifier on labelled questions, "
        "folds grouped by document (answers by quoting)"))
    e.add_argument("file", type=Path)
    e.add_argument("--folds", type=int, default=5)
    e.add_argument("--no-ranker", action="store_true", help="rank by the hand-set fusion")
    e.add_argument("--no-quotes", action="store_true",
                   help="choose quoted sentences by the hand-set score, not the learned one")
    e.add_argument("--no-refusal", action="store_true",
                   help="refuse below a coverage threshold calibrated on the other folds")
    e.add_argument("--details", type=Path, metavar="OUT.jsonl")
    e.add_argument("--grid", nargs="?", const="quotes", choices=("quotes", "retrieval"),
                   help="also choose the quote (or retrieval) settings on the other folds "
                        "(nested), and print the choice on all the questions")
    e.add_argument("--alone", action="store_true",
                   help="also ask each held-out question of its own document alone (an index "
                        "of that document, made from the index's cache), with the models "
                        "fitted on the whole index")
    e.add_argument("--json", action="store_true")
    e = ev.add_parser("train", help=(
        "fit the ranker and the refusal classifier on labelled questions "
        "(writes ranker.json and refusal.json)"))
    e.add_argument("file", type=Path)
    e.add_argument("--out", type=Path, default=None,
                   help="folder to write to (default: civicbot's own data folder)")
    e = ev.add_parser("calibrate", help="the refusal threshold for questions in dev.jsonl format")
    e.add_argument("file", type=Path)


def cmd_eval(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from civicbot import crossval, evaluate

    if args.eval_command == "beir":
        result = evaluate.beir(args.folder, cfg)
        print(f"indexed in {result.pop('index_seconds')} s", file=sys.stderr)
    elif args.eval_command == "calibrate":
        from civicbot.service import Service

        pairs = evaluate.confidences(args.file, Service(cfg))
        threshold = evaluate.calibrate(pairs)
        for score, answerable in sorted(pairs):
            print(f"{score:.3f} {'answerable' if answerable else 'unanswerable'}")
        for line in evaluate.calibration_check(pairs):
            print(line)
        print(f"refusal threshold: {threshold}")
        return 0
    elif args.eval_command == "qa":
        result = evaluate.qa(args.file, cfg, retrieval_only=args.retrieval_only,
                             use_model=not args.extractive, details=args.details)
    elif args.eval_command == "cv":
        result = crossval.cross_validate(args.file, cfg, args.folds,
                                         ranker=not args.no_ranker,
                                         refusal=not args.no_refusal,
                                         quotes=not args.no_quotes, details=args.details,
                                         grid={"quotes": crossval.GRID,
                                               "retrieval": crossval.RETRIEVAL_GRID,
                                               None: None}[args.grid],
                                         alone=args.alone)
    elif args.eval_command == "train":
        from civicbot.rank import DATA

        for path in crossval.train(args.file, cfg, args.out or DATA):
            print(f"wrote {path}")
        return 0
    else:
        raise ConfigError("usage: civicbot eval beir DIR | civicbot eval qa FILE | "
                          "civicbot eval cv FILE | civicbot eval train FILE")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        alone: Any = result.pop("alone", None)
        _print_figures(result)
        if alone is not None:
            print("\neach question asked of its own document alone:")
            _print_figures(alone)
    return 0


def _print_figures(result: dict[str, Any]) -> None:
    """The figures as a table, with a column per question group when there are groups."""
    groups = result.pop("groups", {}) if isinstance(result.get("groups"), dict) else {}
    for choice in result.pop("chosen", []):
        print("chosen on the other folds:", json.dumps(choice))
    if "whole" in result:
        print("chosen on every question:", json.dumps(result.pop("whole")))
    names = list(groups)
    print(f"{'':28} {'all':>8}" + "".join(f" {n:>12}" for n in names))
    for key, value in result.items():
        print(f"{key:28} {value!s:>8}"
              + "".join(f" {groups[n].get(key, '')!s:>12}" for n in names))
