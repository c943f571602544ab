// Versions of a mapping: history (with the facades each version serves), side-by-side diff of any two versions or
// the draft, restore, the impact of a change on every stored sample (outputs compared by the API's /impact
// endpoint), and deleting the mapping (asked first; refused while a facade serves it).
import { MergeView } from "@codemirror/merge";
import { api, get, getAll, pageConfig, post } from "../lib/api.js";
import { EditorState, EditorView } from "../lib/codemirror.js";
import { confirmAction } from "../lib/confirm.js";
import { $, ago, h, toast } from "../lib/dom.js";
import { runVerdict } from "../lib/test_runs.js";
import { json } from "@codemirror/lang-json";
import { jinja } from "@codemirror/lang-jinja";
import { syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";

const config = pageConfig();
const base = `/api/mappings/${config.slug}`;
const texts = new Map(); // "draft" | number → template text
let versions = [];
let served = []; // the facade bindings this mapping serves (/api/bindings/?mapping=), each with its live deployment
let merge = null;

async function templateOf(side) {
  if (!texts.has(side)) {
    const text = side === "draft" ? get(`${base}/draft`).then((d) => d.template) : get(`${base}/versions/${side}`).then((v) => v.template);
    texts.set(side, text);
  }
  return texts.get(side);
}

const label = (side) => (side === "draft" ? "Draft (not yet published)" : `v${side} · ${versions.find((v) => v.number === side)?.message || ""}`);

// "served by demo/Patient": the bindings whose live deployment runs this version, and those still indexing it.
function servedBy(number) {
  const badges = [];
  for (const binding of served) {
    const where = `${binding.facade}/${binding.resource_type}`;
    const link = (text, kind, title) => h("a", { class: `badge ${kind} served`, href: `/facades/${binding.facade}/`, title }, text);
    if (binding.live?.version === number) badges.push(link(`served by ${where}`, "ok", `${binding.facade_title}: ${binding.resource_type} runs v${number}`));
    if (binding.pending?.version === number) badges.push(link(`indexing for ${where}`, "muted", "Serves once its index is built"));
  }
  return badges.length ? h("div", { class: "row served-by" }, badges) : null;
}

function renderVersions() {
  const list = $("#versions");
  list.replaceChildren(h("li", { class: "version draft", value: versions.length + 1 }, h("strong", {}, "Draft"), " ",
    h("span", { class: "hint" }, "what the editor saves")));
  for (const version of versions) {
    const run = version.last_test_run || version.test_run; // the newest run: a deploy may have run it since
    const verdict = runVerdict(run);
    list.append(h("li", { class: "version", value: version.number, dataset: { number: String(version.number) } },
      h("div", {}, h("strong", {}, `v${version.number}`), " ", version.message),
      h("div", { class: "hint" }, `${version.author || "?"} · ${ago(version.created_at)} · `, h("code", { title: "content hash" }, version.content_hash.slice(0, 10)),
        run ? h("span", { class: `badge ${verdict.kind}`, title: `at ${run.trigger || "publish"}` }, verdict.text) : null),
      servedBy(version.number),
      h("div", { class: "row" },
        h("button", { type: "button", class: "link", onclick: () => compare(version.number - 1 || "draft", version.number) }, "What changed"),
        config.canWrite ? h("button", { type: "button", class: "link restore", onclick: () => restore(version.number) }, `Restore v${version.number} into the draft`) : null)));
  }
}

function fillSelects() {
  const options = () => [h("option", { value: "draft" }, "Draft"), ...versions.map((v) => h("option", { value: String(v.number) }, `v${v.number}`))];
  $("#compare-from").replaceChildren(...options());
  $("#compare-to").replaceChildren(...options());
}

const sideOf = (value) => (value === "draft" ? "draft" : Number(value));

async function compare(from, to) {
  $("#compare-from").value = String(from);
  $("#compare-to").value = String(to);
  $("#impact-result").replaceChildren();
  const [a, b] = await Promise.all([templateOf(from), templateOf(to)]);
  $("#label-from").textContent = label(from);
  $("#label-to").textContent = label(to);
  merge?.destroy();
  const readOnly = [EditorView.editable.of(false), EditorState.readOnly.of(true), EditorView.lineWrapping, jinja({ base: json() }), syntaxHighlighting(defaultHighlightStyle)];
  merge = new MergeView({ a: { doc: a, extensions: readOnly }, b: { doc: b, extensions: readOnly }, parent: $("#diff"), collapseUnchanged: { margin: 3, minSize: 6 }, gutter: true });
  $("#compare-summary").textContent = a === b ? "The templates are the same." : "";
  await libraryDiffs(from, to);
}

// Snippets and lookup tables frozen into versions: the API's unified diffs (from `against` to `number`).
async function libraryDiffs(from, to) {
  const box = $("#library-diffs");
  box.replaceChildren();
  if (from === to) return;
  const reversed = to === "draft";
  const [number, against] = reversed ? [from, "draft"] : [to, from];
  const diff = await get(`${base}/versions/${number}/diff?against=${against}`);
  const parts = [...Object.entries(diff.snippets).map(([name, text]) => ["Snippet", name, text]),
    ...Object.entries(diff.lookup_tables).map(([name, text]) => ["Lookup table", name, text])];
  for (const [kind, name, text] of parts) {
    box.append(h("details", { open: true, class: "library-diff" }, h("summary", {}, `${kind} `, h("code", {}, name), " changed"),
      h("pre", { class: "diff unified" }, (reversed ? reverseUnified(text) : text).split("\n").map((line) =>
        h("span", { class: line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "" }, `${line}\n`)))));
  }
}

function reverseUnified(text) {
  return text.split("\n").map((line) => {
    if (line.startsWith("---")) return `+++${line.slice(3)}`;
    if (line.startsWith("+++")) return `---${line.slice(3)}`;
    if (line.startsWith("@@")) return line.replace(/-(\S+) \+(\S+)/, "-$2 +$1");
    if (line.startsWith("+")) return `-${line.slice(1)}`;
    if (line.startsWith("-")) return `+${line.slice(1)}`;
    return line;
  }).join("\n");
}

async function impact() {
  const from = sideOf($("#compare-from").value);
  const to = sideOf($("#compare-to").value);
  const box = $("#impact-result");
  box.replaceChildren(h("p", { class: "hint" }, "Running every sample on both sides…"));
  try {
    const result = await post(`${base}/impact`, { from, to });
    box.replaceChildren(h("h3", {}, `Impact on samples: ${result.changed} changed, ${result.unchanged} unchanged`),
      h("table", { class: "list compact", id: "impact-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Sample"), h("th", {}, "Output"), h("th", {}, "Difference"))),
        h("tbody", {}, result.cases.map((item) => h("tr", { dataset: { case: item.case } },
          h("td", {}, item.case),
          h("td", {}, h("span", { class: `badge ${item.changed ? "warn" : "muted"}` }, item.changed ? "changes" : "same"),
            !item.to_ok ? h("span", { class: "badge bad" }, "fails") : null),
          h("td", {}, item.diff ? h("pre", { class: "diff" }, item.diff) : "")))))); 
  } catch (error) {
    box.replaceChildren(h("p", { class: "error" }, error.message));
  }
}

async function restore(number) {
  if (!window.confirm(`Copy v${number} into the draft? The draft's current text is replaced (it stays in the version history only if it was published).`)) return;
  try {
    await api("POST", `${base}/versions/${number}/restore`);
    texts.delete("draft");
    toast(`v${number} restored into the draft.`);
    await compare(number, "draft");
    $("#compare-summary").replaceChildren(`v${number} is now the draft. `, h("a", { href: config.editorUrl }, "Open the editor"));
  } catch (error) {
    toast(error.message, "error");
  }
}

// Everything of the mapping goes with it (the API's action writes the audit row); a facade serving it refuses, and
// the refusal names the bindings. The editor's unsaved text kept in this browser goes too: a new mapping of the same
// slug must not open on it.
async function deleteMapping() {
  const count = versions.length === 1 ? "its version" : `its ${versions.length} versions`;
  const yes = await confirmAction({
    title: `Delete the mapping ${config.slug}?`,
    text: `${config.title}: its draft, ${versions.length ? `${count}, ` : ""}its samples and their test runs are deleted with it. This cannot be undone.`,
    ok: "Delete the mapping",
  });
  if (!yes) return;
  const result = $("#delete-result");
  try {
    await api("DELETE", `${base}/`);
  } catch (error) {
    result.textContent = `Not deleted: ${error.message}`;
    result.hidden = false;
    return;
  }
  window.localStorage.removeItem(`fhirstudio:draft:${config.slug}`);
  window.location.href = "/";
}

if (config.canWrite) $("#delete-mapping").addEventListener("click", deleteMapping);
$("#compare").addEventListener("change", () => compare(sideOf($("#compare-from").value), sideOf($("#compare-to").value)));
$("#impact").addEventListener("click", impact);

[versions, served] = await Promise.all([getAll(`${base}/versions/`), getAll(`/api/bindings/?mapping=${config.slug}&page_size=500`)]);
renderVersions();
fillSelects();
if (versions.length) await compare(versions[0].number, "draft");
else $("#compare-summary").textContent = "Nothing published yet: publish the draft from the editor first.";
document.body.dataset.ready = "true";
