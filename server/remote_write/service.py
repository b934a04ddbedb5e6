"""Remote-write: decoded series -> checked samples -> store writes, one per (node, timestamp).

Stage: transport -> remote_write -> storage. A native batch is one node at one timestamp;
remote-written samples carry their own timestamps, so the request's samples are grouped by
node (``mapping.py``) and timestamp, and each group is written as one batch through the store
(its series limit, group commits and durability). All checks run before anything is written:

- the caller may write each node (an ingest token any, a node token none of these), and no
  live node of another id has the name (400);
- against the stored data, as Prometheus' TSDB does per series: a sample newer than the
  series' last is appended, one at a stored timestamp with a bit-identical value is accepted
  and not stored again, a different value there is a duplicate and an older one out of order
  (400). Unlike the TSDB, which compares with the last sample only, a bit-identical sample at
  any stored timestamp is accepted: a request's groups commit separately, so a request retried
  after a 5xx may find some of its samples stored and must not be refused for them;
- a sample more than ``max_future_seconds`` ahead of the server's clock, or older than the raw
  retention, is out of bounds (400);
- within the request, samples of one series that are not newer than its previous one are
  dropped silently (Prometheus drops them at commit);
- a group past ``max_series_per_batch`` is refused (400).

Each group's batch number is a hash of its content, so a re-sent group is recognised as a
duplicate by the store; groups at a timestamp already stored add only their new series. Past a
node's series limit the new series that do not fit are not stored and counted, as for native
batches; the request still gets 204. Storage that cannot take the write now answers 503 with
Retry-After (Prometheus retries 5xx). Checks read committed data: two requests racing on the
same series may both pass them (Prometheus shards by series, so one series is sent in order).
"""

from __future__ import annotations

import hashlib
import struct
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.wire.schema import Batch, NodeIdentity
from server.auth import Principal
from server.errors import ApiError
from server.exposition.self_metrics import ServerMetrics
from server.ingest.service import CARDINALITY_LIMIT, IngestLimits
from server.latest.cache import LatestCache, StalePolicy
from server.remote_write.mapping import Mapped, map_series, node_id_of
from server.remote_write.proto import TimeSeries
from server.storage.reader import Reader
from server.storage.series_index import IndexedSeries, canonical_labels
from server.storage.store import PendingWrite, StorageUnavailableError, Store
from server.storage.tiers import TierPlan

INTERVAL_SECONDS = 60.0
"""The interval recorded for a remote-write node (Prometheus' default scrape interval)."""
_SEQ_MASK = 2**63 - 1

SeriesKey = tuple[str, str, str]
"""(node name, metric, canonical labels)."""


@dataclass
class _Series:
    node: str
    metric: str
    labels: dict[str, str]
    samples: list[tuple[int, float]]


class RemoteWriteService:
    def __init__(
        self,
        store: Store,
        reader: Reader,
        plan: TierPlan,
        latest: LatestCache,
        policy: StalePolicy,
        metrics: ServerMetrics,
        limits: IngestLimits,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._reader = reader
        self._plan = plan
        self._latest = latest
        self._policy = policy
        self._metrics = metrics
        self._limits = limits
        self._clock = clock

    def write(self, request: list[TimeSeries], caller: Principal) -> int:
        """Store the request's samples; returns how many were stored.

        Raises:
            ApiError: 400 for data refused for good, 403 for a node the caller may not write,
                503 when storage cannot take it now (nothing of a refused request is written).
        """
        now = self._clock()
        series = _merge(request)
        for name in {item.node for item in series.values()}:
            self._check_node(name, caller, now)
        self._check_bounds(series, now)
        self._check_stored(series, now)
        groups = _groups(series)
        for (node, ts_ms), families in groups.items():
            size = sum(len(samples) for samples in families.values())
            if size > self._limits.max_series_per_batch:
                raise ApiError(
                    400,
                    "too_many_series",
                    f"node {node!r} has {size} samples at {ts_ms} ms in this request, more "
                    f"than the limit of {self._limits.max_series_per_batch} "
                    "(max_series_per_batch)",
                )
        pending = [
            self._start(node, ts_ms, families, now) for (node, ts_ms), families in groups.items()
        ]
        stored = 0
        for (node, _ts), work in zip(groups, pending, strict=True):
            try:
                result = work.result()
            except StorageUnavailableError as exc:
                raise _unavailable(exc) from None
            stored += result.samples
            refused = sum(result.refused.values())
            if refused:
                self._metrics.ingest_refused_series.labels(CARDINALITY_LIMIT).inc(refused)
                self._metrics.node_refused_series.labels(node, CARDINALITY_LIMIT).inc(refused)
        self._metrics.ingest_samples.inc(stored)
        return stored

    def _check_node(self, name: str, caller: Principal, now: float) -> None:
        node_id = node_id_of(name)
        if not caller.may_write_node(node_id):
            raise ApiError(
                403,
                "node_mismatch",
                f"this token may not write node {name!r}; remote write needs an ingest token",
            )
        for node in self._latest.named(name):
            if node.node_id != node_id and self._policy.is_up(node, now):
                raise ApiError(
                    400,
                    "name_conflict",
                    f"instance {name!r} is the name of a live dcmon agent node; remote-written "
                    "series must not mix with its series (relabel the instance)",
                )

    def _check_bounds(self, series: Mapping[SeriesKey, _Series], now: float) -> None:
        newest = round((now + self._limits.max_future_seconds) * 1000)
        oldest = max(1, self._reader.horizon_ms(self._plan.raw))
        for item in series.values():
            for ts_ms, _value in item.samples:
                if ts_ms > newest or ts_ms < oldest:
                    raise ApiError(
                        400,
                        "out_of_bounds",
                        f"out of bounds: sample of {item.metric} on {item.node!r} at {ts_ms} ms "
                        f"is more than {self._limits.max_future_seconds:g}s ahead of the "
                        "server's clock or older than the raw retention",
                    )

    def _check_stored(self, series: dict[SeriesKey, _Series], now: float) -> None:
        """Compare each series' samples with the stored ones: a sample stored already with a
        bit-identical value is dropped (accepted, not stored twice).

        Raises:
            ApiError: 400 for a different value at a stored timestamp (duplicate) or a sample
                older than the series' last stored one (out of order).
        """
        naming = {record.name: record.pk for record in self._store.nodes()}
        found: list[tuple[_Series, IndexedSeries]] = []
        for (node, metric, labels), item in series.items():
            node_pk = naming.get(node)
            series_id = (
                None if node_pk is None else self._store.index.lookup(node_pk, metric, labels)
            )
            indexed = None if series_id is None else self._store.index.get(series_id)
            if indexed is not None and item.samples:
                found.append((item, indexed))
        if not found:
            return
        start = min(item.samples[0][0] for item, _ in found)
        end = round((now + self._limits.max_future_seconds) * 1000) + 1
        stored = self._reader.raw([indexed for _, indexed in found], start, end)
        for item, indexed in found:
            stamps, values = stored[indexed.id]
            if len(stamps) == 0 or int(stamps[-1]) < item.samples[0][0]:
                continue
            last_ts = int(stamps[-1])
            have = {int(t): _bits(float(v)) for t, v in zip(stamps, values, strict=True)}
            fresh: list[tuple[int, float]] = []
            for ts_ms, value in item.samples:
                if ts_ms in have and have[ts_ms] == _bits(value):
                    continue  # stored already (a re-sent request): accepted, not stored twice
                if ts_ms in have:
                    raise ApiError(
                        400,
                        "duplicate_sample_for_timestamp",
                        f"duplicate sample for timestamp: {item.metric} on {item.node!r} at "
                        f"{ts_ms} ms has another value stored",
                    )
                if ts_ms < last_ts:
                    raise ApiError(
                        400,
                        "out_of_order_sample",
                        f"out of order sample: {item.metric} on {item.node!r} at {ts_ms} ms is "
                        f"older than its last stored sample at {last_ts} ms",
                    )
                fresh.append((ts_ms, value))
            item.samples[:] = fresh

    def _start(
        self,
        node: str,
        ts_ms: int,
        families: dict[str, list[tuple[dict[str, str], float]]],
        now: float,
    ) -> PendingWrite:
        digest = hashlib.blake2b(
            repr(
                (
                    ts_ms,
                    sorted(
                        (metric, canonical_labels(labels), _bits(value))
                        for metric, samples in families.items()
                        for labels, value in samples
                    ),
                )
            ).encode(),
            digest_size=8,
        ).digest()
        batch = Batch(
            node=NodeIdentity(node_id=node_id_of(node), name=node, hostname=node),
            seq=int.from_bytes(digest, "big") & _SEQ_MASK,
            timestamp=ts_ms / 1000,
            interval_seconds=INTERVAL_SECONDS,
        )
        try:
            return self._store.start_write(
                batch,
                list(families.items()),
                received_at=now,
                max_series_per_node=self._limits.max_series_per_node,
                timeout_seconds=self._limits.write_timeout_seconds,
            )
        except StorageUnavailableError as exc:
            raise _unavailable(exc) from None


def _merge(request: list[TimeSeries]) -> dict[SeriesKey, _Series]:
    """Returns: the request's valid series, each once, its samples strictly increasing in
    time (a sample not newer than the previous one of its series is dropped)."""
    merged: dict[SeriesKey, _Series] = {}
    for sent in request:
        mapped: Mapped | None = map_series(sent)
        if mapped is None:
            continue
        key = (mapped.node, mapped.metric, canonical_labels(mapped.labels))
        item = merged.setdefault(key, _Series(mapped.node, mapped.metric, mapped.labels, []))
        for ts_ms, value in mapped.samples:
            if not item.samples or ts_ms > item.samples[-1][0]:
                item.samples.append((ts_ms, value))
    return merged


def _groups(
    series: Mapping[SeriesKey, _Series],
) -> dict[tuple[str, int], dict[str, list[tuple[dict[str, str], float]]]]:
    groups: dict[tuple[str, int], dict[str, list[tuple[dict[str, str], float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for item in series.values():
        for ts_ms, value in item.samples:
            groups[(item.node, ts_ms)][item.metric].append((item.labels, value))
    return groups


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _unavailable(exc: StorageUnavailableError) -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        f"storage is unavailable ({exc}); the request was not stored, retry later",
        headers={"Retry-After": "5"},
    )
