// Security: ACLs (list, filter, create, delete), SCRAM users (set a
// password, remove a mechanism), client quotas (set, remove) and the
// audit trail (`__weir_audit`), searchable.

import { api, v3, h, table, number, attempt } from "../ui.js";

const TABS = { acls, users, quotas, audit };

export async function render(root, [tab]) {
  const name = TABS[tab] ? tab : "acls";
  const body = h("div", {});
  root.replaceChildren(h("h1", {}, "Security"),
    h("div", { class: "tabs" }, Object.keys(TABS).map((t) =>
      h("button", { "data-tab": t, class: t === name ? "active" : null, onclick: () => { location.hash = `#/security/${t}`; } },
        { acls: "ACLs", users: "SCRAM users", quotas: "Quotas", audit: "Audit trail" }[t]))),
    body);
  try {
    await TABS[name](body);
  } catch (e) {
    body.replaceChildren(h("div", { class: "notice" }, e.message));
  }
}

const reload = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

async function acls(body) {
  const base = await v3();
  const list = await api(`${base}/acls`);
  const search = h("input", { type: "search", id: "acl-search", placeholder: "principal, resource or operation" });
  const out = h("div", {});
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = list.data.filter((a) => !q || [a.principal, a.resource_name, a.operation, a.resource_type].join(" ").toLowerCase().includes(q))
      .map((a) => [a.principal, a.resource_type, a.resource_name, a.pattern_type, a.operation, a.permission, a.host,
        h("button", { class: "danger", "data-delete-acl": `${a.principal}|${a.resource_name}|${a.operation}`, onclick: async () => {
          if (!confirm(`Delete ${a.permission} ${a.operation} on ${a.resource_type} ${a.resource_name} for ${a.principal}?`)) return;
          const q = new URLSearchParams({ resource_type: a.resource_type, resource_name: a.resource_name, pattern_type: a.pattern_type,
            principal: a.principal, host: a.host, operation: a.operation, permission: a.permission });
          if (await attempt(() => api(`${base}/acls?${q}`, { method: "DELETE" }), "ACL deleted") !== undefined) reload();
        } }, "Delete")]);
    out.replaceChildren(rows.length ? table(["Principal", "Resource type", "Resource", "Pattern", "Operation", "Permission", "Host", ""]
      .map((title) => ({ title })), rows, { id: "acls" }) : h("p", { class: "muted", id: "acls" }, "No ACLs."));
  };
  search.addEventListener("input", draw);
  const sel = (id, values) => h("select", { id }, values.map((v) => h("option", { value: v }, v)));
  const principal = h("input", { id: "acl-principal", placeholder: "User:alice" });
  const rtype = sel("acl-resource-type", ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN"]);
  const rname = h("input", { id: "acl-resource-name", placeholder: "orders (or * or a prefix)" });
  const pattern = sel("acl-pattern", ["LITERAL", "PREFIXED"]);
  const op = sel("acl-operation", ["READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "ALL"]);
  const perm = sel("acl-permission", ["ALLOW", "DENY"]);
  const host = h("input", { id: "acl-host", value: "*" });
  const create = async (e) => {
    e.preventDefault();
    const ok = await attempt(() => api(`${base}/acls`, { method: "POST", body: {
      resource_type: rtype.value, resource_name: rtype.value === "CLUSTER" ? "kafka-cluster" : rname.value.trim(),
      pattern_type: pattern.value, principal: principal.value.trim(), host: host.value.trim() || "*",
      operation: op.value, permission: perm.value } }), "ACL created");
    if (ok !== undefined) reload();
  };
  body.replaceChildren(h("div", { class: "toolbar" }, search), out, h("h2", {}, "Add an ACL"),
    h("form", { class: "form", id: "create-acl", onsubmit: create },
      h("label", {}, "Principal", principal), h("label", {}, "Resource type", rtype), h("label", {}, "Resource name", rname),
      h("label", {}, "Pattern", pattern), h("label", {}, "Operation", op), h("label", {}, "Permission", perm),
      h("label", {}, "Host", host), h("div", {}, h("button", { class: "primary", type: "submit", id: "create-acl-submit" }, "Add ACL"))));
  draw();
}

async function users(body) {
  const list = await api("/api/scram-users");
  const rows = list.users.flatMap((u) => u.credentials.map((c) => [u.user, c.mechanism, number(c.iterations),
    h("button", { class: "danger", "data-delete-user": `${u.user}|${c.mechanism}`, onclick: async () => {
      if (!confirm(`Remove ${u.user}'s ${c.mechanism} credential?`)) return;
      if (await attempt(() => api(`/api/scram-users/${encodeURIComponent(u.user)}/${c.mechanism}`, { method: "DELETE" }),
        `Removed ${u.user} (${c.mechanism})`) !== undefined) reload();
    } }, "Remove")]));
  const user = h("input", { id: "scram-user", placeholder: "alice" });
  const password = h("input", { id: "scram-password", type: "password" });
  const mech = h("select", { id: "scram-mechanism" }, ["SCRAM-SHA-256", "SCRAM-SHA-512"].map((m) => h("option", { value: m }, m)));
  const iterations = h("input", { id: "scram-iterations", type: "number", min: 4096, value: 4096 });
  const save = async (e) => {
    e.preventDefault();
    const ok = await attempt(() => api("/api/scram-users", { method: "POST", body: {
      user: user.value.trim(), password: password.value, mechanism: mech.value, iterations: Number(iterations.value) } }),
    `Saved ${user.value.trim()}`);
    if (ok !== undefined) reload();
  };
  body.replaceChildren(
    rows.length ? table([{ title: "User" }, { title: "Mechanism" }, { title: "Iterations", num: true }, { title: "" }], rows, { id: "scram-users" })
      : h("p", { class: "muted", id: "scram-users" }, "No SCRAM users."),
    h("h2", {}, "Add a user or change a password"),
    h("form", { class: "form", id: "upsert-user", onsubmit: save },
      h("label", {}, "User", user), h("label", {}, "Password (salted in the console; the broker never sees it)", password),
      h("label", {}, "Mechanism", mech), h("label", {}, "Iterations", iterations),
      h("div", {}, h("button", { class: "primary", type: "submit", id: "scram-save" }, "Save"))));
}

const entityText = (e) => e.map((p) => `${p.type}=${p.name ?? "<default>"}`).join(", ");

async function quotas(body) {
  const list = await api("/api/quotas");
  const rows = list.quotas.flatMap((q) => Object.entries(q.values).map(([k, v]) => [entityText(q.entity), k, number(v),
    h("button", { class: "danger", "data-delete-quota": `${entityText(q.entity)}|${k}`, onclick: async () => {
      if (await attempt(() => api("/api/quotas", { method: "POST", body: { entity: q.entity, key: k, value: null } }),
        `Removed ${k}`) !== undefined) reload();
    } }, "Remove")]));
  const type = h("select", { id: "quota-entity-type" }, ["user", "client-id", "ip"].map((t) => h("option", { value: t }, t)));
  const name = h("input", { id: "quota-entity-name", placeholder: "name (empty: the default)" });
  const key = h("select", { id: "quota-key" }, ["producer_byte_rate", "consumer_byte_rate", "request_percentage",
    "controller_mutation_rate", "connection_creation_rate"].map((k) => h("option", { value: k }, k)));
  const value = h("input", { id: "quota-value", type: "number", min: 0 });
  const save = async (e) => {
    e.preventDefault();
    const ok = await attempt(() => api("/api/quotas", { method: "POST", body: {
      entity: [{ type: type.value, name: name.value.trim() || null }], key: key.value, value: Number(value.value) } }), "Quota set");
    if (ok !== undefined) reload();
  };
  body.replaceChildren(
    rows.length ? table([{ title: "Entity" }, { title: "Quota" }, { title: "Value", num: true }, { title: "" }], rows, { id: "quotas" })
      : h("p", { class: "muted", id: "quotas" }, "No quotas."),
    h("h2", {}, "Set a quota"),
    h("form", { class: "form", id: "set-quota", onsubmit: save },
      h("label", {}, "Entity type", type), h("label", {}, "Entity name", name), h("label", {}, "Quota", key),
      h("label", {}, "Value", value), h("div", {}, h("button", { class: "primary", type: "submit", id: "quota-save" }, "Set"))));
}

async function audit(body) {
  const search = h("input", { type: "search", id: "audit-search", placeholder: "principal, resource, operation…" });
  const limit = h("input", { type: "number", id: "audit-limit", min: 1, max: 500, value: 100, style: "width:6em" });
  const out = h("div", {});
  const load = async () => {
    const q = new URLSearchParams({ from: "newest", limit: limit.value });
    if (search.value) q.set("filter", search.value);
    out.replaceChildren(h("p", { class: "muted" }, "Reading…"));
    let r;
    try {
      r = await api(`/api/topics/__weir_audit/messages?${q}`);
    } catch (e) {
      out.replaceChildren(h("div", { class: "notice" }, e.status === 404 ? "This cluster keeps no audit trail (no __weir_audit topic)." : e.message));
      return;
    }
    const rows = r.records.slice().reverse().map((m) => {
      const e = m.value && m.value.kind === "json" ? m.value.value : {};
      return [new Date(m.timestamp).toISOString(), e.kind, e.principal, e.client, e.resource, e.operation,
        h("span", { class: e.outcome === "success" ? "ok" : "bad" }, e.outcome), e.detail];
    });
    out.replaceChildren(rows.length ? table(["Time", "Kind", "Principal", "Client", "Resource", "Operation", "Outcome", "Detail"]
      .map((title) => ({ title })), rows, { id: "audit" }) : h("p", { class: "muted", id: "audit" }, "No matching events."));
  };
  body.replaceChildren(h("div", { class: "toolbar" }, search, limit, h("button", { class: "primary", id: "audit-go", onclick: load }, "Search")), out);
  await load();
}
