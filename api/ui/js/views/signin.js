// Sign-in: the API key lives in sessionStorage (this tab only, gone when it closes).
import { api, auth, showError } from "../api.js";
import { h } from "../dom.js";

export function renderSignIn(root, done) {
  const input = h("input", { type: "password", name: "key", id: "api-key", placeholder: "tfg_…", autocomplete: "off", required: true });
  const form = h(
    "form",
    { class: "card signin", id: "sign-in" },
    h("h1", {}, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { class: "hint" }, "Made by `tuneforge keys create --tenant NAME` (embedded mode saves one in tuneforge-data/api_key). Kept in this tab's session storage only."),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    auth.set(input.value.trim());
    try {
      await api("GET", "/v1/jobs?limit=1"); // checks the key before showing anything
      done();
    } catch (error) {
      auth.clear();
      showError(error);
    }
  });
  root.append(form);
  input.focus();
}
