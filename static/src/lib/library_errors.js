// An ApiError from the snippet and lookup-table endpoints as lines a person can act on. The API puts engine errors
// (a snippet that does not compile, an import the engine cannot read) in details.errors with a line when it knows one,
// and serializer problems under the field's name; a table's rows come back as entries[i] (0-based) in those.

export function errorLines(error) {
  const details = error.details || {};
  const engine = (Array.isArray(details.errors) ? details.errors : []).map((item) => {
    if (!item || typeof item !== "object") return String(item);
    const text = item.message && error.message.includes(item.message) ? "" : item.message || item.code; // said already
    return item.line ? `at line ${item.line}${text ? `: ${text}` : ""}` : text;
  });
  const fields = Object.entries(details)
    .filter(([key]) => !["errors", "mappings", "current_revision"].includes(key))
    .flatMap(([key, value]) => [].concat(value).map((item) => `${key}: ${typeof item === "string" ? item : JSON.stringify(item)}`));
  return [...engine, ...fields].filter((line) => line && line !== error.message);
}

// The 0-based entry indexes a table save was refused for ("entries[3].source must be a non-empty code").
export function entryIndexes(lines) {
  return [...new Set(lines.flatMap((line) => [...line.matchAll(/entries\[(\d+)\]/g)].map((match) => Number(match[1]))))];
}
