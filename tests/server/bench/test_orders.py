"""The order cache: an answer costs a dict lookup until the refresh bound passes; a local
write is seen by the next answer; the database away keeps the last snapshot."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from agent.wire.bench import BenchOrder
from server.bench.model import BenchRequest
from server.bench.orders import OrderCache
from tests.server.conftest import START, FakeClock


def _request(node_id: str, state: str = "pending", deadline: float = START + 600) -> BenchRequest:
    return BenchRequest(
        request_id=f"r-{node_id}",
        node_id=node_id,
        node_name=node_id,
        state=state,
        level="quick",
        gpus=None,
        duration_s=None,
        force=False,
        created_at=START,
        created_by="admin",
        expires_at=START + 600,
        deadline_at=deadline,
        updated_at=START,
        started_at=None,
        last_report_at=None,
        finished_at=None,
        cancel_requested=False,
        message="",
        progress=None,
    )


class FakeRequests:
    def __init__(self) -> None:
        self.open: list[BenchRequest] = []
        self.reads = 0
        self.expiries: list[float] = []
        self.fail = False

    def open_requests(self) -> list[BenchRequest]:
        self.reads += 1
        if self.fail:
            raise OperationalError("SELECT", {}, Exception("database away"))
        return list(self.open)

    def expire_later(self, now: float) -> None:
        self.expiries.append(now)


def test_answers_read_the_database_once_per_refresh_bound() -> None:
    clock = FakeClock()
    requests = FakeRequests()
    cache = OrderCache(requests, clock, refresh_seconds=2.0)  # type: ignore[arg-type]
    requests.open = [_request("n1")]
    assert isinstance(cache.order_for("n1"), BenchOrder)
    for _ in range(1000):
        assert cache.order_for("n2") is None
    assert requests.reads == 1
    assert cache.order_for(None) is None
    requests.open = []
    clock.now += 1.9
    assert cache.order_for("n1") is not None  # still the old snapshot, within the bound
    clock.now += 0.1
    assert cache.order_for("n1") is None and requests.reads == 2
    requests.open = [_request("n2")]
    cache.invalidate()  # a write on this replica
    assert cache.order_for("n2") is not None and requests.reads == 3


def test_a_request_past_its_deadline_is_left_out_and_its_expiry_queued() -> None:
    clock = FakeClock()
    requests = FakeRequests()
    requests.open = [_request("n1", deadline=START - 1), _request("n2", state="running")]
    cache = OrderCache(requests, clock)  # type: ignore[arg-type]
    assert cache.order_for("n1") is None
    assert cache.order_for("n2") is not None
    assert requests.expiries == [START]


def test_the_database_away_keeps_the_last_snapshot_and_never_fails_a_push() -> None:
    clock = FakeClock()
    requests = FakeRequests()
    requests.open = [_request("n1")]
    cache = OrderCache(requests, clock)  # type: ignore[arg-type]
    assert cache.order_for("n1") is not None
    requests.fail = True
    clock.now += 5
    assert cache.order_for("n1") is not None
    assert cache.failures == 1
    assert cache.order_for("n1") is not None and requests.reads == 2  # retried after the bound
