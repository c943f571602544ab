// Facades: search and page through /api/facades/ (the search and the page are kept in the URL, so a reload or a shared
// link shows the same list), and create one.
import { api, get, pageConfig } from "../lib/api.js";
import { $, debounce, h } from "../lib/dom.js";
import { slugFollowsTitle } from "../lib/forms.js";
import { listPager, pageNumber, pagePlace, pastLastPage } from "../lib/pager.js";

const config = pageConfig();
const PAGE_SIZE = 20;
const plural = (count, noun, nouns = `${noun}s`) => `${count} ${count === 1 ? noun : nouns}`;
const filters = $("#facade-filters");
const url = new URL(window.location.href);
let page = pageNumber(url.searchParams);
filters.elements.search.value = url.searchParams.get("search") || "";

function keepInUrl() {
  const next = new URL(window.location.href);
  const search = filters.elements.search.value.trim();
  if (search) next.searchParams.set("search", search);
  else next.searchParams.delete("search");
  if (page > 1) next.searchParams.set("page", String(page));
  else next.searchParams.delete("page");
  window.history.replaceState(null, "", next);
}

function row(facade) {
  return h("tr", { dataset: { slug: facade.slug } },
    h("td", { class: "title" }, h("a", { href: `/facades/${facade.slug}/`, title: facade.title }, h("strong", {}, facade.title)),
      h("div", { class: "hint" }, facade.slug)),
    h("td", {}, h("a", { href: `${facade.base_url}metadata` }, h("code", {}, facade.base_url))),
    h("td", {}, h("span", { class: `badge ${facade.status === "active" ? "ok" : "warn"}` }, facade.status)),
    h("td", {}, facade.bindings.length ? facade.bindings.map((binding) => h("div", {}, `${binding.resource_type} ← ${binding.mapping}`,
      binding.live ? ` v${binding.live.version}` : " (not deployed)")) : h("span", { class: "hint" }, "nothing yet")));
}

async function load() {
  const search = filters.elements.search.value.trim();
  const params = new URLSearchParams({ page_size: String(PAGE_SIZE), page: String(page) });
  if (search) params.set("search", search);
  let result;
  try {
    result = await get(`/api/facades/?${params}`);
  } catch (error) {
    if (pastLastPage(error, page)) {
      page = 1;
      return load();
    }
    $("#facades tbody").replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "error" }, error.message)));
    return;
  }
  keepInUrl();
  const empty = search ? `No facade matches “${search}”.` : "No facade yet.";
  $("#facades tbody").replaceChildren(...(result.results.length ? result.results.map(row)
    : [h("tr", {}, h("td", { colspan: 4, class: "hint" }, empty))]));
  pager.show(result, page, PAGE_SIZE);
}

filters.addEventListener("submit", (event) => event.preventDefault());
filters.addEventListener("input", debounce(() => {
  page = 1;
  load();
}, 200));
const pager = listPager("pages", (step) => {
  page += step;
  load();
}, (result, number, size) => `${pagePlace(result, number, size)} · ${plural(result.count, "facade")}${
    filters.elements.search.value.trim() ? " found" : ""}`);

if (config.canWrite) {
  const form = $("#new-form");
  const slug = form.elements.slug;
  slugFollowsTitle(form.elements.title, slug);
  $("#new-open").addEventListener("click", () => { form.hidden = false; form.elements.title.focus(); });
  $("#new-cancel").addEventListener("click", () => (form.hidden = true));
  slug.addEventListener("input", () => slug.setCustomValidity(""));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // The browser's "Please match the requested format" does not say the rule.
    const problem = slug.validity.valueMissing ? "Give the facade a slug: it is its URL."
      : slug.validity.patternMismatch ? "Use lower-case letters, digits and hyphens, starting with a letter or digit (e.g. lab-results)." : "";
    slug.setCustomValidity(problem);
    if (!form.reportValidity()) return;
    const body = Object.fromEntries(new FormData(form));
    try {
      await api("POST", "/api/facades/", { body });
      window.location.href = `/facades/${body.slug}/`;
    } catch (error) {
      const fields = Object.entries(error.details || {}).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`);
      $("#new-error").textContent = [error.message, ...fields].join(" — ");
      $("#new-error").hidden = false;
    }
  });
}
await load();
document.body.dataset.ready = "true";
