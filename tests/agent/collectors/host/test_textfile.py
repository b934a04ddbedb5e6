"""The textfile collector: node_exporter's ``*.prom`` directory, each file used whole or not."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.collectors.host.textfile import MAX_FILE_BYTES, MTIME, SCRAPE_ERROR, TextfileCollector
from agent.wire.catalog import default_catalog

GOOD = """\
# HELP raid_degraded Whether the md array is degraded.
# TYPE raid_degraded gauge
raid_degraded{array="md0"} 0
raid_degraded{array="md1"} 1
# TYPE backup_runs_total counter
backup_runs_total 12
# TYPE job_seconds histogram
job_seconds_bucket{le="1"} 2
job_seconds_bucket{le="+Inf"} 3
job_seconds_sum 4.5
job_seconds_count 3
"""


def _collector(directory: Path | None) -> TextfileCollector:
    return TextfileCollector(directory, reserved_names=default_catalog())


def _by_name(samples: list) -> dict[str, list]:  # type: ignore[type-arg]
    found: dict[str, list] = {}  # type: ignore[type-arg]
    for sample in samples:
        found.setdefault(sample.name, []).append(sample)
    return found


def test_a_good_file_is_reported_whole_with_its_mtime(tmp_path: Path) -> None:
    path = tmp_path / "raid.prom"
    path.write_text(GOOD)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    (tmp_path / "notes.txt").write_text("not a metric file")

    samples = _by_name(_collector(tmp_path).collect(0.0))

    assert {(s.labels["array"], s.value) for s in samples["raid_degraded"]} == {
        ("md0", 0.0),
        ("md1", 1.0),
    }
    assert [s.value for s in samples["backup_runs_total"]] == [12.0]
    buckets = {s.labels["le"]: s.value for s in samples["job_seconds_bucket"]}
    assert buckets == {"1": 2.0, "+Inf": 3.0}  # label values as written
    assert [s.value for s in samples["job_seconds_count"]] == [3.0]
    assert [(s.labels, s.value) for s in samples[MTIME]] == [({"file": str(path)}, 1.7e9)]
    assert [s.value for s in samples[SCRAPE_ERROR]] == [0.0]


def test_no_directory_reports_only_a_clear_error_gauge() -> None:
    assert _collector(None).collect(0.0) == [(SCRAPE_ERROR, {}, 0.0)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("raid_degraded{array=md0} 1\n", "does not parse"),
        ("raid_degraded 1 1700000000000\n", "timestamps"),
        ('node_cpu_seconds_total{cpu="0",mode="idle"} 1\n', "dcmon's own collectors"),
        (f'x{{a="{"v" * 2000}"}} 1\n', "longer than"),
        ("x{" + ",".join(f'l{i}="v"' for i in range(40)) + "} 1\n", "labels, over"),
    ],
    ids=["unparsable", "timestamp", "reserved-name", "long-label", "too-many-labels"],
)
def test_a_bad_file_is_skipped_whole_and_sets_the_error(
    tmp_path: Path, text: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a_good.prom").write_text("good_metric 1\n")
    (tmp_path / "b_bad.prom").write_text("half_written 1\n" + text)
    collector = _collector(tmp_path)

    with caplog.at_level(logging.WARNING):
        samples = _by_name(collector.collect(0.0))
        collector.collect(1.0)

    assert [s.value for s in samples["good_metric"]] == [1.0]
    assert "half_written" not in samples  # nothing of the bad file, not even its good lines
    assert [s.labels["file"] for s in samples[MTIME]] == [str(tmp_path / "a_good.prom")]
    assert [s.value for s in samples[SCRAPE_ERROR]] == [1.0]
    warnings = [r.getMessage() for r in caplog.records if "b_bad.prom" in r.getMessage()]
    assert len(warnings) == 1 and reason in warnings[0]  # logged once, not every tick


def test_instance_and_job_labels_are_exported_as_prometheus_renames_them(tmp_path: Path) -> None:
    (tmp_path / "x.prom").write_text('site_info{instance="a",job="b",rack="r1"} 1\n')

    (sample,) = _by_name(_collector(tmp_path).collect(0.0))["site_info"]

    assert sample.labels == {"exported_instance": "a", "exported_job": "b", "rack": "r1"}


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    with (tmp_path / "huge.prom").open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)

    samples = _by_name(_collector(tmp_path).collect(0.0))

    assert MTIME not in samples and [s.value for s in samples[SCRAPE_ERROR]] == [1.0]


def test_a_missing_directory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    samples = _collector(tmp_path / "absent").collect(0.0)

    assert samples == [(SCRAPE_ERROR, {}, 1.0)]


def test_a_fixed_file_is_used_again(tmp_path: Path) -> None:
    path = tmp_path / "x.prom"
    path.write_text("broken{ 1\n")
    collector = _collector(tmp_path)
    assert _by_name(collector.collect(0.0))[SCRAPE_ERROR][0].value == 1.0

    path.write_text("fixed 1\n")
    samples = _by_name(collector.collect(1.0))

    assert samples[SCRAPE_ERROR][0].value == 0.0 and samples["fixed"][0].value == 1.0
