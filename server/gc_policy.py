"""The ``dcmon server`` process's garbage-collector policy: rare full collections over a large,
long-lived heap.

Stage: process setup, in ``server.main.serve`` only (never at import, never for an app built
in-process by tests or benchmarks, which keep Python's defaults).

Why: a server holds a large heap that lives as long as the process (the series index's labels
and layouts, the latest cache, the rule groups), and each batch leaves a few hundred container
objects alive until its node's next batch. With Python's thresholds (700, 10, 10) a full
collection runs every hundred young ones or so, and each walks every tracked object of the
process: in-process profiles of the ingest path put 50-60 % of its CPU in full collections.
Here the objects of startup are frozen (never walked again), young collections run every
50,000 allocations and full ones ten times less often. Reference counting still frees almost
everything at once; the collector only finds cycles, of which the ingest path makes none.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # allocations minus deallocations before a young collection
MIDDLE_THRESHOLD = 20  # young collections before a middle one
OLD_THRESHOLD = 100  # middle collections before a full one


def tune() -> None:
    """Collect once, freeze what survived (startup's objects), raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
