// Connections to other FHIR servers: the list from /api/connections/ with each one's last test; for authors a push
// form (a mapping rendered on a payload, sent as a transaction or batch: POST /api/connections/{name}/push, each
// entry's answer shown); for admins an add form (the fields follow the sign-in mode; secrets go to the API once and
// are never shown again) and a Test button per row (POST /api/connections/{name}/test → a diagnosis code). Authors
// can also push a test run (its samples rendered again with the run's version, each sent as its own Bundle).
import { get, pageConfig, post } from "../lib/api.js";
import { $, ago, h, toast } from "../lib/dom.js";

const config = pageConfig();
const SETTINGS = ["username", "client_id", "scope", "token_url", "algorithm", "key_id"];
const SECRETS = ["password", "token", "client_secret", "private_key"];

function checkCell(connection) {
  const check = connection.check;
  if (!check) return h("td", { class: "check" }, h("span", { class: "hint" }, "not tested"));
  const found = check.code === "ok" ? `${check.software || "FHIR server"} · FHIR ${check.fhir_version} · ${check.resource_types.length} types` : check.message;
  return h("td", { class: "check" },
    h("span", { class: `badge ${check.code === "ok" ? "ok" : "bad"}` }, check.code), " ",
    h("span", { class: "hint", title: check.checked_at }, ago(check.checked_at)),
    h("div", { class: "hint" }, found));
}

function row(connection) {
  const cells = [
    h("td", {}, h("code", {}, connection.name)),
    h("td", {}, h("code", {}, connection.base_url)),
    h("td", {}, connection.auth_mode, connection.secrets_set.length ? h("span", { class: "hint" }, ` (${connection.secrets_set.join(", ")} set)`) : ""),
    checkCell(connection),
  ];
  const actions = h("td", {});
  if (config.canAdmin) {
    const button = h("button", { type: "button", class: "test" }, "Test");
    button.addEventListener("click", () => test(connection, button));
    actions.append(button);
  }
  return h("tr", { dataset: { name: connection.name, code: connection.check?.code || "" } }, ...cells, actions);
}

async function load(url = config.listUrl) {
  const page = await get(url);
  $("#connections tbody").replaceChildren(...(page.results.length ? page.results.map(row)
    : [h("tr", {}, h("td", { colspan: 5, class: "hint" }, "No connections yet."))]));
  for (const target of document.querySelectorAll("#push-form select[name=connection], #run-push-form select[name=connection]")) {
    const chosen = target.value;
    target.replaceChildren(...page.results.map((connection) => h("option", {}, connection.name)));
    if (chosen) target.value = chosen;
  }
}

function entryRow(entry, index) {
  return h("tr", { dataset: { status: entry.status.slice(0, 3) } },
    h("td", {}, String(index + 1)),
    h("td", {}, h("span", { class: `badge ${entry.status.startsWith("2") ? "ok" : "bad"}` }, entry.status)),
    h("td", {}, h("code", {}, entry.location || "")),
    h("td", {}, entry.outcome ? h("pre", {}, JSON.stringify(entry.outcome, null, 2)) : ""));
}

async function push(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#push-error");
  const result = $("#push-result");
  const sent = { mapping: form.elements.mapping.value.trim(), payload: form.elements.payload.value, kind: form.elements.kind.value };
  if (form.elements.version.value) sent.version = Number(form.elements.version.value);
  try {
    const answer = await post(`/api/connections/${encodeURIComponent(form.elements.connection.value)}/push`, sent);
    error.hidden = true;
    result.dataset.code = answer.code;
    result.querySelector("caption").textContent = `${answer.code}: ${answer.message}`;
    result.querySelector("tbody").replaceChildren(...answer.entries.map(entryRow),
      ...(answer.outcome ? [h("tr", {}, h("td", { colspan: 4 }, h("pre", {}, JSON.stringify(answer.outcome, null, 2))))] : []));
    result.hidden = false;
  } catch (failure) {
    const lines = (failure.details?.errors || []).map((item) => `${item.code}: ${item.message}`);
    error.textContent = [failure.message, ...lines].join("\n");
    error.hidden = false;
    result.hidden = true;
  }
}

// The mapping's test runs, newest first, to pick one from.
async function loadRuns(form) {
  const runs = form.elements.test_run;
  const slug = form.elements.mapping.value.trim();
  if (!form.elements.mapping.checkValidity() || !slug) return;
  try {
    const page = await get(`/api/mappings/${encodeURIComponent(slug)}/test-runs/?page_size=20`);
    runs.replaceChildren(...(page.results.length ? page.results.map((run) => h("option", { value: String(run.id) },
      `#${run.id} · ${run.version ? `v${run.version}` : `draft r${run.draft_revision}`} · ${run.passed} passed, ${run.failed} failed`))
      : [h("option", { value: "" }, "No test run yet")]));
  } catch (failure) {
    runs.replaceChildren(h("option", { value: "" }, failure.message));
  }
  form.dataset.runsFor = slug;
}

async function pushRun(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#run-push-error");
  const result = $("#run-push-result");
  const sent = { mapping: form.elements.mapping.value.trim(), test_run: Number(form.elements.test_run.value), kind: form.elements.kind.value };
  try {
    const answer = await post(`/api/connections/${encodeURIComponent(form.elements.connection.value)}/push`, sent);
    error.hidden = true;
    result.dataset.code = answer.code;
    result.querySelector("caption").textContent = `${answer.code}: ${answer.message}`;
    result.querySelector("tbody").replaceChildren(...answer.samples.flatMap((sample) => {
      const head = h("tr", { dataset: { sample: sample.case, code: sample.code } },
        h("th", { colspan: 5 }, sample.case, " ", h("span", { class: `badge ${sample.code === "ok" ? "ok" : "bad"}` }, sample.code), " ",
          h("span", { class: "hint" }, [sample.message, ...sample.errors.map((item) => `${item.code}: ${item.message}`)].join(" "))));
      const rows = sample.entries.map((entry, index) => {
        const line = entryRow(entry, index);
        line.prepend(h("td", {}));
        return line;
      });
      const whole = sample.outcome ? [h("tr", {}, h("td", {}), h("td", { colspan: 4 }, h("pre", {}, JSON.stringify(sample.outcome, null, 2))))] : [];
      return [head, ...rows, ...whole];
    }));
    result.hidden = false;
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    result.hidden = true;
  }
}

async function test(connection, button) {
  button.disabled = true;
  button.textContent = "Testing…";
  try {
    const found = await post(`/api/connections/${encodeURIComponent(connection.name)}/test`);
    toast(`${connection.name}: ${found.code}: ${found.message}`, found.code === "ok" ? "info" : "error");
    await load();
  } catch (failure) {
    toast(failure.message, "error");
    button.disabled = false;
    button.textContent = "Test";
  }
}

// Only the fields of the chosen sign-in mode are shown and sent.
function showModeFields(form) {
  const mode = form.elements.auth_mode.value;
  for (const label of form.querySelectorAll("label[data-modes]")) {
    label.hidden = !label.dataset.modes.split(" ").includes(mode);
  }
}

function body(form) {
  const shown = (name) => form.elements[name] && !form.elements[name].closest("label").hidden;
  const value = (name) => form.elements[name].value.trim();
  const auth = Object.fromEntries(SETTINGS.filter((name) => shown(name) && value(name)).map((name) => [name, value(name)]));
  // A PEM keeps its line breaks; only the other secrets are trimmed.
  const secret = (name) => (name === "private_key" ? form.elements[name].value : value(name));
  const secrets = Object.fromEntries(SECRETS.filter((name) => shown(name) && secret(name)).map((name) => [name, secret(name)]));
  return {
    name: value("name"),
    base_url: value("base_url"),
    auth_mode: form.elements.auth_mode.value,
    auth,
    secrets,
    timeout_seconds: Number(value("timeout_seconds")),
    max_retries: Number(value("max_retries")),
  };
}

async function add(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#add-error");
  try {
    const created = await post("/api/connections/", body(form));
    error.hidden = true;
    for (const name of SECRETS) form.elements[name].value = ""; // not kept in the page once sent
    form.elements.name.value = "";
    toast(`Connection ${created.name} added: test it to see what the server says.`);
    await load();
  } catch (failure) {
    const fields = Object.entries(failure.details || {}).map(([name, messages]) => `${name}: ${[].concat(messages).join(" ")}`);
    error.textContent = fields.length ? `${failure.message} (${fields.join("; ")})` : failure.message;
    error.hidden = false;
  }
}

$("#push-form")?.addEventListener("submit", push);
const runForm = $("#run-push-form");
if (runForm) {
  runForm.elements.mapping.addEventListener("change", () => loadRuns(runForm));
  runForm.addEventListener("submit", pushRun);
}
const form = $("#add-form");
if (form) {
  form.elements.auth_mode.addEventListener("change", () => showModeFields(form));
  form.addEventListener("submit", add);
  showModeFields(form);
}
load().then(() => document.body.setAttribute("data-ready", ""), (failure) => toast(failure.message, "error"));
