"""The metric catalog is well-formed data, and dcmon's own names follow Prometheus conventions."""

from __future__ import annotations

import re

import pytest

from agent.collectors.registry import known_collectors
from agent.wire.catalog import CatalogError, default_catalog, parse_catalog

# Non-base units and prefixes Prometheus naming rules forbid in metric names.
_NON_BASE = re.compile(
    r"_(milli|micro|nano|kilo|mega|giga|percent|celcius|fahrenheit|minutes|hours|days|mib|mhz)"
    r"[a-z]*(_|$)"
)


_DCGM_LABELS = {
    "UUID",
    "modelName",
    "Hostname",
    "DCGM_FI_DRIVER_VERSION",
    "GPU_I_ID",
    "GPU_I_PROFILE",
}


def test_catalog_loads_and_has_each_area() -> None:
    catalog = default_catalog()
    sources = {spec.source for spec in catalog.values()}
    assert {"cpu", "meminfo", "gpu", "agent", "server"} <= sources
    assert catalog["node_cpu_seconds_total"].labels == ("cpu", "mode")
    assert catalog["node_cpu_seconds_total"].type == "counter"


def test_every_source_is_a_collector_or_the_server() -> None:
    known = set(known_collectors()) | {"server"}
    unknown = {
        spec.name: spec.source for spec in default_catalog().values() if spec.source not in known
    }
    assert not unknown


def test_dcmon_names_follow_prometheus_conventions() -> None:
    problems = []
    for spec in default_catalog().values():
        if not spec.name.startswith("dcmon_"):
            continue  # ecosystem names are kept exactly as node_exporter/dcgm-exporter spell them
        if (spec.type == "counter") != spec.name.endswith("_total"):
            problems.append(f"{spec.name}: _total suffix iff counter")
        if _NON_BASE.search(spec.name):
            problems.append(f"{spec.name}: not in base units")
        if spec.name != spec.name.lower():
            problems.append(f"{spec.name}: not snake_case")
        # GPU series share dcgm-exporter's label spelling so they join with DCGM_* series.
        if any(label != label.lower() for label in spec.labels if label not in _DCGM_LABELS):
            problems.append(f"{spec.name}: label not snake_case")
    assert not problems, problems


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[metric]]\nname="x"\ntype="gauge"\nunit="u"\nhelp="h"\nsource="s"\nbogus=1', "unknown"),
        ('[[metric]]\nname="x"\ntype="summary"\nunit="u"\nhelp="h"\nsource="s"', "type"),
        ('[[metric]]\nname="x-y"\ntype="gauge"\nunit="u"\nhelp="h"\nsource="s"', "name"),
        ('[[metric]]\nname="x"\ntype="gauge"\nunit="u"\nhelp=""\nsource="s"', "help"),
        (
            '[[metric]]\nname="x"\ntype="gauge"\nunit="u"\nhelp="h"\nsource="s"\nlabels=["@nope"]',
            "label set",
        ),
        (
            '[[metric]]\nname="x"\ntype="gauge"\nunit="u"\nhelp="h"\nsource="s"\nlabels=["a","a"]',
            "twice",
        ),
        ("[[metric]\n", "test.toml"),
    ],
)
def test_malformed_entries_are_refused(text: str, needle: str) -> None:
    with pytest.raises(CatalogError, match=needle):
        parse_catalog(text, "test.toml")


def test_label_sets_expand() -> None:
    text = (
        '[label_sets]\ng = ["gpu", "UUID"]\n'
        '[[metric]]\nname="x"\ntype="gauge"\nunit="u"\nhelp="h"\nsource="s"\n'
        'labels=["@g", "reason"]'
    )
    (spec,) = parse_catalog(text, "t.toml")
    assert spec.labels == ("gpu", "UUID", "reason")
    assert spec.monotonic is False
