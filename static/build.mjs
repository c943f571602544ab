// Bundle the page scripts (static/src/pages/*.js) with CodeMirror 6 from node_modules, and the stylesheets
// (static/*.css: the shared fhirstudio.css and any page's own), into static/build/. Run by `npm run build`, which scripts/run and scripts/test call at
// setup; nothing is fetched at run time.
//
// What a page costs to load is decided here (issue 11, bench/README.md "Pages: navigation start → usable"):
// - minified ES modules, split: code two pages share is one cached chunk (chunk-<hash>.js), not a copy per page;
// - static/build/manifest.json names each page's script with a content hash (base.html requests `editor.js?v=<hash>`)
//   and every chunk it imports, so base.html preloads them all at once (<link rel="modulepreload">) instead of
//   discovering them one import level at a time, and every file under build/ can be cached for good (the settings'
//   WHITENOISE_IMMUTABLE_FILE_TEST): a new build changes the names or hashes the pages ask for;
// - a .br and a .gz beside each script and stylesheet, which WhiteNoise sends to browsers that accept them (the
//   CodeMirror chunk: ~470 KiB → ~130 KiB on the wire);
// - @codemirror/lang-html is replaced by a stub: lang-jinja imports it (with JavaScript and CSS parsers, ~150 KiB)
//   for its default base language, and builds it when loaded, but every studio editor passes its own base
//   (`jinja({ base: json() })`). A `jinja()` without a base gets plain text around the Jinja tags.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const OUT = "static/build";
const pages = readdirSync("static/src/pages").filter((name) => name.endsWith(".js"));

const noHtmlBase = {
  name: "no-html-base",
  setup(build) {
    build.onResolve({ filter: /^@codemirror\/lang-html$/ }, () => ({ path: "lang-html-stub", namespace: "stub" }));
    build.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      resolveDir: process.cwd(),
      contents: `import { LanguageSupport, StreamLanguage } from "@codemirror/language";
        const text = StreamLanguage.define({ name: "text", token(stream) { stream.skipToEnd(); return null; } });
        export function html() { return new LanguageSupport(text); }`,
    }));
  },
};

const styles = readdirSync("static").filter((name) => name.endsWith(".css")); // fhirstudio.css and page sheets
const entryPoints = [
  ...pages.map((name) => ({ in: `static/src/pages/${name}`, out: basename(name, ".js") })),
  ...styles.map((name) => ({ in: `static/${name}`, out: basename(name, ".css") })),
];
const result = await build({
  entryPoints,
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  sourcemap: "linked",
  target: ["es2022"],
  metafile: true,
  write: false, // written below, each script with its compressed copies, and the manifest last
  plugins: [noHtmlBase],
  logLevel: "warning",
});

const outputs = result.metafile.outputs;
const written = new Set(["manifest.json"]);
let wire = 0;
mkdirSync(OUT, { recursive: true });
for (const file of result.outputFiles) {
  const name = relative(OUT, file.path);
  // Compressed copies first: WhiteNoise serves name.br or name.gz when the browser accepts it, so they must never be
  // older than the file itself.
  if (/\.(js|css)$/.test(name)) {
    const br = brotliCompressSync(file.contents, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
    writeFileSync(`${file.path}.br`, br);
    writeFileSync(`${file.path}.gz`, gzipSync(file.contents, { level: 9 }));
    written.add(`${name}.br`).add(`${name}.gz`);
    wire += br.length;
  }
  writeFileSync(file.path, file.contents);
  written.add(name);
}

// Every chunk a script imports statically, directly or through another chunk: what its page must load before it runs.
function staticImports(path, seen = new Set()) {
  for (const item of outputs[path].imports) {
    if (item.kind === "import-statement" && !seen.has(item.path)) {
      seen.add(item.path);
      staticImports(item.path, seen);
    }
  }
  return seen;
}

// What its import() calls load (with their own static imports): a page that knows it needs them at once preloads
// them too (the snippet page needs CodeMirror, the lookup-table page only when a dialog opens).
function lazyImports(path) {
  const lazy = new Set();
  for (const chunk of [path, ...staticImports(path)]) {
    for (const item of outputs[chunk].imports) {
      if (item.kind !== "dynamic-import") continue;
      lazy.add(item.path);
      for (const inner of staticImports(item.path)) lazy.add(inner);
    }
  }
  for (const chunk of staticImports(path)) lazy.delete(chunk);
  return lazy;
}

const contents = Object.fromEntries(result.outputFiles.map((file) => [relative(".", file.path), file.contents]));
const entries = new Set(entryPoints.map((entry) => entry.in));
const asStatic = (paths) => [...paths].map((chunk) => relative("static", chunk)).sort();
const manifest = {};
for (const [path, output] of Object.entries(outputs)) {
  if (!entries.has(output.entryPoint)) continue; // import() targets are entry points to esbuild, not pages
  manifest[basename(path)] = {
    file: relative("static", path),
    hash: createHash("sha256").update(contents[path]).digest("hex").slice(0, 12),
    imports: asStatic(staticImports(path)),
    lazy: asStatic(lazyImports(path)),
  };
}
writeFileSync(join(OUT, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);

// Chunks of earlier builds are named by their old content: nothing asks for them any more.
for (const name of readdirSync(OUT)) {
  if (!written.has(name)) rmSync(join(OUT, name), { force: true });
}

const bytes = Object.entries(outputs)
  .filter(([path]) => !path.endsWith(".map"))
  .reduce((sum, [, output]) => sum + output.bytes, 0);
console.log(`static/build: ${pages.length} pages, ${(bytes / 1024).toFixed(0)} KiB of scripts and styles ` +
  `(${(wire / 1024).toFixed(0)} KiB brotli), source maps beside them`);
