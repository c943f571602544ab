// Template completion from /api/editor/completions: filters, tags, snippets and their macros, lookup tables, HL7 v2
// segments/fields/components with their names, and FHIR element names for the resource being written.
import { get } from "./api.js";

const TAGS = ["for", "endfor", "if", "elif", "else", "endif", "set", "endset", "macro", "endmacro", "call", "endcall",
  "import", "from", "include", "filter", "endfilter", "with", "endwith", "raw", "endraw"];
const VARIABLES = [
  { label: "msg", detail: "the parsed source payload" },
  { label: "vars", detail: "deployment variables (base URLs, system URIs)" },
  { label: "now", detail: "the run's time, FHIR instant" },
  { label: "source_format", detail: "hl7v2, xml, json, ndjson, csv or fhir" },
  { label: "loop", detail: "inside a for: index, first, last…" },
];

// The studio's FHIR helpers come first; Jinja's generic built-ins (center, filesizeformat, …) after them, marked.
const SECTIONS = {
  studio: { name: "FHIR helpers", rank: 0 },
  jinja: { name: "Jinja built-in", rank: 1 },
};

function helper(item) {
  const builtin = item.origin === "jinja";
  return {
    label: item.name,
    type: builtin ? "text" : "function",
    detail: builtin ? `${item.signature} · Jinja built-in` : item.signature,
    info: item.doc || undefined,
    section: SECTIONS[item.origin] || SECTIONS.studio,
    boost: builtin ? -1 : 1,
  };
}

export function completionSource(config) {
  let library = null;
  const elements = new Map();
  const fields = new Map();
  let extensions = null; // known extension definitions, read once the editor is inside extension("
  const load = () => (library ||= get("/api/editor/completions").catch(() => ({})));
  const fieldsOf = (segment) => {
    if (!fields.has(segment)) {
      fields.set(segment, get(`/api/editor/completions?part=hl7v2&segments=${encodeURIComponent(segment)}`)
        .then((answer) => answer.hl7v2?.fields?.[segment] || []).catch(() => []));
    }
    return fields.get(segment);
  };
  const elementsOf = (type) => {
    if (!elements.has(type)) {
      elements.set(type, get(`/api/editor/completions?part=fhir&resource=${encodeURIComponent(type)}`)
        .then((answer) => answer.fhir?.elements?.[type] || []).catch(() => []));
    }
    return elements.get(type);
  };

  return async (context) => {
    const line = context.state.doc.lineAt(context.pos);
    const before = line.text.slice(0, context.pos - line.from);
    const data = await load();
    const result = (match, options, validFor = /^[\w./-]*$/) =>
      options.length ? { from: context.pos - match.length, options, validFor } : null;
    let match;

    if ((match = before.match(/\|\s*(\w*)$/))) {
      return result(match[1], (data.filters || []).map(helper));
    }
    if ((match = before.match(/\{%-?\s*(\w*)$/))) {
      return result(match[1], TAGS.map((tag) => ({ label: tag, type: "keyword" })));
    }
    if ((match = before.match(/(?:import|from|include)\s+["']([\w./-]*)$/))) {
      return result(match[1], (data.snippets || []).map((snippet) => ({ label: snippet.name, type: "namespace" })));
    }
    if ((match = before.match(/translate(?:_code)?\(\s*["']([\w.-]*)$/))) {
      return result(match[1], (data.lookup_tables || []).map((table) => ({
        label: table.name, type: "constant", info: table.description || undefined,
      })));
    }
    if ((match = before.match(/\bextension\(\s*["']([^"']*)$/))) {
      extensions ||= get("/api/editor/completions?part=extensions").then((answer) => answer.extensions || []).catch(() => []);
      return result(match[1], (await extensions).map((known) => ({
        label: known.url, type: "constant", detail: known.types.length ? known.types.join(" | ") : "complex",
        info: known.name || undefined,
      })), /^[^"']*$/);
    }
    const segments = data.hl7v2?.segments || [];
    if ((match = before.match(/\bmsg\.([A-Z][A-Z0-9]{2})\[(\d+)\]\[(\d*)$/))) {
      const field = (await fieldsOf(match[1])).find((f) => String(f.position) === match[2]);
      return result(match[3], (field?.components || []).map((component) => ({
        label: `${component.position}]`, type: "property", detail: component.name, boost: -component.position,
      })), /^[\d\]]*$/);
    }
    if ((match = before.match(/\bmsg\.([A-Z][A-Z0-9]{2})\[(\d*)$/))) {
      return result(match[2], (await fieldsOf(match[1])).map((field) => ({
        label: `${field.position}]`, type: "property", detail: `${match[1]}-${field.position} ${field.name}`,
        info: `${field.datatype}${field.repeats ? ", repeats" : ""}${field.table ? `, table ${field.table}` : ""}`,
        boost: -Math.min(field.position, 99), // spec order, not 1, 10, 11, …
      })), /^[\d\]]*$/);
    }
    if (config.sourceFormat === "hl7v2" && (match = before.match(/\bmsg\.([A-Z0-9]*)$/))) {
      return result(match[1], segments.map((segment) => ({
        label: segment.id, type: "class", detail: segment.description,
      })));
    }
    if ((match = before.match(/\b(\w+)\.(\w*)$/))) {
      const alias = importedAs(context.state.doc.toString()).get(match[1]);
      const snippet = alias && (data.snippets || []).find((candidate) => candidate.name === alias);
      if (snippet) {
        return result(match[2], snippet.macros.map((macro) => ({
          label: macro.name, type: "function", detail: `(${macro.args.join(", ")})`, info: macro.doc || undefined,
          apply: `${macro.name}(`,
        })));
      }
    }
    if (inExpression(before) && (match = before.match(/(?:^|[^\w.])(\w*)$/))) {
      const aliases = [...importedAs(context.state.doc.toString()).keys()].map((name) => ({ label: name, type: "namespace" }));
      const globals = (data.globals || []).map(helper);
      if (match[1] || context.explicit) return result(match[1], [...VARIABLES.map((v) => ({ ...v, type: "variable" })), ...aliases, ...globals]);
    }
    if ((match = before.match(/(?:^|[{,]\s*)"(\w*)$/)) && !inExpression(before)) {
      const type = resourceTypeAt(context.state.doc.sliceString(0, context.pos));
      if (!type) return null;
      const names = await elementsOf(type);
      return result(match[1], names.map((element) => ({
        label: element.name, type: "property", detail: [element.type, element.cardinality].filter(Boolean).join(" "),
        apply: `${element.name}"`,
      })));
    }
    return null;
  };
}

function importedAs(text) {
  const aliases = new Map();
  for (const match of text.matchAll(/\{%-?\s*import\s+["']([^"']+)["']\s+as\s+(\w+)/g)) aliases.set(match[2], match[1]);
  return aliases;
}

function inExpression(before) {
  const open = Math.max(before.lastIndexOf("{{"), before.lastIndexOf("{%"));
  const close = Math.max(before.lastIndexOf("}}"), before.lastIndexOf("%}"));
  return open > close;
}

function resourceTypeAt(text) {
  let type = null;
  for (const match of text.matchAll(/"resourceType"\s*:\s*"(\w+)"/g)) type = match[1];
  return type;
}
