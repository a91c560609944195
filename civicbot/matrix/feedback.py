"""👍/👎 reactions on answers, as JSON lines in `data_dir/feedback.jsonl`: which answer, which
vote, when, and the reaction's own id (so a replayed sync counts once and a withdrawn
reaction can be taken back). Never who voted; the question text only when the deployer
switched `bot.log_questions` on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FEEDBACK_FILE = "feedback.jsonl"

_UP = {"👍", "+1", "👍️"}
_DOWN = {"👎", "-1", "👎️"}
_SKIN_TONES = "".join(chr(c) for c in range(0x1F3FB, 0x1F400))


def vote_from_key(key: str) -> str | None:
    """"up", "down" or None for a reaction key (skin tones and variation selectors ignored)."""
    k = key.strip().rstrip("\ufe0f").rstrip(_SKIN_TONES).rstrip("\ufe0f")
    if k in _UP:
        return "up"
    if k in _DOWN:
        return "down"
    return None


def _append(data_dir: str | os.PathLike[str], record: dict[str, str]) -> None:
    path = Path(data_dir) / FEEDBACK_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def record_vote(
    data_dir: str | os.PathLike[str],
    answer_id: str,
    vote: str,
    reaction_id: str,
    question: str | None = None,
    when: datetime | None = None,
) -> None:
    """Append one vote."""
    record = {
        "answer": answer_id,
        "vote": vote,
        "time": (when or datetime.now(UTC)).isoformat(timespec="seconds"),
        "reaction": reaction_id,
    }
    if question is not None:
        record["question"] = question
    _append(data_dir, record)


def record_retraction(data_dir: str | os.PathLike[str], reaction_id: str) -> None:
    """A reaction was withdrawn (redacted); `feedback_stats` stops counting it."""
    _append(
        data_dir,
        {"retracts": reaction_id, "time": datetime.now(UTC).isoformat(timespec="seconds")},
    )


@dataclass(frozen=True)
class FeedbackStats:
    up: int
    down: int
    answers: int  # answers with at least one vote

    @property
    def total(self) -> int:
        return self.up + self.down


def feedback_stats(data_dir: str | os.PathLike[str]) -> FeedbackStats:
    """Sum the votes recorded in `data_dir` (a damaged line is skipped, not fatal)."""
    path = Path(data_dir) / FEEDBACK_FILE
    votes: dict[str, tuple[str, str]] = {}  # reaction id -> (answer, vote)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "retracts" in record:
                votes.pop(str(record["retracts"]), None)
            elif record.get("vote") in ("up", "down"):
                key = str(record.get("reaction") or f"line{len(votes)}")
                votes[key] = (str(record.get("answer", "")), record["vote"])
    up = sum(1 for _, v in votes.values() if v == "up")
    down = sum(1 for _, v in votes.values() if v == "down")
    return FeedbackStats(up=up, down=down, answers=len({a for a, _ in votes.values()}))


def recorded_reactions(data_dir: str | os.PathLike[str]) -> set[str]:
    """Reaction ids already recorded, so that a replayed sync does not count twice."""
    path = Path(data_dir) / FEEDBACK_FILE
    if not path.exists():
        return set()
    seen = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("reaction"):
            seen.add(str(record["reaction"]))
    return seen
