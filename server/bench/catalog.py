"""The benchmark series' catalog entries, merged into the server's metric catalog.

Stage: configuration. ``catalog.toml`` beside this module lists the ``dcmon_bench_*`` series
in the shipped catalog's format; ``with_bench_series(base)`` returns ``base`` plus those of
them it lacks, so exposition headers, query metadata and the rule pack's checks know them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from agent.wire.catalog import Catalog, MetricSpec, default_catalog, parse_catalog


@cache
def bench_specs() -> tuple[MetricSpec, ...]:
    text = resources.files("server.bench").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tuple(parse_catalog(text, "server/bench/catalog.toml"))


def with_bench_series(base: Catalog) -> Catalog:
    """Returns: ``base`` with the bench series it does not list yet."""
    extra = [spec for spec in bench_specs() if spec.name not in base]
    return Catalog([*base.values(), *extra]) if extra else base


def server_catalog() -> Catalog:
    """Returns: the catalog the server uses: the shipped one plus the bench series."""
    return with_bench_series(default_catalog())
