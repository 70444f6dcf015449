// Schemas: the registry's subjects, their versions with a diff between
// any two, the compatibility level (edit), and registering a new version
// with the compatibility check shown before anything is registered.

import { api, h, table, toast, attempt } from "../ui.js";

const R = "/api/upstream/registry";
const enc = encodeURIComponent;

/** The registry's error bodies use `message` like the REST proxy's. */
export async function render(root, [subject]) {
  if (subject) return renderSubject(root, subject);
  const subjects = await api(`${R}/subjects`);
  const search = h("input", { type: "search", placeholder: "Search subjects", id: "subject-search" });
  const body = h("div", {});
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = subjects.filter((s) => !q || s.toLowerCase().includes(q)).sort()
      .map((s) => [h("a", { href: `#/schemas/${enc(s)}` }, s)]);
    body.replaceChildren(rows.length ? table([{ title: "Subject" }], rows, { id: "subjects" })
      : h("p", { class: "muted" }, "No subjects."));
  };
  search.addEventListener("input", draw);
  const name = h("input", { id: "new-subject-name", placeholder: "orders-value" });
  root.replaceChildren(h("h1", {}, "Schemas"),
    h("div", { class: "toolbar" }, search, name,
      h("button", { class: "primary", id: "new-subject", onclick: () => {
        if (name.value.trim()) location.hash = `#/schemas/${enc(name.value.trim())}`;
      } }, "New subject")),
    body);
  draw();
}

function pretty(s) {
  if (s.schemaType && s.schemaType !== "AVRO" && s.schemaType !== "JSON") return s.schema;
  try { return JSON.stringify(JSON.parse(s.schema), null, 2); } catch { return s.schema; }
}

/** A line diff (longest common subsequence): [op, line] with op " ", "-" or "+". */
export function diff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

async function renderSubject(root, subject) {
  const s = `${R}/subjects/${enc(subject)}`;
  let versions = [];
  try { versions = await api(`${s}/versions`); } catch (e) { if (e.status !== 404) throw e; }
  const all = await Promise.all(versions.map((v) => api(`${s}/versions/${v}`)));
  const level = await api(`${R}/config/${enc(subject)}?defaultToGlobal=true`);
  const latest = all[all.length - 1];
  const view = h("div", {});
  const pick = h("select", { id: "version" }, all.map((v) => h("option", { value: v.version, selected: v === latest }, `version ${v.version} (id ${v.id})`)));
  const showVersion = () => {
    const v = all.find((x) => String(x.version) === pick.value);
    view.replaceChildren(h("p", { class: "muted" }, `${v.schemaType || "AVRO"}, schema id ${v.id}`), h("pre", { id: "schema-text" }, pretty(v)));
  };
  pick.addEventListener("change", showVersion);

  const from = h("select", { id: "diff-from" }, all.map((v, i) => h("option", { value: i, selected: i === all.length - 2 }, `version ${v.version}`)));
  const to = h("select", { id: "diff-to" }, all.map((v, i) => h("option", { value: i, selected: i === all.length - 1 }, `version ${v.version}`)));
  const diffOut = h("div", { id: "diff" });
  const showDiff = () => {
    const lines = diff(pretty(all[from.value]), pretty(all[to.value]));
    diffOut.replaceChildren(h("pre", { class: "diff" }, lines.map(([op, l]) =>
      h("div", { class: op === "+" ? "add" : op === "-" ? "del" : "" }, `${op} ${l}`))));
  };
  from.addEventListener("change", showDiff);
  to.addEventListener("change", showDiff);

  const levels = ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"];
  const compat = h("select", { id: "compatibility" }, levels.map((l) => h("option", { value: l, selected: l === level.compatibilityLevel }, l)));
  const saveLevel = async () => {
    await attempt(() => api(`${R}/config/${enc(subject)}`, { method: "PUT", body: { compatibility: compat.value } }),
      `${subject}: ${compat.value}`);
  };

  root.replaceChildren(
    h("h1", {}, h("a", { href: "#/schemas" }, "Schemas"), " / ", subject),
    h("div", { class: "toolbar" }, "Compatibility", compat, h("button", { id: "save-compatibility", onclick: saveLevel }, "Save")),
    all.length ? h("div", {}, h("h2", {}, "Versions"), h("div", { class: "toolbar" }, pick), view) : h("p", { class: "muted" }, "No versions yet."),
    all.length > 1 ? h("div", {}, h("h2", {}, "Diff"), h("div", { class: "toolbar" }, from, "→", to), diffOut) : null,
    h("h2", {}, "Register a new version"), registerForm(subject, latest),
    all.length ? h("div", { class: "form" }, h("div", {}, h("button", { class: "danger", id: "delete-subject", onclick: async () => {
      if (!confirm(`Soft-delete subject ${subject}?`)) return;
      const r = await attempt(() => api(s, { method: "DELETE" }), `Deleted ${subject}`);
      if (r !== undefined) location.hash = "#/schemas";
    } }, "Delete subject"))) : null);
  if (all.length) showVersion();
  if (all.length > 1) showDiff();
}

function registerForm(subject, latest) {
  const type = h("select", { id: "new-schema-type" }, ["AVRO", "JSON", "PROTOBUF"].map((t) =>
    h("option", { value: t, selected: (latest?.schemaType || "AVRO") === t }, t)));
  const text = h("textarea", { id: "new-schema", rows: 10 }, latest ? pretty(latest) : "");
  const check = h("div", { id: "compat-result" });
  const register = h("button", { class: "primary", id: "register-schema", disabled: true }, "Register");
  const body = () => ({ schema: text.value, schemaType: type.value });
  const test = async (e) => {
    e.preventDefault();
    register.disabled = true;
    let r;
    try {
      r = await api(`${R}/compatibility/subjects/${enc(subject)}/versions/latest?verbose=true`, { method: "POST", body: body() });
    } catch (err) {
      // No version yet: nothing to be compatible with.
      if (err.status === 404 && !latest) r = { is_compatible: true, messages: ["first version of the subject"] };
      else { check.replaceChildren(h("p", { class: "bad" }, err.message)); return; }
    }
    check.replaceChildren(h("p", { class: r.is_compatible ? "ok" : "bad" }, r.is_compatible ? "Compatible" : "Not compatible"),
      (r.messages || []).length ? h("pre", {}, r.messages.join("\n")) : "");
    register.disabled = !r.is_compatible;
  };
  register.addEventListener("click", async (e) => {
    e.preventDefault();
    const r = await attempt(() => api(`${R}/subjects/${enc(subject)}/versions`, { method: "POST", body: body() }));
    if (!r) return;
    toast(`Registered schema id ${r.id}`);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  });
  for (const el of [type, text]) el.addEventListener("input", () => { register.disabled = true; check.replaceChildren(); });
  return h("form", { class: "form", id: "register", onsubmit: test },
    h("label", {}, "Type", type), h("label", {}, "Schema", text),
    h("div", {}, h("button", { type: "submit", id: "check-compatibility" }, "Check compatibility"), " ", register), check);
}
