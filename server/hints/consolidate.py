"""consolidate (stub)."""

from __future__ import annotations

from collections.abc import Iterator

from server.hints.hint import Hint
from server.hints.planner import Round


def propose(round_: Round) -> Iterator[Hint]:
    yield from ()
