// Batches: page through /api/batches/ (the page is kept in the URL) and, for authors, start one over uploaded files
// (multipart POST) or a stored data source (JSON POST). The list refreshes itself while a batch on it runs.
import { get, getAll, pageConfig, post } from "../lib/api.js";
import { $, ago, h } from "../lib/dom.js";
import { listPager, pageNumber, pagePlace, pastLastPage } from "../lib/pager.js";
import { searchablePicker } from "../lib/picker.js";

const config = pageConfig();
const PAGE_SIZE = config.pageSize;
const REFRESH_MS = 2000;
const url = new URL(window.location.href);
let page = pageNumber(url.searchParams);
let refresh;

const BADGE = { queued: "muted", running: "warn", completed: "ok", failed: "bad", cancelled: "muted" };
const plural = (count, noun, nouns = `${noun}s`) => `${count.toLocaleString()} ${count === 1 ? noun : nouns}`;

function keepInUrl() {
  const next = new URL(window.location.href);
  if (page > 1) next.searchParams.set("page", String(page));
  else next.searchParams.delete("page");
  window.history.replaceState(null, "", next);
}

function from(batch) {
  if (batch.reprocess_of) return h("span", {}, "failed messages of ", h("a", { href: `/batches/${batch.reprocess_of}/` }, `batch ${batch.reprocess_of}`));
  if (batch.source) return h("span", {}, "source ", h("code", {}, batch.source));
  return batch.inputs.map((input) => h("div", {}, input.name));
}

function progress(batch) {
  const processed = batch.done + batch.failed;
  return h("td", { class: "batch-progress" },
    h("progress", { max: String(Math.max(batch.total, 1)), value: String(batch.total ? processed : 0) }),
    h("div", { class: "hint" }, batch.total ? `${processed.toLocaleString()} of ${plural(batch.total, "message")}` : batch.status === "queued" ? "splitting…" : "no message",
      batch.failed ? h("span", { class: "error" }, ` · ${batch.failed.toLocaleString()} failed`) : ""),
    pushed(batch));
}

// A batch started with push_to: the connection and its sums (the batch API's `push`), under the progress.
function pushed(batch) {
  if (!batch.push) return "";
  const { messages, refused } = batch.push;
  return h("div", { class: "hint batch-push", dataset: { connection: batch.push_to.connection },
    title: "Pushed to this connection: the messages sent, and those the server did not keep whole" },
    "→ ", h("code", {}, batch.push_to.connection), ` · pushed ${messages.toLocaleString()}, `,
    h("span", { class: refused ? "error" : undefined }, `refused ${refused.toLocaleString()}`));
}

function row(batch) {
  return h("tr", { dataset: { batch: String(batch.id), status: batch.status } },
    h("td", {}, h("a", { href: `/batches/${batch.id}/` }, h("strong", {}, `Batch ${batch.id}`))),
    h("td", {}, h("a", { href: `/mappings/${batch.mapping}/` }, batch.mapping), ` v${batch.version}`),
    h("td", {}, from(batch)),
    h("td", {}, h("span", { class: `badge ${BADGE[batch.status] || "muted"}` }, batch.status)),
    progress(batch),
    h("td", { title: batch.created_at }, ago(batch.created_at), batch.created_by ? h("div", { class: "hint" }, batch.created_by) : ""));
}

async function load(address = null) {
  clearTimeout(refresh);
  const params = new URLSearchParams({ page_size: String(PAGE_SIZE) });
  if (page > 1) params.set("page", String(page));
  let result;
  try {
    result = await get(address || `/api/batches/?${params}`);
  } catch (error) {
    if (pastLastPage(error, page)) {
      page = 1;
      return load();
    }
    $("#batches tbody").replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "error" }, error.message)));
    return;
  }
  keepInUrl();
  $("#batches tbody").replaceChildren(...(result.results.length ? result.results.map(row)
    : [h("tr", {}, h("td", { colspan: 6, class: "hint" }, "No batch yet."))]));
  pager.show(result, page, PAGE_SIZE);
  if (result.results.some((batch) => batch.status === "queued" || batch.status === "running")) {
    refresh = setTimeout(load, REFRESH_MS);
  }
}

const pager = listPager("pages", (step) => {
  page += step;
  load();
}, (result, number, size) => `${pagePlace(result, number, size)} · ${plural(result.count, "batch", "batches")}`);

async function setUpStartForm() {
  const form = $("#start-form");
  await Promise.all([
    searchablePicker($("#start-mapping"), {
      url: "/api/mappings/?has_version=true",
      option: (mapping) => [mapping.slug, `${mapping.title} (${mapping.slug})`, mapping.description],
      noun: "mapping",
      none: "no published mapping",
    }).reload(),
    searchablePicker($("#start-source-select"), {
      url: "/api/sources/?kind=stored",
      option: (source) => [source.name, `${source.name} · ${source.source_format} · ${plural(source.records, "record")}`,
        source.description],
      noun: "stored source",
      none: "no stored source",
    }).reload(),
  ]);

  async function showVersions() {
    const slug = $("#start-mapping").value;
    if (!slug) return $("#start-version").replaceChildren();
    const versions = await getAll(`/api/mappings/${slug}/versions/`);
    $("#start-version").replaceChildren(...versions.map((version, index) =>
      h("option", { value: String(version.number) }, `v${version.number}${index === 0 ? " (latest)" : ""} — ${version.message}`)));
  }
  $("#start-mapping").addEventListener("change", showVersions);
  for (const radio of form.elements.from) {
    radio.addEventListener("change", () => {
      $("#start-files").hidden = form.elements.from.value !== "files";
      $("#start-source").hidden = form.elements.from.value !== "source";
    });
  }
  $("#start-open").addEventListener("click", async () => {
    form.hidden = false;
    if (!$("#start-version").options.length) await showVersions();
    $("#start-mapping").focus();
  });
  $("#start-cancel").addEventListener("click", () => (form.hidden = true));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("#start-error");
    error.hidden = true;
    const fields = form.elements;
    const files = $("#start-file-input").files;
    if (fields.from.value === "files" && !files.length) {
      error.textContent = "Choose one or more files to convert.";
      error.hidden = false;
      return;
    }
    $("#start-submit").disabled = true;
    try {
      let batch;
      if (fields.from.value === "files") {
        const body = new FormData();
        body.set("mapping", fields.mapping.value);
        body.set("version", fields.version.value);
        body.set("validate", fields.validate.checked ? "true" : "false");
        if (fields.key_column.value.trim()) body.set("key_column", fields.key_column.value.trim());
        for (const file of files) body.append("files", file);
        batch = await post("/api/batches/", body); // multipart: the studio stores the files, a worker splits them
      } else {
        batch = await post("/api/batches/", {
          mapping: fields.mapping.value, version: Number(fields.version.value), source: fields.source.value, validate: fields.validate.checked,
        });
      }
      window.location.href = `/batches/${batch.id}/`;
    } catch (failure) {
      const details = Object.entries(failure.details || {}).filter(([, messages]) => Array.isArray(messages))
        .map(([name, messages]) => `${name}: ${messages.join(" ")}`);
      error.textContent = [failure.message, ...details].join(" — ");
      error.hidden = false;
    } finally {
      $("#start-submit").disabled = false;
    }
  });
}

await Promise.all([load(config.listUrl), config.canWrite ? setUpStartForm() : null]);
document.body.dataset.ready = "true";
