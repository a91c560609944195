"""Settings: loaded once from TOML, overridden by CIVICBOT_<SECTION>_<KEY> environment
variables, validated (unknown keys and wrong types are rejected as `section.key: message`),
then frozen and handed around as one object."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicbot.errors import ConfigError


@dataclass(frozen=True)
class CorpusConfig:
    paths: tuple[str, ...] = ("corpus",)
    max_file_mb: int = 100


@dataclass(frozen=True)
class IndexConfig:
    path: str = "index"


@dataclass(frozen=True)
class EmbeddingConfig:
    # A sentence-transformers model name or folder. Empty: the packaged all-MiniLM-L6-v2.
    model: str = ""
    batch_size: int = 32


@dataclass(frozen=True)
class RetrievalConfig:
    top_k: int = 6
    dense_weight: float = 0.4
    chunk_words: int = 180
    overlap_words: int = 40
    # Cross-lingual search with USE multilingual (docs/retrieval.md); changing it needs an ingest.
    crosslingual: bool = True
    crosslingual_weight: float = 1.0  # for passages in the other language than the question
    crosslingual_weight_same_language: float = 0.3
    neighbour_weight: float = 0.3


@dataclass(frozen=True)
class LlmConfig:
    # A GGUF file. Empty: the embedded SmolLM2-135M-Instruct placed by `civicbot models`.
    model_path: str = ""
    n_ctx: int = 2048
    n_threads: int = 0  # 0: all cores
    temperature: float = 0.1
    max_tokens: int = 200
    time_limit_s: float = 60.0


@dataclass(frozen=True)
class AnswerConfig:
    # Below this retrieval confidence the bot says the documents don't answer the question.
    # Negative: use the threshold calibrated on data (docs/answering.md).
    refusal_threshold: float = -1.0


@dataclass(frozen=True)
class MatrixConfig:
    homeserver: str = ""
    user_id: str = ""
    access_token: str = ""
    password: str = ""
    data_dir: str = "data"
    device_name: str = "civicbot"
    allowed_servers: tuple[str, ...] = ()  # empty: the bot's own homeserver
    allowed_users: tuple[str, ...] = ()
    answer_all_rooms: tuple[str, ...] = ()  # rooms where every message is a question
    source_code_url: str = "https://example.org/civicbot"


@dataclass(frozen=True)
class BotConfig:
    queue_size: int = 10
    rate_limit_per_minute: int = 6
    edit_interval_s: float = 1.0
    max_edits: int = 30
    log_questions: bool = False


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "plain"  # "plain" or "json"


@dataclass(frozen=True)
class Config:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    matrix: MatrixConfig = field(default_factory=MatrixConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Folder the relative paths above are resolved against (the config file's folder).
    base_dir: str = "."

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (e.g. `--index DIR`)."""
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **changes)}
        )


_CHOICES = {("logging", "format"): ("plain", "json"),
            ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR")}


def _coerce(where: str, value: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin is tuple:
        (item,) = typing.get_args(typ)[:1]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return tuple(_coerce(f"{where}[{i}]", v, item) for i, v in enumerate(value))
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(typ)  # pragma: no cover - a programming error in this module


def _from_env(where: str, raw: str, typ: Any) -> Any:
    """Environment values are strings; read them as TOML values where that makes sense."""
    if typ is str:
        return raw
    if typing.get_origin(typ) is tuple and not raw.strip().startswith("["):
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: cannot read {raw!r} from the environment ({exc})") from exc


def _section_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def build(data: dict[str, Any], env: dict[str, str] | None = None, base_dir: str = ".") -> Config:
    """Validate a parsed TOML mapping plus environment overrides into a frozen Config."""
    env = dict(os.environ) if env is None else env
    sections = {k: v for k, v in _section_types(Config).items() if k != "base_dir"}
    for name in data:
        if name not in sections:
            known = ", ".join(sorted(sections))
            raise ConfigError(f"{name}: unknown section (known sections: {known})")
    built: dict[str, Any] = {}
    for name, cls in sections.items():
        given = data.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{name}: expected a [{name}] table")
        fields = _section_types(cls)
        for key in given:
            if key not in fields:
                raise ConfigError(
                    f"{name}.{key}: unknown key (known keys: {', '.join(sorted(fields))})"
                )
        values: dict[str, Any] = {}
        for key, typ in fields.items():
            where = f"{name}.{key}"
            env_name = f"CIVICBOT_{name}_{key}".upper()
            if env_name in env:
                values[key] = _coerce(where, _from_env(where, env[env_name], typ), typ)
            elif key in given:
                values[key] = _coerce(where, given[key], typ)
            choices = _CHOICES.get((name, key))
            if key in values and choices and values[key] not in choices:
                raise ConfigError(f"{where}: must be one of {', '.join(choices)}")
        try:
            built[name] = cls(**values)
        except TypeError as exc:  # pragma: no cover
            raise ConfigError(f"{name}: {exc}") from exc
    return Config(**built, base_dir=base_dir)


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Load `path`, or ./config.toml when present, or the built-in defaults."""
    if path is None:
        candidate = Path("config.toml")
        if not candidate.exists():
            return build({}, env)
        path = candidate
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return build(data, env, base_dir=str(p.resolve().parent))


