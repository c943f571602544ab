// The audit log (admins): /api/audit/ a page at a time, filtered by action, user, mapping and time (the filters and
// the page are kept in the address), with links that download the same rows as FHIR AuditEvent resources.
import { get, pageConfig } from "../lib/api.js";
import { $, debounce, h } from "../lib/dom.js";
import { filterParams, keepInAddress, readFilters } from "../lib/forms.js";
import { listPager, pageNumber, pastLastPage } from "../lib/pager.js";

const config = pageConfig();
const PAGE_SIZE = config.pageSize || 50;
const FILTERS = ["action", "actor", "mapping", "since"]; // in the order the server writes config.listUrl
const filters = $("#filters");

// What a row changed or says, in one line of JSON: before → after, then the details (never secrets: the rows hold none).
function summary(row) {
  const parts = [];
  if (row.before) parts.push(`before ${JSON.stringify(row.before)}`);
  if (row.after) parts.push(`after ${JSON.stringify(row.after)}`);
  if (row.details && Object.keys(row.details).length) parts.push(JSON.stringify(row.details));
  return parts.join("\n");
}

function row(event) {
  const when = new Date(event.created_at);
  return h("tr", { dataset: { id: String(event.id), action: event.action } },
    h("td", { title: event.created_at }, when.toLocaleString()),
    h("td", {}, event.actor || h("span", { class: "hint" }, "—")),
    h("td", {}, h("code", {}, event.action)),
    h("td", {}, event.object_id ? `${event.object_type} ${event.object_id}` : event.object_type),
    h("td", {}, event.mapping_slug ? h("a", { href: `/mappings/${event.mapping_slug}/` }, event.mapping_slug) : ""),
    h("td", { class: "details" }, h("code", {}, summary(event))));
}

// The filters as the API takes them, in the server's order, so the first read is the preloaded config.listUrl.
function query(params, extra) {
  const asked = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) asked.set(name, params.get(name));
  for (const [name, value] of Object.entries(extra)) asked.set(name, value);
  return asked;
}

function showDownloads(params) {
  const asked = query(params, {});
  $("#download-bundle").href = `/api/audit/fhir${asked.size ? `?${asked}` : ""}`;
  asked.set("_format", "ndjson");
  $("#download-ndjson").href = `/api/audit/fhir?${asked}`;
}

let shown = 0; // answers arrive in any order: show only the latest request's
async function load(url) {
  const params = filterParams(filters);
  const number = pageNumber(params);
  if (number === 1) params.delete("page");
  keepInAddress(params);
  showDownloads(params);
  const extra = { page_size: String(PAGE_SIZE), ...(number > 1 ? { page: String(number) } : {}) };
  const request = ++shown;
  const error = $("#filters-error");
  try {
    const page = await get(url || `/api/audit/?${query(params, extra)}`);
    if (request !== shown) return;
    error.hidden = true;
    $("#audit tbody").replaceChildren(...(page.results.length ? page.results.map(row)
      : [h("tr", {}, h("td", { colspan: 6, class: "hint" }, "Nothing matches."))]));
    pager.show(page, number, PAGE_SIZE);
  } catch (failure) {
    if (request !== shown) return;
    if (pastLastPage(failure, number)) return goTo(1);
    const fields = Object.entries(failure.details || {}).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`);
    error.textContent = fields.length ? fields.join("; ") : failure.message; // say which filter the API refused
    error.hidden = false;
    $("#audit tbody").replaceChildren();
    pager.hide();
  }
}

function goTo(number) {
  filters.elements.page.value = number > 1 ? String(number) : "";
  return load();
}

readFilters(filters);
for (const field of [filters.elements.actor, filters.elements.mapping]) field.addEventListener("input", debounce(() => goTo(1), 250));
for (const field of [filters.elements.action, filters.elements.since]) field.addEventListener("change", () => goTo(1));
filters.addEventListener("submit", (event) => { event.preventDefault(); goTo(1); });
const pager = listPager("pages", (step) => goTo(pageNumber(filterParams(filters)) + step));

await load(config.listUrl);
document.body.dataset.ready = "true";
