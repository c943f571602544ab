// The mapping list: filter, search and page through /api/mappings/ (kept in the address: reload, back and links show
// the same rows), create a mapping from a starter template.
import { api, get, pageConfig } from "../lib/api.js";
import { $, ago, debounce, h } from "../lib/dom.js";
import { runVerdict } from "../lib/test_runs.js";
import { explainRule, filterParams, keepInAddress, readFilters, slugFollowsTitle } from "../lib/forms.js";
import { listPager, pageNumber, pastLastPage } from "../lib/pager.js";

const config = pageConfig();
const PAGE_SIZE = config.pageSize;
const filters = $("#filters");
const tbody = $("#mapping-table tbody");

for (const select of [filters.elements.source_format, $("#new-source-format")].filter(Boolean)) {
  for (const format of config.sourceFormats) select.append(h("option", { value: format }, format));
}
readFilters(filters);

function testCell(run) {
  if (!run) return h("span", { class: "badge muted" }, "never run");
  const verdict = runVerdict(run); // the editor's and the versions page's reading: "0 passed" is not green
  return h("span", { class: `badge ${verdict.kind}`, title: new Date(run.created_at).toLocaleString() }, verdict.text);
}

function row(mapping) {
  const editor = `/mappings/${mapping.slug}/`;
  return h("tr", { dataset: { slug: mapping.slug } },
    h("td", {}, h("a", { href: editor, class: "title", title: mapping.title }, h("strong", {}, mapping.title)),
      h("div", { class: "hint" }, mapping.slug)),
    h("td", {}, h("code", {}, mapping.source_format)),
    h("td", {}, mapping.draft_changed
      ? h("span", { class: "badge warn", title: "The draft differs from the latest version" }, "changed")
      : h("span", { class: "badge muted" }, mapping.latest_version ? "= latest" : "new")),
    h("td", {}, mapping.latest_version ? h("a", { href: `/mappings/${mapping.slug}/history` }, `v${mapping.latest_version}`) : "—"),
    h("td", {}, mapping.deployed_version ? `v${mapping.deployed_version}` : "—"),
    h("td", {}, testCell(mapping.last_test_run)),
    h("td", { title: mapping.updated_at }, ago(mapping.updated_at)),
  );
}

let shown = 0; // answers arrive in any order: show only the latest request's
// The first read is the one the server named for this address (config.listUrl, preloaded with the page): the
// filters in the form's order, then page_size and the page, as mappings/ui/views.py writes it.
async function load(url = null) {
  const params = filterParams(filters);
  const number = pageNumber(params);
  params.delete("page");
  const query = new URLSearchParams(params);
  query.set("page_size", String(PAGE_SIZE));
  if (number > 1) {
    params.set("page", String(number));
    query.set("page", String(number));
  }
  keepInAddress(params);
  const request = ++shown;
  try {
    const page = await get(url || `/api/mappings/?${query}`);
    if (request !== shown) return;
    tbody.replaceChildren(...(page.results.length
      ? page.results.map(row)
      : [h("tr", {}, h("td", { colspan: 7, class: "hint" }, "No mapping matches."))]));
    pager.show(page, number, PAGE_SIZE);
  } catch (error) {
    if (request !== shown) return;
    if (pastLastPage(error, number)) return goTo(1);
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "error" }, error.message)));
  }
}

function goTo(number) {
  filters.elements.page.value = number > 1 ? String(number) : "";
  return load();
}

filters.addEventListener("input", debounce(() => goTo(1), 200)); // a new filter starts on its first page
const pager = listPager("pages", (step) => goTo(pageNumber(filterParams(filters)) + step));
// Back or forward to this page restored from the browser's page cache: the form may differ from the address now.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  readFilters(filters);
  load();
});
filters.addEventListener("submit", (event) => event.preventDefault());
load(config.listUrl).then(() => (document.body.dataset.ready = "true"));

const form = $("#new-mapping");
if (config.canWrite) {
  explainRule(form.elements.slug);
  slugFollowsTitle(form.elements.title, form.elements.slug);
  $("#new-mapping-open").addEventListener("click", () => {
    form.hidden = false;
    form.elements.title.focus();
  });
  $("#new-mapping-cancel").addEventListener("click", () => (form.hidden = true));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    const error = $("#new-mapping-error");
    try {
      await api("POST", "/api/mappings/", { body: { ...body, starter: true } });
      window.location.href = `/mappings/${body.slug}/`;
    } catch (failure) {
      const fields = Object.entries(failure.details || {}).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`);
      error.textContent = [failure.message, ...fields].join(" — ");
      error.hidden = false;
    }
  });
}
