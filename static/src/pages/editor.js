// The mapping editor: template, sample and live output side by side, errors underlined where they happened, samples
// and tests, save with conflict handling, publish. Every answer comes from the studio API.
import { MergeView } from "@codemirror/merge";
import { api, ApiError, get, getAll, pageConfig, post } from "../lib/api.js";
import {
  EditorView, goToLine, jsonView, payloadEditor, setDiagnostics, setText, templateEditor,
} from "../lib/codemirror.js";
import { completionSource } from "../lib/completions.js";
import { $, ago, debounce, h, toast } from "../lib/dom.js";
import { locate, prettyWithPaths } from "../lib/json_paths.js";
import { bindTabs } from "../lib/tabs.js";

const config = pageConfig();
const base = `/api/mappings/${config.slug}`;
const storageKey = `fhirstudio:draft:${config.slug}`;
const MAIN = "template.j2";

const state = {
  etag: null, // the draft ETag our text is based on
  savedText: "", // the server's text at that ETag
  samples: [],
  sample: null, // the selected stored sample, or null for pasted text
  renderSeq: 0,
  treeSeq: 0,
  lastEditAt: 0,
  latencies: [], // keystroke → preview painted, ms (read by the browser test and the benchmark)
  lastResult: null,
};
window.fhirStudio = state;

bindTabs(document);

// --- editors ----------------------------------------------------------------------------------------------------------

const template = templateEditor($("#template-editor"), {
  doc: "",
  label: "Template template.j2",
  readOnly: !config.canWrite,
  onChange: () => templateChanged(),
  onSave: () => save(),
  completion: completionSource(config),
});
const payload = payloadEditor($("#payload-tab"), {
  doc: "",
  format: config.sourceFormat,
  label: "Sample payload",
  onChange: () => payloadChanged(),
  onSave: () => save(),
});
const output = jsonView($("#output-tab"), { label: "FHIR output" });
const outcome = jsonView($("#outcome-tab"), { label: "OperationOutcome" });

function templateText() {
  return template.state.doc.toString();
}

function markDirty() {
  const dirty = templateText() !== state.savedText;
  const badge = $("#save-state");
  badge.textContent = dirty ? "unsaved changes" : `saved · revision ${state.revision}`;
  badge.className = `badge ${dirty ? "warn" : "muted"}`;
  if (dirty) localStorage.setItem(storageKey, JSON.stringify({ text: templateText(), etag: state.etag, at: new Date().toISOString() }));
  else localStorage.removeItem(storageKey);
  return dirty;
}

function templateChanged() {
  state.lastEditAt = performance.now();
  markDirty();
  schedulePreview();
}

function payloadChanged() {
  state.lastEditAt = performance.now();
  if (state.sample && payload.state.doc.toString() !== state.sample.payload) {
    state.sample = null;
    $("#sample-select").value = "";
  }
  schedulePreview();
  scheduleTree();
}

// --- live preview -----------------------------------------------------------------------------------------------------

const PREVIEW_DEBOUNCE_MS = 40; // long enough to skip renders inside a burst of keys, short enough to feel live
state.debounceMs = PREVIEW_DEBOUNCE_MS;
const schedulePreview = debounce(preview, PREVIEW_DEBOUNCE_MS);
let inflight = null;

async function preview() {
  const seq = ++state.renderSeq;
  const editedAt = state.lastEditAt;
  inflight?.abort();
  inflight = new AbortController();
  // Fast first: no locating on the keystroke's render; issues without a line are located by a second request.
  const body = { payload: payload.state.doc.toString(), template: templateText(), validate: true, locate: false };
  if (state.sample?.source_format) body.source_format = state.sample.source_format;
  let result;
  try {
    result = (await api("POST", `${base}/render`, { body, signal: inflight.signal })).data;
  } catch (error) {
    if (error.name === "AbortError") return;
    $("#preview-state").textContent = `preview failed: ${error.message}`;
    return;
  }
  if (seq !== state.renderSeq) return; // a newer edit already asked again
  showResult(result);
  if ((result.errors || []).some((error) => error.stage === "validate" && !error.line)) locateIssues(body, seq);
  requestAnimationFrame(() => {
    const took = performance.now() - editedAt;
    if (editedAt) {
      state.latencies.push(took);
      $("#preview-state").textContent = `preview ${Math.round(took)} ms`;
      $("#preview-state").title = "From your last keystroke to the output on screen";
    }
    document.body.dataset.previewSeq = String(seq);
  });
}

async function locateIssues(body, seq) {
  try {
    const located = await post(`${base}/render`, { ...body, locate: true }, { signal: inflight.signal });
    if (seq === state.renderSeq) showProblems(located.errors || [], prettyWithPaths(located.output || {}));
  } catch (error) {
    if (error.name !== "AbortError") console.warn("locating issues failed", error);
  }
}

function showResult(result) {
  state.lastResult = result;
  const pretty = result.output ? prettyWithPaths(result.output) : { text: "", where: new Map() };
  setText(output, result.output ? pretty.text : "// no output: see Problems");
  setText(outcome, JSON.stringify(result.issues, null, 2));
  const timings = result.timings || {};
  $("#timings").textContent = ["parse", "render", "postprocess", "validate", "total"]
    .filter((stage) => stage in timings).map((stage) => `${stage} ${timings[stage].toFixed(1)} ms`).join(" · ");
  showProblems(result.errors || [], pretty);
}

function severityOf(error) {
  return error.severity === "warning" || error.severity === "information" ? error.severity === "warning" ? "warning" : "info" : "error";
}

function showProblems(errors, pretty) {
  const inTemplate = [];
  const inOutput = [];
  const list = $("#problems");
  list.replaceChildren();
  errors.forEach((error, index) => {
    const severity = severityOf(error);
    let lineRange = null;
    if (error.template === MAIN && error.line) {
      const line = template.state.doc.line(Math.min(error.line, template.state.doc.lines));
      const from = error.column ? Math.min(line.from + error.column - 1, line.to) : line.from;
      lineRange = { from, to: Math.max(line.to, from) };
      inTemplate.push({ ...lineRange, severity, message: `${error.code}: ${error.message}`, source: error.stage });
    }
    let outputSpot = null;
    for (const expression of error.expression || []) {
      outputSpot = locate(pretty.where, expression);
      if (outputSpot) {
        const line = output.state.doc.lineAt(Math.min(outputSpot.offset, output.state.doc.length));
        inOutput.push({ from: outputSpot.offset, to: line.to, severity, message: `${error.code}: ${error.message}` });
        break;
      }
    }
    const where = error.template ? `${error.template}${error.line ? `:${error.line}` : ""}` : (error.expression || [])[0] || error.stage;
    const item = h("li", { class: `problem ${severity}`, dataset: { index: String(index), code: error.code } },
      h("button", {
        type: "button",
        class: "link",
        onclick: () => jumpTo(error, outputSpot),
        title: error.template && error.template !== MAIN ? "Open the snippet" : "Go to the line",
      }, h("span", { class: "sev" }, severity), " ", h("code", {}, error.code), " ", error.message, " ", h("span", { class: "where" }, where)));
    list.append(item);
  });
  if (!errors.length) list.append(h("li", { class: "hint" }, "No problems: the output is valid FHIR R4."));
  $("#problem-count").textContent = String(errors.length);
  template.dispatch(setDiagnostics(template.state, inTemplate));
  output.dispatch(setDiagnostics(output.state, inOutput));
}

function jumpTo(error, outputSpot) {
  if (error.template === MAIN && error.line) return goToLine(template, error.line, error.column);
  if (error.template && error.line) {
    window.open(`/library/snippets/${error.template}#L${error.line}`, "_blank");
    return;
  }
  if (outputSpot) {
    $("#output-tab-button").click();
    output.dispatch({ selection: { anchor: outputSpot.offset }, effects: EditorView.scrollIntoView(outputSpot.offset, { y: "center" }) });
    output.focus();
  }
}

// --- source tree ------------------------------------------------------------------------------------------------------

const scheduleTree = debounce(loadTree, 300);

async function loadTree() {
  const seq = ++state.treeSeq;
  const body = { payload: payload.state.doc.toString() };
  if (state.sample?.source_format) body.source_format = state.sample.source_format;
  let answer;
  try {
    answer = await post(`${base}/source-tree`, body);
  } catch (error) {
    $("#source-tree").replaceChildren(h("li", { class: "error" }, error.message));
    return;
  }
  if (seq !== state.treeSeq) return;
  const root = $("#source-tree");
  if (!answer.ok) {
    root.replaceChildren(...(answer.errors || []).map((error) => h("li", { class: "error" }, `${error.code}: ${error.message}`)));
    return;
  }
  root.replaceChildren(...answer.tree.map((node) => treeNode(node, 1)));
  if (answer.truncated) root.append(h("li", { class: "hint" }, "… the tree was cut short; the template still sees everything."));
}

function treeNode(node, depth) {
  const label = h("span", { class: "node-label", title: node.expression }, h("strong", {}, node.label),
    node.description ? h("span", { class: "hint" }, ` ${node.description}`) : null,
    node.value !== null && node.value !== undefined && node.value !== "" ? h("span", { class: "node-value" }, ` = ${String(node.value).slice(0, 80)}`) : null);
  const insert = h("button", {
    type: "button",
    class: "insert",
    "aria-label": `Insert ${node.expression}`,
    title: `Insert {{ ${node.expression} }} at the template's cursor`,
    onclick: (event) => {
      event.preventDefault(); // inside a summary: insert, don't fold
      insertExpression(node.expression);
    },
  }, "insert");
  const item = { role: "treeitem", "aria-level": depth, dataset: { expression: node.expression } };
  if (!node.children?.length) return h("li", item, label, " ", insert);
  return h("li", { ...item, "aria-expanded": "false" },
    h("details", { ontoggle: (event) => event.target.parentElement.setAttribute("aria-expanded", String(event.target.open)) },
      h("summary", {}, label, " ", insert), h("ul", { role: "group" }, node.children.map((child) => treeNode(child, depth + 1)))));
}

function insertExpression(expression) {
  if (!config.canWrite) return toast(expression);
  const { from, to } = template.state.selection.main;
  const before = template.state.sliceDoc(Math.max(0, from - 3), from);
  const text = /\{\{\s*$/.test(before) ? expression : `{{ ${expression} }}`;
  template.dispatch({ changes: { from, to, insert: text }, selection: { anchor: from + text.length } });
  template.focus();
}

// --- samples and tests ------------------------------------------------------------------------------------------------

async function loadSamples(selectName) {
  state.samples = await getAll(`${base}/samples/`);
  const select = $("#sample-select");
  select.replaceChildren(h("option", { value: "" }, "(pasted text)"),
    ...state.samples.map((sample) => h("option", { value: sample.name }, sample.name)));
  renderCases();
  const wanted = selectName ?? state.sample?.name ?? state.samples[0]?.name;
  if (wanted) selectSample(wanted);
}

function selectSample(name) {
  const sample = state.samples.find((candidate) => candidate.name === name) || null;
  state.sample = sample;
  $("#sample-select").value = sample ? sample.name : "";
  if (sample) {
    setText(payload, sample.payload);
    payloadChanged();
    state.sample = sample;
    $("#sample-select").value = sample.name;
  }
}

$("#sample-select").addEventListener("change", (event) => selectSample(event.target.value));

function renderCases(results = null) {
  const byCase = new Map((results || []).map((result) => [result.case, result]));
  $("#cases tbody").replaceChildren(...state.samples.map((sample) => {
    const result = byCase.get(sample.name);
    const verdict = !result ? h("span", { class: "badge muted" }, "not run")
      : h("span", { class: `badge ${result.passed ? "ok" : "bad"}` }, result.passed ? "passed" : "failed");
    const detail = result && !result.passed ? h("pre", { class: "diff" }, result.problems.join("\n")) : null;
    return h("tr", { dataset: { case: sample.name } },
      h("td", {}, h("button", { type: "button", class: "link", onclick: () => selectSample(sample.name) }, sample.name)),
      h("td", {}, verdict, detail),
      h("td", {}, (sample.assertions || []).map((text) => h("div", {}, h("code", {}, text)))),
      h("td", {}, config.canWrite ? h("button", { type: "button", class: "link", onclick: () => openSample(sample) }, "Edit") : null));
  }));
}

async function runTests() {
  $("#run-summary").textContent = "running…";
  try {
    const run = await post(`${base}/test-runs/`, {});
    showRun(run);
  } catch (error) {
    $("#run-summary").textContent = error.message;
  }
}

function showRun(run) {
  $("#run-summary").textContent = `${run.passed} passed, ${run.failed} failed (${run.version ? `v${run.version}` : `draft revision ${run.draft_revision}`})`;
  const badge = $("#test-state");
  badge.textContent = run.failed ? `tests: ${run.failed} failed` : `tests: ${run.passed} passed`;
  badge.className = `badge ${run.failed ? "bad" : "ok"}`;
  if (run.results) renderCases(run.results);
}

$("#run-tests").addEventListener("click", runTests);

const sampleDialog = $("#sample-dialog");
let editing = null;

function openSample(sample = null) {
  editing = sample;
  const form = $("#sample-form");
  form.reset();
  form.elements.name.value = sample ? sample.name : "";
  form.elements.name.readOnly = Boolean(sample);
  form.elements.assertions.value = sample ? (sample.assertions || []).join("\n") : "";
  form.elements.expect_output.checked = Boolean(sample && sample.expected);
  $("#sample-error").hidden = true;
  sampleDialog.showModal();
}

$("#sample-new")?.addEventListener("click", () => openSample(null));
$("#sample-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "save") return;
  event.preventDefault();
  const form = event.target;
  const body = {
    payload: payload.state.doc.toString(),
    assertions: form.elements.assertions.value.split("\n").map((line) => line.trim()).filter(Boolean),
    expected: form.elements.expect_output.checked ? state.lastResult?.output ?? null : null,
  };
  try {
    if (editing) await api("PATCH", `${base}/samples/${editing.name}`, { body });
    else await api("POST", `${base}/samples/`, { body: { ...body, name: form.elements.name.value } });
    sampleDialog.close();
    await loadSamples(editing ? editing.name : form.elements.name.value);
    toast("Sample saved; running the samples…");
    await runTests();
  } catch (error) {
    const fields = Object.entries(error.details || {}).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`);
    $("#sample-error").textContent = [error.message, ...fields].join(" — ");
    $("#sample-error").hidden = false;
  }
});

// --- save, conflicts, publish -----------------------------------------------------------------------------------------

async function loadDraft() {
  const { data, etag } = await api("GET", `${base}/draft`);
  state.etag = etag;
  state.revision = data.revision;
  state.savedText = data.template;
  const stored = JSON.parse(localStorage.getItem(storageKey) || "null");
  if (stored && stored.text !== data.template) {
    setText(template, stored.text);
    state.etag = stored.etag || etag; // keep the base it was typed on: saving it over a newer draft is a conflict
    banner(`Unsaved changes from ${ago(stored.at)} were restored from this browser.`, [["Discard them", () => {
      localStorage.removeItem(storageKey);
      state.etag = etag;
      setText(template, data.template);
      hideBanner();
    }]]);
  } else {
    setText(template, data.template);
  }
  markDirty();
}

function banner(text, actions = []) {
  const box = $("#banner");
  box.replaceChildren(h("span", {}, text), ...actions.map(([label, run]) => h("button", { type: "button", onclick: run }, label)));
  box.hidden = false;
}

function hideBanner() {
  $("#banner").hidden = true;
}

async function save(overwriteEtag = null) {
  if (!config.canWrite) return;
  const text = templateText();
  try {
    const { data, etag } = await api("PUT", `${base}/draft`, {
      body: { template: text },
      headers: { "If-Match": overwriteEtag || state.etag },
    });
    state.etag = etag;
    state.revision = data.revision;
    state.savedText = text;
    hideBanner();
    markDirty();
    toast(`Saved revision ${data.revision}`);
    if (data.test_run) {
      const run = await get(`${base}/test-runs/${data.test_run.id}`);
      showRun(run);
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) return conflict(text);
    toast(`Not saved: ${error.message}`, "error");
  }
}

let merge = null;

async function conflict(mine) {
  const { data: theirs, etag } = await api("GET", `${base}/draft`);
  $("#conflict-who").textContent = `${theirs.updated_by || "Someone"} saved revision ${theirs.revision} ${ago(theirs.updated_at)}. Nothing you typed is lost.`;
  $("#conflict-revision").textContent = String(theirs.revision);
  merge?.destroy();
  merge = new MergeView({
    a: { doc: theirs.template, extensions: [EditorView.editable.of(false), EditorView.lineWrapping] },
    b: { doc: mine, extensions: [EditorView.lineWrapping] },
    parent: $("#conflict-merge"),
    highlightChanges: true,
    gutter: true,
    revertControls: "a-to-b", // an arrow per change copies their version of that chunk into yours
    collapseUnchanged: { margin: 3, minSize: 8 },
  });
  const dialog = $("#conflict-dialog");
  $("#conflict-keep-mine").onclick = async () => {
    setText(template, merge.b.state.doc.toString());
    dialog.close();
    await save(etag);
  };
  $("#conflict-take-theirs").onclick = () => {
    state.etag = etag;
    state.revision = theirs.revision;
    state.savedText = theirs.template;
    setText(template, theirs.template);
    markDirty();
    dialog.close();
  };
  $("#conflict-cancel").onclick = () => dialog.close();
  dialog.showModal();
}

$("#save")?.addEventListener("click", () => save());

const publishDialog = $("#publish-dialog");
$("#publish-open")?.addEventListener("click", () => {
  if (markDirty()) return toast("Save the draft first: a version is made from the saved draft.", "error");
  $("#publish-error").hidden = true;
  publishDialog.showModal();
});
$("#publish-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "publish") return;
  event.preventDefault();
  try {
    const version = await post(`${base}/versions/`, { message: event.target.elements.message.value });
    publishDialog.close();
    event.target.reset();
    banner(`Published version ${version.number}.`, [["Compare versions", () => (window.location.href = config.historyUrl)]]);
  } catch (error) {
    const where = (error.details?.errors || []).map((item) => `${item.template || ""}:${item.line || "?"} ${item.message}`);
    $("#publish-error").textContent = [error.message, ...where].join(" — ");
    $("#publish-error").hidden = false;
  }
});

window.addEventListener("beforeunload", (event) => {
  if (templateText() !== state.savedText) event.preventDefault(); // the text is in local storage too
});

// --- start --------------------------------------------------------------------------------------------------------------

await loadDraft();
await loadSamples();
if (!state.samples.length) schedulePreview();
document.body.dataset.ready = "true";
