// Every call goes through the public /v1 API with the API key the user signed in with.
import { h, fill } from "./dom.js";

const KEY = "tuneforge.api_key";

export const auth = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

/** A failed call: the problem+json body (status, title, detail, code, errors) when there is one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** The Authorization header for the signed-in key. */
export function authHeaders() {
  const key = auth.get();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Turn a non-2xx response into an ApiError (problem+json, or the raw text). */
export async function problemOf(response) {
  let problem;
  try {
    problem = await response.json();
  } catch {
    problem = { title: response.statusText || "Request failed", detail: "" };
  }
  if (typeof problem !== "object" || problem === null) problem = { detail: String(problem) };
  if (response.status === 401) window.dispatchEvent(new CustomEvent("tuneforge:unauthenticated"));
  return new ApiError(response.status, { status: response.status, ...problem });
}

/** Call the API; JSON in and out. Throws ApiError on any error status, TypeError when unreachable. */
export async function api(method, path, { json, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { Accept: "application/json", ...authHeaders(), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await problemOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Download a file the API serves (the key travels in a header, so no plain link can do it). */
export async function download(path, filename) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await problemOf(response);
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Show an error to the user: problem+json's title, detail, code and field errors. */
export function showError(error, where = document.getElementById("errors")) {
  if (error && error.name === "AbortError") return;
  const problem = error instanceof ApiError ? error.problem : null;
  const title = problem ? `${problem.status} ${problem.title || "Error"}` : "Cannot reach the API";
  const detail = problem ? problem.detail : String(error && error.message ? error.message : error);
  const box = h(
    "div",
    { class: "error", role: "alert" },
    h("button", { class: "close", "aria-label": "Dismiss", onclick: () => box.remove() }, "×"),
    h("strong", {}, title),
    problem && problem.code ? h("code", {}, problem.code) : null,
    h("p", {}, detail),
    problem && Array.isArray(problem.errors)
      ? h("ul", {}, problem.errors.map((e) => h("li", {}, `${(e.loc || []).join(".")}: ${e.msg}`)))
      : null,
  );
  where.append(box);
  return box;
}

/** Remove shown errors (on navigation). */
export function clearErrors() {
  fill(document.getElementById("errors"));
}
