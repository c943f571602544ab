// The mapping editor: template, sample and live output side by side, errors underlined where they happened, samples
// and tests, save with conflict handling, publish. Every answer comes from the studio API.
//
// This page starts the requests, builds the editors and the shared `editor` object (config, API base, state, the
// template, payload and output editors); each part in lib/editor/ is set up with that object and adds to it what the
// other parts call (editor.preview, editor.checkGone, editor.save…), so they call each other through it whatever
// order they are set up in. `state` is also window.fhirStudio, read by the browser tests and the benchmark.
import { api, get, getAll, pageConfig } from "../lib/api.js";
import { goToLine, jsonView, payloadEditor, templateEditor } from "../lib/codemirror.js";
import { completionSource } from "../lib/completions.js";
import { $, toast } from "../lib/dom.js";
import { bottomPanelResizer } from "../lib/editor/bottom_resizer.js";
import { deletedMapping } from "../lib/editor/deleted_mapping.js";
import { draftAndSave } from "../lib/editor/draft.js";
import { banner } from "../lib/editor/messages.js";
import { livePreview } from "../lib/editor/preview.js";
import { publishing } from "../lib/editor/publish.js";
import { samplesAndTests } from "../lib/editor/samples.js";
import { sourceTree } from "../lib/editor/source_tree.js";
import { bindTabs } from "../lib/tabs.js";

const config = pageConfig();
const base = `/api/mappings/${config.slug}`;

// Everything the page shows first, asked for at once (not one after the other) before the editors are even built.
const loading = {
  draft: api("GET", `${base}/draft`),
  samples: getAll(`${base}/samples/`),
  lastRun: get(`${base}/test-runs/?page_size=1&results=true`).then((page) => page.results[0] || null),
};

const state = {
  etag: null, // the draft ETag our text is based on
  savedText: "", // the server's text at that ETag
  samples: [],
  sample: null, // the selected stored sample, or null for pasted text
  renderSeq: 0, // renders asked
  shownSeq: 0, // the render whose answer is on screen
  treeSeq: 0,
  treeStale: true, // the source tree is loaded when its tab is shown, not on every change of a hidden tab
  lastEditAt: 0,
  latencies: [], // keystroke → preview painted, ms (read by the browser test and the benchmark)
  lastResult: null,
  lastRenderedTemplate: null, // the template text lastResult came from
  lastRun: null, // the last recorded test run (with per-case results), the one the mapping list shows
  mapping: null, // the mapping's settings, read after start-up (to copy them if it is deleted under us)
  saving: false,
  gone: false, // the mapping was deleted under the open editor
};
window.fhirStudio = state;

bindTabs(document);

const editor = { config, base, storageKey: `fhirstudio:draft:${config.slug}`, state, templateText, payloadChanged };

// --- editors ----------------------------------------------------------------------------------------------------------

editor.template = templateEditor($("#template-editor"), {
  doc: "",
  label: "Template template.j2",
  readOnly: !config.canWrite,
  onChange: () => templateChanged(),
  completion: completionSource(config),
});
editor.payload = payloadEditor($("#payload-tab"), {
  doc: "",
  format: config.sourceFormat,
  label: "Sample payload",
  onChange: () => payloadChanged(),
});

// Ctrl/Cmd-S saves wherever the focus is on the page (a pane, the tree, a button), not only in the template; while a
// dialog is open it is that dialog's turn. Caught before CodeMirror and the browser's own "save page".
window.addEventListener("keydown", (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.altKey || event.key.toLowerCase() !== "s") return;
  event.preventDefault();
  if (document.querySelector("dialog[open]")) return;
  editor.save();
}, true);
editor.output = jsonView($("#output-tab"), { label: "FHIR output" });

function templateText() {
  return editor.template.state.doc.toString();
}
state.templateText = templateText; // for the browser tests: CodeMirror renders only the lines in view
state.outputText = () => editor.output.state.doc.toString(); // the same, for the output pane

function templateChanged() {
  state.lastEditAt = performance.now();
  editor.schedulePreview(); // first: the draft is kept in localStorage while the server renders
  editor.markDirty();
}

function payloadChanged() {
  state.lastEditAt = performance.now();
  if (state.sample && editor.payload.state.doc.toString() !== state.sample.payload) {
    state.sample = null;
    $("#sample-select").value = "";
  }
  editor.schedulePreview();
  state.treeStale = true;
  if (!$("#tree-tab").hidden) editor.scheduleTree();
}

// --- the parts of the page ----------------------------------------------------------------------------------------------

Object.assign(editor, livePreview(editor)); // preview, schedulePreview, abortPreview
Object.assign(editor, sourceTree(editor)); // scheduleTree
Object.assign(editor, samplesAndTests(editor)); // showSamples, runTests, showRun
Object.assign(editor, draftAndSave(editor)); // markDirty, keepLocally, showDraft, save
publishing(editor);
Object.assign(editor, deletedMapping(editor)); // checkGone, openSaveAs
bottomPanelResizer();

// --- start --------------------------------------------------------------------------------------------------------------

const flash = sessionStorage.getItem("fhirstudio:flash");
if (flash) {
  sessionStorage.removeItem("fhirstudio:flash");
  toast(flash);
}

try {
  const [draft, samples, lastRun] = await Promise.all([loading.draft, loading.samples, loading.lastRun]);
  editor.showDraft(draft);
  const line = /^#L(\d+)$/.exec(window.location.hash); // a template line another page links to (the message log)
  if (line) goToLine(editor.template, Number(line[1]));
  editor.showSamples(samples);
  editor.showRun(lastRun);
  editor.preview(); // the first render: filling the editors above asked none (see lib/editor/preview.js)
  document.body.dataset.ready = "true";
} catch (error) {
  if (!(await editor.checkGone(error))) {
    banner(`The editor could not load: ${error.message}`, [["Reload", () => window.location.reload()]], "bad");
    throw error;
  }
  document.body.dataset.ready = "true";
}
// Settings to copy if the mapping is deleted under us; not needed to start, so asked for afterwards.
get(`${base}/`).then((mapping) => (state.mapping = mapping)).catch(() => {});
