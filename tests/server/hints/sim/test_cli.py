from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from server.hints.sim.cli import main, report_points
from server.hints.sim.runs import PolicySummary, parse_seeds
from server.hints.sim.synthetic import synthetic_trace, write_trace
from server.hints.sim.trace import TRACE_DIR_ENV


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    nodes, pods = synthetic_trace(5, nodes=150, pods=1000)
    return write_trace(tmp_path, nodes, pods)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_json_report_per_policy(trace_dir: Path) -> None:
    code, out, _ = run(
        ["--trace-dir", str(trace_dir), "--seeds", "1-3", "--workers", "1", "--json"]
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["trace"]["nodes"] == 150
    assert doc["arrival_pct"] == 130
    assert [p["policy"] for p in doc["policies"]] == ["random", "bestfit", "fgd"]
    for policy in doc["policies"]:
        assert policy["seeds"] == [1, 2, 3]
        at130 = policy["alloc_pct"]["130"]
        assert len(at130["per_seed"]) == 3
        assert at130["mean"] == pytest.approx(sum(at130["per_seed"]) / 3)
        assert 0 < at130["mean"] <= 100
        assert set(policy["alloc_pct"]) == {"100", "130"}


def test_table_in_two_worker_processes_matches_one(trace_dir: Path) -> None:
    argv = ["--trace-dir", str(trace_dir), "--policy", "bestfit", "fgd", "--seeds", "4,5"]
    code, one, _ = run([*argv, "--workers", "1"])
    code2, two, _ = run([*argv, "--workers", "2"])
    assert code == code2 == 0
    lines_one = [line.rsplit(maxsplit=1)[0] for line in one.splitlines()]  # drop s/replay
    lines_two = [line.rsplit(maxsplit=1)[0] for line in two.splitlines()]
    assert lines_one == lines_two
    assert "fgd" in one
    assert "random" not in one


def test_trace_dir_from_the_environment(trace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRACE_DIR_ENV, str(trace_dir))
    code, out, _ = run(["--policy", "fgd", "--seeds", "1", "--arrival", "100", "--workers", "1"])
    assert code == 0
    assert "alloc@100 %" in out
    assert "alloc@130 %" not in out


def test_missing_trace_and_bad_usage(tmp_path: Path) -> None:
    code, _, err = run(["--trace-dir", str(tmp_path), "--seeds", "1"])
    assert code == 1
    assert "openb_node_list_gpu_node.csv" in err
    code, _, err = run(["--trace-dir", str(tmp_path), "--seeds", "9-3"])
    assert code == 2
    assert "bad seed list" in err
    with pytest.raises(SystemExit) as exc:
        run(["--policy", "worstfit"])
    assert exc.value.code == 2


def test_seed_lists_and_report_points() -> None:
    assert parse_seeds("42-45") == [42, 43, 44, 45]
    assert parse_seeds("1, 3-4,") == [1, 3, 4]
    with pytest.raises(ValueError, match="bad seed list"):
        parse_seeds("x")
    assert report_points(130) == [100, 130]
    assert report_points(100) == [100]
    assert report_points(90) == [90]


def test_a_figure_with_no_arrival_near_it_is_null_in_json() -> None:
    summary = PolicySummary(
        policy="fgd",
        seeds=(1, 2),
        alloc_pct={130: (float("nan"), 90.0)},
        failed=(3, 4),
        seconds=(0.1, 0.1),
    )
    doc = json.loads(json.dumps(summary.as_dict(), allow_nan=False))
    assert doc["alloc_pct"]["130"] == {"mean": 90.0, "std": None, "per_seed": [None, 90.0]}
