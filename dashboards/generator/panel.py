"""One panel of a spec as Grafana's panel model: targets, field config, options, table layout.

Stage: dashboards (build time). Input: a ``spec.Panel``; output: its Grafana model (a dict)
without ``id`` and ``gridPos``, which the layout adds. Every panel and target reads the
dashboard's ``datasource`` variable; stats, tables and bar gauges ask instant queries, time
series and state timelines range queries; a table shows only the label columns its spec names,
then each query's value under its header.
"""

from __future__ import annotations

from dashboards.generator.spec import (
    BAR_GAUGE,
    DATASOURCE,
    INSTANT_KINDS,
    JSON,
    STAT,
    STATE_TIMELINE,
    TABLE,
    TIME_SERIES,
    Link,
    Panel,
    Query,
    Step,
    ValueMap,
)


def model(panel: Panel) -> JSON:
    instant = panel.kind in INSTANT_KINDS
    model: JSON = {
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "targets": [
            _target(query, ref_id, instant, panel.kind == TABLE)
            for ref_id, query in zip(_ref_ids(panel), panel.queries, strict=True)
        ],
        "fieldConfig": {"defaults": _defaults(panel), "overrides": _overrides(panel)},
        "options": _options(panel),
    }
    if panel.kind == TABLE:
        model["transformations"] = _table_transformations(panel)
    return model


def _target(query: Query, ref_id: str, instant: bool, table: bool) -> JSON:
    return {
        "datasource": DATASOURCE,
        "refId": ref_id,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "instant": instant,
        "range": not instant,
        "format": "table" if table else "time_series",
        "editorMode": "code",
        "exemplar": False,
    }


def _defaults(panel: Panel) -> JSON:
    steps = panel.steps or (Step(None, "green"),)
    defaults: JSON = {
        "unit": panel.unit,
        "color": {"mode": "palette-classic" if panel.kind == TIME_SERIES else "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": step.color, "value": step.value} for step in steps],
        },
        "mappings": _mappings(panel.mappings),
        "custom": _custom(panel),
    }
    optional = {
        "min": panel.minimum,
        "max": panel.maximum,
        "decimals": panel.decimals,
        "noValue": panel.no_value,
    }
    defaults.update({key: value for key, value in optional.items() if value is not None})
    if panel.link is not None:
        defaults["links"] = [_link(panel.link, panel.kind == TABLE)]
    return defaults


def _overrides(panel: Panel) -> list[JSON]:
    """Returns: the per-query units and mappings: by column header in a table, else by query."""
    overrides = []
    headers = _value_headers(panel)
    for ref_id, header, query in zip(_ref_ids(panel), headers, panel.queries, strict=True):
        properties: list[JSON] = []
        if query.unit:
            properties.append({"id": "unit", "value": query.unit})
        if query.mappings:
            properties.append({"id": "mappings", "value": _mappings(query.mappings)})
        if properties:
            matcher = (
                {"id": "byName", "options": header}
                if panel.kind == TABLE
                else {"id": "byFrameRefID", "options": ref_id}
            )
            overrides.append({"matcher": matcher, "properties": properties})
    return overrides


def _ref_ids(panel: Panel) -> list[str]:
    return [chr(ord("A") + index) for index in range(len(panel.queries))]


def _value_fields(panel: Panel) -> list[str]:
    """Returns: the names Grafana gives the queries' value fields in a table."""
    if len(panel.queries) == 1:
        return ["Value"]
    return [f"Value #{ref_id}" for ref_id in _ref_ids(panel)]


def _value_headers(panel: Panel) -> list[str]:
    return [
        q.column or q.legend or field
        for field, q in zip(_value_fields(panel), panel.queries, strict=True)
    ]


def _mappings(mappings: tuple[ValueMap, ...]) -> list[JSON]:
    if not mappings:
        return []
    options = {
        m.value: {"text": m.text, "color": m.color, "index": index}
        for index, m in enumerate(mappings)
    }
    return [{"type": "value", "options": options}]


def _custom(panel: Panel) -> JSON:
    if panel.kind == TIME_SERIES:
        return {
            "drawStyle": "line",
            "lineInterpolation": "linear",
            "lineWidth": 1,
            "fillOpacity": 25 if panel.stack else 10,
            "gradientMode": "none",
            "showPoints": "never",
            "pointSize": 4,
            "spanNulls": False,
            "axisPlacement": "auto",
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if panel.steps else "off"},
        }
    if panel.kind == STATE_TIMELINE:
        return {"lineWidth": 0, "fillOpacity": 70}
    if panel.kind == TABLE:
        cell = {"type": "color-text"} if panel.steps or panel.mappings else {"type": "auto"}
        return {"align": "auto", "cellOptions": cell, "inspect": False}
    return {}


def _link(link: Link, table: bool) -> JSON:
    source = "__data.fields" if table else "__field.labels"
    params = "&".join(
        f"var-{variable}=${{{source}.{label}}}" for variable, label in link.variables.items()
    )
    url = f"/d/dcmon-{link.target}/dcmon-{link.target}?{params}"
    return {"title": link.title, "url": url + "&${__url_time_range}&var-datasource=${datasource}"}


def _reduce() -> JSON:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _options(panel: Panel) -> JSON:
    legend = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}
    if panel.kind == TIME_SERIES:
        return {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
    if panel.kind == STATE_TIMELINE:
        return {
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": legend,
            "tooltip": {"mode": "single", "sort": "none"},
        }
    if panel.kind == STAT:
        return {
            "reduceOptions": _reduce(),
            "orientation": "auto",
            "textMode": "auto",
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        }
    if panel.kind == BAR_GAUGE:
        return {
            "reduceOptions": _reduce(),
            "orientation": "horizontal",
            "displayMode": "gradient",
            "valueMode": "color",
            "showUnfilled": True,
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
        }
    return {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False},
    }


def _table_transformations(panel: Panel) -> list[JSON]:
    """One row per series: the queries merged on their labels, then only the named label
    columns and each query's value (headed by its ``column``) kept, in that order."""
    values = _value_fields(panel)
    headers = {label: header for label, header in panel.columns}
    headers.update(zip(values, _value_headers(panel), strict=True))
    keep = [label for label, _ in panel.columns] + values
    transformations: list[JSON] = []
    if len(panel.queries) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations += [
        {"id": "filterFieldsByName", "options": {"include": {"names": keep}}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {},
                "renameByName": headers,
                "indexByName": {name: index for index, name in enumerate(keep)},
            },
        },
    ]
    return transformations
