"""Agents on a fake clock for alerting tests: the agent's own spool and shipper, pushing into an
in-process server app, or spooling while there is none.

Stage: agent spool -> shipper -> transport -> server ingest, without threads. Each ``Agent``
collects one batch per push interval into its spool and, when ``deliver`` is called, lets its
real ``Shipper`` send what is due at that moment (backoff, replay pace and bulk requests as the
agent does them, on the fake clock). ``Link`` is the network: it carries requests to the server
app that is up, or fails them as a refused connection does while it is down. Powering an agent
off stops collection and delivery; booting it starts a new shipper (fresh backoff) over the same
spool, as the disk spool outlives the agent process.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastapi.testclient import TestClient

from agent.backoff import Backoff
from agent.shipper import Shipper
from agent.spool.base import SpooledBatch
from agent.spool.memory import MemorySpool
from agent.transport.base import BulkResult, RetryableError
from agent.wire.codec import CONTENT_ENCODING, CONTENT_TYPE, encode_batch
from agent.wire.protocol import (
    BULK_MEDIA_TYPE,
    BULK_PATH,
    INGEST_PATH,
    SENT_AT_HEADER,
    BulkAnswer,
    frame_records,
)
from agent.wire.schema import Ack, Batch, MetricFamily, NodeIdentity

Metrics = Callable[[str, float], list[MetricFamily]]
"""What a node measures: (node name, Unix seconds) -> its metric families."""

MAX_SENDS_PER_DELIVER = 1_000


@dataclass
class Link:
    """The network between the agents and the server: ``client`` is None while it is down."""

    token: str
    clock: Callable[[], float]
    client: TestClient | None = None
    requests: int = 0

    def post(self, path: str, body: bytes, content: dict[str, str]) -> bytes:
        client = self.client
        if client is None:
            raise RetryableError("cannot reach the server: connection refused")
        self.requests += 1
        headers = {
            **content,
            "Authorization": f"Bearer {self.token}",
            SENT_AT_HEADER: f"{self.clock():.3f}",
        }
        response = client.post(path, content=body, headers=headers)
        # The scenarios never expect a refusal: one is a defect of the test or the server.
        assert response.status_code == 200, (response.status_code, response.text)
        return response.content


class LinkTransport:
    """The agent's ``Transport`` over a ``Link`` (what ``HttpTransport`` does over a socket)."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def send(self, payload: bytes) -> Ack:
        content = {"Content-Type": CONTENT_TYPE, "Content-Encoding": CONTENT_ENCODING}
        return Ack.model_validate_json(self._link.post(INGEST_PATH, payload, content))

    def send_many(self, payloads: Sequence[bytes]) -> list[BulkResult]:
        body = frame_records(tuple(payloads))
        answer = BulkAnswer.model_validate_json(
            self._link.post(BULK_PATH, body, {"Content-Type": BULK_MEDIA_TYPE})
        )
        assert len(answer.results) == len(payloads)
        return [
            BulkResult(
                r.status, r.seq, r.samples, r.http_status, r.code, r.message, tuple(r.refused)
            )
            for r in answer.results
        ]

    def close(self) -> None:
        pass


@dataclass
class Agent:
    """One node's agent: ``tick`` collects when a push interval has passed, ``deliver`` ships."""

    name: str
    node_id: str
    link: Link
    metrics: Metrics
    interval_seconds: float = 10.0
    replay_batches_per_request: int = 32  # the agent's defaults
    replay_requests_per_second: float = 2.0
    seed: int = 0
    spool: MemorySpool = field(default_factory=lambda: MemorySpool(64 << 20))
    powered: bool = True
    seq: int = 0
    next_collect: float | None = None
    shipper: Shipper | None = None

    def boot(self) -> None:
        """Start the agent process: a new shipper (fresh backoff) over the spool it left."""
        self.powered = True
        self.next_collect = None
        self.shipper = Shipper(
            self.spool,
            LinkTransport(self.link),
            Backoff(1.0, 60.0, random.Random(f"{self.name}/{self.seed}")),  # the defaults
            monotonic=self.link.clock,
            replay_batches_per_request=self.replay_batches_per_request,
            replay_requests_per_second=self.replay_requests_per_second,
        )
        self.seed += 1

    def power_off(self) -> None:
        self.powered = False
        self.shipper = None

    def tick(self, now: float) -> None:
        """Collect a batch if one is due, then ship what is due (both only while powered)."""
        if not self.powered:
            return
        if self.next_collect is None:
            self.next_collect = now
        if now >= self.next_collect:
            self.seq += 1
            batch = Batch(
                node=NodeIdentity(node_id=self.node_id, name=self.name, hostname=self.name),
                seq=self.seq,
                timestamp=now,
                interval_seconds=self.interval_seconds,
                metrics=self.metrics(self.name, now),
            )
            self.spool.append(SpooledBatch(batch.seq, encode_batch(batch), now, now))
            self.next_collect += self.interval_seconds
        self.deliver(now)

    def deliver(self, now: float) -> None:
        shipper = self.shipper
        assert shipper is not None
        for _ in range(MAX_SENDS_PER_DELIVER):
            if not self.spool.pending() or shipper.next_attempt_at > now:
                return
            if not shipper.deliver_once():
                return
        raise AssertionError(f"{self.name}: more than {MAX_SENDS_PER_DELIVER} sends at once")
