"""A folder as an operator has it (config.toml, corpus/, index/, data/), for tests of the
CLI and the service over a small real index (tests/integration/conftest.py builds it)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

SMALL_DOCS = ("nl_tk_kamerstuk_32545-143_motie.pdf",  # 1 page
              "nl_tk_aanhangsel_handelingen_2020-2021_3235_kamervragen_tozo.pdf")  # 3 pages


@dataclasses.dataclass
class Workspace:
    """A folder as an operator has it: config.toml, corpus/, index/, data/."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def load(self):  # type: ignore[no-untyped-def]
        from civicbot import config as config_mod

        return config_mod.load(str(self.config), env={})


def make_workspace(root: Path, documents: list[Path], extra: str = "") -> Workspace:
    """A workspace with `documents` in its corpus folder (copied into the temporary folder;
    the shared corpus is never written to) and the default configuration otherwise."""
    (root / "corpus").mkdir(parents=True, exist_ok=True)
    for doc in documents:
        shutil.copy2(doc, root / "corpus" / doc.name)
    from civicbot.config import DEFAULT_GGUF_NAME

    # The default model as `scripts/install.sh` placed it (`civicbot models`) in the checkout.
    model = Path(__file__).resolve().parents[1] / "models" / DEFAULT_GGUF_NAME
    (root / "config.toml").write_text(
        '[corpus]\npaths = ["corpus"]\n[index]\npath = "index"\n[matrix]\ndata_dir = "data"\n'
        f'[llm]\nmodel_path = "{model}"\n' + extra)
    return Workspace(root)
