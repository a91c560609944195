"""Does the model's lead help? On a fixed subset of labelled questions (default 60
answerable + 20 unanswerable of ../shared/eval/train.jsonl, picked by a hash of their id),
per kind of question asked (date, amount, name, number, duration, other): the key-fact rate
of the quoted answer alone and with the model's lead, how often a lead was written, the
share of the lead's citations on a gold page against the quoted answer's, and leads written
for unanswerable questions.

    nice .venv/bin/python bench/lead.py --index DIR [--eval FILE] [--answerable 60]
                                        [--unanswerable 20] [--details OUT.jsonl]

The model is asked for every quoted answer here (no skipping rule), so the figures show
where skipping it costs nothing. Choose on train.jsonl, never on dev.jsonl."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def subset(rows: list[dict[str, Any]], answerable: int, unanswerable: int) -> list[dict[str, Any]]:
    """The same questions every run: ordered by a hash of their id."""
    def key(row: dict[str, Any]) -> str:
        return hashlib.sha256(row["id"].encode()).hexdigest()

    ordered = sorted(rows, key=key)
    return ([r for r in ordered if r["answerable"]][:answerable]
            + [r for r in ordered if not r["answerable"]][:unanswerable])


def main() -> int:
    from civicbot import config as config_mod
    from civicbot.answer.extractive import asked
    from civicbot.answer.text import cited_numbers
    from civicbot.evaluate import _contains_fact, _hit
    from civicbot.service import Service

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--eval", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "train.jsonl")
    parser.add_argument("--answerable", type=int, default=60)
    parser.add_argument("--unanswerable", type=int, default=20)
    parser.add_argument("--details", type=Path)
    args = parser.parse_args()
    cfg = config_mod.build({"index": {"path": str(args.index)}}, env={}, base_dir=str(ROOT))
    service = Service(cfg)
    pipeline = service.pipeline()
    # Ask the model for every quoted answer: the rule is what this measures.
    pipeline.settings.skip_model_kinds = frozenset()
    rows = subset([json.loads(line) for line in args.eval.read_text().splitlines()
                   if line.strip()], args.answerable, args.unanswerable)
    done: list[dict[str, Any]] = []
    if args.details and args.details.exists():  # go on where a cut-short run stopped
        done = [json.loads(line) for line in args.details.read_text().splitlines() if line]
    seen = {d["id"] for d in done}
    started = time.monotonic()
    for i, row in enumerate(rows, 1):
        if row["id"] in seen:
            continue
        quoted = pipeline.quick(row["question"])
        what = asked(quoted.query or row["question"])
        refined = pipeline.refine(quoted) if quoted.mode == "extractive" else None
        lead = refined.text.removesuffix(quoted.text).strip() if refined else ""
        gold = row.get("gold", [])
        on_gold = [_hit(c.doc, c.page_start, c.page_end, gold) for c in quoted.citations]
        lead_cites = [on_gold[n - 1] for n in cited_numbers(lead) if n <= len(on_gold)]
        keys = row.get("must_contain_any", [])
        record: dict[str, Any] = {
            "id": row["id"], "answerable": row["answerable"],
            "kind": what.kind if what else "other",
            "quote_holds_kind": bool(what and what.held_by(quoted.text)),
            "mode": quoted.mode, "lead": lead,
            "quoted_key_fact": bool(keys) and not quoted.refused
            and _contains_fact(quoted.text, keys),
            "lead_key_fact": bool(lead and keys) and _contains_fact(lead, keys),
            "quote_citations_on_gold": on_gold, "lead_citations_on_gold": lead_cites,
        }
        done.append(record)
        if args.details:  # as it goes: a long run cut short still tells something
            with args.details.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"{i:3}/{len(rows)} {time.monotonic() - started:6.0f} s  {record['kind']:9} "
              f"{quoted.mode:10} lead: {lead[:70]!r}", flush=True)

    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in done:
        group = r["kind"] + (" (quote holds it)" if r["quote_holds_kind"] else "")
        for name in (group, "all"):
            s = stats[name]
            if not r["answerable"]:
                s["unanswerable"] += 1
                s["leads on unanswerable"] += bool(r["lead"])
                continue
            s["n"] += 1
            s["quoted has key fact"] += r["quoted_key_fact"]
            s["with lead has key fact"] += r["quoted_key_fact"] or r["lead_key_fact"]
            s["leads"] += bool(r["lead"])
            s["quote citations"] += len(r["quote_citations_on_gold"])
            s["quote citations on gold"] += sum(r["quote_citations_on_gold"])
            s["lead citations"] += len(r["lead_citations_on_gold"])
            s["lead citations on gold"] += sum(r["lead_citations_on_gold"])

    def share(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    print(f"\n{args.eval.name}: {sum(r['answerable'] for r in done)} answerable + "
          f"{sum(not r['answerable'] for r in done)} unanswerable of the subset (by hash of "
          f"id); model {service.model_path().name}")
    print(f"{'kind of question':28} {'n':>3} {'key fact: quote':>16} {'with lead':>10} "
          f"{'lead only':>10} {'leads':>6} {'cit.acc quote':>14} {'cit.acc lead':>13} "
          f"{'leads on unans.':>16}")
    for name in sorted(stats, key=lambda k: (k == "all", k)):
        s = stats[name]
        print(f"{name:28} {int(s['n']):3} {share(s['quoted has key fact'], s['n']):>16} "
              f"{share(s['with lead has key fact'], s['n']):>10} "
              f"{int(s['with lead has key fact'] - s['quoted has key fact']):>+10} "
              f"{int(s['leads']):6} "
              f"{share(s['quote citations on gold'], s['quote citations']):>14} "
              f"{share(s['lead citations on gold'], s['lead citations']):>13} "
              f"{int(s['leads on unanswerable'])}/{int(s['unanswerable'])}".rjust(16))
    return 0


if __name__ == "__main__":
    sys.exit(main())
