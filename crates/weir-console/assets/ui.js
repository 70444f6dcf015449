// Small helpers every page shares: the API client, element building,
// tables, formatting and the toast.

/** Calls the console's API; throws an Error with the server's message. */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] ??= "application/json";
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const message = data && data.message ? data.message : `${resp.status} ${resp.statusText}`;
    const err = new Error(message);
    err.status = resp.status;
    err.code = data && data.error_code;
    throw err;
  }
  return data;
}

/** The cluster id (asked once), for the REST proxy's v3 paths. */
let clusterId = null;
export async function v3() {
  if (!clusterId) {
    const list = await api("/api/rest/v3/clusters");
    clusterId = list.data[0].cluster_id;
  }
  return `/api/rest/v3/clusters/${encodeURIComponent(clusterId)}`;
}

/** Builds an element: h("td", {class: "num"}, "42"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table of `rows` (arrays of cells) under `columns` ({title, num}). */
export function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((cell, i) =>
      h("td", { class: columns[i] && columns[i].num ? "num" : null }, cell ?? "-"))))));
}

export function bytes(n) {
  if (n === null || n === undefined || n < 0) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function number(n) {
  return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
}

let toastTimer = null;
/** Shows a short message; errors in red. */
export function toast(message, error = false) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = error ? "show error" : "show";
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ""; }, error ? 8000 : 3000);
}

/** Runs `action`, showing its error in the toast instead of throwing. */
export async function attempt(action, done) {
  try {
    const r = await action();
    if (done) toast(done);
    return r;
  } catch (e) {
    toast(e.message, true);
    return undefined;
  }
}
