"""/metrics' node lines from per-series templates: byte for byte what rendering each sample on
its own gives, batch after batch, as labels, values and node identity change; the page is sent
in chunks that add up to it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest

from agent.wire.catalog import default_catalog
from server.exposition.node_text import NodeText
from server.exposition.page import Page
from server.exposition.render import Renderer, format_value, render_labels
from server.latest.cache import FamilySamples, NodeLatest, StalePolicy

NOW = 1_800_000_000.0
GPU = {"gpu": "0", "UUID": "GPU-1", "modelName": "NVIDIA H100 80GB HBM3"}
AWKWARD_VALUES = [
    0.0,
    -0.0,
    1.0,
    42.0,
    -7.0,
    0.5,
    -2.25,
    1e-9,
    123456789.125,
    2.0**53 - 1,
    2.0**53,
    1.8446744073709552e19,
    1e300,
    math.nan,
    math.inf,
    -math.inf,
]


def reference(node: NodeLatest, timestamps: bool) -> dict[str, bytes]:
    """Each sample rendered on its own: the lines the templates must reproduce exactly."""
    suffix = f" {round(node.batch_ts * 1000)}\n" if timestamps else "\n"
    node_pairs = sorted(node.labels.items())
    out = {}
    for name, samples in node.families.items():
        lines = []
        for labels, value in samples:
            pairs = [("instance", node.name)]
            pairs.extend((k, v) for k, v in node_pairs if k not in labels)
            pairs.extend(labels.items())
            lines.append(f"{name}{render_labels(pairs)} {format_value(value)}{suffix}")
        out[name] = "".join(lines).encode()
    return out


def batch(
    seq: int,
    families: Mapping[str, FamilySamples],
    name: str = "gpu01",
    labels: Mapping[str, str] | None = None,
) -> NodeLatest:
    return NodeLatest(
        node_id="a" * 32,
        name=name,
        labels=labels if labels is not None else {"cluster": "c1", "rack": "r%7"},
        interval_seconds=10.0,
        last_push=NOW,
        batch_ts=NOW - 10 + seq * 10 + 0.25,
        seq=seq,
        families=families,
    )


def gpu_util(values: Sequence[float], **extra: str) -> list[tuple[Mapping[str, str], float]]:
    return [({**GPU, "gpu": str(i), **extra}, v) for i, v in enumerate(values)]


@pytest.mark.parametrize("timestamps", [False, True])
def test_every_kind_of_value_prints_as_format_value_prints_it(timestamps: bool) -> None:
    node = batch(1, {"DCGM_FI_DEV_GPU_UTIL": gpu_util(AWKWARD_VALUES)})
    got = NodeText().lines(node, timestamps)
    assert got == reference(node, timestamps)
    text = got["DCGM_FI_DEV_GPU_UTIL"].decode()
    end = f" {round(node.batch_ts * 1000)}\n" if timestamps else "\n"
    for printed in ["0", "42", "-7", "-2.25", "1e-09", "9007199254740992.0", "1e+300", "NaN"]:
        assert f'"}} {printed}{end}' in text, printed
    assert f'"}} +Inf{end}' in text and f'"}} -Inf{end}' in text and ".0" + end not in text[:300]


def test_values_held_as_ints_print_as_their_floats() -> None:
    as_ints = batch(1, {"node_load1": [({}, 3), ({"x": "y"}, -2)]})
    as_floats = batch(1, {"node_load1": [({}, 3.0), ({"x": "y"}, -2.0)]})
    assert NodeText().lines(as_ints, False) == reference(as_floats, False)


def test_label_values_are_escaped_and_percent_signs_survive_the_template() -> None:
    tricky = {"sysname": 'Li"nux', "release": "a\\b", "version": "50%\nd%%s %a", "cluster": "own"}
    node = batch(1, {"node_uname_info": [(tricky, 1.0)]})
    got = NodeText().lines(node, True)
    assert got == reference(node, True)
    assert b'cluster="own"' in got["node_uname_info"]  # the sample's label beats the node's
    assert b'version="50%\\nd%%s %a"' in got["node_uname_info"]


def test_batch_after_batch_follows_values_labels_and_families() -> None:
    text = NodeText()
    steps: list[dict[str, FamilySamples]] = [
        {"DCGM_FI_DEV_GPU_UTIL": gpu_util([1.0, 2.0]), "node_load1": [({}, 0.5)]},
        {"DCGM_FI_DEV_GPU_UTIL": gpu_util([3.0, 4.5]), "node_load1": [({}, 0.75)]},
        {"DCGM_FI_DEV_GPU_UTIL": gpu_util([5.0])},  # a GPU lost, a family gone
        {"DCGM_FI_DEV_GPU_UTIL": gpu_util([6.0], UUID="GPU-swapped")},  # same count
        # The same label set in another order: the lines follow the batch's order.
        {"DCGM_FI_DEV_GPU_UTIL": [({**dict(reversed(GPU.items())), "UUID": "GPU-swapped"}, 6.5)]},
        {"DCGM_FI_DEV_GPU_UTIL": gpu_util([7.0, 8.0]), "node_load1": [({}, 1.0)]},
        {"DCGM_FI_DEV_GPU_UTIL": []},
    ]
    for seq, families in enumerate(steps, start=1):
        for timestamps in (False, True):
            node = batch(seq, families)
            assert text.lines(node, timestamps) == reference(node, timestamps), (seq, timestamps)
    assert set(text.families) == set()  # nothing kept of families the node no longer sends


def test_a_renamed_or_relabelled_node_gets_new_lines() -> None:
    text = NodeText()
    families = {"DCGM_FI_DEV_GPU_UTIL": gpu_util([1.0, 2.0])}
    for seq, (name, labels) in enumerate(
        [("gpu01", {"rack": "r1"}), ("gpu01", {"rack": "r2"}), ("gpu02", {"rack": "r2"})], 1
    ):
        node = batch(seq, families, name=name, labels=labels)
        assert text.lines(node, False) == reference(node, False)


def test_the_same_batch_is_rendered_once_per_form() -> None:
    text = NodeText()
    node = batch(1, {"node_load1": [({}, 0.5)]})
    plain, stamped = text.lines(node, False), text.lines(node, True)
    assert text.lines(node, False) is plain and text.lines(node, True) is stamped
    assert plain != stamped


def test_the_renderer_groups_every_nodes_lines_under_one_header() -> None:
    renderer = Renderer(default_catalog(), StalePolicy(3, 30, 3600))
    nodes = [
        NodeLatest(
            node_id=f"{i:032x}",
            name=f"gpu{i:02d}",
            labels={},
            interval_seconds=10.0,
            last_push=NOW,
            batch_ts=NOW,
            seq=1,
            families={"DCGM_FI_DEV_GPU_UTIL": gpu_util([float(i)]), "node_load1": [({}, i / 4)]},
        )
        for i in range(3)
    ]
    text = bytes(Page(renderer.render(nodes, NOW))).decode()
    assert text.count("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n") == 1
    block = text.split("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n")[1].split("# HELP")[0]
    assert block == "".join(
        reference(node, False)["DCGM_FI_DEV_GPU_UTIL"].decode() for node in nodes
    )
    assert 'node_load1{instance="gpu02"} 0.5\n' in text


def test_a_page_is_sent_in_bounded_chunks_that_add_up_to_it() -> None:
    pieces = [bytes([65 + i % 26]) * (i % 700) for i in range(2000)]
    page = Page(pieces)
    chunks = list(page.chunks(4096))
    assert b"".join(chunks) == bytes(page) == b"".join(pieces)
    assert page.size == sum(map(len, pieces))
    assert len(chunks) > 1 and all(len(chunk) < 4096 + 700 for chunk in chunks)
