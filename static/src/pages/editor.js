// The mapping editor: template, sample and live output side by side, errors underlined where they happened, samples
// and tests, save with conflict handling, publish. Every answer comes from the studio API.
import { api, ApiError, del, get, getAll, pageConfig, post } from "../lib/api.js";
import {
  EditorView, goToLine, jsonView, payloadEditor, setDiagnostics, setText, templateEditor,
} from "../lib/codemirror.js";
import { completionSource } from "../lib/completions.js";
import { $, ago, debounce, h, toast } from "../lib/dom.js";
import { explainRule, slugify } from "../lib/forms.js";
import { locate, prettyWithPaths } from "../lib/json_paths.js";
import { relativeExpression } from "../lib/loop_scope.js";
import { bindTabs } from "../lib/tabs.js";
import { runTarget, runVerdict } from "../lib/test_runs.js";

const config = pageConfig();
const base = `/api/mappings/${config.slug}`;
const storageKey = `fhirstudio:draft:${config.slug}`;
const MAIN = "template.j2";

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
  renderSeq: 0,
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

// --- editors ----------------------------------------------------------------------------------------------------------

const template = templateEditor($("#template-editor"), {
  doc: "",
  label: "Template template.j2",
  readOnly: !config.canWrite,
  onChange: () => templateChanged(),
  completion: completionSource(config),
});
const payload = payloadEditor($("#payload-tab"), {
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
  save();
}, true);
const output = jsonView($("#output-tab"), { label: "FHIR output" });
let outcome = null; // built the first time its tab is shown: one editor less to build at start-up

// Run `show` each time a tab panel is unhidden (by a click or the arrow keys of lib/tabs.js).
function whenShown(panel, show) {
  new MutationObserver(() => panel.hidden || show()).observe(panel, { attributes: true, attributeFilter: ["hidden"] });
}

whenShown($("#outcome-tab"), () => {
  outcome ||= jsonView($("#outcome-tab"), { label: "OperationOutcome" });
  setText(outcome, JSON.stringify(state.lastResult?.issues ?? {}, null, 2));
});

function templateText() {
  return template.state.doc.toString();
}
state.templateText = templateText; // for the browser tests: CodeMirror renders only the lines in view

function markDirty() {
  const dirty = templateText() !== state.savedText;
  if (state.gone) {
    keepLocally();
    return true;
  }
  const badge = $("#save-state");
  badge.textContent = dirty ? "unsaved changes" : `saved · revision ${state.revision}`;
  badge.className = `badge ${dirty ? "warn" : "muted"}`;
  if (dirty) keepLocally();
  else localStorage.removeItem(storageKey);
  return dirty;
}

function keepLocally() {
  localStorage.setItem(storageKey, JSON.stringify({ text: templateText(), etag: state.etag, at: new Date().toISOString() }));
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
  state.treeStale = true;
  if (!$("#tree-tab").hidden) scheduleTree();
}

// --- live preview -----------------------------------------------------------------------------------------------------

const PREVIEW_DEBOUNCE_MS = 40; // long enough to skip renders inside a burst of keys, short enough to feel live
state.debounceMs = PREVIEW_DEBOUNCE_MS;
const schedulePreview = debounce(preview, PREVIEW_DEBOUNCE_MS);
let inflight = null;

async function preview() {
  if (state.gone) return;
  // Fast first: no locating on the keystroke's render; issues without a line are located by a second request.
  const body = { payload: payload.state.doc.toString(), template: templateText(), validate: true, locate: false };
  if (state.sample?.source_format) body.source_format = state.sample.source_format;
  const key = JSON.stringify(body);
  if (key === state.previewKey) return; // already asked (start-up renders at once; the debounced call follows)
  state.previewKey = key;
  const seq = ++state.renderSeq;
  const editedAt = state.lastEditAt;
  inflight?.abort();
  inflight = new AbortController();
  let result;
  try {
    result = (await api("POST", `${base}/render`, { body, signal: inflight.signal })).data;
  } catch (error) {
    if (error.name === "AbortError") return;
    if (await checkGone(error)) return;
    state.previewKey = null; // the same text may be asked again
    $("#preview-state").textContent = `preview failed: ${error.message}`;
    return;
  }
  if (seq !== state.renderSeq) return; // a newer edit already asked again
  state.lastRenderedTemplate = body.template;
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
    if (seq === state.renderSeq && !state.gone) showProblems(located.errors || [], prettyWithPaths(located.output || {}));
  } catch (error) {
    if (error.name !== "AbortError") console.warn("locating issues failed", error);
  }
}

function showResult(result) {
  state.lastResult = result;
  const pretty = result.output ? prettyWithPaths(result.output) : { text: "", where: new Map() };
  state.outputMarks = [];
  const note = $("#output-note");
  note.hidden = true;
  if (result.output) setText(output, pretty.text);
  else if (result.rendered) showFailedOutput(result);
  else setText(output, "// no output: see Problems");
  if (outcome && !$("#outcome-tab").hidden) setText(outcome, JSON.stringify(result.issues, null, 2));
  const timings = result.timings || {};
  $("#timings").textContent = ["parse", "render", "postprocess", "validate", "total"]
    .filter((stage) => stage in timings).map((stage) => `${stage} ${timings[stage].toFixed(1)} ms`).join(" · ");
  showProblems(result.errors || [], pretty);
}

// The output was not JSON: show what the template wrote, with the spot where parsing stopped marked and in view.
function showFailedOutput(result) {
  const { text, start, offset, total_chars: total, truncated } = result.rendered;
  setText(output, text);
  const note = $("#output-note");
  const error = (result.errors || []).find((item) => item.code === "FS-PST-001");
  let where = "";
  if (offset !== null && offset !== undefined) {
    const at = Math.min(Math.max(offset - start, 0), text.length);
    const line = output.state.doc.lineAt(at);
    where = ` at line ${line.number}, column ${at - line.from + 1}`;
    state.outputMarks = [{ from: at, to: Math.min(Math.max(at + 1, line.to), text.length), severity: "error", message: error ? `${error.code}: ${error.message}` : "Not JSON here" }];
    requestAnimationFrame(() => output.dispatch({ effects: EditorView.scrollIntoView(at, { y: "center" }) }));
  }
  const part = truncated ? ` (characters ${start + 1}–${start + text.length} of ${total})` : "";
  note.textContent = `The output is not JSON: below is the text the template wrote${part}, with the error marked${where}.`;
  note.hidden = false;
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
  output.dispatch(setDiagnostics(output.state, [...(state.outputMarks || []), ...inOutput]));
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

whenShown($("#tree-tab"), () => state.treeStale && loadTree());

async function loadTree() {
  if (state.gone) return;
  state.treeStale = false;
  const seq = ++state.treeSeq;
  const body = { payload: payload.state.doc.toString() };
  if (state.sample?.source_format) body.source_format = state.sample.source_format;
  let answer;
  try {
    answer = await post(`${base}/source-tree`, body);
  } catch (error) {
    if (await checkGone(error)) return;
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

// Inside {% for row in msg %} a node of a row is written relative to `row` (lib/loop_scope.js reads the loops open
// before the cursor); outside any loop the absolute expression goes in; inside a loop over something else it goes in
// as is, and the note says why it is not relative.
function insertExpression(absolute) {
  const { from, to } = template.state.selection.main;
  const format = state.sample?.source_format || config.sourceFormat;
  const { expression, loop, note } = relativeExpression(template.state.sliceDoc(0, from), absolute, format);
  const said = $("#tree-note");
  said.textContent = loop ? `Inserted ${expression}: relative to \`${loop.name}\` of {% for ${loop.name} in ${loop.iterable} %}.` : note || "";
  said.className = note ? "tree-note warn" : "tree-note hint";
  if (note) toast(note);
  if (!config.canWrite) return toast(expression);
  const before = template.state.sliceDoc(Math.max(0, from - 3), from);
  const text = /\{\{\s*$/.test(before) ? expression : `{{ ${expression} }}`;
  template.dispatch({ changes: { from, to, insert: text }, selection: { anchor: from + text.length } });
  template.focus();
}

// --- samples and tests ------------------------------------------------------------------------------------------------

function showSamples(samples, selectName) {
  state.samples = samples;
  const select = $("#sample-select");
  select.replaceChildren(h("option", { value: "" }, "(pasted text)"),
    ...state.samples.map((sample) => h("option", { value: sample.name }, sample.name)));
  renderCases();
  const wanted = selectName ?? state.sample?.name ?? state.samples[0]?.name;
  if (wanted && state.samples.some((sample) => sample.name === wanted)) selectSample(wanted);
  else if (state.sample) state.sample = null; // the selected one was deleted: its text stays, as pasted text
}

async function loadSamples(selectName) {
  showSamples(await getAll(`${base}/samples/`), selectName);
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

// Each sample with its result in the last recorded run (state.lastRun): the same run the mapping list shows.
function renderCases() {
  const run = state.lastRun;
  const byCase = new Map((run?.results || []).map((result) => [result.case, result]));
  $("#cases tbody").replaceChildren(...state.samples.map((sample) => {
    const result = byCase.get(sample.name);
    const verdict = !result ? h("span", { class: "badge muted", title: run ? "Added after the last run" : "No run recorded yet" }, "not run")
      : h("span", { class: `badge ${result.passed ? "ok" : "bad"}` }, result.passed ? "passed" : "failed");
    const detail = result && !result.passed ? h("pre", { class: "diff" }, result.problems.join("\n")) : null;
    return h("tr", { dataset: { case: sample.name } },
      h("td", {}, h("button", { type: "button", class: "link", onclick: () => selectSample(sample.name) }, sample.name)),
      h("td", {}, verdict, detail),
      h("td", {}, (sample.assertions || []).map((text) => h("div", {}, h("code", {}, text)))),
      h("td", { class: "actions" }, config.canWrite ? [
        h("button", { type: "button", class: "link", onclick: () => openSample(sample) }, "Edit"),
        h("button", { type: "button", class: "link danger delete-sample", "aria-label": `Delete sample ${sample.name}`, onclick: () => deleteSample(sample) }, "Delete"),
      ] : null));
  }));
}

async function runTests() {
  $("#run-summary").textContent = "running…";
  try {
    const run = await post(`${base}/test-runs/`, {});
    showRun(run);
    return run;
  } catch (error) {
    if (await checkGone(error)) return null;
    $("#run-summary").textContent = error.message;
    return null;
  }
}

function showRun(run) {
  state.lastRun = run;
  const verdict = runVerdict(run);
  const badge = $("#test-state");
  badge.textContent = `tests: ${verdict.text}`;
  badge.className = `badge ${verdict.kind}`;
  if (!run) {
    $("#run-summary").textContent = "No run recorded yet.";
  } else {
    // A version's run is the draft's own when the draft is still that version's text (just published).
    const ownVersion = run.version && run.version === state.published?.version && state.published.revision === state.revision;
    const stale = (run.version ? !ownVersion : run.draft_revision !== state.revision) ? " — not the draft you are editing" : "";
    $("#run-summary").textContent = `Last run: ${run.passed} passed, ${run.failed} failed (${runTarget(run)}, ${ago(run.created_at)})${stale}`;
    badge.title = `${runTarget(run)}, ${new Date(run.created_at).toLocaleString()}`;
  }
  renderCases();
}

$("#run-tests").addEventListener("click", runTests);

async function deleteSample(sample) {
  const sure = await ask({
    title: `Delete the sample ${sample.name}?`,
    message: "Its payload, expected output and assertions are removed; recorded test runs keep their results.",
    confirm: "Delete the sample",
    danger: true,
  });
  if (!sure) return;
  try {
    await del(`${base}/samples/${sample.name}`);
  } catch (error) {
    if (await checkGone(error)) return;
    if (!(error instanceof ApiError && error.status === 404)) return toast(`Not deleted: ${error.message}`, "error");
  }
  toast(`Sample ${sample.name} deleted.`);
  await loadSamples(state.sample?.name === sample.name ? undefined : state.sample?.name);
}

const sampleDialog = $("#sample-dialog");
let editing = null;

function openSample(sample = null) {
  editing = sample;
  // Editing a sample shows its own payload in the Sample pane first: what is saved is what the analyst sees there,
  // never another sample's text left in the pane.
  if (sample && state.sample?.name !== sample.name) selectSample(sample.name);
  const form = $("#sample-form");
  form.reset();
  form.elements.name.value = sample ? sample.name : "";
  form.elements.name.readOnly = Boolean(sample);
  form.elements.assertions.value = sample ? (sample.assertions || []).join("\n") : "";
  form.elements.expect_output.checked = Boolean(sample && sample.expected);
  $("#sample-error").hidden = true;
  fieldError(form.elements.assertions, $("#assertions-error"), null);
  sampleDialog.showModal();
}

// A field's own error, said next to it (and to screen readers through aria-describedby).
function fieldError(field, box, messages) {
  box.replaceChildren(...(messages || []).map((message) => h("div", {}, message)));
  box.hidden = !messages?.length;
  if (messages?.length) field.setAttribute("aria-invalid", "true");
  else field.removeAttribute("aria-invalid");
}

$("#sample-new")?.addEventListener("click", () => openSample(null));
explainRule($("#sample-form").elements.name); // the rule in words, not "Please match the requested format"
$("#sample-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "save") return;
  event.preventDefault();
  const form = event.target;
  const shown = !editing || state.sample?.name === editing.name; // the pane holds this sample's payload
  const body = {
    assertions: form.elements.assertions.value.split("\n").map((line) => line.trim()).filter(Boolean),
    expected: form.elements.expect_output.checked && shown ? state.lastResult?.output ?? null : null,
  };
  if (shown) body.payload = payload.state.doc.toString();
  fieldError(form.elements.assertions, $("#assertions-error"), null);
  try {
    if (editing) await api("PATCH", `${base}/samples/${editing.name}`, { body });
    else await api("POST", `${base}/samples/`, { body: { ...body, name: form.elements.name.value } });
    sampleDialog.close();
    await loadSamples(editing ? editing.name : form.elements.name.value);
    toast("Sample saved; running the samples…");
    await runTests();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && await checkGone(error)) return sampleDialog.close();
    const details = { ...(error.details || {}) };
    if (details.assertions) {
      fieldError(form.elements.assertions, $("#assertions-error"), [].concat(details.assertions));
      delete details.assertions;
      form.elements.assertions.focus();
    }
    const fields = Object.entries(details).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`);
    $("#sample-error").textContent = [error.message, ...fields].join(" — ");
    $("#sample-error").hidden = false;
  }
});

// --- asking first -------------------------------------------------------------------------------------------------------

// A yes/no question in the page's own dialog; resolves true only on the confirming button (Cancel has the focus, so
// Enter or Escape is a no).
function ask({ title, message, items = [], confirm, danger = false }) {
  const dialog = $("#ask-dialog");
  $("#ask-title").textContent = title;
  $("#ask-message").textContent = message;
  $("#ask-items").replaceChildren(...items.map((item) => h("li", {}, item)));
  $("#ask-items").hidden = !items.length;
  const yes = $("#ask-yes");
  yes.textContent = confirm;
  yes.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  dialog.showModal();
  $("#ask-no").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}

// --- save, conflicts, publish -----------------------------------------------------------------------------------------

function showDraft({ data, etag }) {
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

function banner(text, actions = [], kind = "") {
  const box = $("#banner");
  box.replaceChildren(h("span", {}, text), ...actions.map(([label, run]) => h("button", { type: "button", onclick: run }, label)));
  box.className = `banner ${kind}`.trim();
  box.hidden = false;
}

function hideBanner() {
  if (state.gone) return; // that one stays
  $("#banner").hidden = true;
}

// Saving text that is empty or does not compile is allowed, but not by accident (a stray Ctrl-Z, Ctrl-S).
async function confirmSavable(text) {
  if (!text.trim()) {
    return ask({
      title: "Save an empty template?",
      message: "The template is empty. Saved, it becomes the draft: every sample fails and a publish would ship it.",
      confirm: "Save the empty template",
      danger: true,
    });
  }
  const problems = (await compileErrors(text)).map((error) => `${error.template || MAIN}${error.line ? `:${error.line}` : ""} ${error.code}: ${error.message}`);
  if (!problems.length) return true;
  return ask({
    title: "Save a template that does not compile?",
    message: "The draft would not run until this is fixed:",
    items: problems,
    confirm: "Save anyway",
    danger: true,
  });
}

async function compileErrors(text) {
  let result = state.lastRenderedTemplate === text ? state.lastResult : null;
  if (!result) {
    const body = { payload: payload.state.doc.toString(), template: text, validate: false, locate: false };
    if (state.sample?.source_format) body.source_format = state.sample.source_format;
    result = await post(`${base}/render`, body);
  }
  return (result.errors || []).filter((error) => error.stage === "template");
}

async function save(overwriteEtag = null) {
  if (!config.canWrite || state.saving) return;
  if (state.gone) return openSaveAs();
  const text = templateText();
  state.saving = true;
  try {
    if (!overwriteEtag && !(await confirmSavable(text))) return;
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
    if (data.test_run) showRun(await get(`${base}/test-runs/${data.test_run.id}`));
  } catch (error) {
    if (error instanceof ApiError && error.status === 412) return conflict(text);
    if (await checkGone(error)) return;
    toast(`Not saved: ${error.message}`, "error");
  } finally {
    state.saving = false;
  }
}

let merge = null;

async function conflict(mine) {
  const [{ data: theirs, etag }, { MergeView }] = await Promise.all([
    api("GET", `${base}/draft`), import("@codemirror/merge"), // the merge view is loaded when a conflict needs it
  ]);
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

// The draft's own test result: the last run when it ran on this very revision, else a run now.
async function draftRun() {
  const run = state.lastRun;
  if (run && !run.version && run.draft_revision === state.revision && run.results) return run;
  return runTests();
}

function showPublishTests(run) {
  const box = $("#publish-tests");
  const verdict = runVerdict(run);
  box.className = `publish-tests ${verdict.kind}`;
  if (!run) return box.replaceChildren(h("p", {}, "The samples could not be run; see Samples & tests."));
  const failing = (run.results || []).filter((result) => !result.passed).map((result) => result.case);
  const total = run.passed + run.failed;
  box.replaceChildren(
    h("p", {}, h("strong", {}, total ? `Tests on draft revision ${run.draft_revision}: ${run.passed} passed, ${run.failed} failed` : "No samples: nothing tests this draft")),
    failing.length ? h("p", {}, "Failing: ", ...failing.flatMap((name, index) => [index ? ", " : "", h("code", {}, name)])) : null,
  );
}

const publishDialog = $("#publish-dialog");
let publishRun = null;
$("#publish-open")?.addEventListener("click", async () => {
  if (state.gone) return;
  if (markDirty()) return toast("Save the draft first: a version is made from the saved draft.", "error");
  $("#publish-error").hidden = true;
  publishRun = null;
  $("#publish-tests").className = "publish-tests muted";
  $("#publish-tests").replaceChildren(h("p", {}, "Running the samples on the draft…"));
  publishDialog.showModal();
  publishRun = await draftRun();
  showPublishTests(publishRun);
});
$("#publish-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "publish") return;
  event.preventDefault();
  const run = publishRun || await draftRun();
  if (run && run.failed > 0) {
    const failing = (run.results || []).filter((result) => !result.passed).map((result) => result.case);
    const sure = await ask({
      title: `Publish a draft that fails ${run.failed} of ${run.passed + run.failed} samples?`,
      message: "A version is immutable, and a facade deployed on it serves this output. Failing samples:",
      items: failing,
      confirm: "Publish anyway",
      danger: true,
    });
    if (!sure) return;
  }
  try {
    const version = await post(`${base}/versions/`, { message: event.target.elements.message.value });
    publishDialog.close();
    event.target.reset();
    state.published = { version: version.number, revision: state.revision }; // the draft is this version's text
    if (version.test_run) showRun(version.test_run);
    banner(`Published version ${version.number}.`, [["Compare versions", () => (window.location.href = config.historyUrl)]]);
  } catch (error) {
    if (await checkGone(error)) return publishDialog.close();
    const where = (error.details?.errors || []).map((item) => `${item.template || ""}:${item.line || "?"} ${item.message}`);
    $("#publish-error").textContent = [error.message, ...where].join(" — ");
    $("#publish-error").hidden = false;
  }
});

window.addEventListener("beforeunload", (event) => {
  if (templateText() !== state.savedText && !state.leaving) event.preventDefault(); // the text is in local storage too
});

// --- the mapping was deleted under the open editor ----------------------------------------------------------------------

// A 404 from the mapping's own endpoints: make sure it is the mapping that is gone (not, say, one sample), then say so.
async function checkGone(error) {
  if (!(error instanceof ApiError && error.status === 404)) return false;
  if (state.gone) return true;
  try {
    await api("GET", `${base}/`);
    return false;
  } catch (again) {
    if (!(again instanceof ApiError && again.status === 404)) return false;
  }
  mappingGone();
  return true;
}

function mappingGone() {
  state.gone = true;
  inflight?.abort();
  keepLocally();
  banner(`The mapping “${config.title}” no longer exists: it was deleted, here or elsewhere. Nothing is saved or checked `
    + "any more. Your template text is still in this editor (and kept in this browser).",
  config.canWrite ? [["Save as a new mapping…", () => openSaveAs()]] : [], "bad");
  const badge = $("#save-state");
  badge.textContent = "deleted";
  badge.className = "badge bad";
  $("#problems").replaceChildren(h("li", { class: "problem error gone" }, h("span", { class: "sev" }, "error"), " ",
    "The mapping was deleted: this template is no longer checked, and its output is not known to be valid."));
  $("#problem-count").textContent = "!";
  template.dispatch(setDiagnostics(template.state, []));
  state.outputMarks = [];
  output.dispatch(setDiagnostics(output.state, []));
  setText(output, "// The mapping was deleted: no preview.");
  $("#output-note").hidden = true;
  $("#preview-state").textContent = "";
  $("#timings").textContent = "";
  for (const id of ["#publish-open", "#run-tests", "#sample-new"]) if ($(id)) $(id).disabled = true;
  if ($("#save")) $("#save").textContent = "Save as new…";
}

const saveAsDialog = $("#save-as-dialog");
let slugEdited = false;

function openSaveAs() {
  if (!config.canWrite) return;
  const form = $("#save-as-form");
  form.reset();
  form.elements.title.value = `${config.title} (restored)`;
  form.elements.slug.value = slugify(form.elements.title.value);
  slugEdited = false;
  fieldError(form.elements.slug, $("#save-as-slug-error"), null);
  $("#save-as-error").hidden = true;
  saveAsDialog.showModal();
}

$("#save-as-form")?.elements.title.addEventListener("input", (event) => {
  if (!slugEdited) event.target.form.elements.slug.value = slugify(event.target.value);
});
$("#save-as-form")?.elements.slug.addEventListener("input", () => (slugEdited = true));
if ($("#save-as-form")) explainRule($("#save-as-form").elements.slug);
$("#save-as-form")?.addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "save") return;
  event.preventDefault();
  const form = event.target;
  const slug = form.elements.slug.value;
  const settings = state.mapping || {};
  const body = {
    slug,
    title: form.elements.title.value,
    source_format: settings.source_format || config.sourceFormat,
    template: templateText(),
  };
  for (const key of ["description", "source_options", "output_kind", "timezone", "strict"]) {
    if (settings[key] !== undefined && settings[key] !== null) body[key] = settings[key];
  }
  fieldError(form.elements.slug, $("#save-as-slug-error"), null);
  try {
    await post("/api/mappings/", body);
  } catch (error) {
    const details = error.details || {};
    if (error.status === 409 || details.slug) {
      fieldError(form.elements.slug, $("#save-as-slug-error"), details.slug ? [].concat(details.slug) : [error.message]);
      return form.elements.slug.focus();
    }
    $("#save-as-error").textContent = [error.message, ...Object.entries(details).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`)].join(" — ");
    $("#save-as-error").hidden = false;
    return;
  }
  // The samples this page still holds go along, so the new mapping is tested like the old one.
  let copied = 0;
  for (const sample of state.samples) {
    const { name, payload: text, source_format: format, expected, ignore_paths: ignore, assertions } = sample;
    try {
      await post(`/api/mappings/${slug}/samples/`, { name, payload: text, source_format: format, expected, ignore_paths: ignore, assertions });
      copied += 1;
    } catch (error) {
      console.warn(`sample ${name} not copied`, error);
    }
  }
  localStorage.removeItem(storageKey);
  state.leaving = true;
  sessionStorage.setItem("fhirstudio:flash", `Saved as the new mapping “${body.title}” with ${copied} of ${state.samples.length} samples.`);
  window.location.assign(`/mappings/${encodeURIComponent(slug)}/`);
});

// --- the bottom panel's height: dragged (or arrow keys on the handle), kept in this browser -------------------------------

const BOTTOM_KEY = "fhirstudio:editor:bottom-height";
const layout = $(".editor-layout");
const resizer = $("#bottom-resizer");

function setBottomHeight(pixels, remember = false) {
  const most = Math.max(120, layout.clientHeight - 160); // the panes above keep room to work in
  const height = Math.round(Math.min(Math.max(pixels, 80), most));
  layout.style.setProperty("--bottom-height", `${height}px`);
  resizer.setAttribute("aria-valuenow", String(height));
  resizer.setAttribute("aria-valuemax", String(most));
  if (remember) localStorage.setItem(BOTTOM_KEY, String(height));
}

resizer.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  resizer.setPointerCapture(event.pointerId);
  const startY = event.clientY;
  const startHeight = $(".bottom").getBoundingClientRect().height;
  const move = (moved) => setBottomHeight(startHeight + startY - moved.clientY);
  resizer.addEventListener("pointermove", move);
  resizer.addEventListener("pointerup", (up) => {
    resizer.removeEventListener("pointermove", move);
    setBottomHeight(startHeight + startY - up.clientY, true);
  }, { once: true });
});
resizer.addEventListener("keydown", (event) => {
  const step = { ArrowUp: 24, ArrowDown: -24, PageUp: 120, PageDown: -120 }[event.key];
  if (!step) return;
  event.preventDefault();
  setBottomHeight($(".bottom").getBoundingClientRect().height + step, true);
});
if (localStorage.getItem(BOTTOM_KEY)) setBottomHeight(Number(localStorage.getItem(BOTTOM_KEY)));

// --- start --------------------------------------------------------------------------------------------------------------

const flash = sessionStorage.getItem("fhirstudio:flash");
if (flash) {
  sessionStorage.removeItem("fhirstudio:flash");
  toast(flash);
}

try {
  const [draft, samples, lastRun] = await Promise.all([loading.draft, loading.samples, loading.lastRun]);
  showDraft(draft);
  showSamples(samples);
  showRun(lastRun);
  preview(); // at once: the first render needs no debounce
  document.body.dataset.ready = "true";
} catch (error) {
  if (!(await checkGone(error))) {
    banner(`The editor could not load: ${error.message}`, [["Reload", () => window.location.reload()]], "bad");
    throw error;
  }
  document.body.dataset.ready = "true";
}
// Settings to copy if the mapping is deleted under us; not needed to start, so asked for afterwards.
get(`${base}/`).then((mapping) => (state.mapping = mapping)).catch(() => {});
