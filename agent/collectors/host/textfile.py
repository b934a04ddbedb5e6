"""The ``textfile`` collector: node_exporter's text-file metrics (``*.prom`` in one directory).

Stage: collectors. Input: the files a node's own scripts and cron jobs write (RAID state, driver
and firmware versions, job-scheduler facts...) in the Prometheus text format, the convention of
node_exporter's ``--collector.textfile.directory``. Output: their samples under their own names,
plus node_exporter's ``node_textfile_mtime_seconds{file}`` per file read and
``node_textfile_scrape_error`` (1 when any file could not be used this tick).

A file is used whole or not at all, as node_exporter does: one that does not parse, carries
client-side timestamps, or would make the server refuse the batch (a name or label over the wire
limits, a metric that dcmon's own collectors report) is skipped and sets the error gauge, and
the reason is logged once per file and change. ``instance`` and ``job`` labels become
``exported_instance`` and ``exported_job``, as Prometheus renames them when scraping a
node_exporter without ``honor_labels``. No directory configured: only the error gauge, 0.

The parser is prometheus_client's, imported on the first file, so an agent without a textfile
directory never loads it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Container
from pathlib import Path

from agent.collectors.base import Sample
from agent.wire.schema import (
    LABEL_NAME_RE,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS_PER_SAMPLE,
    MAX_NAME_LENGTH,
    METRIC_NAME_RE,
    RESERVED_LABELS,
)

_log = logging.getLogger(__name__)

MTIME = "node_textfile_mtime_seconds"
SCRAPE_ERROR = "node_textfile_scrape_error"
SUFFIX = ".prom"
# A file larger than this is refused, not read: a runaway script must not stall the tick.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Samples taken from all files in one tick; files past it are skipped (and the error set).
MAX_SAMPLES = 10_000

ParsedSample = tuple[str, dict[str, str], float, float | None]
Parser = Callable[[str], list[ParsedSample]]
"""Text -> (name, labels, value, timestamp or None) per sample; raises ValueError."""


class TextfileError(ValueError):
    """A text file that cannot be used; the message says why."""


def parse_with_prometheus_client(
    text: str,
) -> list[tuple[str, dict[str, str], float, float | None]]:
    """Returns: every sample of a Prometheus text exposition.

    Raises:
        TextfileError: the text does not parse.
    """
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    try:
        return [
            (
                sample.name,
                dict(sample.labels),
                float(sample.value),
                None if sample.timestamp is None else float(sample.timestamp),
            )
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, TypeError, IndexError) as exc:
        raise TextfileError(f"does not parse: {exc}") from None


class TextfileCollector:
    """Reads every ``*.prom`` file of one directory each tick.

    Args:
        directory: the directory; None or empty: not configured.
        reserved_names: metric names a file may not use (those dcmon's collectors report).
        parse: the text parser (tests inject failures).
    """

    name = "textfile"

    def __init__(
        self,
        directory: Path | None,
        reserved_names: Container[str] = (),
        parse: Parser = parse_with_prometheus_client,
    ) -> None:
        self._directory = directory
        self._reserved = reserved_names
        self._parse = parse
        self._reported: dict[str, str] = {}  # file -> last problem logged

    def collect(self, now: float) -> list[Sample]:
        """Returns: the files' samples, their mtimes, and the error gauge (never raises for a
        bad file: that is the gauge's job)."""
        if self._directory is None:
            return [Sample(SCRAPE_ERROR, {}, 0.0)]
        errors = False
        samples: list[Sample] = []
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self._directory)
                if entry.name.endswith(SUFFIX) and entry.is_file()
            )
        except OSError as exc:
            self._report(str(self._directory), f"cannot list the directory: {exc}")
            return [Sample(SCRAPE_ERROR, {}, 1.0)]
        problems: dict[str, str] = {}
        for name in names:
            path = self._directory / name
            try:
                mtime, found = self._read(path, MAX_SAMPLES - len(samples))
            except (OSError, TextfileError) as exc:
                problems[str(path)] = str(exc)
                errors = True
                continue
            samples.extend(found)
            samples.append(Sample(MTIME, {"file": str(path)}, mtime))
        for where, problem in problems.items():
            self._report(where, problem)
        for where in set(self._reported) - set(problems):
            del self._reported[where]  # fixed or gone: report it again if it breaks again
        samples.append(Sample(SCRAPE_ERROR, {}, 1.0 if errors else 0.0))
        return samples

    def _read(self, path: Path, room: int) -> tuple[float, list[Sample]]:
        """Returns: the file's mtime and samples.

        Raises:
            OSError: it cannot be read.
            TextfileError: it cannot be used (see the module docstring).
        """
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_size > MAX_FILE_BYTES:
                raise TextfileError(f"{stat.st_size} bytes, over the {MAX_FILE_BYTES} limit")
            text = handle.read(MAX_FILE_BYTES + 1).decode("utf-8", errors="replace")
        parsed = self._parse(text)
        if len(parsed) > room:
            raise TextfileError(f"{len(parsed)} samples: past the {MAX_SAMPLES} of all files")
        samples = []
        for name, labels, value, timestamp in parsed:
            if timestamp is not None:
                raise TextfileError(f"{name}: client-side timestamps are not supported")
            samples.append(Sample(self._checked_name(name), _checked_labels(name, labels), value))
        return stat.st_mtime, samples

    def _checked_name(self, name: str) -> str:
        if len(name) > MAX_NAME_LENGTH or not METRIC_NAME_RE.match(name):
            raise TextfileError(f"{name[:80]!r}: not a valid metric name")
        if name in self._reserved or name in (MTIME, SCRAPE_ERROR):
            raise TextfileError(f"{name}: a metric dcmon's own collectors report")
        return name

    def _report(self, path: str, problem: str) -> None:
        if self._reported.get(path) != problem:
            self._reported[path] = problem
            _log.warning("textfile %s skipped: %s", path, problem)


def _checked_labels(name: str, labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS_PER_SAMPLE:
        raise TextfileError(f"{name}: {len(labels)} labels, over {MAX_LABELS_PER_SAMPLE}")
    checked = {}
    for label, value in labels.items():
        if len(label) > MAX_NAME_LENGTH or not LABEL_NAME_RE.match(label):
            raise TextfileError(f"{name}: {label[:80]!r} is not a valid label name")
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            raise TextfileError(f"{name}: label {label} longer than {MAX_LABEL_VALUE_LENGTH}")
        checked[f"exported_{label}" if label in RESERVED_LABELS else label] = value
    return checked
