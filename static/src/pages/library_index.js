// Snippets or lookup tables: list and search (/api/snippets/ or /api/lookup-tables/), create a new one.
import { api, get, pageConfig } from "../lib/api.js";
import { $, ago, debounce, h } from "../lib/dom.js";
import { errorLines } from "../lib/library_errors.js";

const config = pageConfig();
const isSnippets = config.kind === "snippets";
const apiBase = `/api/${config.kind}/`;
const pageBase = `/library/${config.kind}/`;
const NEW_SNIPPET = '{#- What these macros build, from what. -#}\n{% macro example(value) -%}\n{"text": {{ value | tojson }}}\n{%- endmacro %}\n';
const NEW_TABLE = { target_system: null, default: null, entries: [] };

async function load() {
  const search = new FormData($("#filters")).get("search") || "";
  const page = await get(`${apiBase}?page_size=500&search=${encodeURIComponent(search)}`);
  const rows = page.results.map((item) => h("tr", { dataset: { name: item.name } },
    h("td", {}, h("a", { href: pageBase + item.name }, h("code", {}, item.name))),
    h("td", {}, item.description),
    h("td", {}, `r${item.revision}`),
    isSnippets ? null : h("td", {}, String(item.entry_count)),
    h("td", { title: item.updated_at }, `${ago(item.updated_at)}${item.updated_by ? ` · ${item.updated_by}` : ""}`)));
  $("#items tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "hint" }, "Nothing matches."))]));
}

$("#filters").addEventListener("input", debounce(load, 200));
$("#filters").addEventListener("submit", (event) => event.preventDefault());
load();

if (config.canWrite) {
  const form = $("#new-form");
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
document.body.dataset.ready = "true";
