"""The store's copy of the node table: read once, kept current by committed writes."""

from __future__ import annotations

from server.storage.naming import NamingCache
from server.storage.records import NodeNaming
from tests.factories import identity, make_batch


class Table:
    def __init__(self) -> None:
        self.rows = {1: NodeNaming(1, "gpu01", {}, "a" * 32, 10.0, 100.0, 99.0)}
        self.reads = 0

    def load(self) -> dict[int, NodeNaming]:
        self.reads += 1
        return dict(self.rows)


def test_writes_update_the_copy_and_age_rereads_it() -> None:
    table, now = Table(), [0.0]
    cache = NamingCache(table.load, clock=lambda: now[0])
    assert cache.get(2.0)[1].last_push == 100.0 and table.reads == 1
    batch = make_batch(seq=2, timestamp=150.0, node=identity("gpu01", labels={"rack": "r1"}))
    cache.note_write(1, batch, received_at=151.0)
    seen = cache.get(2.0)[1]
    assert table.reads == 1, "served from the copy"
    assert (seen.last_push, seen.last_batch_ts, seen.labels) == (151.0, 150.0, {"rack": "r1"})
    # An older (replayed) batch does not move the newest batch time back.
    cache.note_write(1, make_batch(seq=1, timestamp=120.0), received_at=152.0)
    assert cache.get(2.0)[1].last_batch_ts == 150.0
    now[0] = 2.5  # another replica's writes: seen once the copy is too old
    table.rows[2] = NodeNaming(2, "gpu02", {}, "b" * 32, 10.0, 100.0, 99.0)
    assert set(cache.get(2.0)) == {1, 2} and table.reads == 2


def test_a_node_the_copy_does_not_know_makes_it_read_again() -> None:
    table = Table()
    cache = NamingCache(table.load, clock=lambda: 0.0)
    cache.get(2.0)
    table.rows[2] = NodeNaming(2, "gpu02", {}, "b" * 32, 10.0, 100.0, 99.0)
    cache.note_write(2, make_batch(timestamp=150.0), received_at=151.0)
    assert set(cache.get(2.0)) == {1, 2} and table.reads == 2
    cache.invalidate()
    cache.get(2.0)
    assert table.reads == 3
