// The editor's live preview: the template rendered on the sample as the analyst types, the output (or the text that
// was not JSON) in its pane, and the problems listed and underlined where they happened, each a link to its place.
import { api, post } from "../api.js";
import { diagnosticCount, EditorView, forEachDiagnostic, goToLine, jsonView, setDiagnostics, showText } from "../codemirror.js";
import { $, h } from "../dom.js";
import { locate, prettyWithPaths } from "../json_paths.js";
import { whenShown } from "./when_shown.js";

export const MAIN = "template.j2"; // the mapping's own template, as the engine names it in errors
const LOCATE_AGAIN_IDLE_MS = 400; // issues located before are located again once typing pauses this long

// Sets up the preview on the page's shared `editor` (pages/editor.js); returns what the other parts call.
//
// Scheduling (issue 14): a key renders at once when no render is in flight (no debounce wait: the first key of a
// pause is on screen one round trip later); keys typed while one is in flight are coalesced into one render of the
// latest text, asked when it returns. A burst of keys makes one request per round trip, and only one request is ever
// in flight, so responses come back in order and an answer for older text never replaces newer output.
//
// Locating validation issues at their template lines takes a second, slower render. A keystroke's render brings the
// issues back without lines; those located before (same code, message and paths) keep the place their underline
// has moved to with the edits since, and are located again only when typing pauses, so a locating render does not
// compete with the next keystroke's. An issue not seen before is located at once.
export function livePreview(editor) {
  const { base, state, template, payload, output } = editor;
  let outcome = null; // built the first time its tab is shown: one editor less to build at start-up
  let inflight = null; // the AbortController of the render in flight, or null
  let locating = null; // the AbortController of the second, locating render, or null
  let pending = false; // an edit came while a render was in flight: render the latest text when it returns
  let started = false; // the page's first render was asked (pages/editor.js, once the draft and sample are shown)
  let listed = null; // the errors the problems list shows, as JSON
  let shownPretty = { text: "", where: new Map() }; // where each path of the shown output is (prettyWithPaths)
  let located = new Map(); // issue key → the error as the last locating render placed it
  let unplaced = 0; // issues on screen without a line that were not located before
  let locateLater = null; // the timer of the locating render that waits for a pause

  whenShown($("#outcome-tab"), () => {
    outcome ||= jsonView($("#outcome-tab"), { label: "OperationOutcome" });
    showText(outcome, JSON.stringify(state.lastResult?.issues ?? {}, null, 2));
  });

  state.scheduling = "leading edge, one trailing render"; // recorded by the latency test with its figures
  state.clientMs = []; // response received → preview painted, ms (the browser's share of each latency)

  function schedulePreview() {
    if (!started) return; // start-up fills the editors (each a change), then renders once when all is loaded
    if (inflight) pending = true;
    else preview();
  }

  async function preview() {
    started = true;
    if (state.gone) return;
    // Fast first: no locating on the keystroke's render; issues without a line are located by a second request.
    const body = { payload: payload.state.doc.toString(), template: editor.templateText(), validate: true, locate: false };
    if (state.sample?.source_format) body.source_format = state.sample.source_format;
    const key = JSON.stringify(body);
    if (key === state.previewKey) return; // already asked: an edit undone before its render was sent
    state.previewKey = key;
    const seq = ++state.renderSeq;
    const editedAt = state.lastEditAt;
    locating?.abort(); // its text is older now; this render's answer decides whether to locate again
    clearTimeout(locateLater);
    inflight?.abort(); // only at start-up or a forced render: keystrokes wait for the one in flight
    const controller = new AbortController();
    inflight = controller;
    let result;
    try {
      result = (await api("POST", `${base}/render`, { body, signal: controller.signal })).data;
    } catch (error) {
      if (error.name === "AbortError") return;
      if (await editor.checkGone(error)) return;
      state.previewKey = null; // the same text may be asked again
      $("#preview-state").textContent = `preview failed: ${error.message}`;
      return;
    } finally {
      if (inflight === controller) inflight = null;
      if (pending && !inflight) {
        pending = false;
        preview(); // asked before this answer is drawn, so the server works while the browser paints
      }
    }
    if (seq < state.shownSeq) return; // never replace newer output (one render in flight keeps them in order)
    const received = performance.now();
    state.shownSeq = seq;
    state.lastRenderedTemplate = body.template;
    showResult(result);
    const unlocated = (result.errors || []).some((error) => error.stage === "validate" && !error.line);
    if (unlocated && seq === state.renderSeq) {
      if (unplaced) locateIssues(body, seq);
      else locateLater = setTimeout(() => locateIssues(body, seq), LOCATE_AGAIN_IDLE_MS);
    }
    requestAnimationFrame(() => {
      const now = performance.now();
      if (editedAt) {
        state.latencies.push(now - editedAt);
        state.clientMs.push(now - received);
        $("#preview-state").textContent = `preview ${Math.round(now - editedAt)} ms`;
        $("#preview-state").title = "From your last keystroke to the output on screen";
      }
      document.body.dataset.previewSeq = String(seq);
    });
  }

  async function locateIssues(body, seq) {
    const controller = new AbortController();
    locating = controller;
    try {
      const answer = await post(`${base}/render`, { ...body, locate: true }, { signal: controller.signal });
      if (seq !== state.renderSeq || state.gone) return;
      located = new Map((answer.errors || []).filter((error) => error.stage === "validate").map((error) => [issueKey(error), error]));
      showProblems(answer.errors || [], prettyWithPaths(answer.output || {}));
    } catch (error) {
      if (error.name !== "AbortError") console.warn("locating issues failed", error);
    } finally {
      if (locating === controller) locating = null;
    }
  }

  function showResult(result) {
    state.lastResult = result;
    const pretty = result.output ? prettyWithPaths(result.output) : { text: "", where: new Map() };
    state.outputMarks = [];
    const note = $("#output-note");
    note.hidden = true;
    if (result.output) showText(output, pretty.text);
    else if (result.rendered) showFailedOutput(result);
    else showText(output, "// no output: see Problems");
    if (outcome && !$("#outcome-tab").hidden) showText(outcome, JSON.stringify(result.issues, null, 2));
    const timings = result.timings || {};
    $("#timings").textContent = ["parse", "render", "postprocess", "validate", "total"]
      .filter((stage) => stage in timings).map((stage) => `${stage} ${timings[stage].toFixed(1)} ms`).join(" · ");
    showProblems(result.errors || [], pretty);
  }

  // The output was not JSON: show what the template wrote, with the spot where parsing stopped marked and in view.
  function showFailedOutput(result) {
    const { text, start, offset, total_chars: total, truncated } = result.rendered;
    showText(output, text);
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

  function showProblems(answered, pretty) {
    shownPretty = pretty;
    const errors = answered.map(placeAsBefore);
    // Not placed: no line now, though the last locating render gave it one or has not seen it (some have no line).
    unplaced = errors.filter((error) => error.stage === "validate" && !error.line && located.get(issueKey(error))?.line !== null).length;
    const inTemplate = [];
    const inOutput = [];
    for (const error of errors) {
      const severity = severityOf(error);
      const message = `${error.code}: ${error.message}`;
      if (error.template === MAIN && error.line) {
        const line = template.state.doc.line(Math.min(error.line, template.state.doc.lines));
        const from = error.place?.from ?? (error.column ? Math.min(line.from + error.column - 1, line.to) : line.from);
        const to = error.place?.to ?? Math.max(line.to, from);
        inTemplate.push({ from, to, severity, message, source: error.stage, issue: issueKey(error), kept: Boolean(error.place) });
      }
      const spot = outputSpotOf(error);
      if (spot) inOutput.push({ from: spot.offset, to: output.state.doc.lineAt(Math.min(spot.offset, output.state.doc.length)).to, severity, message });
    }
    listProblems(errors);
    // Unchanged underlines (none, or all kept where the edits moved them) are not set again.
    const kept = inTemplate.every((mark) => mark.kept) && new Set(inTemplate.map((mark) => mark.issue)).size === inTemplate.length
      && inTemplate.length === diagnosticCount(template.state);
    if (!kept) template.dispatch(setDiagnostics(template.state, inTemplate));
    output.dispatch(setDiagnostics(output.state, [...(state.outputMarks || []), ...inOutput]));
  }

  // An issue answered without a line that the last locating render placed: at its underline's place now (moved with
  // the edits since), or at the same snippet line (a root edit moves no snippet line).
  function placeAsBefore(error) {
    if (error.line || error.stage !== "validate") return error;
    const before = located.get(issueKey(error));
    if (!before?.line) return error;
    if (before.template !== MAIN) return { ...error, template: before.template, line: before.line, column: before.column };
    let place = null;
    forEachDiagnostic(template.state, (mark, from, to) => {
      if (mark.issue === issueKey(error)) place = { from, to };
    });
    if (!place) return error; // its text was deleted: not placed, so located again at once
    return { ...error, template: MAIN, line: template.state.doc.lineAt(place.from).number, column: null, place };
  }

  // A keystroke in literal text mostly leaves the problems as they were: the list is built again only when they change
  // (a click finds the output spot in what is shown then, not in what was shown when the list was built).
  function listProblems(errors) {
    const key = JSON.stringify(errors, (name, value) => (name === "place" ? undefined : value));
    if (key === listed) return;
    listed = key;
    const items = errors.map((error, index) => {
      const severity = severityOf(error);
      const where = error.template ? `${error.template}${error.line ? `:${error.line}` : ""}` : (error.expression || [])[0] || error.stage;
      return h("li", { class: `problem ${severity}`, dataset: { index: String(index), code: error.code } },
        h("button", {
          type: "button",
          class: "link",
          onclick: () => jumpTo(error),
          title: error.template && error.template !== MAIN ? "Open the snippet" : "Go to the line",
        }, h("span", { class: "sev" }, severity), " ", h("code", {}, error.code), " ", error.message, " ", h("span", { class: "where" }, where)));
    });
    if (!errors.length) items.push(h("li", { class: "hint" }, "No problems: the output is valid FHIR R4."));
    $("#problems").replaceChildren(...items);
    $("#problem-count").textContent = String(errors.length);
  }

  function outputSpotOf(error) {
    for (const expression of error.expression || []) {
      const spot = locate(shownPretty.where, expression);
      if (spot) return spot;
    }
    return null;
  }

  function jumpTo(error) {
    if (error.template === MAIN && error.line) return goToLine(template, error.line, error.column);
    if (error.template && error.line) {
      window.open(`/library/snippets/${error.template}#L${error.line}`, "_blank");
      return;
    }
    const spot = outputSpotOf(error);
    if (spot) {
      $("#output-tab-button").click();
      output.dispatch({ selection: { anchor: spot.offset }, effects: EditorView.scrollIntoView(spot.offset, { y: "center" }) });
      output.focus();
    }
  }

  function abortPreview() {
    pending = false;
    clearTimeout(locateLater);
    inflight?.abort();
    locating?.abort();
  }

  return { preview, schedulePreview, abortPreview };
}

function issueKey(error) {
  return JSON.stringify([error.code, error.message, error.expression || []]);
}

function severityOf(error) {
  return error.severity === "warning" || error.severity === "information" ? error.severity === "warning" ? "warning" : "info" : "error";
}
