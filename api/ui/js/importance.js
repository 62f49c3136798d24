// Hyperparameter importance, a simple documented estimate in the spirit of Optuna's importances.
//
// For each hyperparameter: the share of the score's variance that its value explains on its own,
// measured as epsilon-squared (the correlation ratio eta-squared corrected for the chance fit of
// k groups: (SS_between - (k - 1) * MS_within) / SS_total, at least 0). Choices and integers with
// few values group by value; other numbers group into up to 4 quantile bins; a trial without the
// hyperparameter (a layer its depth does not have) is a group of its own. The estimates are then
// scaled to sum to 1, as Optuna's are. One hyperparameter at a time, so interactions are not seen;
// Optuna's default (fANOVA on a random forest) is more thorough and needs many more trials.

const MAX_BINS = 4;

function groupsOf(values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  const numeric = present.length && present.every((v) => typeof v === "number");
  const distinct = new Set(present.map(String));
  if (!numeric || distinct.size <= MAX_BINS) return values.map((v) => (v === undefined || v === null ? "∅" : String(v)));
  const sorted = [...present].sort((a, b) => a - b);
  const bins = Math.min(MAX_BINS, Math.max(2, Math.floor(present.length / 2)));
  const edges = Array.from({ length: bins - 1 }, (_, i) => sorted[Math.floor(((i + 1) * sorted.length) / bins)]);
  return values.map((v) => (v === undefined || v === null ? "∅" : `bin${edges.filter((e) => v >= e).length}`));
}

/** epsilon-squared of `scores` grouped by `groups` (same length); 0 when it cannot be told. */
export function explainedVariance(scores, groups) {
  const n = scores.length;
  const mean = scores.reduce((a, b) => a + b, 0) / n;
  const total = scores.reduce((a, y) => a + (y - mean) ** 2, 0);
  const byGroup = new Map();
  scores.forEach((y, i) => byGroup.set(groups[i], (byGroup.get(groups[i]) || []).concat([y])));
  const k = byGroup.size;
  if (total <= 0 || k < 2 || n - k < 1) return 0;
  let between = 0;
  for (const ys of byGroup.values()) {
    const m = ys.reduce((a, b) => a + b, 0) / ys.length;
    between += ys.length * (m - mean) ** 2;
  }
  const withinMean = (total - between) / (n - k);
  return Math.max(0, (between - (k - 1) * withinMean) / total);
}

/**
 * trials: [{hyperparameters, score}]. Returns [{name, explained, share}] by share, highest first;
 * empty with fewer than 3 scored trials.
 */
export function importance(trials) {
  const scored = trials.filter((t) => Number.isFinite(t.score));
  if (scored.length < 3) return [];
  const names = [...new Set(scored.flatMap((t) => Object.keys(t.hyperparameters || {})))];
  const scores = scored.map((t) => t.score);
  const rows = [];
  for (const name of names) {
    const values = scored.map((t) => (t.hyperparameters || {})[name]);
    // A hyperparameter every trial shares explains nothing and would only crowd the chart.
    if (new Set(values.map(String)).size > 1) rows.push({ name, explained: explainedVariance(scores, groupsOf(values)) });
  }
  const sum = rows.reduce((a, r) => a + r.explained, 0);
  for (const row of rows) row.share = sum > 0 ? row.explained / sum : 0;
  return rows.sort((a, b) => b.share - a.share || a.name.localeCompare(b.name));
}
