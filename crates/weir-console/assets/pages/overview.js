// Overview: the cluster's brokers, topics, partitions and disk use, and
// live charts of throughput and request rates from the broker's metrics.

import { api, h, bytes, number, table } from "../ui.js";
import { lineChart } from "../chart.js";

const WINDOW = 60; // samples kept (two a second at most)
let timer = null;
let samples = [];

export function leave() {
  clearInterval(timer);
  timer = null;
}

function rates(key) {
  const pts = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = (b.time_ms - a.time_ms) / 1000;
    // A counter no topic has touched yet is absent: zero.
    const va = a.metrics?.totals?.[key] ?? 0, vb = b.metrics?.totals?.[key] ?? 0;
    if (dt > 0) pts.push([b.time_ms, Math.max(0, (vb - va) / dt)]);
  }
  return pts;
}

function draw(root, o) {
  const used = o.log_dirs.reduce((s, d) => s + d.used_bytes, 0);
  const free = o.log_dirs.reduce((s, d) => s + Math.max(0, d.usable_bytes), 0);
  const card = (label, value, id) => h("div", { class: "card", "data-card": id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const parts = [
    h("h1", {}, "Overview"),
    h("div", { class: "cards" },
      card("Brokers", number(o.brokers.length), "brokers"),
      card("Topics", number(o.topics), "topics"),
      card("Partitions", number(o.partitions), "partitions"),
      card("Disk used", bytes(used), "disk-used"),
      card("Disk free", o.log_dirs.length ? bytes(free) : "-", "disk-free")),
  ];
  if (!o.metrics) {
    parts.push(h("div", { class: "notice" }, "Metrics are not available: charts need the broker's /metrics (run with metrics.url)."));
  } else if (o.metrics.error) {
    parts.push(h("div", { class: "notice" }, `Metrics are unavailable: ${o.metrics.error}`));
  } else {
    const perSec = (v) => `${v.toFixed(v < 10 ? 1 : 0)}/s`;
    const bps = (v) => `${bytes(Math.round(v))}/s`;
    parts.push(h("div", { class: "charts" },
      lineChart("Throughput", [{ name: "in", points: rates("bytes_in") }, { name: "out", points: rates("bytes_out") }], bps),
      lineChart("Messages", [{ name: "in", points: rates("messages_in") }, { name: "out", points: rates("messages_out") }], perSec),
      lineChart("Requests", [{ name: "all", points: rates("requests") }], perSec)));
  }
  parts.push(h("h2", {}, "Brokers"),
    table([{ title: "ID", num: true }, { title: "Host" }, { title: "Port", num: true }, { title: "Rack" }, { title: "Role" }],
      o.brokers.map((b) => [b.id, b.host, b.port, b.rack, b.id === o.controller_id ? "controller" : ""]), { id: "brokers" }));
  if (o.log_dirs.length) {
    parts.push(h("h2", {}, "Log directories"),
      table([{ title: "Broker", num: true }, { title: "Path" }, { title: "Used", num: true }, { title: "Usable", num: true }, { title: "Volume", num: true }],
        o.log_dirs.map((d) => [d.broker, d.path, bytes(d.used_bytes), bytes(d.usable_bytes), bytes(d.total_bytes)])));
  }
  root.replaceChildren(...parts);
}

export async function render(root) {
  samples = [];
  const tick = async () => {
    const o = await api("/api/overview");
    samples.push(o);
    if (samples.length > WINDOW) samples.shift();
    draw(root, o);
  };
  await tick();
  timer = setInterval(() => tick().catch(() => {}), 2000);
}
