"""`civicbot doctor`: is this installation ready to serve? One line per check, ✓ or ✗, and for
each ✗ what to do about it. Exit 0 only when every check passes.

A check is a small function of a `Doctor` (the configuration plus answers shared between
checks, such as the homeserver's address and token) returning a `Result(ok, what, fix)`, or
None when it does not apply (e.g. the login check when the homeserver is unreachable: that
failure is already reported). The checks live in civicbot/doctor_local.py (this machine) and
civicbot/doctor_network.py (what is reached over the network); what they share is
civicbot/doctor_facts.py's. Add a check by appending it to `CHECKS`:

    def check_ocr(d: Doctor) -> Result | None:
        if shutil.which("tesseract") is None:
            return Result(False, "OCR: tesseract is not installed", "apt-get install ...")
        return Result(True, "OCR: tesseract found")

    CHECKS.append(check_ocr)

Checks never change anything: no ingest, no model download, no new Matrix device left behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from civicbot import config as config_mod
from civicbot.doctor_facts import Doctor, Result
from civicbot.doctor_local import (
    check_config,
    check_disk,
    check_embedding_models,
    check_index_loads,
    check_index_matches_corpus,
    check_index_models,
    check_language_model,
    check_memory,
    check_ocr,
)
from civicbot.doctor_network import (
    check_encryption,
    check_homeserver,
    check_inference_servers,
    check_login,
    check_rooms,
    check_servers_are_own,
)
from civicbot.errors import ConfigError

Check = Callable[[Doctor], Result | None]
CHECKS: list[Check] = [
    check_config, check_homeserver, check_login, check_rooms, check_language_model,
    check_embedding_models, check_index_models, check_index_loads, check_index_matches_corpus,
    check_disk, check_memory,
    check_encryption, check_ocr, check_inference_servers, check_servers_are_own,
]


def run_checks(d: Doctor, checks: list[Check] | None = None) -> list[Result]:
    """Every applicable check's result; a check that crashes is a failed check, not a crash."""
    results: list[Result] = []
    try:
        for check in CHECKS if checks is None else checks:
            try:
                result = check(d)
            except Exception as exc:  # the doctor itself must never fall over
                name = check.__name__.removeprefix("check_").replace("_", " ")
                result = Result(False, f"{name}: the check failed ({type(exc).__name__}: {exc})",
                                "run with -v for details and report it if it persists")
            if result is not None:
                results.append(result)
    finally:
        d.close()
    return results


def render(results: list[Result]) -> str:
    lines = []
    for r in results:
        lines.append(f"{('⚠' if r.warning else '✓') if r.ok else '✗'} {r.what}")
        if (not r.ok or r.warning) and r.fix:
            lines.append(f"    fix: {r.fix}")
    failed = sum(not r.ok for r in results)
    lines.append(f"All {len(results)} checks passed." if not failed
                 else f"{failed} of {len(results)} checks failed.")
    return "\n".join(lines)


def main(config_path: str | None, index: str | None = None) -> int:
    """`civicbot doctor`: print the checks; 0 when all pass, 1 otherwise."""
    try:
        cfg = config_mod.load(config_path)
    except ConfigError as exc:
        print(render([Result(False, f"configuration: {exc}",
                             "fix the key named above (config.example.toml documents every "
                             "key)")]))
        return 1
    if index:
        cfg = cfg.replace("index", path=str(Path(index).resolve()))
    shown = config_path or ("config.toml" if Path("config.toml").exists() else "")
    results = run_checks(Doctor(cfg, os.path.abspath(shown) if shown else ""))
    print(render(results), flush=True)
    return 0 if all(r.ok for r in results) else 1
