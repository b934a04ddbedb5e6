"""The auth caches' shared core: fresh for its TTL, emptied by a change, and never refilled by
a lookup that started before the change (a revocation read too early would come back)."""

from __future__ import annotations

from server.auth.ttl_cache import Hit, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_fresh_for_its_ttl_only() -> None:
    clock = Clock()
    cache: TtlCache[str, int | None] = TtlCache(5.0, clock)
    cache.put("a", None, cache.generation(), clock.now)
    assert cache.get("a") == Hit(None)  # a kept "not found" is a hit, not a miss
    clock.now += 4.9
    assert cache.get("a") == Hit(None)
    clock.now += 0.1
    assert cache.get("a") is None


def test_a_lookup_that_raced_a_change_is_not_kept() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(5.0, clock)
    before = cache.generation()
    cache.clear()  # e.g. the token was revoked while the lookup ran
    cache.put("t", "active", before, clock.now)
    assert cache.get("t") is None
    cache.put("t", "active", cache.generation(), clock.now)
    assert cache.get("t") == Hit("active")
    seen = cache.generation()
    cache.discard("t")
    assert cache.get("t") is None
    cache.put("t", "active", seen, clock.now)
    assert cache.get("t") is None


def test_no_caching_at_ttl_zero_and_bounded_size() -> None:
    clock = Clock()
    off: TtlCache[str, int] = TtlCache(0.0, clock)
    off.put("a", 1, off.generation(), clock.now)
    assert off.get("a") is None
    small: TtlCache[int, int] = TtlCache(5.0, clock, max_entries=3)
    for key in range(4):
        small.put(key, key, small.generation(), clock.now)
    assert [small.get(k) is not None for k in range(4)] == [False, False, False, True]
