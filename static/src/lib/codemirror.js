// The studio's CodeMirror 6 set-ups: one for templates (Jinja over JSON), one for payloads, one read-only JSON view.
import { autocompletion, closeBrackets } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { jinja } from "@codemirror/lang-jinja";
import { json } from "@codemirror/lang-json";
import { xml } from "@codemirror/lang-xml";
import {
  bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput, StreamLanguage, syntaxHighlighting,
} from "@codemirror/language";
import { diagnosticCount, forEachDiagnostic, lintGutter, lintKeymap, setDiagnostics } from "@codemirror/lint";
import { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, Transaction } from "@codemirror/state";
import { tags } from "@lezer/highlight";
import {
  crosshairCursor, drawSelection, dropCursor, EditorView, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, keymap, lineNumbers, rectangularSelection,
} from "@codemirror/view";

export { diagnosticCount, EditorState, EditorView, forEachDiagnostic, setDiagnostics };

// HL7 v2 (ER7): segment ids and the separators stand out, so fields are countable by eye.
const hl7v2 = StreamLanguage.define({
  name: "hl7v2",
  token(stream) {
    if (stream.sol() && stream.match(/^[A-Z][A-Z0-9]{2}/)) return "keyword";
    if (stream.match(/^[|]/)) return "separator";
    if (stream.match(/^[\^~&]/)) return "operator";
    if (stream.match(/^\\[A-Z.0-9]*\\/)) return "string";
    stream.match(/^[^|^~&\\]+/) || stream.next();
    return null;
  },
  tokenTable: { separator: tags.separator },
});

// Undo history in a compartment, so loading a document can start it afresh (see setText).
const undoHistory = new Compartment();

function common({ readOnly = false, onChange, keys = [] }) {
  return [
    lineNumbers(),
    highlightActiveLineGutter(),
    highlightSpecialChars(),
    undoHistory.of(history()),
    foldGutter(),
    drawSelection(),
    dropCursor(),
    EditorState.allowMultipleSelections.of(true),
    indentOnInput(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
    bracketMatching(),
    closeBrackets(),
    rectangularSelection(),
    crosshairCursor(),
    highlightActiveLine(),
    highlightSelectionMatches(),
    search({ top: true }),
    lintGutter(),
    keymap.of([...keys, indentWithTab, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap, ...lintKeymap]),
    EditorView.lineWrapping,
    EditorState.readOnly.of(readOnly),
    EditorView.updateListener.of((update) => {
      if (update.docChanged && onChange) onChange(update);
    }),
  ];
}

function saveKey(onSave) {
  return onSave ? [{ key: "Mod-s", preventDefault: true, run: () => (onSave(), true) }] : [];
}

export function templateEditor(parent, { doc, onChange, onSave, completion, readOnly = false, label }) {
  return new EditorView({
    parent,
    doc,
    extensions: [
      common({ onChange, readOnly, keys: saveKey(onSave) }),
      jinja({ base: json() }),
      autocompletion({ override: completion ? [completion] : undefined, activateOnTyping: true, maxRenderedOptions: 80 }),
      EditorView.contentAttributes.of({ "aria-label": label || "Template" }),
    ],
  });
}

export function languageFor(format) {
  if (format === "hl7v2") return hl7v2;
  if (format === "xml") return xml();
  if (format === "json" || format === "fhir" || format === "ndjson") return json();
  return [];
}

export function payloadEditor(parent, { doc, format, onChange, onSave, label }) {
  return new EditorView({
    parent,
    doc,
    extensions: [
      common({ onChange, keys: saveKey(onSave) }),
      languageFor(format),
      EditorView.contentAttributes.of({ "aria-label": label || "Sample payload" }),
    ],
  });
}

export function jsonView(parent, { label } = {}) {
  return new EditorView({
    parent,
    doc: "",
    extensions: [common({ readOnly: true }), json(), EditorView.contentAttributes.of({ "aria-label": label || "Output" })],
  });
}

// Replace the whole text: loading a document (a draft, a sample, a revision), not an edit. It stays out of the undo
// history, and the history starts afresh, so one Ctrl-Z on a freshly opened editor cannot empty it (a save would then
// store the empty text) and no earlier edit is undone into the new text.
export function setText(view, text) {
  if (view.state.doc.toString() === text) return;
  view.dispatch({
    changes: { from: 0, to: view.state.doc.length, insert: text },
    annotations: Transaction.addToHistory.of(false),
    effects: undoHistory.reconfigure([]),
  });
  view.dispatch({ effects: undoHistory.reconfigure(history()) });
}

// Show new text in a read-only view (the preview's output): only the span that differs from what is shown is
// replaced, so CodeMirror re-parses and redraws only there. A keystroke changes a line or two of the ADT demo's 17 KB
// output; replacing all of it re-parsed the whole JSON on every preview (~20 ms of the browser's share, issue 14).
export function showText(view, text) {
  const shown = view.state.doc.toString();
  if (shown === text) return;
  const shorter = Math.min(shown.length, text.length);
  let from = 0;
  while (from < shorter && shown.charCodeAt(from) === text.charCodeAt(from)) from++;
  let same = 0; // characters equal at the end, not overlapping the equal start
  while (same < shorter - from && shown.charCodeAt(shown.length - 1 - same) === text.charCodeAt(text.length - 1 - same)) same++;
  view.dispatch({
    changes: { from, to: shown.length - same, insert: text.slice(from, text.length - same) },
    annotations: Transaction.addToHistory.of(false),
  });
}

// Select a 1-based line and scroll it into view (clicking a problem jumps to where it happened).
export function goToLine(view, line, column = null) {
  const target = view.state.doc.line(Math.min(Math.max(line, 1), view.state.doc.lines));
  const anchor = column ? Math.min(target.from + column - 1, target.to) : target.from;
  view.dispatch({ selection: { anchor, head: column ? anchor : target.to }, effects: EditorView.scrollIntoView(anchor, { y: "center" }) });
  view.focus();
}
