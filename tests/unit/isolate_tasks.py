"""Work for the parsing worker in tests (a light module: the worker imports it by name, and
it must load under the worker's memory limit)."""

from __future__ import annotations

import time


def spin() -> None:
    """Stands in for a decompression bomb or a parser caught in a loop."""
    while True:
        pass


def spin_pages(path: object) -> tuple[list[str], str]:
    spin()
    return [], ""


def eat_memory() -> int:
    return len(bytearray(3 << 30))


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "awake"


def burn(seconds: float) -> str:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return "done"


def answer() -> int:
    return 42


def spin_render(path: object, number: int, dpi: int) -> bytes:
    spin()
    return b""
