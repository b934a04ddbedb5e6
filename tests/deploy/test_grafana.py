"""dcmon's Grafana dashboards and provisioning files are valid, and match their generator.

Fast, no programs: the committed ``dashboards/*.json`` are what ``dashboards.generator`` builds;
each is a well-formed Grafana model (unique uids and panel ids, panels on the grid, every target
with its expression and refId, every variable it uses defined, every panel and target reading
the ``datasource`` variable, no ``job`` label); every expression parses with the server's own
PromQL parser and names only metrics of the catalog; the GPU dashboard shows every DCGM field;
each threshold still stands in the rule it is taken from; and the provisioning files point at
what the docs install.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.wire.catalog import default_catalog
from dashboards.generator import DASHBOARDS, render
from dashboards.generator import thresholds as t
from dashboards.generator.spec import DATASOURCE, GRID_COLUMNS
from server.promql import plan
from server.promql.parse import parse

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
VARIABLE = re.compile(r"\$\{(\w+)(?:[.:][\w.]+)?\}|\[\[(\w+)\]\]|\$(\w+)")
JOB_LABEL = re.compile(r"\bjob\b")
# Sample values of Grafana's variables: enough to make every expression plain PromQL.
SAMPLE = {"instance": "gpu-01", "gpu": "0", "job_id": "(slurm:1|slurm:2)", "device": "mlx5_0",
          "__rate_interval": "1m", "__range": "1h", "__interval": "15s",
          "__interval_ms": "15000"}  # fmt: skip
RULE_SERIES = {"ALERTS", "ALERTS_FOR_STATE"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(FOLDER.glob("*.json"))}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns: the data panels (rows left out)."""
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in _panels(dashboard) for target in panel["targets"]]


def _used_variables(text: str) -> set[str]:
    return {next(group for group in m.groups() if group) for m in VARIABLE.finditer(text)}


def _substitute(expr: str) -> str:
    return VARIABLE.sub(lambda m: SAMPLE[next(g for g in m.groups() if g)], expr)


def _metric_names(expr: str) -> set[str]:
    names = set()
    for node in plan.walk(parse(_substitute(expr))):
        if isinstance(node, plan.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            names.add(node.name)
    return names


DASHBOARD_FILES = _committed()
IDS = list(DASHBOARD_FILES)


def test_the_committed_dashboards_are_what_the_generator_builds() -> None:
    built = render()
    assert sorted(built) == sorted(DASHBOARD_FILES), "run: python -m dashboards.generator"
    for name, text in built.items():
        assert (FOLDER / name).read_text() == text, (
            f"{name} is stale: python -m dashboards.generator"
        )


def test_seven_dashboards_with_unique_uids_tagged_and_linked() -> None:
    uids = [d["uid"] for d in DASHBOARD_FILES.values()]
    assert len(set(uids)) == len(uids) == 7
    names = ("fleet", "node", "gpu", "job", "fabric", "alerts", "benchmarks")
    assert sorted(uids) == sorted(f"dcmon-{name}" for name in names)
    for name, dashboard in DASHBOARD_FILES.items():
        assert name == f"{dashboard['uid']}.json"
        assert dashboard["tags"] == ["dcmon"]
        assert 36 <= dashboard["schemaVersion"] <= 41, "Grafana 10/11's schema"
        assert any(link["type"] == "dashboards" and link["tags"] == ["dcmon"]
                   for link in dashboard["links"]), name  # fmt: skip


@pytest.mark.parametrize("name", IDS)
def test_panels_have_unique_ids_and_sit_on_the_grid_without_overlapping(name: str) -> None:
    dashboard = DASHBOARD_FILES[name]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS and grid["h"] > 0
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("name", IDS)
def test_panel_titles_are_unique_in_a_dashboard(name: str) -> None:
    titles = [panel["title"] for panel in _panels(DASHBOARD_FILES[name])]
    assert len(set(titles)) == len(titles), sorted(t for t in titles if titles.count(t) > 1)


@pytest.mark.parametrize("name", IDS)
def test_every_panel_and_target_reads_the_datasource_variable(name: str) -> None:
    dashboard = DASHBOARD_FILES[name]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["name"] == "datasource" and variable["query"] == "prometheus"
    for panel in _panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no target"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip() and target["refId"], panel["title"]
    for query_variable in dashboard["templating"]["list"][1:]:
        assert query_variable["datasource"] == DATASOURCE


@pytest.mark.parametrize("name", IDS)
def test_every_variable_used_is_defined(name: str) -> None:
    dashboard = DASHBOARD_FILES[name]
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    texts = [target["expr"] for _, target in _targets(dashboard)]
    texts += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    texts += [link["url"] + link["title"] for panel in _panels(dashboard)
              for link in panel["fieldConfig"]["defaults"].get("links", [])]  # fmt: skip
    used = set().union(*map(_used_variables, texts))
    builtin = {name for name in used if name.startswith("__")}
    assert used - builtin <= defined, f"undefined: {sorted(used - builtin - defined)}"
    assert builtin <= set(SAMPLE) | {"__url_time_range", "__field", "__data"}, sorted(builtin)


@pytest.mark.parametrize("name", IDS)
def test_no_query_depends_on_the_job_label(name: str) -> None:
    """dcmon's own series have no ``job``; a Prometheus adds the scrape job's name."""
    dashboard = DASHBOARD_FILES[name]
    exprs = [target["expr"] for _, target in _targets(dashboard)]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert not [expr for expr in exprs if JOB_LABEL.search(expr)]


@pytest.mark.parametrize("name", IDS)
def test_every_expression_parses_and_names_catalog_metrics(name: str) -> None:
    catalog = default_catalog()
    known = set(catalog) | RULE_SERIES
    known |= {spec.name + suffix for spec in catalog.values() if spec.type == "histogram"
              for suffix in HISTOGRAM_SUFFIXES}  # fmt: skip
    dashboard = DASHBOARD_FILES[name]
    unknown: dict[str, set[str]] = {}
    for title, target in _targets(dashboard):
        missing = _metric_names(target["expr"]) - known
        if missing:
            unknown[title] = missing
    for variable in dashboard["templating"]["list"][1:]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        missing = _metric_names(match.group(1)) - known
        if missing:
            unknown[f"variable {variable['name']}"] = missing
    assert not unknown, f"metrics not in the catalog (agent/wire/catalog/*.toml): {unknown}"


def test_the_gpu_dashboard_shows_every_dcgm_field_of_the_catalog() -> None:
    fields = {name for name in default_catalog() if name.startswith("DCGM_FI_")}
    targets = _targets(DASHBOARD_FILES["dcmon-gpu.json"])
    shown = set().union(*(_metric_names(target["expr"]) for _, target in targets))
    assert fields and not fields - shown, f"missing: {sorted(fields - shown)}"


def test_timeseries_ask_ranges_and_the_others_instants() -> None:
    for dashboard in DASHBOARD_FILES.values():
        for panel in _panels(dashboard):
            ranged = panel["type"] in ("timeseries", "state-timeline")
            for target in panel["targets"]:
                assert target["range"] is ranged and target["instant"] is not ranged


def test_drill_down_links_name_a_dashboard_and_its_variables() -> None:
    variables = {d["uid"]: {v["name"] for v in d["templating"]["list"]}
                 for d in DASHBOARD_FILES.values()}  # fmt: skip
    links = 0
    for dashboard in DASHBOARD_FILES.values():
        for panel in _panels(dashboard):
            for link in panel["fieldConfig"]["defaults"].get("links", []):
                match = re.fullmatch(r"/d/([\w-]+)/[\w-]+\?(.+)", link["url"])
                assert match and match.group(1) in variables, link["url"]
                names = re.findall(r"var-(\w+)=", match.group(2))
                assert set(names) <= variables[match.group(1)], link["url"]
                links += 1
    assert links >= 10


def _rule(alertname: str) -> list[dict[str, Any]]:
    rules = []
    for path in sorted((ROOT / "alerts").glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [rule for rule in group["rules"] if rule.get("alert") == alertname]
    return rules


@pytest.mark.parametrize("name", sorted(t.ALL))
def test_each_threshold_stands_in_its_source(name: str) -> None:
    cited = t.ALL[name]
    if cited.source.startswith("skus.toml:"):
        judging = tomllib.loads((ROOT / "agent" / "wire" / "skus.toml").read_text())["judging"]
        assert f"{judging[cited.source.split(':')[1]]:.2f}" == cited.text
        assert float(cited.text) == cited.value
    elif "/" in cited.source:
        assert cited.text in (ROOT / cited.source).read_text()
    else:
        rules = _rule(cited.source)
        assert rules, f"no alert {cited.source} in alerts/"
        texts = [" ".join([rule["expr"], rule.get("dcmon", {}).get("hold", ""),
                           f"for: {rule.get('for', '')}"]) for rule in rules]  # fmt: skip
        assert any(cited.text in " ".join(text.split()) for text in texts), (cited, texts)


def _provisioning(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROVISIONING / kind / "dcmon.yaml").read_text())
    assert loaded["apiVersion"] == 1
    return loaded


def test_two_datasources_for_the_two_set_ups() -> None:
    sources = {source["name"]: source for source in _provisioning("datasources")["datasources"]}
    assert set(sources) == {"dcmon", "dcmon-prometheus"}
    for name, source in sources.items():
        assert source["uid"] == name and source["type"] == "prometheus"
        assert source["access"] == "proxy" and source["jsonData"]["httpMethod"] == "POST"
    dcmon = sources["dcmon"]
    assert dcmon["url"].endswith(":8470/prometheus"), "Grafana appends /api/v1/... itself"
    assert dcmon["jsonData"]["httpHeaderName1"] == "Authorization"
    header = dcmon["secureJsonData"]["httpHeaderValue1"]
    token_file = re.fullmatch(r"Bearer \$__file\{(/[^}]+)\}", header)
    assert token_file, header
    text = (PROVISIONING / "datasources" / "dcmon.yaml").read_text()
    assert f"/dev/stdin {token_file.group(1)}" in text, "the comment installs the token there"


def test_the_dashboard_provider_reads_the_folder_the_docs_install_the_json_into() -> None:
    (provider,) = _provisioning("dashboards")["providers"]
    assert provider["type"] == "file" and provider["folder"] == "dcmon"
    path = provider["options"]["path"]
    install = f"install -D -m 0644 -t {path} dashboards/*.json"
    assert install in (PROVISIONING / "dashboards" / "dcmon.yaml").read_text()
    assert install in (FOLDER / "README.md").read_text()
    assert sorted(p.name for p in FOLDER.glob("*.json")) == sorted(
        f"{d.uid}.json" for d in DASHBOARDS
    ), "the folder holds exactly the generated dashboards"


def test_the_prometheus_example_loads_the_exported_rule_pack() -> None:
    example = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(example.read_text())
    export = re.search(r"dcmon rules export alerts/\*\.yaml -o (\S+)", example.read_text())
    assert export, "the comment says how to export the pack"
    assert any(fnmatch.fnmatch(export.group(1), pattern) for pattern in config["rule_files"])
