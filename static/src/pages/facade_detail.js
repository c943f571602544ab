// One facade: its bindings (type ← mapping, source) with deploy, roll back and remove, the data sources (records added
// from a file or pasted, delete), the deployment history and request metrics (volume, p50/p95, 4xx and 5xx errors, a
// per-minute chart). All through /api/facades/ and /api/sources/; every write asks first and shows the API's refusal.
import { api, get, getAll, pageConfig, post } from "../lib/api.js";
import { $, ago, h } from "../lib/dom.js";
import { confirmAction } from "../lib/confirm.js";
import { searchablePicker } from "../lib/picker.js";

const config = pageConfig();
const base = `/api/facades/${config.slug}`;
const SVG = "http://www.w3.org/2000/svg";
const plural = (count, noun, nouns = `${noun}s`) => `${count} ${count === 1 ? noun : nouns}`;
const clip = (text, length) => (text.length > length ? `${text.slice(0, length - 1)}…` : text);

let facade = null;
let sources = [];
let resourceTypes = [];
const METRICS_REFRESH_MS = 15000;
const versionsOf = new Map(); // mapping slug → its versions, newest first (each with its newest test run)

function say(text, kind = "") {
  const box = $("#action-result");
  box.textContent = text;
  box.className = kind;
}

// --- versions offered for a deploy ------------------------------------------------------------------------------------

// The newest recorded run of a version (publish, deploy or by hand), so a version fixed after publishing reads as such.
const lastRun = (version) => version.last_test_run || version.test_run;
const passed = (version) => lastRun(version) && lastRun(version).failed === 0 && lastRun(version).passed > 0;

function verdict(version) {
  const run = lastRun(version);
  if (!run) return "not tested";
  if (run.failed) return `${run.failed} failing`;
  return run.passed ? "tests pass" : "no samples";
}

// The newest version whose samples passed, else the newest with nothing failing, else the newest.
function defaultVersion(versions) {
  return versions.find(passed) || versions.find((version) => !lastRun(version)?.failed) || versions[0];
}

// Right after a rollback, rolling back again deploys the version it left: say that it undoes the rollback.
function rollbackLabel(binding) {
  if (!binding.rollback_to) return "Roll back";
  return binding.live?.rollback_of ? `Undo the rollback (v${binding.rollback_to})` : `Roll back to v${binding.rollback_to}`;
}

function versionSelect(binding) {
  const versions = versionsOf.get(binding.mapping) || [];
  const preferred = defaultVersion(versions);
  const select = h("select", { class: "version", "aria-label": `Version of ${binding.mapping} to deploy for ${binding.resource_type}` },
    versions.map((version) => h("option", {
      value: String(version.number),
      selected: version === preferred,
      title: version.message,
      dataset: { failing: String(lastRun(version)?.failed || 0) },
    }, `v${version.number} · ${verdict(version)}${binding.live?.version === version.number ? " · live" : ""}${version.message ? ` · ${clip(version.message, 24)}` : ""}`)));
  if (!versions.length) select.append(h("option", { value: "" }, "nothing published"));
  return select;
}

// --- bindings -----------------------------------------------------------------------------------------------------------

function indexedCell(live) {
  if (!live) return "";
  const failed = live.index_errors.length;
  return `${plural(live.indexed, "resource")}${failed ? ` · ${plural(failed, "record")} failed` : ""}`;
}

function bindingRow(binding) {
  const { live, pending } = binding; // live serves; pending is a newer deployment still being indexed
  const actions = [];
  if (config.canWrite) {
    const select = versionSelect(binding);
    actions.push(select, " ",
      h("button", { type: "button", class: "deploy", disabled: !select.value, onclick: () => deploy(binding, select) }, "Deploy"), " ",
      h("button", {
        type: "button", class: "rollback", disabled: !binding.rollback_to,
        title: binding.rollback_to ? `Deploy v${binding.rollback_to} again` : "Nothing earlier was deployed",
        onclick: () => rollback(binding),
      }, rollbackLabel(binding)), " ",
      h("button", { type: "button", class: "remove danger", onclick: () => removeBinding(binding) }, "Remove"));
  }
  return h("tr", { dataset: { type: binding.resource_type } },
    h("td", {}, h("a", { href: `${facade.base_url}${binding.resource_type}?_count=10` }, binding.resource_type)),
    h("td", { class: "mapping" }, h("a", { href: `/mappings/${binding.mapping}/`, title: binding.mapping }, binding.mapping_title),
      h("div", { class: "hint" }, binding.mapping)),
    h("td", {}, binding.source),
    h("td", { class: "live" }, `${live ? `v${live.version}` : "—"}${pending ? ` (v${pending.version} indexing…)` : ""}`),
    h("td", {}, indexedCell(live)),
    config.canWrite ? h("td", { class: "actions" }, actions) : null);
}

function renderFacade() {
  $("#facade-title").textContent = facade.title;
  $("#facade-title").title = facade.title;
  $("#base-url").textContent = facade.base_url;
  $("#status").textContent = facade.status;
  $("#status").className = `badge ${facade.status === "active" ? "ok" : "warn"}`;
  const toggle = $("#toggle-status");
  if (toggle) toggle.textContent = facade.status === "active" ? "Pause" : "Resume";
  const rows = facade.bindings.map(bindingRow);
  const columns = config.canWrite ? 6 : 5;
  $("#bindings tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: columns, class: "hint" }, "Nothing bound yet."))]));
}

async function loadVersions(bindings) {
  if (!config.canWrite) return;
  const slugs = [...new Set(bindings.map((binding) => binding.mapping))];
  const lists = await Promise.all(slugs.map((slug) => getAll(`/api/mappings/${slug}/versions/`)));
  slugs.forEach((slug, index) => versionsOf.set(slug, lists[index]));
}

async function loadFacade() {
  facade = await get(`${base}/`);
  await loadVersions(facade.bindings);
  renderFacade();
}

async function deploy(binding, select) {
  const type = binding.resource_type;
  const version = Number(select.value);
  say(`Deploying ${type} v${version}: running its samples, then indexing…`);
  try {
    const row = await post(`${base}/deployments/`, { resource_type: type, version });
    say(`${type} v${row.version} is ${row.ready ? "live" : "indexing"}: ${plural(row.indexed, "resource")} indexed.`, "ok");
  } catch (error) {
    const failing = error.details?.failing ? ` Failing samples: ${error.details.failing.join(", ")}.` : "";
    say(`Not deployed: ${error.message}${failing}`, "error");
  }
  await Promise.all([loadFacade(), loadHistory()]);
}

async function rollback(binding) {
  const type = binding.resource_type;
  const to = binding.rollback_to;
  const now = binding.live ? `${type} serves v${binding.live.version} now. ` : "";
  const yes = await confirmAction({
    title: `Roll back ${type} to v${to}?`,
    text: `${now}v${to} of ${binding.mapping} is deployed again and serves as soon as it is indexed.`,
    ok: `Roll back to v${to}`,
  });
  if (!yes) return;
  try {
    const row = await post(`${base}/deployments/rollback`, { resource_type: type });
    say(`${type} rolled back to v${row.version}.`, "ok");
  } catch (error) {
    say(`Not rolled back: ${error.message}`, "error");
  }
  await Promise.all([loadFacade(), loadHistory()]);
}

async function removeBinding(binding) {
  const type = binding.resource_type;
  const yes = await confirmAction({
    title: `Stop serving ${type}?`,
    text: `${facade.base_url}${type} answers 404 from now on: the binding, its deployments and its index are removed. ` +
      `The mapping ${binding.mapping} and the source ${binding.source} stay.`,
    ok: `Remove ${type}`,
  });
  if (!yes) return;
  try {
    await api("DELETE", `${base}/bindings/${type}`);
    say(`${type} is no longer served.`, "ok");
  } catch (error) {
    say(`Not removed: ${error.message}`, "error");
  }
  await Promise.all([loadFacade(), loadHistory(), loadSources()]);
}

// --- data sources ---------------------------------------------------------------------------------------------------

function sourceLabel(source) {
  const described = source.description ? `${clip(source.description, 48)} (${source.name})` : source.name;
  return `${described} · ${source.source_format} · ${source.kind === "stored" ? plural(source.records, "record") : source.kind}`;
}

function sourceRow(source) {
  return h("tr", { dataset: { source: source.name } },
    h("td", { class: "source-name" }, h("strong", {}, source.name), source.description ? h("div", { class: "hint", title: source.description }, source.description) : null),
    h("td", {}, h("code", {}, source.source_format), source.kind === "stored" ? null : ` ${source.kind}`),
    h("td", { class: "records" }, source.kind === "stored" ? plural(source.records, "record") : "asked live"),
    h("td", {}, source.used_by.length ? source.used_by.join(", ") : h("span", { class: "hint" }, "nothing")),
    config.canWrite ? h("td", { class: "actions" },
      source.kind === "stored" ? h("button", { type: "button", class: "add-records", onclick: () => addRecords(source) }, "Add records") : null, " ",
      h("button", { type: "button", class: "delete-source danger", onclick: () => deleteSource(source) }, "Delete")) : null);
}

async function loadSources() {
  sources = (await get("/api/sources/?page_size=500")).results;
  $("#sources tbody").replaceChildren(...(sources.length ? sources.map(sourceRow)
    : [h("tr", {}, h("td", { colspan: config.canWrite ? 5 : 4, class: "hint" }, "No data source yet."))]));
  await sourcePicker?.reload();
}

async function deleteSource(source) {
  const yes = await confirmAction({
    title: `Delete the source ${source.name}?`,
    text: `Its ${plural(source.records, "stored record")} ${source.records === 1 ? "is" : "are"} deleted with it. ` +
      "A source a binding reads is refused.",
    ok: `Delete ${source.name}`,
  });
  if (!yes) return;
  try {
    await api("DELETE", `/api/sources/${source.name}/`);
    say(`The source ${source.name} is deleted.`, "ok");
  } catch (error) {
    say(`Not deleted: ${error.message}`, "error"); // `in_use` names the bindings that read it
  }
  await loadSources();
}

async function filesAsRecords(input) {
  return Promise.all([...input.files].map(async (file) => ({ key: file.name, payload: await file.text() })));
}

function uploadedText(counts, name) {
  const parts = [`${plural(counts.created, "record")} added to ${name}`];
  if (counts.replaced) parts.push(`${plural(counts.replaced, "record")} replaced`);
  if (counts.reindexed?.length) parts.push(`re-indexing ${counts.reindexed.join(", ")}`);
  return `${parts.join("; ")}.`;
}

function addRecords(source) {
  const dialog = $("#records-dialog");
  const form = $("#records-form");
  form.reset();
  $("#records-title").textContent = `Add records to ${source.name}`;
  $("#records-error").hidden = true;
  form.onsubmit = async (event) => {
    if (event.submitter?.value !== "add") return; // Cancel closes the dialog
    event.preventDefault();
    const records = await filesAsRecords(form.elements.files);
    const key = form.elements.key.value.trim();
    const payload = form.elements.payload.value;
    if (key || payload.trim()) records.push({ key, payload });
    const problem = !records.length ? "Choose files or paste a record." : records.some((record) => !record.key) ? "A pasted record needs a key." : "";
    if (problem) {
      $("#records-error").textContent = problem;
      $("#records-error").hidden = false;
      return;
    }
    try {
      const counts = await post(`/api/sources/${source.name}/records`, { records });
      dialog.close();
      say(uploadedText(counts, source.name), "ok");
      await Promise.all([loadSources(), loadFacade()]);
    } catch (error) {
      $("#records-error").textContent = `Not stored: ${error.message}`;
      $("#records-error").hidden = false;
    }
  };
  dialog.showModal();
}

// --- history and metrics ---------------------------------------------------------------------------------------------

async function loadHistory() {
  const history = await get(`${base}/deployments/?page_size=50`);
  $("#deployments tbody").replaceChildren(...history.results.map((row) => h("tr", {},
    h("td", { title: row.deployed_at }, ago(row.deployed_at)), h("td", {}, row.resource_type),
    h("td", {}, `${row.mapping} v${row.version}`), h("td", {}, row.deployed_by || ""),
    h("td", {}, row.ready || row.indexed ? plural(row.indexed, "resource") : ""), h("td", {}, row.rollback_of ? "rollback" : ""))));
}

async function loadMetrics() {
  const metrics = await get(`${base}/metrics?minutes=60`);
  $("#metrics-summary").textContent = metrics.requests
    ? `${plural(metrics.requests, "request")} · ${plural(metrics.errors, "error")} (${metrics.client_errors} 4xx, ` +
      `${metrics.server_errors} 5xx) · p50 ${metrics.p50_ms} ms · p95 ${metrics.p95_ms} ms`
    : "No requests in the last hour.";
  $("#metrics-types").hidden = !metrics.requests;
  $("#metrics-types tbody").replaceChildren(...Object.entries(metrics.by_type).map(([type, row]) => h("tr", {},
    h("td", {}, type), h("td", {}, String(row.requests)), h("td", {}, String(row.client_errors)),
    h("td", {}, String(row.server_errors)), h("td", {}, `${row.p50_ms} ms`), h("td", {}, `${row.p95_ms} ms`))));
  drawChart(metrics.per_minute);
}

function svg(tag, attrs = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

// A round axis maximum: 1, 2, 5, 10, 20, 50… at or above the busiest minute.
function axisMax(most) {
  let step = 1;
  while (step * 5 < most) step *= 10;
  return [1, 2, 5, 10].map((factor) => factor * step).find((value) => value >= most) || most;
}

const CHART = { width: 480, height: 180, left: 40, right: 8, top: 10, bottom: 26, minutes: 60 };

// Stacked bars per minute over the whole hour (quiet minutes are empty, so the time axis is true): successful
// requests, then 4xx, then 5xx on top; a y axis in requests per minute and an x axis in local time.
function drawChart(perMinute) {
  const chart = $("#metrics-chart");
  chart.replaceChildren(chart.querySelector("title") || svg("title"));
  const { width, height, left, right, top, bottom, minutes } = CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const end = Math.floor(Date.now() / 60000) * 60000;
  const start = end - (minutes - 1) * 60000;
  const byMinute = new Map(perMinute.map((minute) => [new Date(minute.minute).getTime(), minute]));
  const top_ = axisMax(Math.max(1, ...perMinute.map((minute) => minute.requests)));
  const y = (value) => top + plotHeight - (value / top_) * plotHeight;
  const slot = plotWidth / minutes;

  const axes = svg("g", { class: "axis" });
  for (const value of [0, top_ / 2, top_]) {
    axes.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: value ? "grid" : "baseline" }),
      svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, Number.isInteger(value) ? value : value.toFixed(1)));
  }
  axes.append(svg("text", { x: 12, y: top + plotHeight / 2, transform: `rotate(-90 12 ${top + plotHeight / 2})`, "text-anchor": "middle", class: "label" }, "requests / min"));
  for (let index = 0; index < minutes; index += 15) {
    const at = new Date(start + index * 60000);
    const x = left + index * slot;
    axes.append(svg("line", { x1: x, x2: x, y1: top + plotHeight, y2: top + plotHeight + 4, class: "tick" }),
      svg("text", { x, y: height - 10, "text-anchor": "middle" }, at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  axes.append(svg("text", { x: width - right, y: height - 10, "text-anchor": "end" }, "now"));
  chart.append(axes);

  const bars = svg("g", { class: "bars" });
  for (let index = 0; index < minutes; index += 1) {
    const minute = byMinute.get(start + index * 60000);
    if (!minute) continue;
    const ok = minute.requests - minute.client_errors - minute.server_errors;
    let base_ = 0;
    for (const [kind, value] of [["ok", ok], ["client-errors", minute.client_errors], ["server-errors", minute.server_errors]]) {
      if (!value) continue;
      const bar = svg("rect", {
        class: kind, x: left + index * slot + 0.5, width: Math.max(1, slot - 1),
        y: y(base_ + value), height: y(base_) - y(base_ + value),
      });
      bar.append(svg("title", {}, `${new Date(start + index * 60000).toLocaleTimeString()}: ${plural(minute.requests, "request")}, ` +
        `${minute.client_errors} 4xx, ${minute.server_errors} 5xx`));
      bars.append(bar);
      base_ += value;
    }
  }
  chart.append(bars);
}

// --- forms ------------------------------------------------------------------------------------------------------------

// The binding form's pickers: any mapping or source of the studio, found by typing when there are many.
const sourcePicker = config.canWrite ? searchablePicker($("#bind-source"), {
  url: "/api/sources/",
  option: (source) => [source.name, sourceLabel(source), source.description],
  noun: "source",
  none: "no data source yet",
}) : null;
const mappingPicker = config.canWrite ? searchablePicker($("#bind-mapping"), {
  url: "/api/mappings/",
  option: (mapping) => [mapping.slug,
    `${clip(mapping.title, 48)} (${mapping.slug})${mapping.latest_version ? "" : " · not published"}`, mapping.title],
  noun: "mapping",
  none: "no mapping yet",
}) : null;

async function fillForms() {
  if (!config.canWrite) return;
  const [types] = await Promise.all([get("/api/resource-types/"), mappingPicker.reload()]);
  resourceTypes = types.resource_types;
  $("#r4-types").replaceChildren(...resourceTypes.map((type) => h("option", { value: type })));
  const format = $("#source-format");
  if (!format.options.length) format.replaceChildren(...config.sourceFormats.map((name) => h("option", { value: name }, name)));
}

// The browser's own "Please match the requested format" does not say the rule: these do.
function typeProblem(value) {
  if (!value) return "Pick a FHIR R4 resource type from the list.";
  if (resourceTypes.includes(value)) return "";
  const near = resourceTypes.find((type) => type.toLowerCase() === value.toLowerCase())
    || resourceTypes.find((type) => type.toLowerCase().startsWith(value.toLowerCase().slice(0, 4)));
  return `'${value}' is not a FHIR R4 resource type.${near ? ` Did you mean ${near}?` : ""} Pick one from the list.`;
}

function sourceNameProblem(input) {
  if (input.validity.valueMissing) return "Name the source.";
  if (input.validity.patternMismatch) return "Use lower-case letters, digits and hyphens, starting with a letter or digit (e.g. lab-messages).";
  return "";
}

// Empty a form after it was sent, keeping the fields named. Emptying fields one by one is not enough: only reset()
// clears the form's "a submit was tried" state, with which Chromium shows an emptied required field as wrongly
// filled (:user-invalid, red).
function resetKeeping(form, names) {
  const kept = names.map((name) => [form.elements[name], form.elements[name].value]);
  form.reset();
  for (const [field, value] of kept) field.value = value;
}

function check(input, problem) {
  input.setCustomValidity(problem);
  if (problem) input.reportValidity();
  return !problem;
}

// The field's own rule message goes as the analyst types again.
$("#bind-form")?.addEventListener("input", (event) => {
  if (event.target.name === "resource_type") event.target.setCustomValidity("");
});
$("#source-form input[name=name]")?.addEventListener("input", (event) => event.target.setCustomValidity(""));
$("#source-kind")?.addEventListener("change", (event) => {
  $("#source-files").hidden = event.target.value !== "stored";
  $("#source-config").hidden = event.target.value === "stored";
});
$("#toggle-status")?.addEventListener("click", async () => {
  await api("PATCH", `${base}/`, { body: { status: facade.status === "active" ? "paused" : "active" } });
  await loadFacade();
});
$("#delete-facade")?.addEventListener("click", async () => {
  const types = facade.bindings.map((binding) => binding.resource_type);
  const yes = await confirmAction({
    title: `Delete the facade ${facade.slug}?`,
    text: `${facade.base_url} answers 404 from now on. ${types.length ? `Its ${plural(types.length, "resource type")} (${types.join(", ")}), ` : "Its "}` +
      "deployments, indexes and request log are deleted with it. Data sources and mappings stay.",
    ok: `Delete ${facade.slug}`,
  });
  if (!yes) return;
  try {
    await api("DELETE", `${base}/`);
    window.location.href = "/facades/";
  } catch (error) {
    say(`Not deleted: ${error.message}`, "error");
  }
});
$("#bind-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  if (!check(form.elements.resource_type, typeProblem(form.elements.resource_type.value.trim()))) return;
  try {
    const body = Object.fromEntries(new FormData(form));
    await post(`${base}/bindings/`, { ...body, resource_type: body.resource_type.trim() });
    say(`Bound ${body.resource_type.trim()}. Deploy a version to serve it.`, "ok");
    resetKeeping(form, ["mapping", "source"]); // an empty type field for the next binding
    await Promise.all([loadFacade(), loadSources()]);
  } catch (error) {
    const fields = Object.values(error.details || {}).flat().join(" ");
    say(`Not bound: ${fields || error.message}`, "error");
  }
});
$("#source-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  if (!check(form.elements.name, sourceNameProblem(form.elements.name))) return;
  const kind = form.elements.kind.value;
  const name = form.elements.name.value;
  let settings = {};
  if (kind !== "stored") {
    try {
      settings = JSON.parse(form.elements.config.value || "{}");
    } catch {
      return say("Settings must be JSON.", "error");
    }
  }
  try {
    await post("/api/sources/", { name, source_format: form.elements.source_format.value, kind, config: settings });
  } catch (error) {
    const fields = Object.entries(error.details || {}).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`);
    return say(`Not created: ${[error.message, ...fields].join(" — ")}`, "error"); // the form keeps what was chosen
  }
  const records = kind === "stored" ? await filesAsRecords(form.elements.files) : [];
  if (!records.length) {
    say(`Source ${name} created (no records yet).`, "ok");
  } else {
    try {
      const counts = await post(`/api/sources/${name}/records`, { records });
      say(`Source ${name} created with ${plural(counts.created, "record")}.`, "ok");
    } catch (error) {
      say(`Source ${name} created, but its records were not stored: ${error.message} Add them with "Add records".`, "error");
    }
  }
  resetKeeping(form, ["source_format", "kind", "config"]); // the next source is likely of the same format
  await loadSources();
});

await Promise.all([loadFacade(), loadHistory(), loadMetrics(), loadSources(), fillForms()]);
document.body.dataset.ready = "true";
// Requests clients make while the page is open show up without a reload (not while the tab is hidden).
setInterval(() => document.visibilityState === "visible" && loadMetrics(), METRICS_REFRESH_MS);
