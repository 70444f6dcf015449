// Connect: connectors with their status and tasks (with failure traces),
// creating one from JSON with the worker's validation errors shown per
// field first, and pause, resume, restart and delete.

import { api, h, table, toast, attempt } from "../ui.js";

const C = "/api/upstream/connect";
const enc = encodeURIComponent;
const reload = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
const state = (s) => h("span", { class: `status-${s}` }, s);

export async function render(root, [name]) {
  if (name) return renderConnector(root, name);
  const all = await api(`${C}/connectors?expand=status&expand=info`);
  const names = Object.keys(all).sort();
  const rows = names.map((n) => {
    const s = all[n].status;
    const tasks = s.tasks || [];
    return [h("a", { href: `#/connect/${enc(n)}` }, n), s.type || all[n].info?.type || "-",
      all[n].info?.config?.["connector.class"] || "-", state(s.connector.state),
      `${tasks.filter((t) => t.state === "RUNNING").length}/${tasks.length} running`,
      tasks.some((t) => t.state === "FAILED") ? h("span", { class: "bad" }, "failed tasks") : ""];
  });
  root.replaceChildren(h("h1", {}, "Connectors"),
    h("div", { class: "toolbar" }, h("button", { class: "primary", id: "new-connector",
      onclick: () => { form.hidden = !form.hidden; } }, "Create connector")),
    createForm(),
    rows.length ? table([{ title: "Connector" }, { title: "Type" }, { title: "Class" }, { title: "State" }, { title: "Tasks" }, { title: "" }],
      rows, { id: "connectors" }) : h("p", { class: "muted", id: "connectors" }, "No connectors."));
  const form = root.querySelector("#create-connector");
  form.hidden = true;
}

function createForm() {
  const text = h("textarea", { id: "connector-json", rows: 10,
    placeholder: '{"name": "files", "config": {"connector.class": "FileStreamSource", "file": "...", "topic": "..."}}' });
  const errors = h("div", { id: "connector-errors" });
  const submit = async (e) => {
    e.preventDefault();
    errors.replaceChildren();
    let spec;
    try {
      spec = JSON.parse(text.value);
    } catch (err) {
      errors.replaceChildren(h("p", { class: "bad" }, `Not JSON: ${err.message}`));
      return;
    }
    const config = spec.config || {};
    const name = spec.name || config.name;
    if (!name) return void errors.replaceChildren(h("p", { class: "bad" }, "The connector needs a name."));
    if (!config["connector.class"]) return void errors.replaceChildren(h("p", { class: "bad" }, "connector.class is missing."));
    // The worker validates first; errors are shown next to their field.
    let v;
    try {
      v = await api(`${C}/connector-plugins/${enc(config["connector.class"])}/config/validate`,
        { method: "PUT", body: { ...config, name } });
    } catch (err) {
      errors.replaceChildren(h("p", { class: "bad" }, err.message));
      return;
    }
    if (v.error_count > 0) {
      const bad = v.configs.filter((c) => c.value.errors.length);
      errors.replaceChildren(h("p", { class: "bad" }, `${v.error_count} configuration error(s):`),
        table([{ title: "Field" }, { title: "Value" }, { title: "Error" }],
          bad.map((c) => [c.value.name, c.value.value ?? "-", h("span", { class: "field-error", "data-field": c.value.name }, c.value.errors.join(" "))]),
          { id: "validation-errors" }));
      return;
    }
    const r = await attempt(() => api(`${C}/connectors`, { method: "POST", body: { name, config } }), `Created ${name}`);
    if (r) location.hash = `#/connect/${enc(name)}`;
  };
  return h("form", { class: "form", id: "create-connector", onsubmit: submit },
    h("label", {}, "Connector (JSON: name and config)", text),
    h("div", {}, h("button", { class: "primary", type: "submit", id: "create-connector-submit" }, "Validate and create")), errors);
}

async function renderConnector(root, name) {
  const n = `${C}/connectors/${enc(name)}`;
  const [info, status] = await Promise.all([api(n), api(`${n}/status`)]);
  const act = (label, id, method, path, done, cls) => h("button", { id, class: cls, onclick: async () => {
    if (method === "DELETE" && !confirm(`Delete connector ${name}?`)) return;
    const r = await attempt(() => api(`${n}${path}`, { method }), done);
    if (r === undefined) return;
    if (method === "DELETE") location.hash = "#/connect";
    else setTimeout(reload, 500);
  } }, label);
  const tasks = (status.tasks || []).map((t) => [t.id, state(t.state), t.worker_id,
    t.trace ? h("details", {}, h("summary", {}, "trace"), h("pre", { class: "trace" }, t.trace)) : "",
    h("button", { "data-restart-task": t.id, onclick: async () => {
      if (await attempt(() => api(`${n}/tasks/${t.id}/restart`, { method: "POST" }), `Task ${t.id} restarting`) !== undefined) setTimeout(reload, 500);
    } }, "Restart")]);
  root.replaceChildren(
    h("h1", {}, h("a", { href: "#/connect" }, "Connectors"), " / ", name),
    h("div", { class: "cards" },
      h("div", { class: "card", "data-card": "state" }, h("div", { class: "label" }, "State"), h("div", { class: "value" }, state(status.connector.state))),
      h("div", { class: "card", "data-card": "type" }, h("div", { class: "label" }, "Type"), h("div", { class: "value" }, status.type || info.type || "-")),
      h("div", { class: "card", "data-card": "worker" }, h("div", { class: "label" }, "Worker"), h("div", { class: "value", style: "font-size:14px" }, status.connector.worker_id))),
    status.connector.trace ? h("details", { open: true }, h("summary", { class: "bad" }, "Connector failure"), h("pre", {}, status.connector.trace)) : null,
    h("div", { class: "toolbar" },
      act("Pause", "pause", "PUT", "/pause", `Pausing ${name}`),
      act("Resume", "resume", "PUT", "/resume", `Resuming ${name}`),
      act("Restart", "restart", "POST", "/restart?includeTasks=true", `Restarting ${name}`),
      act("Delete", "delete-connector", "DELETE", "", `Deleted ${name}`, "danger")),
    h("h2", {}, "Tasks"),
    tasks.length ? table([{ title: "Task", num: true }, { title: "State" }, { title: "Worker" }, { title: "Trace" }, { title: "" }], tasks, { id: "tasks" })
      : h("p", { class: "muted", id: "tasks" }, "No tasks."),
    h("h2", {}, "Config"),
    table([{ title: "Key" }, { title: "Value" }], Object.entries(info.config).sort().map(([k, v]) => [k, v]), { id: "connector-config" }));
}
