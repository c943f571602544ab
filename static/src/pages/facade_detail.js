// One facade: its bindings (type ← mapping, source) with deploy and rollback, data sources with record upload, the
// deployment history and request metrics (volume, p50/p95, errors, a per-minute chart). All through /api/facades/.
import { api, get, getAll, pageConfig, post } from "../lib/api.js";
import { $, ago, h, toast } from "../lib/dom.js";

const config = pageConfig();
const base = `/api/facades/${config.slug}`;
const SVG = "http://www.w3.org/2000/svg";
let facade = null;

function say(text, kind = "") {
  const box = $("#action-result");
  box.textContent = text;
  box.className = kind;
}

async function versionsOf(slug) {
  return getAll(`/api/mappings/${slug}/versions/`);
}

async function loadFacade() {
  facade = await get(`${base}/`);
  $("#facade-title").textContent = facade.title;
  $("#base-url").textContent = facade.base_url;
  $("#status").textContent = facade.status;
  $("#status").className = `badge ${facade.status === "active" ? "ok" : "warn"}`;
  const toggle = $("#toggle-status");
  if (toggle) toggle.textContent = facade.status === "active" ? "Pause" : "Resume";
  const rows = [];
  for (const binding of facade.bindings) {
    const versions = config.canWrite ? await versionsOf(binding.mapping) : [];
    const select = h("select", { "aria-label": `Version of ${binding.mapping} for ${binding.resource_type}` },
      versions.map((version) => h("option", { value: String(version.number) }, `v${version.number} · ${version.message}`)));
    const { live, pending } = binding; // live serves; pending is a newer deployment still being indexed
    rows.push(h("tr", { dataset: { type: binding.resource_type } },
      h("td", {}, h("a", { href: `${facade.base_url}${binding.resource_type}?_count=10` }, binding.resource_type)),
      h("td", {}, h("a", { href: `/mappings/${binding.mapping}/` }, binding.mapping)),
      h("td", {}, binding.source),
      h("td", {}, `${live ? `v${live.version}` : "—"}${pending ? ` (v${pending.version} indexing…)` : ""}`),
      h("td", {}, live ? `${live.indexed}${live.index_errors.length ? ` · ${live.index_errors.length} records failed` : ""}` : ""),
      h("td", {}, config.canWrite ? [select, " ",
        h("button", { type: "button", class: "deploy", onclick: () => deploy(binding.resource_type, select.value) }, "Deploy"), " ",
        h("button", { type: "button", class: "rollback", onclick: () => rollback(binding.resource_type) }, "Roll back")] : null)));
  }
  $("#bindings tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 6, class: "hint" }, "Nothing bound yet."))]));
}

async function loadHistory() {
  const history = await get(`${base}/deployments/?page_size=50`);
  $("#deployments tbody").replaceChildren(...history.results.map((row) => h("tr", {},
    h("td", { title: row.deployed_at }, ago(row.deployed_at)), h("td", {}, row.resource_type),
    h("td", {}, `${row.mapping} v${row.version}`), h("td", {}, row.deployed_by || ""),
    h("td", {}, String(row.indexed)), h("td", {}, row.rollback_of ? "rollback" : ""))));
}

async function loadMetrics() {
  const metrics = await get(`${base}/metrics?minutes=60`);
  $("#metrics-summary").textContent = metrics.requests
    ? `${metrics.requests} requests · ${metrics.errors} errors · p50 ${metrics.p50_ms} ms · p95 ${metrics.p95_ms} ms`
    : "No requests in the last hour.";
  $("#metrics-types tbody").replaceChildren(...Object.entries(metrics.by_type).map(([type, row]) => h("tr", {},
    h("td", {}, type), h("td", {}, String(row.requests)), h("td", {}, String(row.errors)),
    h("td", {}, `${row.p50_ms} ms`), h("td", {}, `${row.p95_ms} ms`))));
  drawChart(metrics.per_minute);
}

function drawChart(minutes) {
  const svg = $("#metrics-chart");
  svg.replaceChildren();
  const most = Math.max(1, ...minutes.map((minute) => minute.requests));
  const width = 600 / Math.max(60, minutes.length);
  minutes.slice(-60).forEach((minute, index) => {
    for (const [kind, value] of [["requests", minute.requests], ["errors", minute.errors]]) {
      const bar = document.createElementNS(SVG, "rect");
      const height = (value / most) * 86;
      bar.setAttribute("x", String(index * width));
      bar.setAttribute("y", String(88 - height));
      bar.setAttribute("width", String(Math.max(1, width - 1)));
      bar.setAttribute("height", String(height));
      if (kind === "errors") bar.setAttribute("class", "errors");
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${minute.minute}: ${minute.requests} requests, ${minute.errors} errors`;
      bar.append(title);
      svg.append(bar);
    }
  });
}

async function deploy(resourceType, version) {
  say(`Deploying ${resourceType} v${version}: running its samples, then indexing…`);
  try {
    const row = await post(`${base}/deployments/`, { resource_type: resourceType, version: Number(version) });
    say(`${resourceType} v${row.version} is ${row.ready ? "live" : "indexing"}: ${row.indexed} resources indexed.`, "ok");
  } catch (error) {
    const failing = error.details?.failing ? ` Failing samples: ${error.details.failing.join(", ")}.` : "";
    say(`Not deployed: ${error.message}${failing}`, "error");
  }
  await Promise.all([loadFacade(), loadHistory()]);
}

async function rollback(resourceType) {
  try {
    const row = await post(`${base}/deployments/rollback`, { resource_type: resourceType });
    say(`${resourceType} rolled back to v${row.version}.`, "ok");
  } catch (error) {
    say(`Not rolled back: ${error.message}`, "error");
  }
  await Promise.all([loadFacade(), loadHistory()]);
}

async function fillForms() {
  if (!config.canWrite) return;
  const [mappings, sources] = await Promise.all([get("/api/mappings/?page_size=500"), get("/api/sources/?page_size=500")]);
  $("#bind-mapping").replaceChildren(...mappings.results.map((mapping) => h("option", { value: mapping.slug }, mapping.slug)));
  $("#bind-source").replaceChildren(...sources.results.map((source) => h("option", { value: source.name }, `${source.name} (${source.records})`)));
  $("#source-format").replaceChildren(...config.sourceFormats.map((format) => h("option", { value: format }, format)));
}

$("#source-kind")?.addEventListener("change", (event) => {
  $("#source-files").hidden = event.target.value !== "stored";
  $("#source-config").hidden = event.target.value === "stored";
});
$("#toggle-status")?.addEventListener("click", async () => {
  await api("PATCH", `${base}/`, { body: { status: facade.status === "active" ? "paused" : "active" } });
  await loadFacade();
});
$("#bind-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await post(`${base}/bindings/`, Object.fromEntries(new FormData(event.target)));
    say("Bound. Deploy a version to serve it.", "ok");
    await loadFacade();
  } catch (error) {
    say(`Not bound: ${error.message}`, "error");
  }
});
$("#source-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const kind = form.elements.kind.value;
  let config = {};
  if (kind !== "stored") {
    try {
      config = JSON.parse(form.elements.config.value || "{}");
    } catch {
      return say("Settings must be JSON.", "error");
    }
  }
  try {
    await post("/api/sources/", { name: form.elements.name.value, source_format: form.elements.source_format.value, kind, config });
    const records = await Promise.all([...form.elements.files.files].map(async (file) => ({ key: file.name, payload: await file.text() })));
    if (records.length) {
      const counts = await post(`/api/sources/${form.elements.name.value}/records`, { records });
      say(`Source created with ${counts.created} records.`, "ok");
    } else {
      say("Source created (no records yet).", "ok");
    }
    await fillForms();
  } catch (error) {
    say(`Not created: ${error.message}`, "error");
    toast(error.message, "error");
  }
});

await Promise.all([loadFacade(), loadHistory(), loadMetrics(), fillForms()]);
document.body.dataset.ready = "true";
