// One batch: its progress (read from /api/batches/<id>/ every second while it runs), the messages that failed (the
// dead-letter list, paged), downloads of the results and, for authors, Cancel (asks first) and Reprocess (the failed
// messages again, with a version picked from the mapping's). A batch with push_to also shows what the server answered
// for each message pushed (/api/batches/<id>/pushes/, paged: each entry's status, location and ETag) and the sums.
import { get, getAll, pageConfig, post } from "../lib/api.js";
import { $, h, toast } from "../lib/dom.js";
import { confirmAction } from "../lib/confirm.js";
import { listPager, pagePlace, pastLastPage } from "../lib/pager.js";

const config = pageConfig();
const api = `/api/batches/${config.batchId}/`;
const POLL_MS = 1000;
const ROOT_TEMPLATE = "template.j2"; // what the engine calls a mapping's own template
const BADGE = { queued: "muted", running: "warn", completed: "ok", failed: "bad", cancelled: "muted" };
const number = (value) => value.toLocaleString();
const plural = (count, noun) => `${number(count)} ${noun}${count === 1 ? "" : "s"}`;
const PUSHES_PAGE_SIZE = 20;
let failuresPage = 1;
let shownFailed = "";
let pushesPage = 1;
let shownPushed = "";
let poll;

function duration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function showBatch(batch) {
  const status = $("#status");
  status.textContent = batch.status;
  status.className = `badge ${BADGE[batch.status] || "muted"}`;
  document.body.dataset.status = batch.status;
  $("#summary").replaceChildren(h("span", {},
    h("a", { href: `/mappings/${batch.mapping}/` }, batch.mapping), ` v${batch.version}`,
    batch.reprocess_of ? [" · reprocessing the failed messages of ", h("a", { href: `/batches/${batch.reprocess_of}/` }, `batch ${batch.reprocess_of}`)] : "",
    batch.source ? [" · stored source ", h("code", {}, batch.source)] : "",
    batch.validate ? "" : " · outputs not validated",
    batch.created_by ? ` · started by ${batch.created_by}` : ""));
  $("#batch-error").textContent = batch.error;
  $("#batch-error").hidden = !batch.error;

  const total = Math.max(batch.total, 1);
  $("#bar-converted").style.width = `${(100 * batch.done) / total}%`;
  $("#bar-failed").style.width = `${(100 * batch.failed) / total}%`;
  const bar = $("#progress");
  bar.setAttribute("aria-valuemax", String(batch.total));
  bar.setAttribute("aria-valuenow", String(batch.done + batch.failed));
  bar.dataset.done = String(batch.done + batch.failed === batch.total && batch.status === "completed");
  $("#figure-done").textContent = `${number(batch.done)} converted`;
  $("#figure-failed").textContent = `${number(batch.failed)} failed`;
  $("#figure-pending").textContent = batch.status === "queued" ? "splitting the files…" : `${number(batch.pending)} left of ${number(batch.total)}`;
  $("#figure-rate").textContent = batch.rate !== null ? `${number(batch.rate)} messages/s` : "";
  $("#figure-eta").textContent = batch.eta_seconds !== null ? `about ${duration(batch.eta_seconds)} left`
    : batch.finished_at && batch.started_at ? `took ${duration((new Date(batch.finished_at) - new Date(batch.started_at)) / 1000)}` : "";

  $("#download-ndjson").href = batch.urls.results_ndjson;
  $("#download-bundles").href = batch.urls.results_bundles;
  $("#inputs").textContent = batch.inputs.length ? `Files: ${batch.inputs.map((input) =>
    `${input.name} (${number(input.bytes)} bytes${input.messages !== null ? `, ${plural(input.messages, "message")}` : ""})`).join(", ")}` : "";
  showPushSummary(batch);
  const running = batch.status === "queued" || batch.status === "running";
  if (config.canWrite) {
    $("#cancel").hidden = !running;
    $("#reprocess-form").hidden = running || batch.failed === 0;
  }
  return running;
}

function templateLink(failure) {
  if (!failure.line) return h("span", { class: "hint" }, failure.template || "");
  const where = `${failure.template || ROOT_TEMPLATE}:${failure.line}`;
  // Snippet pages open at a line (#L<n>); the editor has no line anchor, so it opens on the mapping's draft.
  const href = failure.template && failure.template !== ROOT_TEMPLATE
    ? `/library/snippets/${failure.template}#L${failure.line}` : `/mappings/${config.slug}/`;
  return h("a", { href, title: "Open the template" }, where);
}

function failureRow(failure) {
  return h("tr", { dataset: { seq: String(failure.seq), code: failure.code } },
    h("td", {}, String(failure.seq)),
    h("td", {}, h("div", {}, failure.key || "—"), h("div", { class: "hint" }, failure.origin)),
    h("td", {}, h("code", {}, failure.code)),
    h("td", { class: "message" }, failure.message),
    h("td", {}, templateLink(failure)),
    h("td", {}, h("a", { href: failure.payload_url, target: "_blank", rel: "noopener" }, "message")));
}

async function loadFailures() {
  const size = config.failuresPageSize;
  const address = `${api}failures/?page_size=${size}${failuresPage > 1 ? `&page=${failuresPage}` : ""}`;
  let result;
  try {
    result = await get(address);
  } catch (error) {
    if (pastLastPage(error, failuresPage)) {
      failuresPage = 1;
      return loadFailures();
    }
    throw error;
  }
  $("#failure-count").textContent = number(result.count);
  $("#failures tbody").replaceChildren(...(result.results.length ? result.results.map(failureRow)
    : [h("tr", {}, h("td", { colspan: 6, class: "hint" }, "No message failed."))]));
  failuresPager.show(result, failuresPage, size);
}

function showPushSummary(batch) {
  $("#push-section").hidden = !batch.push;
  if (!batch.push) return;
  const push = batch.push;
  $("#push-connection").textContent = batch.push_to.connection;
  $("#push-messages").textContent = `${plural(push.messages, "message")} pushed as ${batch.push_to.kind || "transaction"}s`;
  $("#push-refused").textContent = `${number(push.refused)} not kept whole`;
  $("#push-created").textContent = `${number(push.entries_created)} entries created`;
  $("#push-updated").textContent = `${number(push.entries_updated)} updated`;
  $("#push-entries-failed").textContent = `${number(push.entries_failed)} failed`;
  $("#download-push").href = batch.urls.push_results;
}

function entryItem(entry) {
  const ok = entry.status.startsWith("2");
  const why = ok ? "" : (entry.outcome?.issue || []).map((issue) => issue.diagnostics || issue.code).join("; ");
  return h("li", { class: ok ? "" : "failed", value: String(entry.number + 1), dataset: { status: entry.status.slice(0, 3) } },
    h("code", {}, entry.status), " ", entry.location ? h("code", { class: "location" }, entry.location) : "",
    entry.etag ? h("span", { class: "hint" }, ` ${entry.etag}`) : "", why ? ` — ${why}` : "");
}

function pushRow(pushed) {
  const entries = pushed.entries.length ? h("ol", {}, ...pushed.entries.map(entryItem))
    : h("span", { class: "hint" }, "Nothing kept: the server's outcome is in the failed messages below.");
  return h("tr", { dataset: { seq: String(pushed.seq), code: pushed.code } },
    h("td", {}, String(pushed.seq)),
    h("td", {}, h("a", { href: pushed.payload_url, target: "_blank", rel: "noopener" }, pushed.key || "—")),
    h("td", {}, h("span", { class: `badge ${pushed.code === "ok" ? "ok" : "bad"}` }, pushed.code),
      pushed.status ? h("div", { class: "hint" }, `HTTP ${pushed.status}`) : ""),
    h("td", { class: "entries" }, entries, pushed.more ? h("div", { class: "hint" }, `and ${number(pushed.more)} more`) : ""));
}

async function loadPushes() {
  const onlyFailed = $("#pushes-failed-only").checked;
  const address = `${api}pushes/?page_size=${PUSHES_PAGE_SIZE}${onlyFailed ? "&failed=true" : ""}${pushesPage > 1 ? `&page=${pushesPage}` : ""}`;
  let result;
  try {
    result = await get(address);
  } catch (error) {
    if (pastLastPage(error, pushesPage)) {
      pushesPage = 1;
      return loadPushes();
    }
    throw error;
  }
  $("#push-count").textContent = number(result.count);
  $("#pushes tbody").replaceChildren(...(result.results.length ? result.results.map(pushRow)
    : [h("tr", {}, h("td", { colspan: 4, class: "hint" }, onlyFailed ? "The server kept every message." : "Nothing pushed yet."))]));
  pushesPager.show(result, pushesPage, PUSHES_PAGE_SIZE);
  document.body.dataset.pushesShown = String(result.count);
}

async function refresh() {
  let batch;
  try {
    batch = await get(api);
  } catch (error) {
    toast(error.message, "error");
    poll = setTimeout(refresh, POLL_MS * 5);
    return;
  }
  const running = showBatch(batch);
  // Counts while running are progress written before a chunk's items are: load the lists again once it has ended.
  const failedKey = `${batch.failed}${running ? "" : " final"}`;
  if (failedKey !== shownFailed) {
    shownFailed = failedKey;
    await loadFailures();
  }
  const pushedKey = batch.push && `${batch.push.messages}${running ? "" : " final"}`;
  if (batch.push && pushedKey !== shownPushed) {
    shownPushed = pushedKey;
    await loadPushes();
  }
  if (running) poll = setTimeout(refresh, POLL_MS);
}

// A table's pager saying "Page 2 of 3".
const tablePager = (name, step) => listPager(name, step, pagePlace);
const failuresPager = tablePager("failures", (step) => {
  failuresPage += step;
  loadFailures();
});
const pushesPager = tablePager("pushes", (step) => {
  pushesPage += step;
  loadPushes();
});
$("#pushes-failed-only").addEventListener("change", () => {
  pushesPage = 1;
  loadPushes();
});

async function setUpAuthorActions() {
  const versions = await getAll(`/api/mappings/${config.slug}/versions/`);
  $("#reprocess-version").replaceChildren(...versions.map((version, index) =>
    h("option", { value: String(version.number) }, `v${version.number}${index === 0 ? " (latest)" : ""} — ${version.message}`)));
  $("#cancel").addEventListener("click", async () => {
    const yes = await confirmAction({
      title: `Cancel batch ${config.batchId}?`,
      text: "The messages not converted yet are left as they are; what was converted stays downloadable.",
      ok: "Cancel the batch",
      cancel: "Keep it running",
    });
    if (!yes) return;
    try {
      clearTimeout(poll);
      showBatch(await post(`${api}cancel`, {}));
      toast("The batch is cancelled.");
    } catch (error) {
      toast(error.message, "error");
      refresh();
    }
  });
  $("#reprocess-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const again = await post(`${api}reprocess`, { version: Number($("#reprocess-version").value) });
      window.location.href = `/batches/${again.id}/`;
    } catch (error) {
      toast(error.message, "error");
    }
  });
}

await Promise.all([refresh(), config.canWrite ? setUpAuthorActions() : null]);
document.body.dataset.ready = "true";
