// The console's shell: a hash router that renders one page at a time
// into <main>, and the cluster id in the header.

import { api } from "./ui.js";

const pages = {
  overview: () => import("./pages/overview.js"),
  topics: () => import("./pages/topics.js"),
  groups: () => import("./pages/groups.js"),
  schemas: () => import("./pages/schemas.js"),
  connect: () => import("./pages/connect.js"),
  sql: () => import("./pages/sql.js"),
  security: () => import("./pages/security.js"),
};

let current = null;

async function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = pages[name] ? name : "overview";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === page);
  }
  if (current && current.leave) current.leave();
  const view = document.getElementById("view");
  view.replaceChildren();
  const mod = await pages[page]();
  current = mod;
  try {
    await mod.render(view, rest.map(decodeURIComponent));
  } catch (e) {
    view.replaceChildren(Object.assign(document.createElement("div"), { className: "notice", textContent: e.message }));
  }
}

window.addEventListener("hashchange", route);
route();
api("/api/rest/v3/clusters")
  .then((c) => { document.getElementById("cluster").textContent = `cluster ${c.data[0].cluster_id}`; })
  .catch(() => {});
// Services this console does not reach stay in the menu, marked off; their
// pages say so.
api("/api/services")
  .then((s) => {
    for (const a of document.querySelectorAll("#nav a[data-service]")) {
      if (!s[a.dataset.service]) { a.classList.add("off"); a.title = "not configured for this console"; }
    }
  })
  .catch(() => {});
