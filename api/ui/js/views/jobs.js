// The jobs list: status, kind, progress, best score, age; filters by status and kind; refreshes itself.
import { api, showError } from "../api.js";
import { age, badge, fmt, h, fill } from "../dom.js";

const STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];
const KINDS = ["train", "search"];
const REFRESH_MS = 4000;

function select(name, label, options, value) {
  return h(
    "label",
    { class: "filter" },
    label,
    h("select", { name, id: `filter-${name}` }, h("option", { value: "" }, "all"), options.map((o) => h("option", { value: o, selected: o === value }, o))),
  );
}

function progressText(job) {
  const p = job.progress || {};
  if (job.kind === "search") return `${p.trials_done ?? 0}/${p.trials_total ?? "?"} trials`;
  return p.epochs ? `epoch ${p.epoch ?? 0}/${p.epochs}` : "";
}

function row(job) {
  const best = job.best || {};
  return h(
    "tr",
    { "data-job": job.id },
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, job.name || job.id)),
    h("td", {}, job.kind),
    h("td", {}, badge(job.status)),
    h("td", {}, progressText(job)),
    h("td", { class: "num", title: best.objective || "" }, fmt(best.score)),
    h("td", { title: job.created_at }, age(job.created_at)),
  );
}

export function renderJobs(root, _params, query) {
  const filters = { status: query.get("status") || "", kind: query.get("kind") || "" };
  const body = h("tbody", { id: "jobs-body" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const form = h("form", { class: "filters" }, select("status", "Status", STATUSES, filters.status), select("kind", "Kind", KINDS, filters.kind));
  let cursor = null;
  let pages = 0;
  const controller = new AbortController();

  async function load(append) {
    const params = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    if (append && cursor) params.set("cursor", cursor);
    try {
      const page = await api("GET", `/v1/jobs?${params}`, { signal: controller.signal });
      if (append) body.append(...page.items.map(row));
      else fill(body, page.items.length ? page.items.map(row) : h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No jobs yet: submit one with the SDK, the CLI or POST /v1/jobs.")));
      cursor = page.next_cursor;
      pages = append ? pages + 1 : 1;
      more.hidden = !cursor;
    } catch (error) {
      showError(error);
    }
  }

  form.addEventListener("change", (event) => {
    filters[event.target.name] = event.target.value;
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `#/${q.toString() ? "?" + q : ""}`);
    load(false);
  });
  more.addEventListener("click", () => load(true));
  root.append(
    h("section", { class: "card" }, h("div", { class: "head" }, h("h1", {}, "Jobs"), form),
      h("div", { class: "scroll" }, h("table", { class: "table", id: "jobs" },
        h("thead", {}, h("tr", {}, ["Job", "Kind", "Status", "Progress", "Best score", "Age"].map((c) => h("th", {}, c)))),
        body)),
      more),
  );
  load(false);
  // Only the first page refreshes by itself: reloading it would drop pages the user loaded.
  const timer = setInterval(() => pages <= 1 && !document.hidden && load(false), REFRESH_MS);
  return () => {
    clearInterval(timer);
    controller.abort();
  };
}
