// One snippet or lookup table: edit, save as a new revision (optimistic locking on the ETag, conflicts merged
// side by side), history with a diff against the current text, delete; tables also edit as rows and import CSV or a
// FHIR ConceptMap. Everything goes through /api/snippets/ and /api/lookup-tables/.
import { MergeView } from "@codemirror/merge";
import { api, ApiError, getAll, pageConfig } from "../lib/api.js";
import { EditorView, goToLine, jsonView, setText, templateEditor } from "../lib/codemirror.js";
import { $, ago, h, toast } from "../lib/dom.js";
import { bindTabs } from "../lib/tabs.js";

const config = pageConfig();
const isSnippet = config.kind === "snippets";
const url = `/api/${config.kind}/${config.name}`;
const storageKey = `fhirstudio:${config.kind}:${config.name}`;
const state = { etag: null, saved: null, revision: null };
window.fhirStudio = state;
bindTabs(document);

// --- the content, as text (snippets) or table data (lookup tables) ----------------------------------------------------

let editor = null;
let jsonPreview = null;

if (isSnippet) {
  editor = templateEditor($("#snippet-editor"), {
    doc: "", label: `Snippet ${config.name}`, readOnly: !config.canWrite, onChange: () => changed(), onSave: () => save(),
  });
} else {
  jsonPreview = jsonView($("#json-tab"), { label: "Table as JSON" });
  $("#json-tab-button").addEventListener("click", () => setText(jsonPreview, JSON.stringify(tableData(), null, 2)));
  $("#add-row")?.addEventListener("click", () => { addRow({ source: "" }); changed(); $("#rows tbody tr:last-child input").focus(); });
  for (const id of ["target-system", "default-code", "case-sensitive"]) $(`#${id}`).addEventListener("input", () => changed());
}
$("#description").addEventListener("input", () => changed());

const COLUMNS = ["source", "source_system", "code", "display", "system"];

function addRow(entry) {
  const cells = COLUMNS.map((key) => h("td", {}, h("input", {
    value: entry[key] ?? "", "aria-label": key.replace("_", " "), readonly: !config.canWrite, oninput: () => changed(),
    dataset: { key },
  })));
  const remove = config.canWrite
    ? h("button", { type: "button", class: "link", "aria-label": "Remove row", onclick: (event) => { event.target.closest("tr").remove(); changed(); } }, "Remove")
    : null;
  $("#rows tbody").append(h("tr", {}, cells, h("td", {}, remove)));
}

function showTable(data) {
  $("#target-system").value = data.target_system || "";
  const fallback = data.default;
  $("#default-code").value = typeof fallback === "object" && fallback ? fallback.code || "" : fallback || "";
  $("#case-sensitive").checked = Boolean(data.case_sensitive);
  $("#rows tbody").replaceChildren();
  const entries = Array.isArray(data.entries) ? data.entries
    : Object.entries(data.entries || {}).map(([source, code]) => ({ source, code }));
  entries.forEach(addRow);
  state.extra = Object.fromEntries(Object.entries(data).filter(([key]) => !["target_system", "default", "case_sensitive", "entries"].includes(key)));
  state.defaultObject = typeof fallback === "object" && fallback ? fallback : null;
  state.hadCaseSensitive = "case_sensitive" in data;
}

function tableData() {
  const entries = [...$("#rows tbody").children].map((row) => {
    const entry = {};
    for (const input of row.querySelectorAll("input")) if (input.value.trim()) entry[input.dataset.key] = input.value.trim();
    return entry;
  }).filter((entry) => entry.source);
  const code = $("#default-code").value.trim();
  const fallback = !code ? null : state.defaultObject && state.defaultObject.code === code ? state.defaultObject : code;
  const caseSensitive = $("#case-sensitive").checked;
  return { ...state.extra, target_system: $("#target-system").value.trim() || null, default: fallback,
    ...(caseSensitive || state.hadCaseSensitive ? { case_sensitive: caseSensitive } : {}), entries };
}

function current() {
  return { description: $("#description").value, content: isSnippet ? editor.state.doc.toString() : tableData() };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function changed() {
  const dirty = !same(current(), state.saved);
  $("#save-state").textContent = dirty ? "unsaved changes" : `saved · revision ${state.revision}`;
  $("#save-state").className = `badge ${dirty ? "warn" : "muted"}`;
  if (dirty) localStorage.setItem(storageKey, JSON.stringify({ ...current(), etag: state.etag, at: new Date().toISOString() }));
  else localStorage.removeItem(storageKey);
  return dirty;
}

function show(value) {
  $("#description").value = value.description;
  if (isSnippet) setText(editor, value.content);
  else showTable(value.content);
}

async function load() {
  const { data, etag } = await api("GET", url);
  state.etag = etag;
  state.revision = data.revision;
  state.saved = { description: data.description, content: isSnippet ? data.text : data.data };
  const stored = JSON.parse(localStorage.getItem(storageKey) || "null");
  if (stored && !same({ description: stored.description, content: stored.content }, state.saved)) {
    show(stored);
    state.etag = stored.etag || etag;
    banner(`Unsaved changes from ${ago(stored.at)} were restored from this browser.`, [["Discard them", () => {
      localStorage.removeItem(storageKey);
      state.etag = etag;
      show(state.saved);
      changed();
      $("#banner").hidden = true;
    }]]);
  } else {
    show(state.saved);
    state.saved = current(); // normalised (a table's entries as rows), so an untouched page is not "changed"
  }
  changed();
  await loadHistory();
}

function banner(text, actions) {
  $("#banner").replaceChildren(h("span", {}, text), ...actions.map(([label, run]) => h("button", { type: "button", onclick: run }, label)));
  $("#banner").hidden = false;
}

// --- save, conflicts, delete ------------------------------------------------------------------------------------------

async function save(etag = null) {
  if (!config.canWrite) return;
  const value = current();
  const body = isSnippet ? { text: value.content, description: value.description } : { data: value.content, description: value.description };
  try {
    const { data, etag: newEtag } = await api("PATCH", url, { body, headers: { "If-Match": etag || state.etag } });
    state.etag = newEtag;
    state.revision = data.revision;
    state.saved = current();
    changed();
    $("#banner").hidden = true;
    toast(`Saved revision ${data.revision}`);
    await loadHistory();
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) return conflict(value);
    const where = (error.details?.errors || []).map((item) => `line ${item.line}: ${item.message}`);
    const fields = Object.entries(error.details || {}).filter(([key]) => key !== "errors").map(([key, v]) => `${key}: ${[].concat(v).join(" ")}`);
    toast(`Not saved: ${[error.message, ...where, ...fields].join(" — ")}`, "error");
    const line = error.details?.errors?.[0]?.line;
    if (isSnippet && line) goToLine(editor, line);
  }
}

let merge = null;
const asText = (value) => (isSnippet ? value.content : JSON.stringify(value.content, null, 2));

async function conflict(mine) {
  const { data, etag } = await api("GET", url);
  const theirs = { description: data.description, content: isSnippet ? data.text : data.data };
  $("#conflict-who").textContent = `${data.updated_by || "Someone"} saved revision ${data.revision} ${ago(data.updated_at)}. Nothing you typed is lost.`;
  $("#conflict-revision").textContent = String(data.revision);
  merge?.destroy();
  merge = new MergeView({
    a: { doc: asText(theirs), extensions: [EditorView.editable.of(false), EditorView.lineWrapping] },
    b: { doc: asText(mine), extensions: [EditorView.lineWrapping] },
    parent: $("#conflict-merge"), revertControls: "a-to-b", collapseUnchanged: { margin: 3, minSize: 8 },
  });
  const dialog = $("#conflict-dialog");
  $("#conflict-keep-mine").onclick = async () => {
    const text = merge.b.state.doc.toString();
    let content;
    try {
      content = isSnippet ? text : JSON.parse(text);
    } catch {
      return toast("Your side is not valid JSON any more.", "error");
    }
    show({ description: mine.description, content });
    dialog.close();
    await save(etag);
  };
  $("#conflict-take-theirs").onclick = () => {
    state.etag = etag;
    state.revision = data.revision;
    show(theirs);
    state.saved = current();
    changed();
    dialog.close();
  };
  $("#conflict-cancel").onclick = () => dialog.close();
  dialog.showModal();
}

$("#save")?.addEventListener("click", () => save());
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "s" && !isSnippet) { event.preventDefault(); save(); }
});

$("#delete")?.addEventListener("click", async () => {
  if (!window.confirm(`Delete ${config.name}? Published mapping versions keep their own copy.`)) return;
  try {
    await api("DELETE", url);
    localStorage.removeItem(storageKey);
    window.location.href = `/library/${config.kind}/`;
  } catch (error) {
    banner(error.code === "in_use" ? `Not deleted: ${error.message}` : `Not deleted: ${error.message}`, []);
  }
});

// --- history ------------------------------------------------------------------------------------------------------------

let revisionMerge = null;

async function loadHistory() {
  const revisions = await getAll(`${url}/versions/`);
  $("#history").replaceChildren(...revisions.map((revision) => h("li", { value: revision.revision, dataset: { revision: String(revision.revision) } },
    h("button", { type: "button", class: "link", onclick: () => showRevision(revision) }, `Revision ${revision.revision}`),
    h("span", { class: "hint" }, `${revision.author || "?"} · ${ago(revision.created_at)}`))));
}

function showRevision(revision) {
  const old = isSnippet ? revision.text : JSON.stringify(revision.data, null, 2);
  $("#revision-label").textContent = `Revision ${revision.revision}`;
  revisionMerge?.destroy();
  const readOnly = [EditorView.editable.of(false), EditorView.lineWrapping];
  revisionMerge = new MergeView({ a: { doc: old, extensions: readOnly }, b: { doc: asText(current()), extensions: readOnly },
    parent: $("#revision-diff"), collapseUnchanged: { margin: 2, minSize: 5 } });
  $("#revision-view").hidden = false;
}

// --- import (lookup tables) ---------------------------------------------------------------------------------------------

$("#import-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const file = form.elements.file.files[0];
  const text = file ? await file.text() : form.elements.content.value;
  const format = form.elements.format.value;
  let content = text;
  if (format === "conceptmap") {
    try {
      content = JSON.parse(text);
    } catch {
      $("#import-result").textContent = "That is not JSON: a ConceptMap import needs the resource as JSON.";
      return;
    }
  }
  const body = { format, content, target_system: form.elements.target_system.value.trim() || null, description: $("#description").value };
  try {
    const { data, etag } = await api("POST", `/api/lookup-tables/${config.name}/import`, { body });
    state.etag = etag;
    state.revision = data.revision;
    showTable(data.data);
    state.saved = current();
    changed();
    $("#import-result").textContent = `Imported ${data.entry_count} rows as revision ${data.revision}.`;
    toast($("#import-result").textContent);
    $("#grid-tab-button").click();
    await loadHistory();
  } catch (error) {
    const fields = Object.entries(error.details || {}).map(([key, value]) => `${key}: ${[].concat(value).join(" ")}`);
    $("#import-result").textContent = [error.message, ...fields].join(" — ");
  }
});

await load();
const line = /^#L(\d+)$/.exec(window.location.hash);
if (isSnippet && line) goToLine(editor, Number(line[1]));
document.body.dataset.ready = "true";
