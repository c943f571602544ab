// Pretty-print FHIR JSON exactly as JSON.stringify(value, null, 2) does, remembering where each element starts, so an
// OperationOutcome's FHIRPath (Bundle.entry[3].resource.name[0].family) can be underlined in the output.

export function prettyWithPaths(value) {
  const parts = [];
  const where = new Map();
  let length = 0;
  const put = (text) => {
    parts.push(text);
    length += text.length;
  };
  const walk = (node, path, indent) => {
    if (Array.isArray(node)) {
      if (!node.length) return put("[]");
      put("[\n");
      node.forEach((item, index) => {
        put(`${indent}  `);
        where.set(`${path}[${index}]`, length);
        walk(item, `${path}[${index}]`, `${indent}  `);
        put(index < node.length - 1 ? ",\n" : "\n");
      });
      return put(`${indent}]`);
    }
    if (node && typeof node === "object") {
      const keys = Object.keys(node).filter((key) => node[key] !== undefined);
      if (!keys.length) return put("{}");
      put("{\n");
      keys.forEach((key, index) => {
        put(`${indent}  `);
        where.set(`${path}.${key}`, length);
        put(`${JSON.stringify(key)}: `);
        walk(node[key], `${path}.${key}`, `${indent}  `);
        put(index < keys.length - 1 ? ",\n" : "\n");
      });
      return put(`${indent}}`);
    }
    put(JSON.stringify(node));
  };
  const root = value && value.resourceType ? value.resourceType : "$";
  where.set(root, 0);
  walk(value, root, "");
  return { text: parts.join(""), where };
}

// The offset of the deepest element of `expression` that the output has ("Patient.name[0].given[3]" → name[0]).
export function locate(where, expression) {
  let path = expression.replace(/\.(where|ofType|extension)\(.*$/, "");
  while (path) {
    if (where.has(path)) return { offset: where.get(path), path };
    const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
    if (cut <= 0) break;
    path = path.slice(0, cut);
  }
  return null;
}
