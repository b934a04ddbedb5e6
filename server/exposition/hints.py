"""The ``dcmon_hint_*`` series on ``/metrics``, beside the benchmark series.

Stage: hint store -> exposition. The same series the leader stores (``server/rebalancing/
series.py``'s ``samples``): while any hint is open, per kind, every kind even at zero, the open
hints and their summed gains; none while no hint is open, so ``absent(dcmon_hint_open)`` means
the same through a Prometheus as through dcmon's query API. The open hints are read from the
database, so every replica exposes the same values, without a timestamp (as the benchmark
series); ``dcmon_hint_round_seconds``, the run time of this process's latest round, only while
this replica leads, since only the leader runs rounds (and only its figure is stored).
Cost: one read of the open hints per scrape.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from agent.wire.catalog import Catalog
from server.exposition.bench import render_bench
from server.rebalancing.series import samples
from server.rebalancing.service import HintService

_log = logging.getLogger(__name__)
ROUND_SECONDS = "dcmon_hint_round_seconds"


def hint_text(service: HintService, leading: bool, catalog: Catalog) -> str:
    """Returns: the hint series with the catalog's HELP and TYPE (the round's run time only
    when ``leading``), or nothing while the database cannot be read (the rest of ``/metrics``
    still answers)."""
    try:
        found = samples(service)
    except SQLAlchemyError as exc:
        _log.warning("hint series left out of /metrics: %s", exc)
        return ""
    if not leading:
        found = [sample for sample in found if sample[0] != ROUND_SECONDS]
    return render_bench(found, catalog)
