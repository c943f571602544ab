// One snippet or lookup table: edit, save as a new revision (optimistic locking on the ETag, conflicts merged
// side by side), history with a diff against the editor's text, the mappings that use it, delete; tables also edit as
// rows and import CSV or a FHIR ConceptMap. Everything goes through /api/snippets/ and /api/lookup-tables/.
import { api, ApiError, getAll, pageConfig } from "../lib/api.js";
import { $, ago, h, toast } from "../lib/dom.js";
import { entryIndexes, errorLines } from "../lib/library_errors.js";
import { bindTabs } from "../lib/tabs.js";

const config = pageConfig();
const isSnippet = config.kind === "snippets";
const url = `/api/${config.kind}/${config.name}`;
const storageKey = `fhirstudio:${config.kind}:${config.name}`;
const state = { etag: null, saved: null, revision: null, revisions: [] };
window.fhirStudio = state;

// Both reads start now (base.html has preloaded them with the page), while CodeMirror is still loading.
const firstRead = api("GET", url);
const firstHistory = getAll(`${url}/versions/`);
// CodeMirror (~480 KiB) is loaded when something shows it: at once for a snippet's editor, but a table's rows are
// plain inputs, so its page is usable before (or without) it: only the JSON tab and the dialogs need it.
let codemirror = null;
const loadCodeMirror = () => (codemirror ??= import("../lib/codemirror.js"));
const loadMerge = () => import("@codemirror/merge").then((module) => module.MergeView);
bindTabs(document);

// --- the content, as text (snippets) or table data (lookup tables) ----------------------------------------------------

let editor = null;
let jsonPreview = null;
const cm = isSnippet ? await loadCodeMirror() : null; // a snippet page is its editor

if (isSnippet) {
  editor = cm.templateEditor($("#snippet-editor"), {
    doc: "", label: `Snippet ${config.name}`, readOnly: !config.canWrite, onChange: () => changed(), onSave: () => save(),
  });
} else {
  $("#json-tab-button").addEventListener("click", async () => {
    const { jsonView, setText } = await loadCodeMirror();
    jsonPreview ??= jsonView($("#json-tab"), { label: "Table as JSON" });
    setText(jsonPreview, JSON.stringify(tableData(), null, 2));
  });
  $("#add-row")?.addEventListener("click", () => {
    addRow({ source: "" });
    changed();
    $("#rows tbody tr:last-child input").focus();
  });
  for (const id of ["target-system", "default-code", "case-sensitive"]) $(`#${id}`).addEventListener("input", () => changed());
}
$("#description").addEventListener("input", () => changed());

const COLUMNS = [["source", "Source code"], ["source_system", "Source system"], ["code", "Target code"], ["display", "Display"],
  ["system", "Target system"]];

function addRow(entry) {
  const cells = COLUMNS.map(([key, label]) => h("td", {}, h("input", {
    value: entry[key] ?? "", "aria-label": label, readonly: !config.canWrite, dataset: { key },
    oninput: (event) => { event.target.closest("tr").removeAttribute("aria-invalid"); changed(); },
  })));
  const remove = config.canWrite
    ? h("button", {
      type: "button", class: "link", "aria-label": "Remove this row",
      onclick: (event) => {
        const row = event.target.closest("tr");
        (row.nextElementSibling || row.previousElementSibling)?.querySelector("input")?.focus();
        row.remove();
        changed();
      },
    }, "Remove")
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
  const importSystem = $("#import-form")?.elements.target_system;
  if (importSystem) importSystem.value = data.target_system || ""; // an import replaces the table's: offer to keep it
}

// The rows as the API's entries. Only wholly empty rows are left out: a row with a target but no source code goes to
// the API, which refuses it by its index, so nothing typed disappears on save.
function tableRows() {
  return [...$("#rows tbody").children].map((row) => {
    const entry = {};
    for (const input of row.querySelectorAll("input")) if (input.value.trim()) entry[input.dataset.key] = input.value.trim();
    return { row, entry };
  }).filter(({ entry }) => Object.keys(entry).length);
}

function tableData() {
  const entries = tableRows().map(({ entry }) => entry);
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
  if (!state.saved) return false; // still loading: the stored unsaved text must not be overwritten by the server's
  const dirty = !same(current(), state.saved);
  $("#save-state").textContent = dirty ? "unsaved changes" : `saved · revision ${state.revision}`;
  $("#save-state").className = `badge ${dirty ? "warn" : "muted"}`;
  if (!isSnippet) $("#row-count").textContent = String($("#rows tbody").children.length);
  if (dirty) localStorage.setItem(storageKey, JSON.stringify({ ...current(), etag: state.etag, at: new Date().toISOString() }));
  else localStorage.removeItem(storageKey);
  return dirty;
}

function show(value) {
  $("#description").value = value.description;
  if (isSnippet) cm.setText(editor, value.content);
  else showTable(value.content);
}

async function load() {
  const stored = JSON.parse(localStorage.getItem(storageKey) || "null");
  const { data, etag } = await firstRead;
  showUsedBy(data.used_by);
  state.etag = etag;
  state.revision = data.revision;
  show({ description: data.description, content: isSnippet ? data.text : data.data });
  state.saved = current(); // normalised (a table's entries as rows), so an untouched page is not "changed"
  if (stored && !same({ description: stored.description, content: stored.content }, state.saved)) {
    show(stored);
    state.etag = stored.etag || etag; // saving them against a newer revision then shows the conflict, not an overwrite
    banner(`Unsaved changes from ${ago(stored.at)} were restored from this browser.`, [["Discard them", () => {
      state.etag = etag;
      show(state.saved);
      changed();
      $("#banner").hidden = true;
    }]]);
  }
  changed();
  await loadHistory(firstHistory);
}

// Mappings whose draft uses this (they keep it from being deleted) and published versions that froze a copy.
function showUsedBy(uses = []) {
  const nobody = isSnippet ? "No mapping imports it." : "No mapping reads it.";
  $("#used-by").replaceChildren(...(uses.length ? uses.map((use) => h("li", { dataset: { slug: use.slug } },
    h("a", { href: `/mappings/${use.slug}/`, class: "title", title: use.title }, use.title),
    h("span", { class: "hint" }, h("code", {}, use.slug),
      use.draft ? " · draft" : "",
      use.versions.length ? [" · frozen in ", h("a", { href: `/mappings/${use.slug}/history` },
        use.versions.map((number) => `v${number}`).join(", "))] : ""))) : [h("li", { class: "hint" }, nobody)]));
  $("#used-by-count").textContent = uses.length ? String(uses.length) : "";
}

function banner(content, actions = []) {
  $("#banner").replaceChildren(h("span", {}, content), ...actions.map(([label, run]) => h("button", { type: "button", onclick: run }, label)));
  $("#banner").hidden = false;
}

// --- save, conflicts, delete ------------------------------------------------------------------------------------------

function markRows(lines) {
  if (isSnippet) return lines;
  const rows = tableRows().map(({ row }) => row);
  for (const index of entryIndexes(lines)) rows[index]?.setAttribute("aria-invalid", "true");
  // entries[i] counts the rows sent; wholly empty rows are not, so name the row by its place on the page
  const onPage = [...$("#rows tbody").children];
  return lines.map((line) => line.replace(/^data: /, "").replace(/entries\[(\d+)\]\.?\s*/g,
    (text, index) => (rows[Number(index)] ? `row ${onPage.indexOf(rows[Number(index)]) + 1}: ` : text)));
}

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
    showUsedBy(data.used_by);
    $("#banner").hidden = true;
    if (isSnippet) editor.dispatch(cm.setDiagnostics(editor.state, []));
    toast(`Saved revision ${data.revision}`);
    await loadHistory();
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) return conflict(value);
    const lines = markRows(errorLines(error));
    banner(`Not saved: ${[error.message, ...lines].join(" — ")}`);
    const located = error.details?.errors?.find((item) => item?.line);
    if (isSnippet && located) {
      const line = editor.state.doc.line(Math.min(located.line, editor.state.doc.lines));
      editor.dispatch(cm.setDiagnostics(editor.state, [{ from: line.from, to: line.to, severity: "error", message: located.message }]));
      cm.goToLine(editor, located.line);
    } else $("#rows tr[aria-invalid] input")?.focus();
  }
}

let merge = null;
const asText = (value) => (isSnippet ? value.content : JSON.stringify(value.content, null, 2));

async function conflict(mine) {
  const [{ data, etag }, MergeView, { EditorView }] = await Promise.all([api("GET", url), loadMerge(), loadCodeMirror()]);
  const theirs = { description: data.description, content: isSnippet ? data.text : data.data };
  $("#conflict-who").textContent = `${data.updated_by || "Someone"} saved revision ${data.revision} ${ago(data.updated_at)}. Nothing you typed is lost.`;
  $("#conflict-revision").textContent = String(data.revision);
  merge?.destroy();
  const dialog = $("#conflict-dialog");
  dialog.showModal();
  loadHistory(); // their revision is in the history now too
  merge = new MergeView({
    a: { doc: asText(theirs), extensions: [EditorView.editable.of(false), EditorView.lineWrapping] },
    b: { doc: asText(mine), extensions: [EditorView.lineWrapping] },
    parent: $("#conflict-merge"), revertControls: "a-to-b", collapseUnchanged: { margin: 3, minSize: 8 },
  });
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
    loadHistory();
  };
  $("#conflict-cancel").onclick = () => dialog.close(); // mine stays in the editor (and in local storage)
}

$("#save")?.addEventListener("click", () => save());
// Ctrl/Cmd-S anywhere on the page (the snippet editor handles its own and marks the event handled).
document.addEventListener("keydown", (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== "s" || event.defaultPrevented) return;
  event.preventDefault();
  if (!document.querySelector("dialog[open]")) save();
});

function mappingLinks(slugs) {
  return slugs.flatMap((slug, index) => [index ? ", " : "", h("a", { href: `/mappings/${slug}/` }, slug)]);
}

// A delete or an import writes over the revision this page read (If-Match): when someone saved since (412), say who
// and ask before writing over theirs. Answers the ETag to send again, or null to leave it.
async function overTheirs(what) {
  const { data, etag } = await api("GET", url);
  const who = `${data.updated_by || "Someone"} saved revision ${data.revision} ${ago(data.updated_at)}, after this page loaded.`;
  return window.confirm(`${who} ${what} anyway?`) ? etag : null;
}

const stale = (error) => error instanceof ApiError && error.status === 412;

async function remove(etag) {
  try {
    await api("DELETE", url, { headers: { "If-Match": etag } });
    localStorage.removeItem(storageKey);
    state.saved = current(); // nothing left to warn about on leaving
    window.location.href = `/library/${config.kind}/`;
  } catch (error) {
    if (stale(error)) {
      const theirs = await overTheirs(`Delete ${config.name}`);
      return theirs ? remove(theirs) : undefined;
    }
    const users = error.code === "in_use" ? error.details?.mappings || [] : [];
    if (users.length) {
      banner([`Not deleted: ${config.name} is still used by the draft${users.length > 1 ? "s" : ""} of `, ...mappingLinks(users),
        ". Take it out of those drafts first; published versions keep their own copy."]);
    } else {
      banner(`Not deleted: ${[error.message, ...errorLines(error)].join(" — ")}`);
    }
  }
}

$("#delete")?.addEventListener("click", () => {
  if (window.confirm(`Delete ${config.name}? Published mapping versions keep their own copy.`)) remove(state.etag);
});

window.addEventListener("beforeunload", (event) => {
  if (config.canWrite && state.saved && !same(current(), state.saved)) event.preventDefault(); // also in local storage
});

// --- history ------------------------------------------------------------------------------------------------------------

async function loadHistory(read = getAll(`${url}/versions/`)) {
  state.revisions = await read;
  $("#history").replaceChildren(...state.revisions.map((revision) => h("li", { value: revision.revision, dataset: { revision: String(revision.revision) } },
    h("button", { type: "button", class: "link", onclick: () => showRevision(revision) },
      `Revision ${revision.revision}`, revision.revision === state.revision ? " (current)" : ""),
    h("span", { class: "hint", title: revision.created_at }, `${revision.author || "?"} · ${ago(revision.created_at)}`))));
}

let revisionMerge = null;
let revisionText = null;

async function showRevision(revision) {
  const [MergeView, { EditorView, jsonView, setText, templateEditor }] = await Promise.all([loadMerge(), loadCodeMirror()]);
  const old = isSnippet ? revision.text : JSON.stringify(revision.data, null, 2);
  const now = asText(current());
  const dialog = $("#revision-dialog");
  $("#revision-title").textContent = `${config.name} · revision ${revision.revision}`;
  $("#revision-who").textContent = `saved by ${revision.author || "?"} ${ago(revision.created_at)}`;
  $("#revision-label").textContent = `Revision ${revision.revision}`;
  $("#revision-same").hidden = old !== now;
  $("#revision-diff-tab-button").click();
  dialog.showModal(); // before the views are built, so they measure a visible parent
  revisionMerge?.destroy();
  const readOnly = [EditorView.editable.of(false), EditorView.lineWrapping];
  revisionMerge = new MergeView({ a: { doc: old, extensions: readOnly }, b: { doc: now, extensions: readOnly },
    parent: $("#revision-diff"), collapseUnchanged: old === now ? undefined : { margin: 3, minSize: 8 } });
  if (!revisionText) {
    revisionText = isSnippet
      ? templateEditor($("#revision-text-tab"), { doc: "", readOnly: true, label: "Text of the revision" })
      : jsonView($("#revision-text-tab"), { label: "Data of the revision" });
  }
  setText(revisionText, old);
  const restore = $("#revision-restore");
  if (restore) {
    restore.onclick = () => {
      show({ description: $("#description").value, content: isSnippet ? revision.text : revision.data });
      changed();
      dialog.close();
      toast(`Revision ${revision.revision} is in the editor: Save makes it the current one.`);
    };
  }
}
$("#revision-close").addEventListener("click", () => $("#revision-dialog").close());

// --- import (lookup tables) ---------------------------------------------------------------------------------------------

function importResult(text, lines = [], kind = "") {
  $("#import-result").className = kind;
  $("#import-result").setAttribute("role", kind === "error" ? "alert" : "status");
  $("#import-result").replaceChildren(h("p", {}, text), ...(lines.length ? [h("ul", {}, lines.map((line) => h("li", {}, line)))] : []));
}

$("#import-form")?.elements.file.addEventListener("change", (event) => {
  const name = event.target.files[0]?.name || "";
  if (/\.json$/i.test(name)) event.target.form.elements.format.value = "conceptmap";
  if (/\.csv$/i.test(name)) event.target.form.elements.format.value = "csv";
});

$("#import-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const file = form.elements.file.files[0];
  const text = file ? await file.text() : form.elements.content.value;
  const format = form.elements.format.value;
  if (!text.trim()) return importResult("Choose a file or paste the content first.", [], "error");
  if (changed() && !window.confirm("The import replaces the rows on this page, your unsaved changes included. Import anyway?")) return;
  let content = text;
  if (format === "conceptmap") {
    try {
      content = JSON.parse(text);
    } catch (error) {
      return importResult("That is not JSON: a ConceptMap import needs the resource as JSON.", [error.message], "error");
    }
  }
  const body = { format, content, target_system: form.elements.target_system.value.trim() || null, description: $("#description").value };
  await importTable(body, state.etag);
});

async function importTable(body, ifMatch) {
  const form = $("#import-form");
  const before = state.revision;
  try {
    const { data, etag } = await api("POST", `/api/lookup-tables/${config.name}/import`, { body, headers: { "If-Match": ifMatch } });
    state.etag = etag;
    state.revision = data.revision;
    showTable(data.data);
    showUsedBy(data.used_by);
    state.saved = current();
    changed();
    const rows = `Imported ${data.entry_count} row${data.entry_count === 1 ? "" : "s"}`;
    $("#banner").hidden = true;
    importResult(data.revision === before ? `${rows}: the table already held exactly these, so it stays at revision ${before}.`
      : `${rows} as revision ${data.revision}.`, [], "ok");
    toast($("#import-result").textContent);
    form.elements.file.value = "";
    $("#grid-tab-button").click();
    await loadHistory();
  } catch (error) {
    if (stale(error)) {
      const theirs = await overTheirs("Import over it");
      if (theirs) return importTable(body, theirs);
      return importResult("Not imported: the table changed since this page loaded; reload to see it.", [], "error");
    }
    importResult(`Not imported: ${error.message}`, errorLines(error), "error");
  }
}

await load();
function goToHashLine() {
  const line = /^#L(\d+)$/.exec(window.location.hash);
  if (isSnippet && line) cm.goToLine(editor, Number(line[1]));
}
goToHashLine();
window.addEventListener("hashchange", goToHashLine);
document.body.dataset.ready = "true";
