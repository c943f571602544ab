// Facades: list (/api/facades/) and create.
import { api, get, pageConfig } from "../lib/api.js";
import { $, h } from "../lib/dom.js";

const config = pageConfig();

async function load() {
  const page = await get("/api/facades/?page_size=200");
  $("#facades tbody").replaceChildren(...(page.results.length ? page.results.map((facade) => h("tr", { dataset: { slug: facade.slug } },
    h("td", {}, h("a", { href: `/facades/${facade.slug}/` }, h("strong", {}, facade.title)), h("div", { class: "hint" }, facade.slug)),
    h("td", {}, h("a", { href: `${facade.base_url}metadata` }, h("code", {}, facade.base_url))),
    h("td", {}, h("span", { class: `badge ${facade.status === "active" ? "ok" : "warn"}` }, facade.status)),
    h("td", {}, facade.bindings.map((binding) => h("div", {}, `${binding.resource_type} ← ${binding.mapping}`,
      binding.live ? ` v${binding.live.version}` : " (not deployed)"))),
  )) : [h("tr", {}, h("td", { colspan: 4, class: "hint" }, "No facade yet."))]));
}

if (config.canWrite) {
  const form = $("#new-form");
  $("#new-open").addEventListener("click", () => { form.hidden = false; form.elements.slug.focus(); });
  $("#new-cancel").addEventListener("click", () => (form.hidden = true));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    try {
      await api("POST", "/api/facades/", { body });
      window.location.href = `/facades/${body.slug}/`;
    } catch (error) {
      $("#new-error").textContent = error.message;
      $("#new-error").hidden = false;
    }
  });
}
await load();
document.body.dataset.ready = "true";
