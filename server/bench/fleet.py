"""Fleet-relative judgement of GPU benchmark results: each GPU against its peers. Pure.

Stage: bench (server). A fixed per-SKU threshold (``agent.wire.skus``) catches broken parts;
a GPU that is slow but above it (a degraded HBM stack, a card that throttles, a PCIe link that
trained low) is caught by comparing it with the other GPUs of the same SKU. For each (SKU,
test), over the latest result of every GPU, the median and the median absolute deviation (MAD,
scaled by 1.4826 to estimate a standard deviation) are computed; a GPU is an **outlier** when

    value < OUTLIER_FRACTION x median   and   value < median - OUTLIER_MADS x scaled MAD

Both are required: the first keeps a tight fleet (a tiny MAD) from flagging GPUs for noise, as
healthy parts of one SKU sit within about 5 % of each other, so 0.90 is twice that spread; the
second keeps a fleet with a genuinely wide spread (mixed clocks or power caps) from flagging its
slower half. Fewer than ``MIN_PEERS`` results for a (SKU, test) judge nothing: a median of two
or three is no reference. Higher is better for every test.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

OUTLIER_FRACTION = 0.90
OUTLIER_MADS = 4.0
MAD_SCALE = 1.4826  # MAD -> standard deviation, for normally distributed values
MIN_PEERS = 5


@dataclass(frozen=True)
class Result:
    gpu_uuid: str
    sku: str
    test: str
    value: float


@dataclass(frozen=True)
class Peers:
    """The fleet's figures for one (SKU, test)."""

    sku: str
    test: str
    count: int
    median: float
    scaled_mad: float

    @property
    def limit(self) -> float:
        """Below this a GPU is an outlier (the lower of the two bounds of the module)."""
        return min(OUTLIER_FRACTION * self.median, self.median - OUTLIER_MADS * self.scaled_mad)


@dataclass(frozen=True)
class FleetVerdict:
    result: Result
    peers: Peers | None  # None: too few peers to judge
    outlier: bool
    reason: str


def peers(results: Iterable[Result]) -> dict[tuple[str, str], Peers]:
    """Returns: (SKU, test) -> the fleet's median and scaled MAD over ``results``."""
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for result in results:
        by_key[(result.sku, result.test)].append(result.value)
    out = {}
    for (sku, test), values in by_key.items():
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values)
        out[(sku, test)] = Peers(sku, test, len(values), median, MAD_SCALE * mad)
    return out


def judge(results: Iterable[Result]) -> list[FleetVerdict]:
    """Returns: every result judged against its (SKU, test) peers, in the order given; the
    results are each GPU's latest (one per GPU and test)."""
    items = list(results)
    fleet = peers(items)
    verdicts = []
    for result in items:
        group = fleet[(result.sku, result.test)]
        if group.count < MIN_PEERS:
            verdicts.append(
                FleetVerdict(
                    result,
                    None,
                    False,
                    f"{group.count} {result.sku} GPUs with {result.test}: at least "
                    f"{MIN_PEERS} are needed to judge against the fleet",
                )
            )
            continue
        outlier = result.value < group.limit
        relation = "below" if outlier else "within"
        share = f"{result.value / group.median:.2f} x" if group.median > 0 else "against"
        reason = (
            f"{result.value:.4g} is {share} the median "
            f"{group.median:.4g} of {group.count} {result.sku} GPUs: {relation} the fleet "
            f"(outlier below {group.limit:.4g}: {OUTLIER_FRACTION:.2f} x median and median - "
            f"{OUTLIER_MADS:g} x MAD)"
        )
        verdicts.append(FleetVerdict(result, group, outlier, reason))
    return verdicts
