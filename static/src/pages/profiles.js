// Profiles: search and page through /api/profiles/ (the R4 core's profiles and extensions, and uploads; the filters
// and the page are kept in the address), upload a definition or an IG package, and author a new extension.
import { api, del, get, pageConfig, post } from "../lib/api.js";
import { $, ago, debounce, h } from "../lib/dom.js";
import { explainRule, filterParams, keepInAddress, readFilters } from "../lib/forms.js";
import { listPager, pageNumber, pastLastPage } from "../lib/pager.js";

const config = pageConfig();
const PAGE_SIZE = config.pageSize || 25;
const filters = $("#filters");

// A definition's page: uploaded ones by id, the core's by their canonical URL (encoded: it holds slashes).
const profilePage = (row) => `/profiles/${row.id ?? encodeURIComponent(row.url)}`;

function row(item) {
  const label = item.title || item.name || item.url;
  return h("tr", { dataset: { url: item.url } },
    h("td", {}, h("a", { href: profilePage(item), class: "title", title: item.url }, label),
      h("div", { class: "hint" }, h("code", {}, item.url))),
    h("td", {}, item.is_extension ? h("span", { class: "badge warn" }, "Extension") : item.type || item.resource_type),
    h("td", {}, item.base_definition ? h("code", { class: "hint" }, item.base_definition.split("/").pop()) : ""),
    h("td", {}, item.source === "core" ? h("span", { class: "badge muted" }, "R4 core")
      : h("span", { class: "badge ok" }, item.package || "uploaded")));
}

let shown = 0; // answers arrive in any order: show only the latest request's
async function load() {
  const params = filterParams(filters);
  const number = pageNumber(params);
  if (number === 1) params.delete("page");
  keepInAddress(params);
  const request = ++shown;
  const query = new URLSearchParams(params);
  query.set("page_size", String(PAGE_SIZE));
  try {
    const page = await get(`/api/profiles/?${query}`);
    if (request !== shown) return;
    $("#profiles tbody").replaceChildren(...(page.results.length ? page.results.map(row)
      : [h("tr", {}, h("td", { colspan: 4, class: "hint" }, "Nothing matches."))]));
    pager.show(page, number, PAGE_SIZE);
  } catch (error) {
    if (request !== shown) return;
    if (pastLastPage(error, number)) return goTo(1);
    $("#profiles tbody").replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "error" }, error.message)));
  }
}

function goTo(number) {
  filters.elements.page.value = number > 1 ? String(number) : "";
  return load();
}

function showError(box, error) {
  box.textContent = error.message; // the API's message names what is missing or in use
  box.hidden = false;
}

// A StructureDefinition of an extension from the form: simple (one value of a type) or complex (sub-extensions).
function extensionDefinition({ url, name, context, valueType, parts }) {
  const elements = [{ id: "Extension", path: "Extension", short: name }];
  if (parts.length) {
    elements.push({ id: "Extension.extension", path: "Extension.extension", min: 1 });
    for (const part of parts) {
      elements.push(
        { id: `Extension.extension:${part}`, path: "Extension.extension", sliceName: part, max: "1" },
        { id: `Extension.extension:${part}.extension`, path: "Extension.extension.extension", max: "0" },
        { id: `Extension.extension:${part}.url`, path: "Extension.extension.url", fixedUri: part },
        { id: `Extension.extension:${part}.value[x]`, path: "Extension.extension.value[x]", min: 1, type: [{ code: "string" }] });
    }
    elements.push({ id: "Extension.url", path: "Extension.url", fixedUri: url },
      { id: "Extension.value[x]", path: "Extension.value[x]", max: "0" });
  } else {
    elements.push({ id: "Extension.extension", path: "Extension.extension", max: "0" },
      { id: "Extension.url", path: "Extension.url", fixedUri: url },
      { id: "Extension.value[x]", path: "Extension.value[x]", min: 1, type: [{ code: valueType }] });
  }
  return {
    resourceType: "StructureDefinition", url, name, status: "draft", fhirVersion: "4.0.1", kind: "complex-type",
    abstract: false, context: [{ type: "element", expression: context }], type: "Extension",
    baseDefinition: "http://hl7.org/fhir/StructureDefinition/Extension", derivation: "constraint",
    differential: { element: elements },
  };
}

function uploadForm() {
  const form = $("#upload-form");
  $("#upload-open").addEventListener("click", () => { form.hidden = false; $("#extension-form").hidden = true; });
  $("#upload-cancel").addEventListener("click", () => (form.hidden = true));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("#upload-file").files[0];
    const box = $("#upload-error");
    box.hidden = true;
    if (!file) return showError(box, new Error("Choose a file to upload."));
    const body = new FormData();
    body.append("file", file);
    $("#upload-submit").disabled = true;
    try {
      const { data } = await api("POST", "/api/profiles/", { body });
      const first = data.definitions[0];
      window.location.assign(data.package || !first ? `/profiles/?source=uploaded` : profilePage(first));
    } catch (error) {
      showError(box, error);
    } finally {
      $("#upload-submit").disabled = false;
    }
  });
}

function extensionForm() {
  const form = $("#extension-form");
  explainRule(form.elements.name); // the rule in words, not "Please match the requested format"
  $("#extension-open").addEventListener("click", () => { form.hidden = false; $("#upload-form").hidden = true; });
  $("#extension-cancel").addEventListener("click", () => (form.hidden = true));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("#extension-error");
    box.hidden = true;
    if (!form.reportValidity()) return;
    const parts = form.elements.parts.value.split(",").map((part) => part.trim()).filter(Boolean);
    const definition = extensionDefinition({
      url: form.elements.url.value.trim(), name: form.elements.name.value.trim(),
      context: form.elements.context.value.trim(), valueType: form.elements.value_type.value, parts,
    });
    try {
      const data = await post("/api/profiles/", definition);
      window.location.assign(profilePage(data.definitions[0]));
    } catch (error) {
      showError(box, error);
    }
  });
}

async function loadPackages() {
  const page = await get("/api/profiles/packages/?page_size=500");
  $("#packages-section").hidden = !page.results.length;
  $("#packages tbody").replaceChildren(...page.results.map((item) => h("tr", { dataset: { package: `${item.name}#${item.version}` } },
    h("td", {}, h("code", {}, `${item.name}#${item.version}`), item.description ? h("div", { class: "hint" }, item.description) : ""),
    h("td", {}, String(item.definitions)),
    h("td", {}, Object.entries(item.dependencies).map(([name, version]) => `${name}#${version}`).join(", ")),
    h("td", { title: item.uploaded_at }, `${ago(item.uploaded_at)}${item.uploaded_by ? ` · ${item.uploaded_by}` : ""}`),
    h("td", {}, config.canWrite ? h("button", { type: "button", onclick: () => removePackage(item) }, "Delete") : ""))));
}

async function removePackage(item) {
  if (!window.confirm(`Delete the package ${item.name}#${item.version} and its ${item.definitions} definitions?`)) return;
  $("#packages-error").hidden = true;
  try {
    await del(`/api/profiles/packages/${item.id}`);
    await Promise.all([loadPackages(), load()]);
  } catch (error) {
    showError($("#packages-error"), error);
  }
}

readFilters(filters);
for (const field of [filters.elements.search, filters.elements.type]) field.addEventListener("input", debounce(() => goTo(1), 200));
filters.elements.source.addEventListener("change", () => goTo(1));
filters.addEventListener("submit", (event) => event.preventDefault());
const pager = listPager("pages", (step) => goTo(pageNumber(filterParams(filters)) + step));
if (config.canWrite) {
  uploadForm();
  extensionForm();
}
await Promise.all([load(), loadPackages()]);
document.body.dataset.ready = "true";
