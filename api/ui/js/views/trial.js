// One trial: learning curves (loss and a metric, training and validation), gradient norms per layer,
// and the diagnostics flags with the guide's remedies.
import { lineChart, PALETTE } from "../charts.js";
import { badge, fmt, h, fill } from "../dom.js";

const NOT_METRICS = new Set(["trial", "execution", "epoch", "grad_norms", "lr", "dead_relu_max", "loss", "val_loss"]);

/** Metric names in a trial's epochs, without the val_ prefix (accuracy, auc, rmse, ...). */
export function metricNames(rows) {
  const names = new Set();
  for (const row of rows) for (const key of Object.keys(row)) if (!NOT_METRICS.has(key)) names.add(key.replace(/^val_/, ""));
  return [...names].sort();
}

function series(rows, key, name, color, dash) {
  return { name, color, dash, points: rows.filter((r) => typeof r[key] === "number").map((r) => [r.epoch, r[key]]) };
}

function gradNormSeries(rows) {
  const layers = [...new Set(rows.flatMap((r) => Object.keys(r.grad_norms || {})))];
  return layers.map((layer, i) => ({
    name: layer,
    color: PALETTE[i % PALETTE.length],
    points: rows.filter((r) => r.grad_norms && layer in r.grad_norms).map((r) => [r.epoch, r.grad_norms[layer]]),
  }));
}

function flagsList(diagnostics) {
  const flags = (diagnostics && diagnostics.flags) || [];
  if (!diagnostics) return h("p", { class: "muted" }, "Diagnostics come with the trial's result.");
  if (!flags.length) return h("p", { class: "ok" }, "No problems flagged.");
  return h(
    "ul",
    { class: "flags" },
    flags.map((f) =>
      h("li", { "data-flag": f.flag },
        h("strong", {}, f.flag.replaceAll("_", " ")),
        f.evidence ? h("p", {}, h("span", { class: "muted" }, "Seen: "), f.evidence) : null,
        f.remedy ? h("p", {}, h("span", { class: "muted" }, "Remedy: "), f.remedy) : null,
        f.message ? h("p", {}, f.message) : null,
      ),
    ),
  );
}

/**
 * Draw the trial panel into `root`. `executions`: Map execution -> rows sorted by epoch; `view` keeps
 * the user's choices ({metric, execution}) across live redraws.
 */
export function renderTrial(root, { trial, number, executions, objective, view }) {
  const runs = [...executions.keys()].sort((a, b) => a - b);
  if (view.execution === undefined || !executions.has(view.execution)) view.execution = runs[runs.length - 1];
  const rows = executions.get(view.execution) || [];
  const metrics = metricNames(rows);
  const preferred = (objective || "").replace(/^val_/, "");
  if (!metrics.includes(view.metric)) view.metric = metrics.includes(preferred) ? preferred : metrics[0];

  const metricSelect = h("select", { "aria-label": "metric", id: "metric-select" }, metrics.map((m) => h("option", { value: m, selected: m === view.metric }, m)));
  metricSelect.addEventListener("change", () => {
    view.metric = metricSelect.value;
    renderTrial(root, { trial, number, executions, objective, view });
  });
  const runSelect = runs.length > 1
    ? h("select", { "aria-label": "execution" }, runs.map((r) => h("option", { value: r, selected: r === view.execution }, `execution ${r}`)))
    : null;
  runSelect?.addEventListener("change", () => {
    view.execution = Number(runSelect.value);
    renderTrial(root, { trial, number, executions, objective, view });
  });

  const hp = trial ? Object.entries(trial.hyperparameters || {}) : [];
  fill(
    root,
    h("div", { class: "head" },
      h("h2", {}, `Trial ${number}`),
      trial ? badge(trial.status) : null,
      trial && Number.isFinite(trial.score) ? h("span", { class: "score" }, `score ${fmt(trial.score)}`) : null,
      h("span", { class: "muted", id: "epoch-count" }, `${rows.length} epochs`),
      h("span", { class: "controls" }, metrics.length ? metricSelect : null, runSelect),
    ),
    hp.length ? h("p", { class: "chips" }, hp.map(([k, v]) => h("span", { class: "chip" }, `${k} = ${fmt(v)}`))) : null,
    trial && trial.error ? h("p", { class: "error-text" }, trial.error) : null,
    h("div", { class: "grid2" },
      h("figure", { id: "curve-loss" }, h("figcaption", {}, "Loss"),
        lineChart({ title: "loss per epoch", xLabel: "epoch", yLabel: "loss", series: [series(rows, "loss", "training", PALETTE[0]), series(rows, "val_loss", "validation", PALETTE[1], "6 4")] })),
      h("figure", { id: "curve-metric" }, h("figcaption", {}, view.metric || "metric"),
        lineChart({ title: `${view.metric} per epoch`, xLabel: "epoch", yLabel: view.metric || "", series: view.metric ? [series(rows, view.metric, "training", PALETTE[0]), series(rows, `val_${view.metric}`, "validation", PALETTE[1], "6 4")] : [] })),
      h("figure", { id: "grad-norms" }, h("figcaption", {}, "Gradient norm per layer (log scale)"),
        lineChart({ title: "gradient norms", xLabel: "epoch", yLabel: "‖gradient‖", logY: true, series: gradNormSeries(rows) })),
      h("div", { class: "diagnostics", id: "diagnostics" }, h("h3", {}, "Diagnostics"), flagsList(trial && trial.diagnostics)),
    ),
  );
}
