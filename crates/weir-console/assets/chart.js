// Line charts drawn as SVG: a few series of (time, value) points.

import { h } from "./ui.js";

const COLORS = ["#2c6bed", "#e0782f", "#1f8a4c", "#8e44ad"];
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

/** A chart of `series` ([{name, points: [[x, y], ...]}]); `format` labels y. */
export function lineChart(title, series, format = (v) => v.toFixed(0)) {
  const W = 400, H = 140, P = 28;
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const y1 = Math.max(1e-9, ...ys);
  const sx = (x) => P + (x1 > x0 ? ((x - x0) / (x1 - x0)) * (W - P - 4) : 0);
  const sy = (y) => H - 16 - (y / y1) * (H - 26);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": title });
  root.append(svg("line", { x1: P, y1: H - 16, x2: W - 4, y2: H - 16, stroke: "#ccd" }));
  const top = svg("text", { x: 2, y: 12, "font-size": 10, fill: "#667" });
  top.textContent = format(y1);
  root.append(top);
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 1.6 }));
  });
  const last = series.map((s, i) => h("span", { style: `color:${COLORS[i % COLORS.length]}` },
    `${s.name} ${s.points.length ? format(s.points[s.points.length - 1][1]) : "-"}  `));
  return h("div", { class: "chart" }, h("div", { class: "title" }, title), root, h("div", { class: "legend" }, last));
}

/** Bars of (label, value) pairs, for lag per partition. */
export function barChart(title, bars, format = (v) => String(v)) {
  const W = 400, H = 140, P = 4;
  const max = Math.max(1, ...bars.map((b) => b[1]));
  const w = Math.max(1, (W - 2 * P) / Math.max(1, bars.length));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  bars.forEach(([label, v], i) => {
    const bh = (v / max) * (H - 20);
    const r = svg("rect", { x: P + i * w, y: H - 14 - bh, width: Math.max(1, w - 1), height: bh, fill: "#2c6bed" });
    const t = svg("title", {});
    t.textContent = `${label}: ${format(v)}`;
    r.append(t);
    root.append(r);
  });
  return h("div", { class: "chart" }, h("div", { class: "title" }, title), root,
    h("div", { class: "legend" }, `max ${format(max)}`));
}
