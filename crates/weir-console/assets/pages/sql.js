// SQL: an editor that runs statements on the SQL server (ksqlDB's REST
// API): SELECTs through /query-stream, push-query rows streaming into the
// table as they arrive until stopped, pull queries to their end, other
// statements through /ksql; and the streams, tables and running queries.

import { api, h, table, toast } from "../ui.js";

const S = "/api/upstream/sql";
let running = null; // {controller, queryId} of the push query on screen

export function leave() {
  stop();
}

function stop() {
  if (!running) return;
  const { controller, queryId } = running;
  running = null;
  controller.abort();
  if (queryId) api(`${S}/close-query`, { method: "POST", body: { queryId } }).catch(() => {});
}

export async function render(root) {
  const editor = h("textarea", { id: "sql-editor", rows: 6, spellcheck: "false",
    placeholder: "SELECT * FROM orders EMIT CHANGES;" }, sessionStorage.getItem("weir-sql") || "");
  const out = h("div", { id: "sql-output" });
  const lists = h("div", { id: "sql-lists" });
  const stopButton = h("button", { id: "sql-stop", disabled: true, onclick: () => { stop(); stopButton.disabled = true; status.textContent = "Stopped."; } }, "Stop");
  const status = h("span", { id: "sql-status", class: "muted" });
  // Where new queries (push and persistent) start reading.
  const reset = h("select", { id: "sql-offset-reset", title: "auto.offset.reset of new queries" },
    ["earliest", "latest"].map((v) => h("option", { value: v }, `from ${v}`)));
  const run = async () => {
    stop();
    const text = editor.value.trim();
    sessionStorage.setItem("weir-sql", text);
    if (!text) return;
    out.replaceChildren();
    status.textContent = "Running…";
    try {
      const props = { "auto.offset.reset": reset.value };
      if (/^select\b/i.test(text)) await query(text, props, out, status, stopButton);
      else {
        const r = await api(`${S}/ksql`, { method: "POST", body: { ksql: text.endsWith(";") ? text : `${text};`, streamsProperties: props } });
        out.replaceChildren(...r.map(result));
        status.textContent = "Done.";
        await drawLists(lists);
      }
    } catch (e) {
      if (e.name === "AbortError") return;
      status.textContent = "";
      out.replaceChildren(h("div", { class: "notice bad", id: "sql-error" }, e.message));
    }
  };
  editor.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
  root.replaceChildren(h("h1", {}, "SQL"),
    h("div", { class: "form", style: "max-width:none" }, editor,
      h("div", { class: "toolbar" }, h("button", { class: "primary", id: "sql-run", onclick: run }, "Run"), stopButton, reset, status,
        h("span", { class: "muted" }, "Ctrl+Enter runs; SELECT … EMIT CHANGES streams until stopped."))),
    out, lists);
  await drawLists(lists);
}

/** One /ksql result: a list as a table, anything else as its message. */
function result(r) {
  const pick = (rows, cols) => table(cols.map((c) => ({ title: c })), rows.map((x) => cols.map((c) => {
    const v = x[c];
    return Array.isArray(v) ? v.join(", ") : typeof v === "object" && v !== null ? JSON.stringify(v) : v;
  })));
  switch (r["@type"]) {
    case "streams": return pick(r.streams, ["name", "topic", "keyFormat", "valueFormat"]);
    case "tables": return pick(r.tables, ["name", "topic", "keyFormat", "valueFormat", "isWindowed"]);
    case "queries": return pick(r.queries, ["id", "queryString", "sinks", "state"]);
    case "kafka_topics": return pick(r.topics, ["name"]);
    case "currentStatus": return h("p", { class: "ok" }, r.commandStatus?.message || r.commandStatus?.status || "Done");
    default: return h("pre", {}, JSON.stringify(r, null, 2));
  }
}

/** Runs a SELECT through /query-stream, adding rows as lines arrive. */
async function query(text, props, out, status, stopButton) {
  const controller = new AbortController();
  running = { controller, queryId: null };
  const resp = await fetch(`${S}/query-stream`, { method: "POST", signal: controller.signal,
    headers: { "Content-Type": "application/json", Accept: "application/vnd.ksqlapi.delimited.v1" },
    body: JSON.stringify({ sql: text, properties: props }) });
  if (!resp.ok) {
    const body = await resp.text();
    let message = `${resp.status} ${resp.statusText}`;
    try { message = JSON.parse(body).message || message; } catch { /* not JSON */ }
    running = null;
    throw new Error(message);
  }
  const push = /\bemit\s+changes\b/i.test(text);
  stopButton.disabled = !push;
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", header = null, tbody = null, count = 0;
  const line = (l) => {
    if (!l.trim()) return;
    const v = JSON.parse(l);
    if (!header) {
      header = v;
      if (running) running.queryId = v.queryId;
      tbody = h("tbody", {});
      out.replaceChildren(h("table", { id: "sql-rows", "data-query-id": v.queryId || "" },
        h("thead", {}, h("tr", {}, v.columnNames.map((c, i) => h("th", {}, c, h("span", { class: "kind" }, ` ${v.columnTypes[i]}`))))), tbody));
      return;
    }
    if (!Array.isArray(v)) { if (v.message) toast(v.message, true); return; }
    tbody.append(h("tr", {}, v.map((c) => h("td", {}, c === null ? "null" : typeof c === "object" ? JSON.stringify(c) : String(c)))));
    count++;
    status.textContent = `${count} row${count === 1 ? "" : "s"}${push ? ", streaming…" : ""}`;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) { line(buffer.slice(0, i)); buffer = buffer.slice(i + 1); }
  }
  line(buffer);
  if (running && running.controller === controller) running = null;
  stopButton.disabled = true;
  status.textContent = `${count} row${count === 1 ? "" : "s"}, done.`;
}

async function drawLists(lists) {
  const r = await api(`${S}/ksql`, { method: "POST", body: { ksql: "SHOW STREAMS; SHOW TABLES; SHOW QUERIES;", streamsProperties: {} } });
  const [streams, tables, queries] = r;
  const link = (name) => h("a", { href: "#/sql", onclick: (e) => {
    e.preventDefault();
    const ed = document.getElementById("sql-editor");
    ed.value = `SELECT * FROM ${name} EMIT CHANGES;`;
    ed.focus();
  } }, name);
  lists.replaceChildren(
    h("h2", {}, "Streams"),
    streams.streams.length ? table([{ title: "Name" }, { title: "Topic" }, { title: "Key format" }, { title: "Value format" }],
      streams.streams.map((s) => [link(s.name), s.topic, s.keyFormat, s.valueFormat]), { id: "sql-streams" })
      : h("p", { class: "muted", id: "sql-streams" }, "No streams."),
    h("h2", {}, "Tables"),
    tables.tables.length ? table([{ title: "Name" }, { title: "Topic" }, { title: "Key format" }, { title: "Value format" }],
      tables.tables.map((s) => [link(s.name), s.topic, s.keyFormat, s.valueFormat]), { id: "sql-tables" })
      : h("p", { class: "muted", id: "sql-tables" }, "No tables."),
    h("h2", {}, "Running queries"),
    queries.queries.length ? table([{ title: "Id" }, { title: "Statement" }, { title: "Sinks" }, { title: "State" }, { title: "" }],
      queries.queries.map((q) => [q.id, h("pre", {}, q.queryString), q.sinks.join(", "), q.state,
        h("button", { class: "danger", "data-terminate": q.id, onclick: async () => {
          if (!confirm(`Terminate ${q.id}?`)) return;
          try {
            await api(`${S}/ksql`, { method: "POST", body: { ksql: `TERMINATE ${q.id};`, streamsProperties: {} } });
            toast(`Terminated ${q.id}`);
            await drawLists(lists);
          } catch (e) { toast(e.message, true); }
        } }, "Terminate")]), { id: "sql-queries" })
      : h("p", { class: "muted", id: "sql-queries" }, "No running queries."));
}
