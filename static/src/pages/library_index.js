// Snippets or lookup tables: search and page through /api/snippets/ or /api/lookup-tables/ (the search and the page
// are kept in the address: reload, back and links show the same rows), create a new one.
import { api, get, pageConfig } from "../lib/api.js";
import { $, ago, debounce, h } from "../lib/dom.js";
import { explainRule, filterParams, keepInAddress, readFilters } from "../lib/forms.js";
import { listPager, pageNumber, pastLastPage } from "../lib/pager.js";
import { errorLines } from "../lib/library_errors.js";

const config = pageConfig();
const isSnippets = config.kind === "snippets";
const apiBase = `/api/${config.kind}/`;
const pageBase = `/library/${config.kind}/`;
const PAGE_SIZE = config.pageSize || 25;
const NEW_SNIPPET = '{#- What these macros build, from what. -#}\n{% macro example(value) -%}\n{"text": {{ value | tojson }}}\n{%- endmacro %}\n';
const NEW_TABLE = { target_system: null, default: null, entries: [] };
const filters = $("#filters");
const columns = isSnippets ? 4 : 5;

function row(item) {
  return h("tr", { dataset: { name: item.name } },
    h("td", {}, h("a", { href: pageBase + item.name, class: "title", title: item.name }, h("code", {}, item.name))),
    h("td", {}, h("span", { class: "title", title: item.description }, item.description)),
    h("td", {}, `r${item.revision}`),
    isSnippets ? null : h("td", {}, String(item.entry_count)),
    h("td", { title: item.updated_at }, `${ago(item.updated_at)}${item.updated_by ? ` · ${item.updated_by}` : ""}`));
}

let shown = 0; // answers arrive in any order: show only the latest request's
// The first read is the one the server named for this address (config.listUrl, preloaded with the page).
async function load(url = null) {
  const params = filterParams(filters);
  const number = pageNumber(params);
  if (number === 1) params.delete("page");
  keepInAddress(params);
  const request = ++shown;
  const query = new URLSearchParams({ page_size: String(PAGE_SIZE), search: params.get("search") || "" });
  if (number > 1) query.set("page", String(number));
  try {
    const page = await get(url || `${apiBase}?${query}`);
    if (request !== shown) return;
    $("#items tbody").replaceChildren(...(page.results.length ? page.results.map(row)
      : [h("tr", {}, h("td", { colspan: columns, class: "hint" }, "Nothing matches."))]));
    pager.show(page, number, PAGE_SIZE);
  } catch (error) {
    if (request !== shown) return;
    if (pastLastPage(error, number)) return goTo(1);
    $("#items tbody").replaceChildren(h("tr", {}, h("td", { colspan: columns, class: "error" }, error.message)));
  }
}

function goTo(number) {
  filters.elements.page.value = number > 1 ? String(number) : "";
  return load();
}

readFilters(filters);
filters.elements.search.addEventListener("input", debounce(() => goTo(1), 200)); // a new search starts on its page 1
filters.addEventListener("submit", (event) => event.preventDefault());
const pager = listPager("pages", (step) => goTo(pageNumber(filterParams(filters)) + step));
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return; // back to this page from the browser's page cache: follow the address again
  readFilters(filters);
  load();
});

if (config.canWrite) {
  const form = $("#new-form");
  explainRule(form.elements.name);
  $("#new-open").addEventListener("click", () => { form.hidden = false; form.elements.name.focus(); });
  $("#new-cancel").addEventListener("click", () => (form.hidden = true));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { name, description } = Object.fromEntries(new FormData(form));
    const body = isSnippets ? { name, description, text: NEW_SNIPPET } : { name, description, data: NEW_TABLE };
    try {
      await api("POST", apiBase, { body });
      window.location.href = pageBase + name;
    } catch (error) {
      $("#new-error").textContent = [error.message, ...errorLines(error)].join(" — ");
      $("#new-error").hidden = false;
    }
  });
}

await load(config.listUrl);
document.body.dataset.ready = "true";
