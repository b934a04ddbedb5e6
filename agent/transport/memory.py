"""An in-memory transport: hands each payload to a function (tests, embedding, dry runs)."""

from __future__ import annotations

from collections.abc import Callable

from agent.wire.schema import Ack


class MemoryTransport:
    """Calls ``handler(payload)`` for each batch; the handler returns an Ack or raises."""

    def __init__(self, handler: Callable[[bytes], Ack]) -> None:
        self._handler = handler
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> Ack:
        ack = self._handler(payload)
        self.sent.append(payload)
        return ack

    def close(self) -> None:
        """Nothing to release."""
