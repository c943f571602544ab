// The editor's publish dialog: the samples run on the saved draft first, and a draft that fails some is published only
// when the analyst says so again.
import { post } from "../api.js";
import { $, h, toast } from "../dom.js";
import { runVerdict } from "../test_runs.js";
import { ask, banner } from "./messages.js";

// Sets up publishing on the page's shared `editor` (pages/editor.js).
export function publishing(editor) {
  const { base, config, state } = editor;

  // The draft's own test result: the last run when it ran on this very revision, else a run now.
  async function draftRun() {
    const run = state.lastRun;
    if (run && !run.version && run.draft_revision === state.revision && run.results) return run;
    return editor.runTests();
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
    if (editor.markDirty()) return toast("Save the draft first: a version is made from the saved draft.", "error");
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
      if (version.test_run) editor.showRun(version.test_run);
      banner(`Published version ${version.number}.`, [["Compare versions", () => (window.location.href = config.historyUrl)]]);
    } catch (error) {
      if (await editor.checkGone(error)) return publishDialog.close();
      const where = (error.details?.errors || []).map((item) => `${item.template || ""}:${item.line || "?"} ${item.message}`);
      $("#publish-error").textContent = [error.message, ...where].join(" — ");
      $("#publish-error").hidden = false;
    }
  });
}
