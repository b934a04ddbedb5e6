"""The ``dcmon_bench_*`` series on ``/metrics``, beside the fleet's samples.

Stage: bench snapshot -> exposition. Like ``dcmon_node_up`` they are derived by the server
(from the benchmark results in the database), so every replica exposes the same values and
they carry no timestamp; each sample carries the ``instance`` of the node it is about.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from sqlalchemy.exc import SQLAlchemyError

from agent.wire.catalog import Catalog
from server.bench.snapshot import Sample
from server.exposition.render import UNKNOWN_HELP, escape_help, format_value, render_labels

_log = logging.getLogger(__name__)


def render_bench(samples: Iterable[Sample], catalog: Catalog) -> str:
    """Returns: the samples as text exposition, one family after another by name."""
    families: dict[str, list[str]] = defaultdict(list)
    for name, labels, value in samples:
        families[name].append(
            f"{name}{render_labels(sorted(labels.items()))} {format_value(value)}\n"
        )
    out = []
    for name in sorted(families):
        spec = catalog.get(name)
        help_text = escape_help(spec.help) if spec is not None else UNKNOWN_HELP
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {spec.type if spec else 'untyped'}\n")
        out.extend(families[name])
    return "".join(out)


def bench_text(samples: Callable[[], list[Sample]], catalog: Catalog) -> str:
    """Returns: the bench series, or nothing while the database cannot be read (the rest of
    ``/metrics`` still answers)."""
    try:
        found = samples()
    except SQLAlchemyError as exc:
        _log.warning("benchmark series left out of /metrics: %s", exc)
        return ""
    return render_bench(found, catalog)
