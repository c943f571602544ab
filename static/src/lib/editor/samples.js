// The editor's samples and tests: the sample picker, the cases table with each sample's result in the last recorded
// run, running the samples, and the sample dialog (new, edit, delete).
import { api, ApiError, del, getAll, post } from "../api.js";
import { setText } from "../codemirror.js";
import { $, ago, h, toast } from "../dom.js";
import { explainRule } from "../forms.js";
import { runTarget, runVerdict } from "../test_runs.js";
import { ask, fieldError } from "./messages.js";

// Sets up the samples on the page's shared `editor` (pages/editor.js); returns what the other parts call.
export function samplesAndTests(editor) {
  const { base, config, state, payload } = editor;

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
      editor.payloadChanged();
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
      if (await editor.checkGone(error)) return null;
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
      if (await editor.checkGone(error)) return;
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
      if (error instanceof ApiError && error.status === 404 && await editor.checkGone(error)) return sampleDialog.close();
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

  return { showSamples, runTests, showRun };
}
