"""A bounded cache of decoded blocks, keyed by the stored bytes themselves.

Stage: storage -> history. Dashboards ask the same queries again every refresh, and a raw block
of a closed window is decoded afresh each time (most of a short query's time). A block's bytes
fully determine its decoded arrays, so the cache is keyed by those bytes: a block rewritten by
compaction (late samples merged in) has other bytes and simply misses, and no invalidation is
needed. Entries are evicted least recently used once the cached samples pass ``max_samples``,
so the memory it holds is bounded (16 bytes per sample and column, plus the key bytes). The
arrays handed out are read-only: callers slice or mask them, never write into them. Safe to
share between query threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from server.storage import blocks

DEFAULT_MAX_SAMPLES = 1 << 22
"""About 4 M samples: 64 MiB of one-column arrays (~100 series x 6 h per MiB at 10 s)."""

Decoded = tuple[blocks.I64, list[blocks.F64]]


class DecodedBlocks:
    """``decode(blob)`` as ``blocks.decode``, remembering recent answers."""

    def __init__(self, max_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        self._max_samples = max_samples
        self._entries: OrderedDict[bytes, Decoded] = OrderedDict()
        self._samples = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def samples(self) -> int:
        """Samples (times columns) held now."""
        return self._samples

    def decode(self, blob: bytes) -> Decoded:
        """Returns: the block's (timestamps, columns), read-only. Raises blocks.BlockError."""
        key = bytes(blob)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
        stamps, columns = blocks.decode(key)
        stamps.setflags(write=False)
        for column in columns:
            column.setflags(write=False)
        size = len(stamps) * len(columns)
        if size > self._max_samples:
            return stamps, columns
        with self._lock:
            self.misses += 1
            if key not in self._entries:
                self._entries[key] = (stamps, columns)
                self._samples += size
            while self._samples > self._max_samples:
                _key, (old_stamps, old_columns) = self._entries.popitem(last=False)
                self._samples -= len(old_stamps) * len(old_columns)
        return stamps, columns
