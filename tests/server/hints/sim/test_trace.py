from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.hints.sim.synthetic import synthetic_trace, write_trace
from server.hints.sim.trace import (
    TRACE_DIR_ENV,
    TraceError,
    allowed_models,
    default_trace_dir,
    load_nodes,
    load_pods,
    load_trace,
    trace_files,
)

POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_nodes_parse_with_gpu_totals(tmp_path: Path) -> None:
    path = write(
        tmp_path / "n.csv",
        "sn,cpu_milli,memory_mib,gpu,model\na,64000,262144,2,P100\nb,96000,393216,8,G2\n"
        "c,32000,131072,0,\n",
    )
    nodes = load_nodes(path)
    assert nodes.names == ("a", "b", "c")
    assert nodes.cpu_milli.tolist() == [64000, 96000, 32000]
    assert nodes.total_gpus == 10
    assert nodes.total_gpu_milli == 10_000
    assert nodes.max_gpus_per_node == 8
    assert nodes.model == ("P100", "G2", "")


def test_pods_normalise_shares_as_the_reference_converter(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.csv",
        POD_HEADER + "a,12000,16384,1,1000,,LS,Running\n"
        "b,6000,12288,1,460,,BE,Failed\n"
        "c,4000,1024,1,1500,,BE,Running\n"  # a share above 1000 is one whole GPU
        "d,2000,1024,1,0,,BE,Running\n"  # GPUs with no share: a CPU-only pod
        "e,88000,327680,8,1000,V100M16|V100M32,Burstable,Succeeded\n",
    )
    pods = load_pods(path)
    assert pods.gpu_milli.tolist() == [1000, 460, 1000, 0, 1000]
    assert pods.num_gpu.tolist() == [1, 1, 1, 0, 8]
    assert pods.gpu_milli_total.tolist() == [1000, 460, 1000, 0, 8000]
    assert pods.gpu_spec[4] == "V100M16|V100M32"
    assert pods.qos == ("LS", "BE", "BE", "BE", "Burstable")


def test_a_multi_gpu_share_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", POD_HEADER + "a,1000,1024,2,500,,BE,Running\n")
    with pytest.raises(TraceError, match="2 GPUs x 500"):
        load_pods(path)


def test_missing_column_and_bad_number_are_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="missing columns"):
        load_nodes(write(tmp_path / "n.csv", "sn,cpu_milli\na,1\n"))
    bad = write(tmp_path / "m.csv", "sn,cpu_milli,memory_mib,gpu,model\na,x,1,1,T4\n")
    with pytest.raises(TraceError, match="not an integer"):
        load_nodes(bad)
    with pytest.raises(TraceError, match="cannot read"):
        load_nodes(tmp_path / "absent.csv")


def test_allowed_models() -> None:
    assert allowed_models("") == frozenset()
    assert allowed_models("V100M16|V100M32") == {"V100M16", "V100M32"}
    assert allowed_models("|T4|") == {"T4"}


def test_trace_files_found_in_the_root_or_the_trace_folder(tmp_path: Path) -> None:
    nodes, pods = synthetic_trace(3, nodes=5, pods=20)
    write_trace(tmp_path, nodes, pods)
    node_file, pod_file = trace_files(tmp_path)
    assert node_file.parent == pod_file.parent == tmp_path / "alibaba-gpu-v2023"
    assert trace_files(tmp_path / "alibaba-gpu-v2023") == (node_file, pod_file)
    loaded_nodes, loaded_pods = load_trace(tmp_path)
    assert loaded_nodes.names == nodes.names
    assert np.array_equal(loaded_pods.gpu_milli, pods.gpu_milli)
    assert loaded_pods.gpu_spec == pods.gpu_spec
    with pytest.raises(TraceError, match="openb_pod_list_gpushare40"):
        trace_files(tmp_path, "openb_pod_list_gpushare40")


def test_default_trace_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_DIR_ENV, raising=False)
    assert default_trace_dir() == Path("../shared/data/traces")
    monkeypatch.setenv(TRACE_DIR_ENV, "/elsewhere")
    assert default_trace_dir() == Path("/elsewhere")
