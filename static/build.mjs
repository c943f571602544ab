// Bundle the page scripts (static/src/pages/*.js) with CodeMirror 6 from node_modules into static/build/.
// Run by `npm run build`, which scripts/run and scripts/test call at setup; nothing is fetched at run time.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const pages = readdirSync("static/src/pages").filter((name) => name.endsWith(".js"));
const result = await build({
  entryPoints: pages.map((name) => `static/src/pages/${name}`),
  outdir: "static/build",
  bundle: true,
  splitting: true, // CodeMirror is shared by every page: one cached chunk instead of a copy per page
  format: "esm",
  minify: true,
  sourcemap: "linked",
  target: ["es2022"],
  metafile: true,
  logLevel: "warning",
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
console.log(`static/build: ${pages.length} pages, ${(bytes / 1024).toFixed(0)} KiB with source maps`);
