"""What a server's SQLite database holds for a node, checked against what its agent generated.

A check of "nothing lost, nothing stored twice" must be able to fail. Counting distinct
(series, timestamp) pairs cannot: the head's primary key (node, timestamp) and the readers drop
repeats by construction. So this ledger reads every stored copy of every sample, without the
reader: the head rows (``storage.head``) and the raw tier's blocks (``storage.blocks``), both in
one read transaction, so a window being compacted is seen once, in one place or the other. Then:

- every generated batch has exactly one ingest record, and no record names a batch that was
  never generated;
- per series, the number of stored samples equals the number generated (a batch stored twice
  under another timestamp, or a window both in the head and in a block, counts twice);
- the stored (timestamp, value) pairs equal the generated ones, value for value.

Generated batches are the wire ``Batch`` objects an agent sent (from its spool, or recorded on
the way by ``tests/e2e/tap.py``). The server also stores two families it derives from each
batch's collector statuses; the ledger derives them the same way. Pure: no pytest, so the
outage benchmark uses it too.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.wire.schema import Batch
from server.storage import blocks, head

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
"""(metric, sorted label pairs): a series, independent of how the server encodes labels."""

Points = list[tuple[int, float]]
"""(timestamp in ms, value) pairs of one series, one per stored or generated sample."""

RAW_TIER = 0
MAX_PROBLEMS = 20


def series_key(metric: str, labels: Mapping[str, str]) -> SeriesKey:
    return metric, tuple(sorted(labels.items()))


def batch_points(batch: Batch) -> dict[SeriesKey, tuple[int, float]]:
    """Returns: the samples the server stores for ``batch``: its families, plus the collector
    status series it derives (``node_scrape_collector_success`` and ``..._duration_seconds``)."""
    ts_ms = round(batch.timestamp * 1000)
    points: dict[SeriesKey, tuple[int, float]] = {}
    for family in batch.metrics:
        for labels, value in family.samples:
            points[series_key(family.name, labels)] = (ts_ms, value)
    for status in batch.collectors:
        labels = {"collector": status.name}
        success = 1.0 if status.success else 0.0
        points[series_key("node_scrape_collector_success", labels)] = (ts_ms, success)
        duration = series_key("node_scrape_collector_duration_seconds", labels)
        points[duration] = (ts_ms, status.duration_seconds)
    return points


@dataclass(frozen=True)
class Stored:
    """Everything the database holds for one node: ingest records and every sample copy."""

    seqs: list[int]  # one entry per ingest record (a list: a repeat would show)
    points: dict[SeriesKey, Points]

    @property
    def samples(self) -> int:
        return sum(len(points) for points in self.points.values())


def read_stored(database: Path, node_id: str) -> Stored:
    """Returns: what ``database`` (a dcmon SQLite file, opened read-only) holds for ``node_id``.

    Raises:
        AssertionError: the node is not in the database.
    """
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN")  # one snapshot for the head and the blocks
        row = db.execute("SELECT id FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
        assert row is not None, f"node {node_id} is not in the database"
        pk = int(row[0])
        seqs = [
            int(s) for (s,) in db.execute("SELECT seq FROM ingested_batches WHERE node_pk=?", (pk,))
        ]
        keys: dict[int, SeriesKey] = {
            int(series_id): series_key(metric, json.loads(labels))
            for series_id, metric, labels in db.execute(
                "SELECT id, metric, labels FROM series WHERE node_pk=?", (pk,)
            )
        }
        points: dict[SeriesKey, Points] = {}
        for ts_ms, n, payload in db.execute(
            "SELECT ts_ms, n, payload FROM head_chunks WHERE node_pk=?", (pk,)
        ):
            ids, values = head.unpack(n, payload)
            for series_id, value in zip(ids.tolist(), values.tolist(), strict=True):
                points.setdefault(keys[series_id], []).append((int(ts_ms), value))
        for series_id, payload in db.execute(
            "SELECT b.series_id, b.payload FROM blocks b JOIN series s ON s.id = b.series_id "
            "WHERE s.node_pk=? AND b.tier=?",
            (pk, RAW_TIER),
        ):
            stamps, columns = blocks.decode(payload)
            pairs = zip(stamps.tolist(), columns[0].tolist(), strict=True)
            points.setdefault(keys[series_id], []).extend(pairs)
        db.execute("COMMIT")
        return Stored(seqs, points)
    finally:
        db.close()


def problems(
    generated: Mapping[int, Batch], stored: Stored, unsettled: Collection[int] = ()
) -> list[str]:
    """Returns: every way ``stored`` differs from the ``generated`` batches (by seq); empty
    when each batch is stored exactly once with exactly its samples.

    ``unsettled``: seqs still in the agent's spool when it stopped: each may or may not have
    been stored (an acknowledgement lost), so it counts as generated only if it has a record.
    """
    found: list[str] = []
    records = Counter(stored.seqs)
    expected = _expected(generated, records, unsettled)
    for seq in sorted(expected):
        if records[seq] != 1:
            found.append(f"batch seq {seq}: {records[seq]} ingest records, expected 1")
    for seq in sorted(set(records) - set(expected)):
        found.append(f"seq {seq}: an ingest record for a batch that was not generated")
    want = _wanted(expected)
    for key in sorted(set(want) | set(stored.points)):
        have_points = sorted(stored.points.get(key, []))
        want_points = sorted(want.get(key, []))
        if have_points == want_points:
            continue
        name = f"{key[0]}{dict(key[1])}"
        if len(have_points) != len(want_points):
            found.append(f"{name}: {len(have_points)} samples stored, {len(want_points)} generated")
        else:
            wrong = next((h, w) for h, w in zip(have_points, want_points, strict=True) if h != w)
            found.append(f"{name}: stored {wrong[0]} where {wrong[1]} was generated")
        if len(found) >= MAX_PROBLEMS:
            found.append("... (more)")
            break
    return found


@dataclass(frozen=True)
class Tally:
    """Sample counts of one comparison. ``missing``: generated samples with no stored copy
    (lost); ``extra``: stored copies beyond the generated ones (stored twice, or a value or
    timestamp that was never generated); ``bad_records``: batches without exactly one ingest
    record, plus records of batches never generated."""

    generated: int
    stored: int
    missing: int
    extra: int
    bad_records: int


def tally(generated: Mapping[int, Batch], stored: Stored, unsettled: Collection[int] = ()) -> Tally:
    """Returns: the counts behind ``problems``: all zero but ``generated`` and ``stored``
    (equal) when every batch is stored exactly once with exactly its samples."""
    records = Counter(stored.seqs)
    expected = _expected(generated, records, unsettled)
    bad = sum(1 for seq in expected if records[seq] != 1) + len(set(records) - set(expected))
    want = Counter((key, point) for key, points in _wanted(expected).items() for point in points)
    have = Counter((key, point) for key, points in stored.points.items() for point in points)
    return Tally(
        generated=want.total(),
        stored=have.total(),
        missing=(want - have).total(),
        extra=(have - want).total(),
        bad_records=bad,
    )


def _expected(
    generated: Mapping[int, Batch], records: Counter[int], unsettled: Collection[int]
) -> dict[int, Batch]:
    """Returns: the batches that must be stored: all but unsettled ones without a record."""
    return {
        seq: batch for seq, batch in generated.items() if seq not in unsettled or records[seq] > 0
    }


def _wanted(expected: Mapping[int, Batch]) -> dict[SeriesKey, Points]:
    want: dict[SeriesKey, Points] = {}
    for batch in expected.values():
        for key, point in batch_points(batch).items():
            want.setdefault(key, []).append(point)
    return want
