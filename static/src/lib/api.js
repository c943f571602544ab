// The studio's JSON API, as the pages call it: same-origin session auth with Django's CSRF token, and every failure
// thrown as an ApiError carrying the API's stable {code, message, details}.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "http_error";
    this.details = body.details || {};
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, url, { body, headers = {}, signal, raw = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin", signal };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (body instanceof FormData) {
    init.body = body; // files: the browser writes the multipart body and its boundary header
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (raw) return response;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { code: "not_json", message: `The server answered ${response.status} without JSON.` };
  }
  if (!response.ok) throw new ApiError(response.status, data || {});
  return { data, etag: response.headers.get("ETag"), status: response.status };
}

export const get = (url, options) => api("GET", url, options).then((r) => r.data);
export const post = (url, body, options = {}) => api("POST", url, { ...options, body }).then((r) => r.data);
export const patch = (url, body) => api("PATCH", url, { body }).then((r) => r.data);
export const del = (url) => api("DELETE", url);

// Every page of a paginated list, for the few lists the pages show whole (samples, versions).
export async function getAll(url) {
  const rows = [];
  let next = url;
  while (next) {
    const page = await get(next);
    if (Array.isArray(page)) return page;
    rows.push(...page.results);
    next = page.next;
  }
  return rows;
}

// The page's server-side settings (a json_script element the Django view wrote).
export function pageConfig() {
  const element = document.getElementById("page-config");
  return element ? JSON.parse(element.textContent) : {};
}
