// One definition: its facts, the extensions its snapshot slices in, and its element tree — the snapshot (every
// element) or the differential (what the profile changes) — from /api/profiles/<id or URL>. Authors delete uploads.
import { del, get, pageConfig } from "../lib/api.js";
import { $, h, toast } from "../lib/dom.js";

const config = pageConfig();
const apiUrl = `/api/profiles/${/^\d+$/.test(config.ref) ? config.ref : encodeURIComponent(config.url)}`;
let detail = null;

const cardinality = (element) => (element.min === null && element.max === null ? "" : `${element.min ?? ""}..${element.max ?? ""}`);

function types(element) {
  return element.types.map((kind) => {
    const profiles = [...kind.profiles, ...kind.target_profiles].map((url) => url.split("/").pop());
    return `${kind.code}${profiles.length ? `(${profiles.join(" | ")})` : ""}`;
  }).join(", ");
}

function constraints(element) {
  const parts = [];
  if (element.binding) parts.push(h("div", {}, `${element.binding.strength || ""} `, h("code", {}, element.binding.valueSet || "")));
  for (const [key, value] of Object.entries({ ...element.fixed, ...element.pattern })) {
    parts.push(h("div", { class: "fixed" }, `${key} `, h("code", {}, JSON.stringify(value))));
  }
  if (element.slicing) {
    const by = (element.slicing.discriminator || []).map((d) => `${d.type}:${d.path}`).join(", ");
    parts.push(h("div", { class: "hint" }, `sliced by ${by || "—"} (${element.slicing.rules || "open"})`));
  }
  return parts;
}

function elementRow(element) {
  const name = element.id.split(".").pop();
  return h("tr", { dataset: { id: element.id } },
    h("td", { style: `padding-left: ${0.4 + element.depth * 1.1}rem` },
      h("code", { class: element.slice_name ? "slice" : "" }, name),
      element.must_support ? h("span", { class: "badge warn", title: "Must support" }, "S") : ""),
    h("td", {}, cardinality(element)),
    h("td", {}, element.types.length ? h("code", {}, types(element)) : ""),
    h("td", {}, ...constraints(element)),
    h("td", { class: "hint" }, element.short));
}

function showView(view) {
  for (const name of ["snapshot", "differential"]) $(`#view-${name}`).setAttribute("aria-selected", String(name === view));
  const rows = detail[view];
  $("#elements tbody").replaceChildren(...(rows.length ? rows.map(elementRow)
    : [h("tr", {}, h("td", { colspan: 5, class: "hint" }, `No ${view}.`))]));
}

function showFacts() {
  const facts = [
    ["URL", h("code", {}, detail.url)],
    ["Type", `${detail.resource_type}${detail.type ? ` · ${detail.type}` : ""}${detail.kind ? ` (${detail.kind})` : ""}`],
    ["Based on", detail.base_definition ? h("code", {}, detail.base_definition) : "—"],
    ["From", detail.source === "core" ? "the R4 core definitions" : detail.package ? `package ${detail.package}` : `uploaded${detail.uploaded_by ? ` by ${detail.uploaded_by}` : ""}`],
  ];
  if (detail.snapshot_generated) facts.push(["Snapshot", "generated from the differential at upload"]);
  if (detail.extension_value_types) {
    facts.push(["Value", detail.extension_value_types.length ? detail.extension_value_types.join(", ") : "complex (sub-extensions)"]);
  }
  if (detail.used_by.length) facts.push(["Used by", detail.used_by.join(", ")]);
  if (detail.description) facts.push(["Description", detail.description]);
  $("#profile-facts").replaceChildren(...facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function showExtensions() {
  $("#extensions-section").hidden = !detail.extensions.length;
  $("#extensions tbody").replaceChildren(...detail.extensions.map((extension) => h("tr", { dataset: { url: extension.url } },
    h("td", {}, h("code", {}, extension.slice_name)),
    h("td", {}, h("a", { href: `/profiles/${encodeURIComponent(extension.url)}` }, extension.url)),
    h("td", {}, `${extension.min}..${extension.max}`))));
}

async function remove() {
  if (!window.confirm(`Delete ${detail.url}?`)) return;
  try {
    await del(apiUrl);
    window.location.assign("/profiles/?source=uploaded");
  } catch (error) {
    $("#profile-error").textContent = error.message;
    $("#profile-error").hidden = false;
  }
}

try {
  detail = await get(apiUrl);
  showFacts();
  showExtensions();
  if (detail.content) {
    $("#elements-section").hidden = true;
    $("#content").hidden = false;
    $("#content").textContent = JSON.stringify(detail.content, null, 2);
  } else {
    showView(detail.snapshot.length ? "snapshot" : "differential");
  }
  $("#view-snapshot").addEventListener("click", () => showView("snapshot"));
  $("#view-differential").addEventListener("click", () => showView("differential"));
  const button = $("#delete-profile");
  if (button && detail.source === "uploaded" && !detail.package) {
    button.hidden = false;
    button.addEventListener("click", remove);
  }
} catch (error) {
  toast(error.message, "bad");
  $("#profile-facts").replaceChildren(h("dd", { class: "error" }, error.message));
}
document.body.dataset.ready = "true";
