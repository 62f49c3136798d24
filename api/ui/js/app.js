// The dashboard's shell: sign-in gate, hash routes (#/, #/jobs/{id}, #/models/{id}), one view at a time.
import { auth, clearErrors, showError } from "./api.js";
import { fill } from "./dom.js";
import { renderSignIn } from "./views/signin.js";
import { renderJobs } from "./views/jobs.js";
import { renderJob } from "./views/job.js";
import { renderModel } from "./views/model.js";

const ROUTES = [
  [/^#\/jobs\/([^/?]+)$/, renderJob],
  [/^#\/models\/([^/?]+)$/, renderModel],
  [/^#\/?(\?.*)?$/, renderJobs],
];

let cleanup = null;

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  clearErrors();
  const root = fill(document.getElementById("view"));
  const signedIn = Boolean(auth.get());
  document.getElementById("nav").hidden = !signedIn;
  if (!signedIn) {
    renderSignIn(root, route);
    return;
  }
  const hash = location.hash || "#/";
  for (const [pattern, render] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      const params = match.slice(1).map((p) => (p && !p.startsWith("?") ? decodeURIComponent(p) : p));
      const query = new URLSearchParams(hash.split("?")[1] || "");
      cleanup = render(root, params, query) || null;
      return;
    }
  }
  showError(new Error(`no page at ${hash}`));
}

window.addEventListener("hashchange", route);
window.addEventListener("tuneforge:unauthenticated", () => {
  auth.clear();
  route();
  showError(new Error("The API refused the key (401): sign in again."));
});
// Errors nobody caught still reach the user.
window.addEventListener("unhandledrejection", (event) => showError(event.reason));

document.getElementById("sign-out").addEventListener("click", () => {
  auth.clear();
  location.hash = "#/";
  route();
});
document.getElementById("open-model").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = event.target.model.value.trim();
  if (id) location.hash = `#/models/${encodeURIComponent(id)}`;
});

route();
