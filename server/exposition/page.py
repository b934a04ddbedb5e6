"""The ``/metrics`` page as the pieces it was rendered from, sent without one big copy.

Stage: exposition -> HTTP. For a large fleet the page is tens of megabytes in tens of thousands
of pieces (one per node and family, each kept from the node's last batch). Joining them into one
object would allocate the whole page afresh on every scrape, and writing fresh memory is a
large part of a scrape's cost; instead the pieces are joined a bounded chunk at a time as the
response is written, so each chunk reuses memory the previous one freed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

CHUNK_BYTES = 1 << 20
"""About how much of the page one write to the client carries."""


@dataclass(frozen=True)
class Page:
    """Exposition text in order, as bytes pieces."""

    pieces: Sequence[bytes]
    size: int = field(init=False)
    """The page's length in bytes (its Content-Length)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", sum(map(len, self.pieces)))

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Yields: the page in order, pieces joined up to about ``chunk_bytes`` (a larger piece
        goes alone)."""
        group: list[bytes] = []
        grouped = 0
        for piece in self.pieces:
            group.append(piece)
            grouped += len(piece)
            if grouped >= chunk_bytes:
                yield b"".join(group)
                group, grouped = [], 0
        if group:
            yield b"".join(group)

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks():
            yield chunk

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)
