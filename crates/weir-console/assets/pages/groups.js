// Consumer groups: the list with state and lag, and per group its members
// and their assignments, lag per partition (table and chart), offset
// resets with a dry-run preview first, and deletion.

import { api, v3, h, table, number, toast, attempt } from "../ui.js";
import { barChart } from "../chart.js";

export async function render(root, [group]) {
  if (group) return renderGroup(root, group);
  const base = await v3();
  const list = await api(`${base}/consumer-groups`);
  const summaries = await Promise.all(list.data.map((g) =>
    api(`${base}/consumer-groups/${encodeURIComponent(g.consumer_group_id)}/lag-summary`).catch(() => null)));
  const search = h("input", { type: "search", placeholder: "Search groups", id: "group-search" });
  const body = h("div", {});
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = list.data.map((g, i) => [g, summaries[i]])
      .filter(([g]) => !q || g.consumer_group_id.toLowerCase().includes(q))
      .map(([g, s]) => [h("a", { href: `#/groups/${encodeURIComponent(g.consumer_group_id)}` }, g.consumer_group_id),
        g.state, g.type, g.partition_assignor || "-", s ? number(s.total_lag) : "-", s ? number(s.max_lag) : "-"]);
    body.replaceChildren(rows.length
      ? table([{ title: "Group" }, { title: "State" }, { title: "Protocol" }, { title: "Assignor" },
        { title: "Total lag", num: true }, { title: "Max lag", num: true }], rows, { id: "groups" })
      : h("p", { class: "muted" }, "No consumer groups."));
  };
  search.addEventListener("input", draw);
  root.replaceChildren(h("h1", {}, "Consumer groups"), h("div", { class: "toolbar" }, search), body);
  draw();
}

async function renderGroup(root, group) {
  // One call: members with assignments and lags (the REST API would need
  // a request per member).
  const info = await api(`/api/groups/${encodeURIComponent(group)}`);
  const members = info.members.map((m) => [m.member_id, m.instance_id || "-", m.client_id,
    m.assignment.map((a) => `${a.topic}-${a.partition}`).join(", ") || "-"]);
  const lagRows = info.lags.slice().sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  const total = lagRows.reduce((s, l) => s + (l.lag ?? 0), 0);
  root.replaceChildren(
    h("h1", {}, h("a", { href: "#/groups" }, "Consumer groups"), " / ", group),
    h("div", { class: "cards" },
      h("div", { class: "card", "data-card": "state" }, h("div", { class: "label" }, "State"), h("div", { class: "value" }, info.state)),
      h("div", { class: "card", "data-card": "members" }, h("div", { class: "label" }, "Members"), h("div", { class: "value" }, number(info.members.length))),
      h("div", { class: "card", "data-card": "lag" }, h("div", { class: "label" }, "Total lag"), h("div", { class: "value" }, number(total)))),
    h("h2", {}, "Members"),
    members.length ? table([{ title: "Member" }, { title: "Instance" }, { title: "Client" }, { title: "Assignment" }], members, { id: "members" })
      : h("p", { class: "muted", id: "members" }, "No active members."),
    h("h2", {}, "Lag per partition"),
    lagRows.length ? barChart("Lag", lagRows.map((l) => [`${l.topic}-${l.partition}`, l.lag ?? 0]), number) : null,
    lagRows.length ? table([{ title: "Topic" }, { title: "Partition", num: true }, { title: "Committed", num: true },
      { title: "End", num: true }, { title: "Lag", num: true }, { title: "Member" }],
    lagRows.map((l) => [l.topic, l.partition, number(l.current_offset), number(l.log_end_offset), number(l.lag), l.client_id || "-"]),
    { id: "lags" }) : h("p", { class: "muted", id: "lags" }, "No committed offsets."),
    h("h2", {}, "Reset offsets"), resetForm(group, lagRows),
    h("h2", {}, "Delete"),
    h("div", { class: "form" }, h("div", {}, "Only a group without members can be deleted; its committed offsets go with it."),
      h("div", {}, h("button", { class: "danger", id: "delete-group", onclick: async () => {
        if (!confirm(`Delete group ${group} and its committed offsets?`)) return;
        const r = await attempt(() => api(`/api/groups/${encodeURIComponent(group)}`, { method: "DELETE" }), `Deleted ${group}`);
        if (r !== undefined) location.hash = "#/groups";
      } }, "Delete group"))));
}

function resetForm(group, lagRows) {
  const topics = [...new Set(lagRows.map((l) => l.topic))];
  const topic = h("select", { id: "reset-topic" }, h("option", { value: "" }, "every topic"), topics.map((t) => h("option", { value: t }, t)));
  const to = h("select", { id: "reset-to" }, ["earliest", "latest", "offset", "time", "shift"].map((t) => h("option", { value: t }, t)));
  const value = h("input", { id: "reset-value", placeholder: "offset, shift, or 2024-05-01T12:00:00Z", size: 28 });
  const preview = h("div", { id: "reset-preview" });
  const apply = h("button", { class: "danger", id: "reset-apply", disabled: true }, "Apply");
  const request = (dryRun) => {
    const body = { to: to.value, dry_run: dryRun };
    if (topic.value) body.topic = topic.value;
    if (to.value === "time") body.value = Date.parse(value.value);
    else if (to.value === "offset" || to.value === "shift") body.value = Number(value.value);
    return api(`/api/groups/${encodeURIComponent(group)}/reset-offsets`, { method: "POST", body });
  };
  const show = (r) => table([{ title: "Topic" }, { title: "Partition", num: true }, { title: "Committed", num: true }, { title: "New", num: true }],
    r.offsets.map((o) => [o.topic, o.partition, number(o.current), number(o.new)]), { id: "reset-plan" });
  const dry = async (e) => {
    e.preventDefault();
    const r = await attempt(() => request(true));
    apply.disabled = !r;
    preview.replaceChildren(r ? h("div", {}, h("p", { class: "muted" }, "Dry run: nothing is committed until you apply."), show(r)) : "");
  };
  apply.addEventListener("click", async (e) => {
    e.preventDefault();
    const r = await attempt(() => request(false), `Offsets of ${group} reset`);
    if (!r) return;
    apply.disabled = true;
    preview.replaceChildren(h("p", { class: "ok", id: "reset-done" }, "Applied."), show(r));
    setTimeout(() => window.dispatchEvent(new HashChangeEvent("hashchange")), 800);
  });
  for (const el of [topic, to, value]) el.addEventListener("change", () => { apply.disabled = true; });
  return h("form", { class: "form", id: "reset-offsets", onsubmit: dry },
    h("div", { class: "muted" }, "The group's consumers must be stopped first."),
    h("label", {}, "Topic", topic), h("label", {}, "To", to), h("label", {}, "Value", value),
    h("div", {}, h("button", { class: "primary", type: "submit", id: "reset-dry-run" }, "Preview (dry run)"), " ", apply),
    preview);
}
