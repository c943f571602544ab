// The editor's source tree: the sample payload as a tree of nodes (loaded when its tab is shown), each with a button
// that inserts its expression at the template's cursor.
import { post } from "../api.js";
import { $, debounce, h, toast } from "../dom.js";
import { relativeExpression } from "../loop_scope.js";
import { whenShown } from "./when_shown.js";

// Sets up the tree on the page's shared `editor` (pages/editor.js); returns what the other parts call.
export function sourceTree(editor) {
  const { base, config, state, template, payload } = editor;
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
      if (await editor.checkGone(error)) return;
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

  return { scheduleTree };
}
