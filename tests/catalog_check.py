"""Checks that samples conform to the metric catalog (the contract every collector keeps)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from agent.collectors.base import Sample
from agent.wire.catalog import Catalog, default_catalog


def catalog_problems(
    samples: Iterable[Sample], catalog: Catalog | None = None, source: str | None = None
) -> list[str]:
    """Returns: one line per violation (unknown name, wrong labels, duplicates, non-finite)."""
    catalog = catalog or default_catalog()
    problems: list[str] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for sample in samples:
        spec = catalog.get(sample.name)
        if spec is None:
            problems.append(f"{sample.name}: not in the catalog")
            continue
        if set(sample.labels) != spec.label_set:
            problems.append(
                f"{sample.name}: labels {sorted(sample.labels)} != catalog {sorted(spec.labels)}"
            )
        if source is not None and spec.source != source:
            problems.append(f"{sample.name}: catalog source {spec.source!r}, emitted by {source!r}")
        if not isinstance(sample.value, (int, float)) or not math.isfinite(sample.value):
            problems.append(f"{sample.name}{sample.labels}: value {sample.value!r} is not finite")
        key = (sample.name, tuple(sorted(sample.labels.items())))
        if key in seen:
            problems.append(f"{sample.name}{sample.labels}: emitted twice")
        seen.add(key)
    return problems


def assert_conforms(
    samples: Iterable[Sample], catalog: Catalog | None = None, source: str | None = None
) -> None:
    problems = catalog_problems(samples, catalog, source)
    assert not problems, "samples break the catalog contract:\n" + "\n".join(problems)
