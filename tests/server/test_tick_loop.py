"""The periodic writers' thread: a failing tick is counted and the loop goes on."""

from __future__ import annotations

import threading
import time

from server.tick_loop import TickLoop


def test_a_tick_that_raises_is_counted_and_the_loop_goes_on() -> None:
    calls: list[float] = []
    done = threading.Event()

    def tick(now: float) -> float:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("storage away")
        if len(calls) >= 3:
            done.set()
        return 0.0

    loop = TickLoop(tick, time.time, thread_name="test-loop", what="test writer")
    loop.start()
    try:
        assert done.wait(5)
    finally:
        loop.stop(5)
    assert loop.failures == 1 and len(calls) >= 3
    assert not any(t.name == "test-loop" for t in threading.enumerate())
