// The message log: search /api/messages/ by the filters (kept in the page's URL, so a search can be shared), page
// through the rows, open a failed message's OperationOutcome, and, for authors, run a failed message again with its
// mapping's latest published version (POST /api/messages/{id}/reprocess).
import { get, pageConfig, post } from "../lib/api.js";
import { $, ago, h, toast } from "../lib/dom.js";
import { listPager, pageNumber, pagePlace, pastLastPage } from "../lib/pager.js";

const config = pageConfig();
const PAGE_SIZE = config.pageSize;
const FILTERS = config.filters; // MessageQuery's fields, in the order the view puts them in listUrl
const BADGE = { converted: "ok", failed: "bad" };
const form = $("#filters");
const url = new URL(window.location.href);
let page = pageNumber(url.searchParams);
const pager = listPager("pages", (step) => {
  page += step;
  load();
}, (result, number, size) => `${pagePlace(result, number, size)} · ${result.count.toLocaleString()} messages`);

for (const name of FILTERS) {
  if (form.elements[name]) form.elements[name].value = url.searchParams.get(name) || "";
}

function filterValues() {
  const values = [];
  for (const name of FILTERS) {
    const value = (form.elements[name]?.value || "").trim();
    if (value) values.push([name, value]);
  }
  return values;
}

function listAddress() {
  const params = new URLSearchParams(filterValues());
  params.set("page_size", String(PAGE_SIZE));
  if (page > 1) params.set("page", String(page));
  return `/api/messages/?${params}`;
}

function keepInUrl() {
  const next = new URL(window.location.pathname, window.location.origin);
  for (const [name, value] of filterValues()) next.searchParams.set(name, value);
  if (page > 1) next.searchParams.set("page", String(page));
  window.history.replaceState(null, "", next);
}

function where(message) {
  if (message.batch) return h("span", {}, message.channel, " · ", h("a", { href: `/batches/${message.batch}/` }, `batch ${message.batch}`));
  if (message.facade) return h("span", {}, message.channel, " · ", h("a", { href: `/facades/${message.facade}/` }, message.facade));
  return message.channel;
}

function keys(message) {
  const shown = [["MSH-10", message.message_control_id], ["patient", message.patient_identifier], ["record", message.record_key]];
  return h("td", { class: "keys" }, shown.filter(([, value]) => value).map(([label, value]) =>
    h("div", {}, h("span", { class: "hint" }, `${label} `), h("code", {}, value))));
}

function error(message) {
  if (message.status !== "failed") return h("td", {}, message.reprocessed_from ? h("span", { class: "hint" }, `reprocessed #${message.reprocessed_from}`) : "");
  // The line of the version that ran; the editor opens the draft at that line (#L<n>).
  const line = message.error_line ? h("a", { href: `/mappings/${message.mapping}/#L${message.error_line}`, class: "line" }, `template.j2:${message.error_line}`) : "";
  return h("td", {},
    h("code", { class: "code" }, message.error_code || "error"), " ", line,
    h("div", { class: "hint message" }, message.error_message));
}

function actions(message) {
  const cell = h("td", {});
  if (message.status === "failed") {
    const show = h("button", { type: "button", class: "link show-outcome", "aria-expanded": "false" }, "Outcome");
    show.addEventListener("click", () => toggleOutcome(message, show));
    cell.append(show);
  }
  if (config.canWrite && message.reprocessable) {
    const button = h("button", { type: "button", class: "reprocess" }, "Reprocess");
    button.addEventListener("click", () => reprocess(message, button));
    cell.append(" ", button);
  }
  return cell;
}

// The OperationOutcome in a full-width row under the message's, read from the detail once.
async function toggleOutcome(message, button) {
  const row = button.closest("tr");
  const shown = row.nextElementSibling?.classList.contains("outcome-row") ? row.nextElementSibling : null;
  if (shown) {
    shown.hidden = !shown.hidden;
  } else {
    const { outcome } = await get(`/api/messages/${message.id}`);
    row.after(h("tr", { class: "outcome-row" }, h("td", { colspan: 7 }, h("pre", { class: "outcome" }, JSON.stringify(outcome, null, 2)))));
  }
  button.setAttribute("aria-expanded", String(!row.nextElementSibling.hidden));
}

async function reprocess(message, button) {
  button.disabled = true;
  try {
    const answer = await post(`/api/messages/${message.id}/reprocess`);
    const again = answer.message;
    toast(again.status === "converted" ? `Message ${message.id} converted as #${again.id}.`
      : `Message ${message.id} failed again (#${again.id}): ${again.error_code} ${again.error_message}`,
    again.status === "converted" ? "info" : "error");
    await load();
  } catch (failure) {
    toast(failure.message, "error");
    button.disabled = false;
  }
}

function row(message) {
  return h("tr", { dataset: { message: String(message.id), status: message.status, code: message.error_code } },
    h("td", { title: message.created_at }, h("a", { href: `/api/messages/${message.id}` }, `#${message.id}`), " ", ago(message.created_at)),
    h("td", {}, where(message)),
    h("td", {}, h("a", { href: `/mappings/${message.mapping}/` }, message.mapping), message.version ? ` v${message.version}` : ""),
    keys(message),
    h("td", {}, h("span", { class: `badge ${BADGE[message.status] || "muted"}` }, message.status)),
    error(message),
    actions(message));
}

async function load(address = null) {
  $("#filters-error").hidden = true;
  let result;
  try {
    result = await get(address || listAddress());
  } catch (failure) {
    if (pastLastPage(failure, page)) {
      page = 1;
      return load();
    }
    const details = Object.entries(failure.details || {}).filter(([, messages]) => Array.isArray(messages))
      .map(([name, messages]) => `${name}: ${messages.join(" ")}`);
    $("#filters-error").textContent = [failure.message, ...details].join(" — ");
    $("#filters-error").hidden = false;
    $("#messages tbody").replaceChildren();
    return;
  }
  keepInUrl();
  $("#messages tbody").replaceChildren(...(result.results.length ? result.results.map(row)
    : [h("tr", {}, h("td", { colspan: 7, class: "hint" }, "No message matches."))]));
  pager.show(result, page, PAGE_SIZE);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  page = 1;
  load();
});
$("#filters-clear").addEventListener("click", () => {
  form.reset();
  page = 1;
  load();
});

await load(config.listUrl);
document.body.dataset.ready = "true";
