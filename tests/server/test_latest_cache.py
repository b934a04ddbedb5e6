"""The latest-value cache: newest batch wins, replays only prove liveness, names are indexed."""

from __future__ import annotations

from server.latest.cache import LatestCache, NodeLatest, StalePolicy


def _node(node_id: str = "a" * 32, name: str = "gpu01", ts: float = 100.0, push: float = 100.0):
    return NodeLatest(
        node_id=node_id,
        name=name,
        labels={},
        interval_seconds=10.0,
        last_push=push,
        batch_ts=ts,
        seq=int(ts),
        families={"node_load1": [({}, ts)]},
    )


def test_newest_batch_wins_and_replays_only_touch() -> None:
    cache = LatestCache()
    assert cache.update(_node(ts=100, push=100))
    assert not cache.update(_node(ts=90, push=130))  # late replay of an older batch
    current = cache.get("a" * 32)
    assert current is not None
    assert current.value("node_load1") == 100.0
    assert current.last_push == 130.0


def test_touch_only_known_nodes() -> None:
    cache = LatestCache()
    assert not cache.touch("a" * 32, 50.0)
    cache.update(_node(push=100))
    assert cache.touch("a" * 32, 150.0)
    node = cache.get("a" * 32)
    assert node is not None and node.last_push == 150.0


def test_name_index_follows_renames_and_forgets() -> None:
    cache = LatestCache()
    cache.update(_node(node_id="a" * 32, name="gpu01"))
    cache.update(_node(node_id="b" * 32, name="gpu01"))
    assert {n.node_id for n in cache.named("gpu01")} == {"a" * 32, "b" * 32}
    cache.update(_node(node_id="b" * 32, name="gpu02", ts=200))
    assert [n.node_id for n in cache.named("gpu01")] == ["a" * 32]
    assert [n.node_id for n in cache.named("gpu02")] == ["b" * 32]
    cache.forget("a" * 32)
    assert cache.named("gpu01") == []


def test_stale_policy_uses_the_node_interval_with_a_floor() -> None:
    policy = StalePolicy(intervals=3, min_seconds=30, forget_after_seconds=1000)
    node = _node(push=100)
    assert policy.is_up(node, 130) and not policy.is_up(node, 130.5)
    slow = NodeLatest(**{**node.__dict__, "interval_seconds": 60.0})
    assert policy.is_up(slow, 279) and not policy.is_up(slow, 281)
    assert not policy.is_forgotten(node, 1100) and policy.is_forgotten(node, 1100.5)
