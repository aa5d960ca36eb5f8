// Small SVG charts for the console: a line chart and a histogram with a threshold line.
// Every mark carries its value in data-* attributes, so what is drawn can be checked.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 260, M = { left: 56, right: 16, top: 12, bottom: 36 };

  function node(tag, attrs, parent) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (parent) parent.appendChild(n);
    return n;
  }

  function linear(d0, d1, r0, r1) {
    const span = d1 - d0 || 1;
    return (v) => r0 + ((v - d0) / span) * (r1 - r0);
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return out;
  }

  function fmt(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    return a >= 1000 || a < 0.01 ? v.toExponential(1) : +v.toPrecision(3) + "";
  }

  function frame(container, xLabel, yLabel) {
    container.innerHTML = "";
    const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
    node("text", { x: M.left + (W - M.left - M.right) / 2, y: H - 4, "text-anchor": "middle" }, svg)
      .textContent = xLabel || "";
    node("text", { x: 12, y: M.top + (H - M.top - M.bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${M.top + (H - M.top - M.bottom) / 2})` }, svg).textContent = yLabel || "";
    return svg;
  }

  function axes(svg, x, y, xDomain, yDomain, xTicks) {
    const g = node("g", { class: "axis" }, svg);
    node("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }, g);
    node("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom }, g);
    for (const t of xTicks || niceTicks(xDomain[0], xDomain[1], 6)) {
      node("line", { x1: x(t), x2: x(t), y1: H - M.bottom, y2: H - M.bottom + 4 }, g);
      node("text", { x: x(t), y: H - M.bottom + 15, "text-anchor": "middle" }, g).textContent = fmt(t);
    }
    for (const t of niceTicks(yDomain[0], yDomain[1], 5)) {
      node("line", { x1: M.left - 4, x2: M.left, y1: y(t), y2: y(t) }, g);
      node("text", { x: M.left - 6, y: y(t) + 4, "text-anchor": "end" }, g).textContent = fmt(t);
    }
  }

  // series: [{name, cls, points: [[x, y], ...]}]; options: xLabel, yLabel, xMax, yMax, hline
  function lineChart(container, series, options) {
    const o = options || {};
    const svg = frame(container, o.xLabel, o.yLabel);
    const all = series.flatMap((s) => s.points);
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const xDomain = [o.xMin ?? Math.min(1, ...xs), Math.max(o.xMax ?? 0, ...xs, (o.xMin ?? 1) + 1)];
    const yDomain = [0, Math.max(o.yMax ?? 0, ...ys, o.hline ? o.hline.value * 1.2 : 0, 1e-9) * 1.05];
    const x = linear(xDomain[0], xDomain[1], M.left, W - M.right);
    const y = linear(yDomain[0], yDomain[1], H - M.bottom, M.top);
    axes(svg, x, y, xDomain, yDomain, o.xTicks);
    if (o.hline) {
      node("line", { class: o.hline.cls, "data-value": o.hline.value, x1: M.left, x2: W - M.right,
        y1: y(o.hline.value), y2: y(o.hline.value) }, svg);
    }
    for (const s of series) {
      if (s.points.length > 1) {
        node("polyline", { class: s.cls, "data-series": s.name,
          points: s.points.map((p) => `${x(p[0])},${y(p[1])}`).join(" ") }, svg);
      }
      for (const p of s.points) {
        node("circle", { class: `point ${s.cls}`, "data-series": s.name, "data-x": p[0], "data-y": p[1],
          cx: x(p[0]), cy: y(p[1]), r: 3 }, svg);
      }
    }
    return svg;
  }

  // A histogram of `counts` over `edges` drawn as shares of the total, `live` counts on the same
  // edges laid over it, and the threshold as a vertical line.
  function histogram(container, edges, counts, options) {
    const o = options || {};
    const svg = frame(container, o.xLabel || "score", "share of rows");
    const share = (cs) => { const t = cs.reduce((a, b) => a + b, 0) || 1; return cs.map((c) => c / t); };
    const calibration = share(counts), live = o.live ? share(o.live) : null;
    const xDomain = [edges[0], edges[edges.length - 1]];
    const yDomain = [0, Math.max(...calibration, ...(live || []), 1e-9) * 1.1];
    const x = linear(xDomain[0], xDomain[1], M.left, W - M.right);
    const y = linear(yDomain[0], yDomain[1], H - M.bottom, M.top);
    axes(svg, x, y, xDomain, yDomain);
    const bars = (values, raw, cls) => values.forEach((v, i) => {
      const x0 = x(edges[i]), x1 = x(edges[i + 1]);
      node("rect", { class: cls, "data-count": raw[i], "data-lo": edges[i], "data-hi": edges[i + 1],
        x: x0 + 0.5, width: Math.max(x1 - x0 - 1, 0.5), y: y(v), height: y(0) - y(v) }, svg);
    });
    bars(calibration, counts, "bar");
    if (live) bars(live, o.live, "bar-live");
    if (o.threshold !== undefined) {
      node("line", { class: "threshold", "data-value": o.threshold, x1: x(o.threshold), x2: x(o.threshold),
        y1: M.top, y2: H - M.bottom }, svg);
      node("text", { x: x(o.threshold) + 4, y: M.top + 10 }, svg).textContent = `threshold ${fmt(o.threshold)}`;
    }
    return svg;
  }

  window.Charts = { lineChart, histogram, fmt };
})();
