"""The timed loop every backend measures with: warm-up, then iterations within a budget."""

from __future__ import annotations

from collections.abc import Callable


def timed_loop(
    step: Callable[[], object],
    *,
    warmup: int,
    iterations: int,
    budget_s: float,
    timer: Callable[[], float],
    sync: Callable[[], None] = lambda: None,
) -> tuple[int, float]:
    """Run ``step`` ``warmup`` times untimed, then up to ``iterations`` times timed.

    The timed loop stops early once ``budget_s`` seconds have passed, after at least one
    iteration. ``sync`` waits for queued device work (a no-op on the CPU) so the clock reads
    finished work. Returns: (timed iterations, seconds they took).
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    for _ in range(warmup):
        step()
    sync()
    start = timer()
    done = 0
    while done < iterations:
        step()
        done += 1
        if done < iterations and timer() - start >= budget_s:
            sync()
            if timer() - start >= budget_s:
                break
    sync()
    return done, timer() - start
