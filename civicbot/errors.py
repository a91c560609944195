"""One exception tree. Each edge (CLI, bot, scheduler) translates these into its own language."""


class CivicbotError(Exception):
    """Base of every error civicbot raises on purpose. The message is meant for a person."""


class ConfigError(CivicbotError):
    """The configuration is wrong: the message names `section.key` and what to do."""


class DocumentError(CivicbotError):
    """A document could not be ingested. `reason` is a short machine-readable tag."""

    reason = "unreadable"

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.detail = message


class CorruptDocument(DocumentError):
    reason = "corrupt"


class EncryptedDocument(DocumentError):
    reason = "encrypted"


class NoUsableText(DocumentError):
    reason = "no-text"


class GarbledText(NoUsableText):
    reason = "garbled"


class DocumentTooLarge(DocumentError):
    reason = "too-large"


class UnsupportedDocument(DocumentError):
    reason = "unsupported"


class IndexUnusable(CivicbotError):
    """The index cannot be used as it is (missing, damaged, or built with another model).
    (Not `IndexError`: that builtin means a sequence index out of range.)"""


class ModelMismatch(IndexUnusable):
    """The index was built with a different embedding model than the configured one."""


class ModelError(CivicbotError):
    """A model file is missing, damaged or cannot be loaded."""


class GenerationTimeout(CivicbotError):
    """The local model did not finish within the configured time limit."""


class MatrixError(CivicbotError):
    """The homeserver answered with an error, or could not be reached."""
