// dcmon's pages: charts drawn from the PromQL query API (query_range) with uPlot, the time-range
// picker, auto refresh, and the admin forms (sent with the session's CSRF token).
//
// The markup contract: every <div class="chart" data-query="PromQL"> is a chart; optional
// data-title, data-unit (percent, bytes, bytes_per_second, watts, celsius, mhz, count, seconds,
// joules, ratio), data-legend ("GPU {gpu}": label names in braces). Once drawn it carries
// data-state="ready" and data-points (points of all its series) or data-error.
"use strict";

(function () {
  const RANGES = { "15m": 900, "1h": 3600, "3h": 10800, "6h": 21600, "12h": 43200,
                   "24h": 86400, "2d": 172800, "7d": 604800 };
  const POINTS = 240;          // points per series across the chart's width
  const REFRESH_MS = 30000;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
  const MAX_SERIES = 32;       // more than this in one chart is unreadable: the rest are dropped
  const charts = [];
  let zoom = null;             // [start, end] Unix seconds while zoomed in, else null

  function rangeSeconds() {
    const picker = document.getElementById("range");
    return RANGES[picker ? picker.value : "1h"] || 3600;
  }

  function initRange() {
    const picker = document.getElementById("range");
    if (!picker) return;
    const asked = new URLSearchParams(location.search).get("range")
      || localStorage.getItem("dcmon.range");
    if (asked && RANGES[asked]) picker.value = asked;
    picker.addEventListener("change", () => {
      localStorage.setItem("dcmon.range", picker.value);
      zoom = null;
      drawAll();
    });
    const auto = document.getElementById("autorefresh");
    if (auto) {
      auto.checked = localStorage.getItem("dcmon.autorefresh") !== "off";
      auto.addEventListener("change", () =>
        localStorage.setItem("dcmon.autorefresh", auto.checked ? "on" : "off"));
    }
    setInterval(() => {
      const on = document.getElementById("autorefresh");
      if (on && on.checked && !zoom && !document.hidden) drawAll();
    }, REFRESH_MS);
  }

  // --- units ---------------------------------------------------------------------------------
  function scaled(value, base, units, digits) {
    let i = 0;
    let v = Math.abs(value);
    while (v >= base && i < units.length - 1) { v /= base; i += 1; }
    return (value < 0 ? "-" : "") + v.toFixed(v >= 100 || i === 0 && Number.isInteger(v) ? 0 : digits)
      + " " + units[i];
  }

  function formatter(unit) {
    switch (unit) {
      case "percent": return v => v.toFixed(v >= 10 ? 0 : 1) + " %";
      case "ratio": return v => (v * 100).toFixed(0) + " %";
      case "bytes": return v => scaled(v, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 1);
      case "bytes_per_second":
        return v => scaled(v, 1000, ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"], 1);
      case "watts": return v => scaled(v, 1000, ["W", "kW", "MW"], 1);
      case "joules": return v => scaled(v / 3.6e6, 1000, ["kWh", "MWh", "GWh"], 2);
      case "celsius": return v => v.toFixed(0) + " °C";
      case "mhz": return v => v.toFixed(0) + " MHz";
      case "seconds": return v => (v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(1) + " s");
      default: return v => (Math.abs(v) >= 1000 ? scaled(v, 1000, ["", "k", "M", "G", "T"], 1)
                                                : String(+v.toFixed(2)));
    }
  }

  // --- query ---------------------------------------------------------------------------------
  async function queryRange(query, start, end, step) {
    const params = new URLSearchParams({ query, start: String(start), end: String(end),
                                         step: String(step) });
    const answer = await fetch("/prometheus/api/v1/query_range?" + params,
                               { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await answer.json(); } catch (e) { body = null; }
    if (!answer.ok || !body || body.status !== "success") {
      // the query API's errors are Prometheus' ({error: "..."}), the rest dcmon's ({error: {message}})
      const error = body && body.error;
      throw new Error((typeof error === "string" ? error : error && error.message) || answer.statusText);
    }
    return body.data.result;
  }

  function legendOf(metric, template, varying) {
    if (template) {
      return template.replace(/\{(\w+)\}/g, (_, name) => metric[name] !== undefined ? metric[name] : "");
    }
    const parts = varying.map(name => metric[name]).filter(v => v !== undefined);
    return parts.length ? parts.join(" ") : (metric.__name__ || "value");
  }

  function toColumns(result, template) {
    // the labels that tell the series apart name them, unless the chart gives a template
    const names = new Set();
    result.forEach(s => Object.keys(s.metric).forEach(k => names.add(k)));
    const varying = [...names].filter(name =>
      new Set(result.map(s => s.metric[name])).size > 1).sort();
    const order = new Intl.Collator(undefined, { numeric: true });
    const named = result.map(s => ({ s, label: legendOf(s.metric, template, varying) }))
      .sort((a, b) => order.compare(a.label, b.label))
      .slice(0, MAX_SERIES);
    const series = named.map(n => n.s);
    const times = new Set();
    series.forEach(s => s.values.forEach(([t]) => times.add(t)));
    const xs = [...times].sort((a, b) => a - b);
    const at = new Map(xs.map((t, i) => [t, i]));
    let points = 0;
    const ys = series.map(s => {
      const column = new Array(xs.length).fill(null);
      s.values.forEach(([t, v]) => {
        const number = parseFloat(v);
        if (Number.isFinite(number)) { column[at.get(t)] = number; points += 1; }
      });
      return column;
    });
    const labels = named.map(n => n.label);
    return { data: [xs, ...ys], labels, points, dropped: result.length - series.length };
  }

  // --- charts --------------------------------------------------------------------------------
  function sizeOf(element) {
    const width = Math.max(240, element.clientWidth || 480);
    return { width, height: parseInt(element.dataset.height || "180", 10) };
  }

  function makePlot(chart, columns) {
    const element = chart.element;
    const fmt = formatter(element.dataset.unit || "");
    const holder = element.querySelector(".plot") || element.appendChild(document.createElement("div"));
    holder.className = "plot";
    holder.innerHTML = "";
    const opts = {
      ...sizeOf(element),
      cursor: { sync: { key: "dcmon" }, drag: { x: true, y: false } },
      scales: { x: { time: true } },
      legend: { live: true },
      series: [{}].concat(columns.labels.map((label, i) => ({
        label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
      }))),
      axes: [{}, { size: 84, values: (u, values) => values.map(fmt) }],
      hooks: {
        setSelect: [u => {
          if (u.select.width < 5) return;
          const start = u.posToVal(u.select.left, "x");
          const end = u.posToVal(u.select.left + u.select.width, "x");
          zoom = [start, end];
          drawAll();
        }],
      },
    };
    chart.plot = new uPlot(opts, columns.data, holder);
  }

  async function draw(chart) {
    const element = chart.element;
    const span = zoom ? zoom[1] - zoom[0] : rangeSeconds();
    const end = zoom ? zoom[1] : Date.now() / 1000;
    const start = end - span;
    const step = Math.max(1, Math.ceil(span / POINTS));
    element.dataset.state = "loading";
    try {
      const result = await queryRange(element.dataset.query, start.toFixed(3), end.toFixed(3), step);
      const columns = toColumns(result, element.dataset.legend || "");
      element.dataset.points = String(columns.points);
      delete element.dataset.error;
      const empty = element.querySelector(".empty");
      if (columns.points === 0) {
        if (chart.plot) { chart.plot.destroy(); chart.plot = null; }
        const holder = element.querySelector(".plot");
        if (holder) holder.innerHTML = "";
        if (empty) empty.textContent = "no data in this range";
      } else {
        if (empty) empty.textContent = columns.dropped ? `${columns.dropped} more series not shown` : "";
        if (chart.plot && chart.labels === columns.labels.join("\u0000")) {
          chart.plot.setData(columns.data);
        } else {
          if (chart.plot) chart.plot.destroy();
          makePlot(chart, columns);
          chart.labels = columns.labels.join("\u0000");
        }
      }
    } catch (error) {
      element.dataset.error = String(error.message || error);
      element.dataset.points = "0";
      const empty = element.querySelector(".empty");
      if (empty) empty.textContent = "query failed: " + element.dataset.error;
    }
    element.dataset.state = "ready";
  }

  function drawAll() {
    const note = document.getElementById("zoom-note");
    if (note) note.hidden = !zoom;
    return Promise.all(charts.map(draw));
  }

  function initCharts() {
    document.querySelectorAll(".chart[data-query]").forEach(element => {
      if (!element.querySelector(".empty")) {
        const empty = document.createElement("div");
        empty.className = "empty";
        element.appendChild(empty);
      }
      charts.push({ element, plot: null, labels: "" });
    });
    const reset = document.getElementById("zoom-reset");
    if (reset) reset.addEventListener("click", () => { zoom = null; drawAll(); });
    window.addEventListener("resize", () => charts.forEach(c => {
      if (c.plot) c.plot.setSize(sizeOf(c.element));
    }));
    drawAll();
  }

  // --- admin forms ---------------------------------------------------------------------------
  // <form data-api="POST /api/v1/..." data-fields="json"> sends its fields as JSON with the CSRF
  // header and prints the answer in its .form-result.
  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  const SHAPES = {
    // alerts page: one equality matcher, from now for a number of hours
    silence: fields => ({
      matchers: [{ name: fields.name, value: fields.value, isRegex: false, isEqual: true }],
      endsAt: new Date(Date.now() + Number(fields.hours || 1) * 3600e3).toISOString(),
      comment: fields.comment,
    }),
    // benchmarks page: nodes named in a comma-separated field
    bench: fields => {
      const body = { nodes: String(fields.nodes || "").split(",").map(s => s.trim()).filter(Boolean),
                     level: fields.level || "quick" };
      if (fields.force) body.force = true;
      return body;
    },
  };

  function formBody(form) {
    const flat = formFields(form);
    const shape = SHAPES[form.dataset.shape || ""];
    return shape ? shape(flat) : flat;
  }

  function formFields(form) {
    const body = {};
    new FormData(form).forEach((value, name) => {
      if (value === "") return;
      const field = form.elements[name];
      const type = field && field.dataset ? field.dataset.type : "";
      if (type === "number") body[name] = Number(value);
      else if (type === "list") body[name] = String(value).split(",").map(s => s.trim()).filter(Boolean);
      else body[name] = value;
    });
    return body;
  }

  function initForms() {
    document.querySelectorAll("form[data-api]").forEach(form => {
      form.addEventListener("submit", async event => {
        event.preventDefault();
        const [method, path] = form.dataset.api.split(" ");
        const out = form.querySelector(".form-result");
        if (out) { out.textContent = "sending…"; out.className = "form-result"; }
        try {
          const answer = await fetch(path, {
            method, credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(),
                       Accept: "application/json" },
            body: JSON.stringify(formBody(form)),
          });
          const text = await answer.text();
          let body = null;
          try { body = JSON.parse(text); } catch (e) { body = null; }
          if (!answer.ok) {
            const why = body && body.error ? body.error.message : text;
            throw new Error(`${answer.status}: ${why}`);
          }
          if (out) { out.textContent = form.dataset.done || "done"; out.className = "form-result ok"; }
          if (form.dataset.reload !== "no") setTimeout(() => location.reload(), 800);
        } catch (error) {
          if (out) { out.textContent = String(error.message || error); out.className = "form-result bad"; }
        }
      });
    });
  }

  // --- relative times ------------------------------------------------------------------------
  function initTimes() {
    document.querySelectorAll("time[datetime]").forEach(t => {
      const when = new Date(t.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) t.title = when.toLocaleString();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    initRange();
    initCharts();
    initForms();
    initTimes();
  });
})();
