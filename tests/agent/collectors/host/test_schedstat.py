"""The schedstat collector: per-CPU running and waiting seconds and timeslices, versions 15-17."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.schedstat import SchedstatCollector, parse_schedstat
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, tree_paths, value, write_tree

# A 6.16 kernel's layout (version 17): the domain lines name their domain.
_DOMAIN_FIELDS = " 0" * 45
VERSION_17 = f"""version 17
timestamp 4302157880
cpu0 0 0 0 0 0 0 7046178906 1209003122 67713
domain0 SMT 00000003{_DOMAIN_FIELDS}
domain1 MC ffffffff{_DOMAIN_FIELDS}
cpu1 0 0 0 0 0 0 6876251283 1148892811 64201 99
domain0 SMT 00000003{_DOMAIN_FIELDS}
"""


def test_gpu_server_version_15() -> None:
    samples = SchedstatCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_schedstat_running_seconds_total", cpu="0") == 2211004.379123457
    assert value(samples, "node_schedstat_waiting_seconds_total", cpu="2") == 188220.091123387
    assert value(samples, "node_schedstat_timeslices_total", cpu="3") == 402331998
    assert label_values(samples, "node_schedstat_timeslices_total", "cpu") == {"0", "1", "2", "3"}
    assert len(samples) == 12
    assert_conforms(samples, source="schedstat")


def test_version_17_named_domains_and_extra_fields() -> None:
    rows = parse_schedstat("schedstat", VERSION_17)

    assert rows == [("0", 7046178906, 1209003122, 67713), ("1", 6876251283, 1148892811, 64201)]


def test_kernel_without_schedstats_yields_nothing() -> None:
    assert SchedstatCollector(tree_paths(RECORDED)).collect(0.0) == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("version 15\ncpu0 1 2 3\n", "short cpu line"),
        ("version 15\ncpu0 0 0 0 0 0 0 12 x 4\n", "integer"),
        ("cpu0 0 0 0 0 0 0 1 2 3\n", "no version"),
        ("version 14\ncpu0 0 0 0 0 0 0 0 0 0 1 2 3\n", "version 14"),
    ],
)
def test_a_file_that_does_not_parse_raises(scratch: Path, text: str, why: str) -> None:
    paths = write_tree(scratch, {"proc/schedstat": text})

    with pytest.raises(MalformedFileError, match=why):
        SchedstatCollector(paths).collect(0.0)
