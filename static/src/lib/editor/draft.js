// The editor's draft: the saved/unsaved badge, unsaved text kept in this browser and restored, save (asking first
// for an empty or uncompilable template) with a merge view when someone else saved in between.
import { api, ApiError, get, post } from "../api.js";
import { EditorView, setText } from "../codemirror.js";
import { $, ago, toast } from "../dom.js";
import { ask, banner } from "./messages.js";
import { MAIN } from "./preview.js";

// Sets up the draft on the page's shared `editor` (pages/editor.js); returns what the other parts call.
export function draftAndSave(editor) {
  const { base, config, state, storageKey, template, payload } = editor;

  function markDirty() {
    const dirty = editor.templateText() !== state.savedText;
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
    localStorage.setItem(storageKey, JSON.stringify({ text: editor.templateText(), etag: state.etag, at: new Date().toISOString() }));
  }

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
    if (state.gone) return editor.openSaveAs();
    const text = editor.templateText();
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
      if (data.test_run) editor.showRun(await get(`${base}/test-runs/${data.test_run.id}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) return conflict(text);
      if (await editor.checkGone(error)) return;
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

  window.addEventListener("beforeunload", (event) => {
    if (editor.templateText() !== state.savedText && !state.leaving) event.preventDefault(); // the text is in local storage too
  });

  return { markDirty, keepLocally, showDraft, save };
}
