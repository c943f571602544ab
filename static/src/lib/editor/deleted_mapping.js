// When the mapping is deleted under the open editor: say so, stop checking, keep the text, and offer to save it as a
// new mapping (with this mapping's settings and the samples the page still holds).
import { api, ApiError, post } from "../api.js";
import { setDiagnostics, setText } from "../codemirror.js";
import { $, h } from "../dom.js";
import { explainRule, slugify } from "../forms.js";
import { banner, fieldError } from "./messages.js";

// Sets up the deleted-mapping flow on the page's shared `editor` (pages/editor.js); returns what the other parts call.
export function deletedMapping(editor) {
  const { base, config, state, storageKey, template, output } = editor;

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
    editor.abortPreview();
    editor.keepLocally();
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
      template: editor.templateText(),
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

  return { checkGone, openSaveAs };
}
