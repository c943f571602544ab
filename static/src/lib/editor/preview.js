// The editor's live preview: the template rendered on the sample as the analyst types, the output (or the text that
// was not JSON) in its pane, and the problems listed and underlined where they happened, each a link to its place.
import { api, post } from "../api.js";
import { EditorView, goToLine, jsonView, setDiagnostics, setText } from "../codemirror.js";
import { $, debounce, h } from "../dom.js";
import { locate, prettyWithPaths } from "../json_paths.js";
import { whenShown } from "./when_shown.js";

export const MAIN = "template.j2"; // the mapping's own template, as the engine names it in errors
const PREVIEW_DEBOUNCE_MS = 40; // long enough to skip renders inside a burst of keys, short enough to feel live

// Sets up the preview on the page's shared `editor` (pages/editor.js); returns what the other parts call.
export function livePreview(editor) {
  const { base, state, template, payload, output } = editor;
  let outcome = null; // built the first time its tab is shown: one editor less to build at start-up
  let inflight = null;

  whenShown($("#outcome-tab"), () => {
    outcome ||= jsonView($("#outcome-tab"), { label: "OperationOutcome" });
    setText(outcome, JSON.stringify(state.lastResult?.issues ?? {}, null, 2));
  });

  state.debounceMs = PREVIEW_DEBOUNCE_MS;
  const schedulePreview = debounce(preview, PREVIEW_DEBOUNCE_MS);

  async function preview() {
    if (state.gone) return;
    // Fast first: no locating on the keystroke's render; issues without a line are located by a second request.
    const body = { payload: payload.state.doc.toString(), template: editor.templateText(), validate: true, locate: false };
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
      if (await editor.checkGone(error)) return;
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

  return { preview, schedulePreview, abortPreview: () => inflight?.abort() };
}

function severityOf(error) {
  return error.severity === "warning" || error.severity === "information" ? error.severity === "warning" ? "warning" : "info" : "error";
}
