"""What parsing in the limited worker process costs: the raw text of every file of
../shared/corpus read in this process and through the worker (civicbot/ingest/isolate.py),
measured in the same run. The first call through the worker includes starting it.

    .venv/bin/python bench/isolate.py [--corpus DIR] [--rounds N]

Prints seconds for each and their ratio. The machine is shared: compare ratios."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(read, files: list[Path]) -> float:
    started = time.perf_counter()
    for f in files:
        try:
            read(f)
        except Exception:  # noqa: BLE001 - the corrupt fixture fails both ways
            pass
    return time.perf_counter() - started


def main() -> None:
    from civicbot.ingest import isolate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    files = sorted(args.corpus.glob("*.pdf"))
    start = time.perf_counter()
    isolate.shared().run(isolate.raw_pages, files[0])
    print(f"worker start and first file: {time.perf_counter() - start:.2f} s")
    for n in range(1, args.rounds + 1):
        here = timed(isolate.raw_pages, files)
        worker = timed(isolate.parse, files)
        print(f"round {n}: {len(files)} files, in process {here:.2f} s, "
              f"in the worker {worker:.2f} s, ratio {worker / here:.3f}")


if __name__ == "__main__":
    main()
