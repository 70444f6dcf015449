// Topics: search, create with configs, and per topic its partitions
// (offsets and sizes, page by page), configs (edit), the message browser,
// producing a record, adding partitions and deleting.

import { api, v3, h, table, bytes, number, toast, attempt } from "../ui.js";

const PAGE = 100;

export async function render(root, [topic]) {
  if (topic) return renderTopic(root, topic);
  const base = await v3();
  const list = await api(`${base}/topics`);
  const search = h("input", { type: "search", placeholder: "Search topics", id: "topic-search" });
  const internal = h("input", { type: "checkbox", id: "show-internal" });
  const body = h("div", {});
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = list.data
      .filter((t) => internal.checked || !t.is_internal)
      .filter((t) => !q || t.topic_name.toLowerCase().includes(q))
      .map((t) => [h("a", { href: `#/topics/${encodeURIComponent(t.topic_name)}` }, t.topic_name),
        number(t.partitions_count), t.replication_factor, t.is_internal ? "internal" : ""]);
    body.replaceChildren(rows.length
      ? table([{ title: "Topic" }, { title: "Partitions", num: true }, { title: "Replicas", num: true }, { title: "" }], rows, { id: "topics" })
      : h("p", { class: "muted" }, "No topics match."));
  };
  search.addEventListener("input", draw);
  internal.addEventListener("change", draw);
  root.replaceChildren(
    h("h1", {}, "Topics"),
    h("div", { class: "toolbar" }, search, h("label", {}, internal, " internal topics"),
      h("button", { class: "primary", id: "new-topic", onclick: () => form.hidden = !form.hidden }, "Create topic")),
    form_(root),
    body);
  const form = root.querySelector("#create-topic");
  form.hidden = true;
  draw();
}

/** key=value lines as v3 configs. */
function configLines(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
    const i = l.indexOf("=");
    if (i < 1) throw new Error(`"${l}" is not key=value`);
    return { name: l.slice(0, i).trim(), value: l.slice(i + 1).trim() };
  });
}

function form_() {
  const name = h("input", { id: "new-topic-name", required: true });
  const parts = h("input", { id: "new-topic-partitions", type: "number", min: 1, value: 1 });
  const configs = h("textarea", { id: "new-topic-configs", placeholder: "retention.ms=86400000\ncleanup.policy=compact" });
  const submit = async (e) => {
    e.preventDefault();
    const base = await v3();
    await attempt(async () => {
      await api(`${base}/topics`, { method: "POST", body: {
        topic_name: name.value.trim(), partitions_count: Number(parts.value), configs: configLines(configs.value) } });
      location.hash = `#/topics/${encodeURIComponent(name.value.trim())}`;
    }, `Created ${name.value.trim()}`);
  };
  return h("form", { class: "form", id: "create-topic", onsubmit: submit },
    h("label", {}, "Name", name), h("label", {}, "Partitions", parts),
    h("label", {}, "Configs (key=value, one a line)", configs),
    h("div", {}, h("button", { class: "primary", type: "submit", id: "create-topic-submit" }, "Create")));
}

async function renderTopic(root, topic) {
  const base = await v3();
  const t = await api(`${base}/topics/${encodeURIComponent(topic)}`);
  const tabs = ["partitions", "messages", "produce", "configs", "settings"];
  const body = h("div", {});
  const bar = h("div", { class: "tabs" }, tabs.map((name) =>
    h("button", { "data-tab": name, onclick: () => show(name) }, name[0].toUpperCase() + name.slice(1))));
  const show = async (name) => {
    for (const b of bar.children) b.classList.toggle("active", b.dataset.tab === name);
    body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      await ({ partitions, messages, produce, configs, settings })[name](body, base, topic, t);
    } catch (e) {
      body.replaceChildren(h("div", { class: "notice" }, e.message));
    }
  };
  root.replaceChildren(h("h1", {}, h("a", { href: "#/topics" }, "Topics"), " / ", topic),
    h("p", { class: "muted" }, `${number(t.partitions_count)} partitions, replication factor ${t.replication_factor}`),
    bar, body);
  await show("partitions");
}

async function partitions(body, base, topic) {
  let offset = 0;
  const draw = async () => {
    const p = await api(`/api/topics/${encodeURIComponent(topic)}/partitions?offset=${offset}&limit=${PAGE}`);
    const rows = p.partitions.map((x) => [x.partition, x.leader, number(x.start_offset), number(x.end_offset),
      number(x.messages), bytes(x.size_bytes), x.isr.join(",")]);
    const last = Math.min(p.total, offset + PAGE);
    body.replaceChildren(
      h("div", { class: "pager" },
        h("button", { disabled: offset === 0, onclick: () => { offset -= PAGE; draw(); } }, "Previous"),
        h("span", { id: "partition-range" }, `${offset}–${last - 1} of ${number(p.total)}`),
        h("button", { disabled: last >= p.total, onclick: () => { offset += PAGE; draw(); } }, "Next")),
      table([{ title: "Partition", num: true }, { title: "Leader", num: true }, { title: "Start", num: true },
        { title: "End", num: true }, { title: "Messages", num: true }, { title: "Size", num: true }, { title: "ISR" }],
      rows, { id: "partitions" }));
  };
  await draw();
}

function shown(v) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "null");
  const text = ["json", "avro", "jsonschema", "protobuf"].includes(v.kind) ? JSON.stringify(v.value, null, 2) : v.value;
  return h("div", {}, h("span", { class: "kind" }, v.kind + (v.schema_id ? ` #${v.schema_id}` : "")), h("pre", {}, text));
}

async function messages(body, base, topic, t) {
  const partition = h("select", { id: "browse-partition" }, h("option", { value: "" }, "all partitions"),
    Array.from({ length: Math.min(t.partitions_count, 1000) }, (_, i) => h("option", { value: i }, `partition ${i}`)));
  const from = h("select", { id: "browse-from" }, ["newest", "earliest", "offset", "time"].map((f) => h("option", { value: f }, f)));
  const at = h("input", { id: "browse-at", placeholder: "offset or 2024-05-01T12:00:00Z", size: 24 });
  const filter = h("input", { id: "browse-filter", type: "search", placeholder: "key or value contains" });
  const limit = h("input", { id: "browse-limit", type: "number", min: 1, max: 500, value: 50, style: "width:6em" });
  const out = h("div", { id: "messages" });
  const load = async () => {
    const q = new URLSearchParams({ limit: limit.value });
    if (partition.value !== "") q.set("partition", partition.value);
    if (filter.value) q.set("filter", filter.value);
    if (from.value === "offset") q.set("from", at.value || "0");
    else if (from.value === "time") { q.set("from", "time"); q.set("timestamp", String(Date.parse(at.value) || 0)); }
    else q.set("from", from.value);
    out.replaceChildren(h("p", { class: "muted" }, "Reading…"));
    const r = await attempt(() => api(`/api/topics/${encodeURIComponent(topic)}/messages?${q}`));
    if (!r) return out.replaceChildren();
    out.replaceChildren(r.records.length
      ? table([{ title: "Partition", num: true }, { title: "Offset", num: true }, { title: "Timestamp" }, { title: "Key" }, { title: "Value" }, { title: "Headers" }],
        r.records.map((m) => [m.partition, m.offset, new Date(m.timestamp).toISOString(), shown(m.key), shown(m.value),
          h("pre", {}, m.headers.map((x) => `${x.key}=${x.value ?? "null"}`).join("\n"))]), { id: "records" })
      : h("p", { class: "muted" }, "No records."));
  };
  body.replaceChildren(h("div", { class: "toolbar" }, partition, from, at, filter, limit,
    h("button", { class: "primary", id: "browse", onclick: load }, "Read")), out);
  await load();
}

async function produce(body, base, topic, t) {
  const partition = h("input", { id: "produce-partition", type: "number", min: 0, max: t.partitions_count - 1, placeholder: "any" });
  const key = h("input", { id: "produce-key", placeholder: "key (text)" });
  const value = h("textarea", { id: "produce-value", placeholder: '{"hello": "world"} or text' });
  const headers = h("textarea", { id: "produce-headers", placeholder: "name=value, one a line" });
  const submit = async (e) => {
    e.preventDefault();
    const rec = {};
    if (partition.value !== "") rec.partition_id = Number(partition.value);
    if (key.value) rec.key = { type: "STRING", data: key.value };
    let json = null;
    try { json = JSON.parse(value.value); } catch { json = undefined; }
    rec.value = json !== undefined && value.value.trim() ? { type: "JSON", data: json } : { type: "STRING", data: value.value };
    rec.headers = headers.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
      const i = l.indexOf("=");
      return { name: i < 0 ? l : l.slice(0, i), value: btoa(unescape(encodeURIComponent(i < 0 ? "" : l.slice(i + 1)))) };
    });
    const r = await attempt(() => api(`${base}/topics/${encodeURIComponent(topic)}/records`, { method: "POST", body: rec }));
    if (!r) return;
    if (r.error_code !== 200) return toast(r.message, true);
    toast(`Written to partition ${r.partition_id} at offset ${r.offset}`);
    document.getElementById("produce-result").textContent = `partition ${r.partition_id}, offset ${r.offset}`;
  };
  body.replaceChildren(h("form", { class: "form", id: "produce", onsubmit: submit },
    h("label", {}, "Partition", partition), h("label", {}, "Key", key), h("label", {}, "Value (JSON or text)", value),
    h("label", {}, "Headers", headers),
    h("div", {}, h("button", { class: "primary", type: "submit", id: "produce-submit" }, "Produce"), " ",
      h("span", { id: "produce-result", class: "ok" }))));
}

async function configs(body, base, topic) {
  const list = await api(`${base}/topics/${encodeURIComponent(topic)}/configs`);
  const row = (c) => {
    const input = h("input", { value: c.value ?? "", "data-config": c.name, size: 28, disabled: c.is_read_only });
    const save = async () => {
      await attempt(() => api(`${base}/topics/${encodeURIComponent(topic)}/configs/${encodeURIComponent(c.name)}`,
        { method: "PUT", body: { value: input.value } }), `${c.name} = ${input.value}`);
      await configs(body, base, topic);
    };
    const reset = async () => {
      await attempt(() => api(`${base}/topics/${encodeURIComponent(topic)}/configs/${encodeURIComponent(c.name)}`,
        { method: "DELETE" }), `${c.name} reset`);
      await configs(body, base, topic);
    };
    return [c.name, input, h("span", { class: c.is_default ? "muted" : "" }, c.source),
      h("span", {}, h("button", { onclick: save, "data-save": c.name, disabled: c.is_read_only }, "Save"), " ",
        c.source === "DYNAMIC_TOPIC_CONFIG" ? h("button", { onclick: reset, "data-reset": c.name }, "Reset") : null)];
  };
  body.replaceChildren(table([{ title: "Config" }, { title: "Value" }, { title: "Source" }, { title: "" }],
    list.data.map(row), { id: "configs" }));
}

async function settings(body, base, topic, t) {
  const count = h("input", { id: "partition-count", type: "number", min: t.partitions_count + 1, value: t.partitions_count + 1 });
  const grow = async (e) => {
    e.preventDefault();
    const r = await attempt(() => api(`${base}/topics/${encodeURIComponent(topic)}`,
      { method: "PATCH", body: { partitions_count: Number(count.value) } }), `${topic} now has ${count.value} partitions`);
    if (r) location.reload();
  };
  const drop = async () => {
    if (!confirm(`Delete topic ${topic} and all its records?`)) return;
    const r = await attempt(() => api(`${base}/topics/${encodeURIComponent(topic)}`, { method: "DELETE" }), `Deleted ${topic}`);
    if (r !== undefined) location.hash = "#/topics";
  };
  body.replaceChildren(
    h("form", { class: "form", onsubmit: grow }, h("label", {}, "Partitions (can only grow)", count),
      h("div", {}, h("button", { class: "primary", type: "submit", id: "add-partitions" }, "Add partitions"))),
    h("div", { class: "form" }, h("div", {}, "Deleting a topic removes its records for good."),
      h("div", {}, h("button", { class: "danger", id: "delete-topic", onclick: drop }, "Delete topic"))));
}
