// meshgen report: draws the JSON document of a page (#meshgen-data) with Chart.js.
// No data is fetched: everything a page shows is in the page. The charts are exposed as
// window.meshgenCharts = {weight: Chart, metrics: {NAME: Chart}} for tests and curious readers.
(function () {
  "use strict";
  var node = document.getElementById("meshgen-data");
  if (!node) { return; }
  var data = JSON.parse(node.textContent);
  window.meshgenData = data;
  window.meshgenCharts = {weight: null, metrics: {}};
  if (!data.events || !document.getElementById("chart-weight")) { return; }

  var VERDICT = {pass: "#2e7d32", fail: "#c62828", inconclusive: "#9e9e9e"};
  var NONE = "#4e79a7";
  var ms = function (text) { return Date.parse(text); };
  var pad = function (n) { return (n < 10 ? "0" : "") + n; };
  var clock = function (value) {
    var d = new Date(value);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + "Z";
  };
  var colourOf = function (event) { return event.check ? (VERDICT[event.check.verdict] || NONE) : NONE; };
  var open = function (chart, elements) {
    for (var i = 0; i < elements.length; i++) {  // the first point under the pointer that has a commit
      var point = chart.data.datasets[elements[i].datasetIndex].data[elements[i].index];
      if (point && point.link) { window.location.href = point.link; return; }
    }
  };
  // every chart of the page spans the same time, so a check lines up with its step
  var stamps = data.events.map(function (e) { return ms(e.time); });
  if (data.backtest) { data.backtest.ticks.forEach(function (t) { stamps.push(ms(t.time)); }); }
  var first = Math.min.apply(null, stamps), last = Math.max.apply(null, stamps);
  var margin = Math.max((last - first) * 0.03, 1000);
  var timeAxis = {
    type: "linear", min: first - margin, max: last + margin,
    ticks: {callback: function (value) { return clock(value).slice(11); }, maxRotation: 0, autoSkipPadding: 20},
    title: {display: true, text: "time (UTC)"}
  };
  var base = function (yTitle, extra) {
    var options = {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
      interaction: {mode: "point", intersect: true},
      onClick: function (evt, elements, chart) { open(chart, elements); },
      onHover: function (evt, elements) { evt.native.target.style.cursor = elements.length ? "pointer" : "default"; },
      scales: {x: timeAxis, y: Object.assign({title: {display: true, text: yTitle}}, extra || {})},
      plugins: {
        legend: {position: "bottom"},
        tooltip: {callbacks: {
          title: function (items) { return clock(items[0].parsed.x); },
          label: function (item) {
            var p = item.raw;
            return item.dataset.label + ": " + item.parsed.y + (p.kind ? " (" + p.kind + (p.verdict ? ", " + p.verdict : "") + ")" : "");
          },
          footer: function (items) { var p = items[0].raw; return p.commit ? "commit " + p.commit.slice(0, 10) + (p.author ? " by " + p.author : "") : ""; }
        }}
      }
    };
    return options;
  };

  // canary weight, as steps: one point per committed event, each linked to its commit
  var weightPoints = data.events.map(function (e) {
    return {x: ms(e.time), y: e.weight, commit: e.commit, link: e.link, kind: e.kind, author: e.author,
            verdict: e.check ? e.check.verdict : null};
  });
  var datasets = [{
    label: "canary " + data.canary + " weight (%)", data: weightPoints, stepped: "before", borderColor: NONE, clip: false,
    backgroundColor: NONE, pointRadius: 6, pointHoverRadius: 8,
    pointBackgroundColor: data.events.map(colourOf), pointBorderColor: data.events.map(colourOf)
  }];
  if (data.backtest && data.backtest.ticks.length) {
    datasets.push({
      label: "backtest: the current policy on the same metrics (%)", stepped: "before", borderDash: [6, 4], clip: false,
      borderColor: "#f28e2b", backgroundColor: "#f28e2b", pointRadius: 4, pointStyle: "triangle", borderWidth: 2,
      order: -1,  // drawn over the real run, so where both agree the dashes show on the line
      pointBackgroundColor: data.backtest.ticks.map(function (t) { return t.check ? (VERDICT[t.check.verdict] || NONE) : "#f28e2b"; }),
      data: data.backtest.ticks.map(function (t) {
        return {x: ms(t.time), y: t.weight, kind: t.action, verdict: t.check ? t.check.verdict : null};
      })
    });
  }
  window.meshgenCharts.weight = new Chart(document.getElementById("chart-weight"), {
    type: "line", data: {datasets: datasets}, options: base("canary weight (%)", {min: 0, max: 100})
  });

  // each checked metric, at each committed check, against its bounds
  var holder = document.getElementById("metric-charts");
  (data.metrics || []).forEach(function (metric) {
    var checked = data.events.filter(function (e) {
      return e.check && e.check.metrics && e.check.metrics[metric.name] !== undefined && e.check.metrics[metric.name] !== null;
    });
    if (!checked.length) { return; }
    var section = document.createElement("section");
    var title = document.createElement("h2");
    title.textContent = metric.name + (metric.dryRun ? " (dry run: never decisive)" : "");
    var box = document.createElement("div");
    box.className = "chart";
    var canvas = document.createElement("canvas");
    canvas.id = "chart-metric-" + metric.name;
    box.appendChild(canvas);
    section.appendChild(title);
    section.appendChild(box);
    holder.appendChild(section);
    var points = checked.map(function (e) {
      return {x: ms(e.time), y: e.check.metrics[metric.name], commit: e.commit, link: e.link, kind: e.kind,
              author: e.author, verdict: e.check.verdict};
    });
    var sets = [{label: metric.name, data: points, borderColor: "#555", backgroundColor: "#555", showLine: true,
                 pointRadius: 6, pointHoverRadius: 8, pointBackgroundColor: checked.map(colourOf),
                 pointBorderColor: checked.map(colourOf)}];
    var span = [points[0].x, points[points.length - 1].x];
    [["min", "#c62828"], ["max", "#c62828"]].forEach(function (bound) {
      var value = metric[bound[0]];
      if (value === null || value === undefined) { return; }
      sets.push({label: bound[0] + " " + value, data: [{x: span[0], y: value}, {x: span[1], y: value}],
                 borderColor: bound[1], borderDash: [4, 4], pointRadius: 0, pointHitRadius: 0, borderWidth: 1});
    });
    window.meshgenCharts.metrics[metric.name] = new Chart(canvas, {
      type: "line", data: {datasets: sets}, options: base(metric.name)
    });
  });
}());
