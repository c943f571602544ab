// The mapping list: filter and search through /api/mappings/, create a mapping from a starter template.
import { api, get, pageConfig } from "../lib/api.js";
import { $, ago, debounce, h } from "../lib/dom.js";

const config = pageConfig();
const filters = $("#filters");
const tbody = $("#mapping-table tbody");

for (const select of [filters.elements.source_format, $("#new-source-format")].filter(Boolean)) {
  for (const format of config.sourceFormats) select.append(h("option", { value: format }, format));
}

function testCell(run) {
  if (!run) return h("span", { class: "badge muted" }, "never run");
  const ok = run.failed === 0;
  return h("span", { class: `badge ${ok ? "ok" : "bad"}`, title: new Date(run.created_at).toLocaleString() },
    ok ? `${run.passed} passed` : `${run.failed} failed, ${run.passed} passed`);
}

function row(mapping) {
  const editor = `/mappings/${mapping.slug}/`;
  return h("tr", { dataset: { slug: mapping.slug } },
    h("td", {}, h("a", { href: editor }, h("strong", {}, mapping.title)), h("div", { class: "hint" }, mapping.slug)),
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

async function load() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(filters)) if (value) params.set(key, value);
  params.set("page_size", "200");
  try {
    const page = await get(`/api/mappings/?${params}`);
    tbody.replaceChildren(...(page.results.length
      ? page.results.map(row)
      : [h("tr", {}, h("td", { colspan: 7, class: "hint" }, "No mapping matches."))]));
  } catch (error) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "error" }, error.message)));
  }
}

filters.addEventListener("input", debounce(load, 200));
filters.addEventListener("submit", (event) => event.preventDefault());
load().then(() => (document.body.dataset.ready = "true"));

const form = $("#new-mapping");
if (config.canWrite) {
  $("#new-mapping-open").addEventListener("click", () => {
    form.hidden = false;
    form.elements.slug.focus();
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
