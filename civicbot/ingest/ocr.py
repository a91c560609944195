"""The OCR adapter: pypdfium2 renders a page, the `tesseract` program reads it (docs/ocr.md).

The only module that imports pypdfium2 or runs Tesseract. PDFium runs in the limited
parsing worker (civicbot/ingest/isolate.py), like pypdf: a hostile file stops the worker,
not the bot. Each page is read by its own
`tesseract` process, at most `workers` at a time, each killed after the page time limit; a
document gets at most `max_pages_per_document` pages read. Tesseract's per-word confidences
decide what is kept: handwriting, stamps and redaction blocks come out as low-confidence
fragments, and a line that is mostly such fragments is dropped whole."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from civicbot.errors import ConfigError, DocumentError
from civicbot.ingest import isolate
from civicbot.ingest.reader import OCR_INSTALL_HINT, OcrResult

log = logging.getLogger(__name__)

# Words Tesseract is less sure of than this are dropped (0-100). Measured on the scans of
# ../shared/corpus: printed words score 85-97, handwriting and redaction edges 0-55.
MIN_WORD_CONFIDENCE = 60.0
# Bump when the text made from Tesseract's output changes: it keys the passage cache.
TEXT_VERSION = "t1"
MAX_PIXELS = 40_000_000  # a poster-sized page is rendered smaller, not with gigabytes
# Tesseract reads a bullet "•" as a lone "e", "o" or "«" before the item's first word.
_BULLETS = {"e", "o", "«", "©", "*", "°", "»", "+"}

INSTALL_HINT = OCR_INSTALL_HINT  # how to make OCR available (ingest reports, doctor)


@dataclass(frozen=True)
class _Word:
    key: tuple[int, int, int]  # block, paragraph, line
    confidence: float
    text: str


def words_from_tsv(tsv: str) -> list[_Word]:
    """The words of Tesseract's TSV output, in reading order."""
    out = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        if row.get("level") != "5" or not (row.get("text") or "").strip():
            continue
        try:
            key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
            out.append(_Word(key, float(row["conf"]), row["text"].strip()))
        except (KeyError, ValueError):
            continue
    return out


def text_from_words(words: Iterable[_Word], min_confidence: float = MIN_WORD_CONFIDENCE) -> str:
    """Page text from recognised words: confident words only, and only lines where most
    words were confident (the rest of such a line is scribble or a redaction edge).
    Paragraphs are separated by a blank line."""
    lines: dict[tuple[int, int, int], list[_Word]] = {}
    for w in words:
        lines.setdefault(w.key, []).append(w)
    out: list[str] = []
    previous: tuple[int, int] | None = None
    for key, line in lines.items():
        kept = [w.text for w in line
                if w.confidence >= min_confidence and any(ch.isalnum() for ch in w.text)]
        if not kept or 2 * len(kept) < len(line):
            continue
        if len(kept) > 1 and kept[0] in _BULLETS and kept[1][:1].isupper():
            kept[0] = "•"
        if previous is not None and previous != key[:2]:
            out.append("")
        out.append(" ".join(kept))
        previous = key[:2]
    return "\n".join(out)


_PROBED: dict[str, tuple[str, frozenset[str]]] = {}


def _probe(command: str) -> tuple[str, frozenset[str]] | str:
    """(version, installed languages) of a Tesseract program, or why it cannot be used.
    Only a working program is remembered: one installed while the bot runs is found."""
    if command in _PROBED:
        return _PROBED[command]
    exe = shutil.which(command)
    if exe is None:
        return f"the OCR program `{command}` (Tesseract) is not installed"
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True,
                                 timeout=30, check=True)
        langs = subprocess.run([exe, "--list-langs"], capture_output=True, text=True,
                               timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the OCR program `{command}` does not run ({exc})"
    first = (version.stdout or version.stderr).strip().splitlines()
    listed = langs.stdout.strip().splitlines()[1:]  # after "List of available languages..."
    _PROBED[command] = (first[0] if first else "tesseract",
                        frozenset(s.strip() for s in listed))
    return _PROBED[command]


class TesseractOcr:
    """Reads pages of a PDF with Tesseract. Safe to share; pages are read in parallel."""

    def __init__(self, command: str = "tesseract", languages: Sequence[str] = ("nld", "eng"),
                 dpi: int = 200, page_time_limit_s: float = 60.0,
                 max_pages_per_document: int = 100, workers: int = 0):
        if not 72 <= dpi <= 600:
            raise ConfigError("ocr.dpi: must be between 72 and 600 (200-300 reads best)")
        if page_time_limit_s <= 0 or max_pages_per_document < 0 or workers < 0:
            raise ConfigError("ocr: page_time_limit_s must be positive, "
                              "max_pages_per_document and workers 0 or more")
        if not languages:
            raise ConfigError('ocr.languages: name at least one, e.g. ["nld", "eng"]')
        self.command = command
        self.languages = tuple(languages)
        self.dpi = dpi
        self.page_time_limit_s = page_time_limit_s
        self.max_pages = max_pages_per_document
        self.workers = workers or os.cpu_count() or 1

    @classmethod
    def from_config(cls, cfg) -> TesseractOcr:  # type: ignore[no-untyped-def]
        """From an `[ocr]` config section (civicbot.config.OcrConfig)."""
        return cls(cfg.command, cfg.languages, cfg.dpi, cfg.page_time_limit_s,
                   cfg.max_pages_per_document, cfg.workers)

    def problem(self) -> str | None:
        """None when OCR can run, else what is missing (a sentence without the fix)."""
        probe = _probe(self.command)
        if isinstance(probe, str):
            return probe
        missing = [lang for lang in self.languages if lang not in probe[1]]
        if missing:
            return (f"Tesseract has no language data for {', '.join(missing)} "
                    f"(packages {' '.join(f'tesseract-ocr-{m}' for m in missing)})")
        return None

    def available(self) -> bool:
        return self.problem() is None

    @property
    def variant(self) -> str:
        """What the recognised text depends on, as a short key (cached passages of a scanned
        document are only reused when all of it is the same)."""
        probe = _probe(self.command)
        version = probe[0] if isinstance(probe, tuple) else "none"
        what = f"{TEXT_VERSION}|{version}|{'+'.join(self.languages)}|{self.dpi}"
        return "ocr" + hashlib.sha256(what.encode()).hexdigest()[:8]

    def image_cover(self, path: Path, numbers: Sequence[int]) -> dict[int, float]:
        """The share of each page's area drawn by images (0-1; overlapping images counted
        once per image, capped at 1). A scan, or text drawn as images, covers most of it.
        Measured by PDFium in the limited worker process (civicbot/ingest/isolate.py); a
        file that makes it fail counts as covering nothing."""
        try:
            return dict(isolate.shared().run(image_cover, path, list(numbers)))
        except (isolate.WorkerLimit, RuntimeError) as exc:
            log.warning("%s: the page images could not be measured (%s)", path.name, exc)
            return {}

    def recognise(self, path: Path, numbers: Sequence[int],
                  progress: Callable[[int, int], None] | None = None) -> dict[int, OcrResult]:
        """Read the pages `numbers` (1-based) of a PDF. Every page gets a result: its text,
        or why there is none ("unavailable", "page-cap", "timeout", "failed")."""
        numbers = sorted(set(numbers))
        if self.problem() is not None:
            return {n: OcrResult("unavailable") for n in numbers}
        todo, capped = numbers[: self.max_pages], numbers[self.max_pages :]
        results = {n: OcrResult("page-cap") for n in capped}
        if capped:
            log.info("%s: OCR of pages %d-%d skipped (ocr.max_pages_per_document = %d)",
                     path.name, capped[0], capped[-1], self.max_pages)
        done = 0
        with ThreadPoolExecutor(self.workers, thread_name_prefix="ocr") as pool:
            # Rendering stays in this thread (pdfium is not thread-safe); the threads only
            # wait for their tesseract process. At most 2 rendered pages wait per worker.
            running: dict[Future[OcrResult], int] = {}
            for n, image in self._render(path, todo):
                if image is None:
                    results[n] = OcrResult("failed")
                    done += 1
                    continue
                running[pool.submit(self._read, image)] = n
                while len(running) >= 2 * self.workers:
                    done = self._collect(running, results, done, len(todo), progress)
            while running:
                done = self._collect(running, results, done, len(todo), progress)
        return results

    def _collect(self, running: dict[Future[OcrResult], int], results: dict[int, OcrResult],
                 done: int, total: int, progress: Callable[[int, int], None] | None) -> int:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            results[running.pop(future)] = future.result()
            done += 1
            if progress:
                progress(done, total)
        return done

    def _render(self, path: Path, numbers: Sequence[int]
                ) -> Iterator[tuple[int, bytes | None]]:
        """Each page as a greyscale PGM image (what Tesseract reads fastest from stdin),
        rendered by PDFium in the limited worker process; None for a page it failed on.
        Once a limit stopped the worker, the remaining pages are not tried."""
        stopped = False
        for n in numbers:
            if stopped:
                yield n, None
                continue
            try:
                yield n, isolate.shared().run(render_page, path, n, self.dpi)
            except isolate.WorkerLimit as exc:
                log.warning("%s: rendering stopped at page %d: %s", path.name, n, exc.what)
                stopped = True
                yield n, None
            except (RuntimeError, DocumentError) as exc:
                log.warning("%s: page %d could not be rendered (%s)", path.name, n, exc)
                yield n, None

    def _read(self, image: bytes) -> OcrResult:
        """One tesseract process for one page, killed at the time limit."""
        # One thread per process: the parallelism comes from the workers, and OpenMP
        # threads on top of them only make every page slower on a busy machine.
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        command = [self.command, "-", "-", "-l", "+".join(self.languages),
                   "--dpi", str(self.dpi), "tsv"]
        try:
            done = subprocess.run(command, input=image, capture_output=True, env=env,
                                  timeout=self.page_time_limit_s)
        except subprocess.TimeoutExpired:
            return OcrResult("timeout")
        except OSError as exc:
            log.warning("OCR failed to start: %s", exc)
            return OcrResult("failed")
        if done.returncode != 0:
            log.warning("OCR failed (exit %d): %s", done.returncode,
                        done.stderr.decode(errors="replace").strip()[:200])
            return OcrResult("failed")
        tsv = done.stdout.decode("utf-8", errors="replace")
        return OcrResult("ok", text_from_words(words_from_tsv(tsv)))


def image_cover(path: Path, numbers: Sequence[int]) -> dict[int, float]:
    """`TesseractOcr.image_cover`, in the process that calls it (the worker)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    out: dict[int, float] = {}
    pdf = pdfium.PdfDocument(path)
    try:
        for n in numbers:
            page = pdf[n - 1]
            width, height = page.get_size()
            area = 0.0
            for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4):
                left, bottom, right, top = obj.get_bounds()
                area += (max(0.0, min(right, width) - max(left, 0.0))
                         * max(0.0, min(top, height) - max(bottom, 0.0)))
            out[n] = min(1.0, area / max(1.0, width * height))
    finally:
        pdf.close()
    return out


def render_page(path: Path, number: int, dpi: int) -> bytes:
    """Page `number` as a greyscale PGM image, in the process that calls it (the worker)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        page = pdf[number - 1]
        width, height = page.get_size()
        scale = dpi / 72
        pixels = width * height * scale * scale
        if pixels > MAX_PIXELS:
            scale *= math.sqrt(MAX_PIXELS / pixels)
        bitmap = page.render(scale=scale, grayscale=True)
        array = bitmap.to_numpy()
        h, w = array.shape[:2]
        return b"P5\n%d %d\n255\n" % (w, h) + array.tobytes()
    finally:
        pdf.close()


def check(cfg) -> str | None:  # type: ignore[no-untyped-def]
    """For `civicbot doctor`: None when OCR works with this `[ocr]` section, else the
    problem and its fix in one sentence."""
    if not cfg.enabled:
        return ("OCR is off ([ocr] enabled = false): scanned pages are left out; "
                "set it to true to read them")
    try:
        problem = TesseractOcr.from_config(cfg).problem()
    except ConfigError as exc:
        return str(exc)
    return f"{problem}: scanned pages are left out; {INSTALL_HINT}" if problem else None
