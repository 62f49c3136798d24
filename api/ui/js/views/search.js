// A search's overview: sortable leaderboard, score per trial number, parallel coordinates, importance.
import { barChart, scatterChart } from "../charts.js";
import { importance } from "../importance.js";
import { parallelCoordinates } from "../parallel.js";
import { badge, duration, fmt, h, fill } from "../dom.js";

const MAX_SHOWN = 10;

function hpNames(trials) {
  return [...new Set(trials.flatMap((t) => Object.keys(t.hyperparameters || {})))].sort();
}

/** Sort trials by a column; trials without a value go last whatever the direction. */
export function sortTrials(trials, key, dir) {
  const value = (t) => {
    if (key === "number") return t.number;
    if (key === "status") return t.status;
    if (key === "score") return t.score;
    if (key === "epochs") return t.metrics?.epochs_run;
    if (key === "time") return t.finished_at ? Date.parse(t.finished_at) - Date.parse(t.started_at) : null;
    return (t.hyperparameters || {})[key];
  };
  return [...trials].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === undefined || va === null || Number.isNaN(va)) return vb === undefined || vb === null ? a.number - b.number : 1;
    if (vb === undefined || vb === null || Number.isNaN(vb)) return -1;
    const order = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
    return (dir === "asc" ? order : -order) || a.number - b.number;
  });
}

function leaderboard({ trials, sort, selected, onSort, onPick }) {
  const names = hpNames(trials);
  const columns = [["number", "#"], ["status", "Status"], ["score", "Score"], ...names.map((n) => [n, n]), ["epochs", "Epochs"], ["time", "Time"]];
  const head = h("tr", {}, columns.map(([key, label]) => {
    const active = sort.key === key;
    const th = h("th", { "data-sort": key, class: "sortable", "aria-sort": active ? (sort.dir === "asc" ? "ascending" : "descending") : "none", tabindex: 0 },
      label, active ? (sort.dir === "asc" ? " ▲" : " ▼") : "");
    th.addEventListener("click", () => onSort(key));
    th.addEventListener("keydown", (e) => e.key === "Enter" && onSort(key));
    return th;
  }));
  const rows = sortTrials(trials, sort.key, sort.dir).map((t) => {
    const tr = h("tr", { "data-trial": t.number, class: t.number === selected ? "selected pick" : "pick" },
      h("td", {}, t.number),
      h("td", {}, badge(t.status)),
      h("td", { class: "num" }, fmt(t.score)),
      names.map((n) => h("td", { class: "num" }, fmt((t.hyperparameters || {})[n]))),
      h("td", { class: "num" }, t.metrics?.epochs_run ?? ""),
      h("td", {}, duration(t.started_at, t.finished_at)),
    );
    tr.addEventListener("click", () => onPick(t.number));
    return tr;
  });
  return h("div", { class: "scroll" }, h("table", { class: "table", id: "leaderboard" }, h("thead", {}, head), h("tbody", {}, rows)));
}

/** The best score so far after each trial number, for the objective's direction. */
export function bestSoFar(points, direction) {
  const steps = [];
  let best = null;
  for (const p of [...points].sort((a, b) => a.x - b.x)) {
    if (best === null || (direction === "min" ? p.y < best : p.y > best)) best = p.y;
    steps.push([p.x, best]);
  }
  return steps;
}

/** Draw the search sections into `root`. */
export function renderSearch(root, { trials, direction, objective, sort, selected, onSort, onPick }) {
  const scored = trials.filter((t) => Number.isFinite(t.score));
  const points = scored.map((t) => ({ x: t.number, y: t.score, label: `trial ${t.number}: ${fmt(t.score)}`, number: t.number }));
  const ranks = importance(trials);
  // Hyperparameters that explain (nearly) nothing would only crowd the bars and the axes.
  const shown = ranks.filter((r) => r.share >= 0.005).slice(0, MAX_SHOWN);
  const hidden = ranks.length - shown.length;
  fill(
    root,
    h("section", { class: "card" }, h("h2", {}, `Leaderboard (${trials.length} trials)`), leaderboard({ trials, sort, selected, onSort, onPick })),
    h("div", { class: "grid2" },
      h("section", { class: "card", id: "score-by-trial" }, h("h2", {}, `${objective} by trial`),
        scatterChart({ title: "score per trial", points, xLabel: "trial number", yLabel: objective, step: bestSoFar(points, direction), onPick: (p) => onPick(p.number) }),
        h("p", { class: "hint" }, "Dots: each trial's score; line: the best so far.")),
      h("section", { class: "card", id: "importance" }, h("h2", {}, "Hyperparameter importance"),
        ranks.length
          ? [barChart({ title: "importance", bars: shown.map((r) => ({ label: r.name, value: r.share })) }),
            hidden ? h("p", { class: "hint" }, `${hidden} more explain under 0.5 % each.`) : null]
          : h("p", { class: "empty" }, "Needs 3 scored trials."),
        h("p", { class: "hint" }, "Each hyperparameter's share of the score's variance it explains on its own (ε², the correlation ratio corrected for chance; numbers in up to 4 quantile bins), scaled to sum to 100 % as Optuna's importances are. A rough, one-at-a-time estimate: interactions are not seen.")),
    ),
    h("section", { class: "card", id: "parallel" }, h("h2", {}, "Hyperparameters against the score"),
      h("div", { class: "scroll" }, parallelCoordinates({ trials, direction, onPick: (t) => onPick(t.number), only: shown.length ? shown.map((r) => r.name) : null })),
      h("p", { class: "hint" }, `One line per scored trial; darker blue is better. Axes: the ${MAX_SHOWN} most important hyperparameters at most, most important first. Click a line to open its trial.`)),
  );
}
