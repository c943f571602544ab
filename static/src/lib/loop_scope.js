// Source-tree insertion relative to the loops open at the template's cursor. The source tree gives every node an
// absolute expression (`msg[0].birth_date`, `msg.all("OBX")[2][5][1]`, `msg.component.all("entry")[1].act`); inside
// `{% for row in msg %}` the analyst means "this row's birth_date", so the expression is rewritten against the
// innermost loop that iterates over the node's container (`row.birth_date`), or left absolute with a note saying why.
//
// Pure functions over the template text before the cursor: no DOM, no imports (the browser tests import this file
// as it is). Two halves: scopeAt() reads the open blocks ({% for %}, {% set %}, {% macro %} …) before the cursor;
// canonical paths make `msg.PID` and `msg.all("PID")[0]`, or `.entry` and `.all("entry")[0]`, comparable, following
// the engine's lookup rules (mappings/engine/hl7v2.py, xmlsource.py; JSON, NDJSON, CSV and FHIR are plain data).

// --- the open blocks before the cursor ---------------------------------------------------------------------------------

const SCOPE_TAGS = new Set(["for", "macro", "call", "with", "filter", "block", "if", "set"]);
const END_TAGS = {
  endfor: "for", endmacro: "macro", endcall: "call", endwith: "with", endfilter: "filter", endblock: "block",
  endif: "if", endset: "set",
};

// The tags of a template, in order, without comments, {{ … }} and {% raw %} blocks; an unfinished tag at the end
// (the cursor is inside it) is left out.
function* tags(text) {
  const opener = /\{([%#{])/g;
  let match;
  while ((match = opener.exec(text))) {
    const kind = match[1];
    const start = match.index + 2;
    const close = kind === "#" ? "#}" : kind === "%" ? "%}" : "}}";
    const end = kind === "#" ? text.indexOf(close, start) : closingOutsideStrings(text, start, close);
    if (end < 0) return;
    opener.lastIndex = end + 2;
    if (kind !== "%") continue;
    const body = text.slice(start, end).replace(/^[-+]/, "").replace(/[-+]$/, "").trim();
    if (/^raw\b/.test(body)) {
      const endraw = /\{%[-+]?\s*endraw\s*[-+]?%\}/g;
      endraw.lastIndex = opener.lastIndex;
      const found = endraw.exec(text);
      if (!found) return;
      opener.lastIndex = found.index + found[0].length;
      continue;
    }
    yield body;
  }
}

function closingOutsideStrings(text, from, close) {
  let quote = null;
  for (let i = from; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === "\\") i++;
      else if (char === quote) quote = null;
    } else if (char === '"' || char === "'") quote = char;
    else if (text.startsWith(close, i)) return i;
  }
  return -1;
}

// Split at a top-level separator (outside brackets and strings): `msg | sort`, `row in msg if row.x`.
function topLevelIndex(text, test) {
  let depth = 0;
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === "\\") i++;
      else if (char === quote) quote = null;
      continue;
    }
    if (char === '"' || char === "'") quote = char;
    else if ("([{".includes(char)) depth++;
    else if (")]}".includes(char)) depth--;
    else if (depth === 0 && test(text, i)) return i;
  }
  return -1;
}

const wordAt = (word) => (text, i) => text.startsWith(word, i) && /\s/.test(text[i - 1] || "") && /\s/.test(text[i + word.length] || "");

// The frames open at the end of `textBefore`, outermost first: {kind, bindings: [{name, value}], …}; for-frames also
// carry `targets` and `iterable`, and `active` turns false in their {% else %} branch (the loop variable is unbound).
export function scopeAt(textBefore) {
  const root = { kind: "root", bindings: [] };
  const stack = [root];
  const innermostScope = () => [...stack].reverse().find((frame) => frame.kind !== "if" && frame.kind !== "set");
  for (const tag of tags(textBefore)) {
    const name = (tag.match(/^\w+/) || [""])[0];
    const rest = tag.slice(name.length).trim();
    if (name === "for") {
      const inAt = topLevelIndex(rest, wordAt("in"));
      if (inAt < 0) continue;
      const targets = rest.slice(0, inAt).split(",").map((target) => target.trim().replace(/^\(|\)$/g, "").trim()).filter(Boolean);
      let iterable = rest.slice(inAt + 2).trim().replace(/\s+recursive$/, "");
      const condition = topLevelIndex(iterable, wordAt("if"));
      if (condition >= 0) iterable = iterable.slice(0, condition).trim();
      stack.push({ kind: "for", targets, iterable, active: true, bindings: [] });
    } else if (name === "set") {
      const equals = topLevelIndex(rest, (text, i) => text[i] === "=" && text[i + 1] !== "=" && !"!<>=".includes(text[i - 1]));
      if (equals < 0) {
        stack.push({ kind: "set", bindings: [] }); // {% set x %}…{% endset %}: text, bound when the block ends
        stack.at(-1).pending = rest.split("|")[0].trim();
        continue;
      }
      for (const target of rest.slice(0, equals).split(",").map((part) => part.trim())) {
        if (/^\w+$/.test(target)) innermostScope().bindings.push({ name: target, value: rest.slice(equals + 1).trim() });
      }
    } else if (name === "with") {
      const frame = { kind: "with", bindings: [] };
      for (const part of splitTopLevel(rest, ",")) {
        const equals = part.indexOf("=");
        if (equals > 0) frame.bindings.push({ name: part.slice(0, equals).trim(), value: part.slice(equals + 1).trim() });
      }
      stack.push(frame);
    } else if (name === "macro" || name === "call") {
      const frame = { kind: name, bindings: [] };
      const params = tag.match(/\(([^)]*)\)/);
      for (const part of params ? splitTopLevel(params[1], ",") : []) {
        const param = part.split("=")[0].trim();
        if (/^\w+$/.test(param)) frame.bindings.push({ name: param, value: null });
      }
      stack.push(frame);
    } else if (name === "else") {
      const top = stack.at(-1);
      if (top.kind === "for") top.active = false;
    } else if (SCOPE_TAGS.has(name)) {
      stack.push({ kind: name, bindings: [] });
    } else if (END_TAGS[name]) {
      const kind = END_TAGS[name];
      const at = stack.map((frame) => frame.kind).lastIndexOf(kind);
      if (at > 0) {
        const [closed] = stack.splice(at);
        if (closed.pending && /^\w+$/.test(closed.pending)) innermostScope().bindings.push({ name: closed.pending, value: null });
      }
    } else if ((name === "import" || name === "from") && / as (\w+)\s*$/.test(rest)) {
      innermostScope().bindings.push({ name: rest.match(/ as (\w+)\s*$/)[1], value: null });
    }
  }
  return stack;
}

function splitTopLevel(text, separator) {
  const parts = [];
  let rest = text;
  for (let at = topLevelIndex(rest, (t, i) => t[i] === separator); at >= 0; at = topLevelIndex(rest, (t, i) => t[i] === separator)) {
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

// --- expressions as steps -----------------------------------------------------------------------------------------------

// `msg.all("OBX")[2][5]` → {root: "msg", steps: [{t: "call", name: "all", args: ["OBX"]}, {t: "index", v: 2}, …]},
// each step with the text it was written as. Null for anything that is not a plain path (an operator, a filter).
export function parsePath(source) {
  const text = source.trim();
  const head = text.match(/^[A-Za-z_]\w*/);
  if (!head) return null;
  const steps = [];
  let i = head[0].length;
  while (i < text.length) {
    const start = i;
    if (text[i] === ".") {
      const name = text.slice(i + 1).match(/^[A-Za-z_]\w*/);
      if (!name) return null;
      i += 1 + name[0].length;
      if (text[i] === "(") {
        const close = matching(text, i, "(", ")");
        if (close < 0) return null;
        const args = splitTopLevel(text.slice(i + 1, close), ",").map((arg) => arg.trim()).filter(Boolean).map(literal);
        i = close + 1;
        steps.push({ t: "call", name: name[0], args, text: text.slice(start, i) });
      } else steps.push({ t: "name", name: name[0], text: text.slice(start, i) });
    } else if (text[i] === "[") {
      const close = matching(text, i, "[", "]");
      if (close < 0) return null;
      const inner = text.slice(i + 1, close).trim();
      i = close + 1;
      const value = literal(inner);
      if (typeof value === "number" && Number.isInteger(value)) steps.push({ t: "index", v: value, text: text.slice(start, i) });
      else if (typeof value === "string") steps.push({ t: "key", v: value, text: text.slice(start, i) });
      else if (topLevelIndex(inner, (t, at) => t[at] === ":") >= 0) steps.push({ t: "slice", text: text.slice(start, i) });
      else steps.push({ t: "opaque", text: text.slice(start, i) });
    } else if (/\s/.test(text[i])) {
      return null; // `msg x`: not one path
    } else return null;
  }
  return { root: head[0], steps };
}

function matching(text, from, open, close) {
  let depth = 0;
  let quote = null;
  for (let i = from; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === "\\") i++;
      else if (char === quote) quote = null;
    } else if (char === '"' || char === "'") quote = char;
    else if (char === open) depth++;
    else if (char === close && --depth === 0) return i;
  }
  return -1;
}

// A Jinja literal as a value: integers and quoted strings (backslash escapes as in Python); anything else undefined.
function literal(text) {
  if (/^-?\d+$/.test(text)) return Number(text);
  const quoted = text.match(/^(["'])([\s\S]*)\1$/);
  if (!quoted) return undefined;
  const escapes = { n: "\n", r: "\r", t: "\t", "\\": "\\", '"': '"', "'": "'" };
  return quoted[2].replace(/\\(.)/g, (_, char) => escapes[char] ?? `\\${char}`);
}

// --- canonical paths, per source format ---------------------------------------------------------------------------------
// A canonical step is {k, v, text}: k a kind, v a value ("*" in a loop pattern: any), text what to write for it. One
// written step can become two canonical ones (`msg.PID` = seg PID + index 0), the second with empty text.

const HL7_SEGMENT = /^[A-Z0-9]{3}$/; // as the engine looks segments up (mappings/engine/hl7v2.py)
const XML_API = new Set(["all", "attr", "attrs", "by_template", "exists", "find_all", "first", "parent", "tag", "xml", "xpath"]);

function opaque(step) {
  return { k: "opaque", v: step.text, text: step.text };
}

// One written step on a value of `type` → [canonical steps, the new type]; type null: unknown (nothing iterates it).
const FORMATS = {
  hl7v2(step, type) {
    const segmentName = step.t === "name" ? step.name : step.t === "key" ? step.v : null;
    if ((type === "message" || type === "group") && segmentName && HL7_SEGMENT.test(segmentName)) {
      return [[{ k: "seg", v: segmentName, text: step.text }, { k: "index", v: 0, text: "" }], "segment"];
    }
    if ((type === "message" || type === "group") && step.t === "call" && step.name === "all" && typeof step.args[0] === "string") {
      return [[{ k: "seg", v: step.args[0], text: step.text }], "segments"];
    }
    if (type === "message" && step.t === "name" && step.name === "segments") return [[{ k: "seg", v: "*", text: step.text }], "segments"];
    if (type === "segments" && step.t === "index") return [[{ k: "index", v: step.v, text: step.text }], "segment"];
    if (type === "segment" && step.t === "index") return [[{ k: "pos", v: step.v, text: step.text }], "field"];
    if (type === "field" && step.t === "call" && step.name === "rep" && Number.isInteger(Number(step.args[0]))) {
      return [[{ k: "rep", v: Number(step.args[0]), text: step.text }], "repetition"];
    }
    if (type === "field" && step.t === "index") {
      // msg.PID[3][1] is the first repetition's component 1, the same as msg.PID[3].rep(1)[1]
      return [[{ k: "rep", v: 1, text: "" }, { k: "pos", v: step.v, text: step.text }], "component"];
    }
    if (type === "repetition" && step.t === "index") return [[{ k: "pos", v: step.v, text: step.text }], "component"];
    if (type === "component" && step.t === "index") return [[{ k: "pos", v: step.v, text: step.text }], "subcomponent"];
    return [[opaque(step)], null];
  },
  xml(step, type) {
    const name = step.t === "name" && !XML_API.has(step.name) ? step.name : step.t === "key" ? step.v : null;
    if (type === "node" && name) return [[{ k: "tag", v: name, text: step.text }, { k: "index", v: 0, text: "" }], "node"];
    if (type === "node" && step.t === "call" && step.name === "all") {
      const tag = typeof step.args[0] === "string" ? step.args[0] : "*";
      return [[{ k: "tag", v: tag, text: step.text }], "list"];
    }
    if (type === "list" && step.t === "index") return [[{ k: "index", v: step.v, text: step.text }], "node"];
    if (type === "node" && step.t === "call" && (step.name === "first" || step.name === "section" || step.name === "parent")) {
      return [[opaque(step)], "node"];
    }
    return [[opaque(step)], null];
  },
  json(step) {
    if (step.t === "name") return [[{ k: "key", v: step.name, text: step.text }], "data"];
    if (step.t === "key") return [[{ k: "key", v: step.v, text: step.text }], "data"];
    if (step.t === "index") return [[{ k: "index", v: step.v, text: step.text }], "data"];
    return [[opaque(step)], null];
  },
};

const ROOT_TYPE = { hl7v2: "message", xml: "node", json: "data" };

// What iterating a value of `type` gives, as wildcard steps: the loop variable stands for these after the iterable.
function itemSteps(format, type) {
  if (format === "hl7v2") {
    return {
      message: [{ k: "seg", v: "*" }, { k: "index", v: "*" }], group: [{ k: "seg", v: "*" }, { k: "index", v: "*" }],
      segments: [{ k: "index", v: "*" }], segment: [{ k: "pos", v: "*" }], field: [{ k: "rep", v: "*" }],
      repetition: [{ k: "pos", v: "*" }], component: [{ k: "pos", v: "*" }],
    }[type] || null;
  }
  if (format === "xml") return { node: [{ k: "tag", v: "*" }, { k: "index", v: "*" }], list: [{ k: "index", v: "*" }] }[type] || null;
  return type === "data" ? [{ k: "index", v: "*" }] : null;
}

const ITEM_TYPE = {
  hl7v2: { message: "segment", group: "segment", segments: "segment", segment: "field", field: "repetition", repetition: "component", component: "subcomponent" },
  xml: { node: "node", list: "node" },
  json: { data: "data" },
};

function formatFamily(sourceFormat) {
  return sourceFormat === "hl7v2" || sourceFormat === "xml" ? sourceFormat : "json";
}

// An expression's canonical path from `msg`, resolving loop variables and {% set %} names through `lookup`:
// {steps, type}, or null when it does not lead back to msg.
// Filters that keep the items of what they filter (and so what a loop variable over them stands for).
const KEEPS_ITEMS = new Set(["list", "sort", "reverse", "unique", "select", "reject", "selectattr", "rejectattr"]);

function canonical(text, family, lookup) {
  const [written, ...filters] = splitTopLevel(text, "|");
  if (!filters.every((filter) => KEEPS_ITEMS.has((filter.match(/^\s*(\w+)/) || [])[1]))) return null;
  const path = parsePath(written.replace(/^\s*\((.*)\)\s*$/s, "$1"));
  if (!path) return null;
  const start = lookup(path.root);
  if (!start) return null;
  let { steps, type } = start;
  steps = [...steps];
  const pathSteps = [...path.steps];
  while (pathSteps.length && pathSteps.at(-1).t === "slice") pathSteps.pop(); // msg[1:] iterates the same items
  for (const step of pathSteps) {
    if (step.t === "slice") return null;
    const [more, next] = FORMATS[family](step, type);
    steps.push(...more);
    type = next;
  }
  return { steps, type };
}

function sameStep(pattern, actual) {
  return pattern.k === actual.k && (pattern.v === "*" || actual.v === "*" || pattern.v === actual.v);
}

// --- the answer -----------------------------------------------------------------------------------------------------------

// The loop variables (innermost first) in scope at the end of `textBefore`, each with its iterable's canonical path.
export function loopsAt(textBefore, sourceFormat) {
  const family = formatFamily(sourceFormat);
  const frames = scopeAt(textBefore);
  const barrier = frames.map((frame) => frame.kind).lastIndexOf("macro"); // a macro body sees its own names only
  const visible = frames.slice(Math.max(0, barrier));
  const bound = new Map([["msg", { steps: [], type: ROOT_TYPE[family] }]]);
  const loops = [];
  for (const frame of visible) {
    if (frame.kind === "for" && frame.active) {
      const container = canonical(frame.iterable, family, (name) => bound.get(name));
      const items = container && itemSteps(family, container.type);
      for (const target of frame.targets) bound.delete(target); // shadowed, whatever happens next
      if (frame.targets.length === 1 && items) {
        const value = { steps: [...container.steps, ...items], type: ITEM_TYPE[family][container.type] };
        bound.set(frame.targets[0], value);
        loops.push({ name: frame.targets[0], iterable: frame.iterable, container, items, value });
      } else loops.push({ name: frame.targets.join(", "), iterable: frame.iterable, container: null, items: null });
    }
    for (const binding of frame.bindings) {
      const value = binding.value === null ? null : canonical(binding.value, family, (name) => bound.get(name));
      if (value) bound.set(binding.name, value);
      else bound.delete(binding.name);
    }
  }
  // A loop whose variable a later binding shadowed cannot be named any more.
  return loops.reverse().map((loop) => ({ ...loop, reachable: loop.container !== null && bound.get(loop.name) === loop.value }));
}

// What to insert for a source-tree node's absolute `expression` with the cursor at the end of `textBefore`:
// {expression, loop: {name, iterable} | null, note: text to show | null}.
export function relativeExpression(textBefore, expression, sourceFormat) {
  const family = formatFamily(sourceFormat);
  const loops = loopsAt(textBefore, sourceFormat);
  const node = canonical(expression, family, (name) => (name === "msg" ? { steps: [], type: ROOT_TYPE[family] } : null));
  if (node) {
    for (const loop of loops.filter((candidate) => candidate.reachable)) {
      const prefix = [...loop.container.steps, ...loop.items];
      if (node.steps.length < prefix.length || !prefix.every((step, index) => sameStep(step, node.steps[index]))) continue;
      const rest = node.steps.slice(prefix.length).map((step) => step.text).join("");
      return { expression: loop.name + rest, loop: { name: loop.name, iterable: loop.iterable }, note: null };
    }
  }
  if (!loops.length) return { expression, loop: null, note: null };
  const innermost = loops[0];
  return {
    expression,
    loop: null,
    note: `${expression} cannot be written relative to \`${innermost.name}\`: the loop iterates over ${innermost.iterable}, `
      + "which does not hold this node. Inserted as is: the same value on every iteration.",
  };
}
