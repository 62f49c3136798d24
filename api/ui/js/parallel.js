// Parallel coordinates: one vertical axis per hyperparameter and one for the score; one line per trial.
import { s, fmt } from "./dom.js";

const H = 320;
const TOP = 28;
const BOTTOM = 44;
const GAP = 100;
const MISSING = "n/a";

/** How one axis places values: numbers linearly (log10 when positive and spanning 2+ decades), others as evenly spaced categories. */
export function axisOf(name, values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  const numeric = present.length > 0 && present.every((v) => typeof v === "number");
  const hasMissing = present.length < values.length;
  const span = H - TOP - BOTTOM - (hasMissing ? 24 : 0);
  if (numeric) {
    const lo = Math.min(...present);
    const hi = Math.max(...present);
    const log = lo > 0 && hi / lo >= 100;
    const t = (v) => (log ? Math.log10(v) : v);
    const at = (v) => (hi > lo ? TOP + span - ((t(v) - t(lo)) / (t(hi) - t(lo))) * span : TOP + span / 2);
    const pos = (v) => (v === undefined || v === null ? H - BOTTOM : at(v));
    const marks = hi > lo ? [lo, log ? Math.sqrt(lo * hi) : (lo + hi) / 2, hi] : [lo];
    const ticks = marks.map((v) => ({ v, label: fmt(v, 3) }));
    if (hasMissing) ticks.push({ v: null, label: MISSING });
    return { name, pos, ticks, log };
  }
  const categories = [...new Set(present.map(String))].sort();
  const step = categories.length > 1 ? span / (categories.length - 1) : 0;
  const pos = (v) =>
    v === undefined || v === null ? H - BOTTOM : TOP + (categories.length > 1 ? categories.indexOf(String(v)) * step : span / 2);
  const ticks = categories.map((c) => ({ v: c, label: c }));
  if (hasMissing) ticks.push({ v: null, label: MISSING });
  return { name, pos, ticks, log: false };
}

/** Colour from worst (light orange) to best (dark blue) score. */
function colour(goodness) {
  const hue = 30 + goodness * 190;
  return `hsl(${hue.toFixed(0)} 80% ${(60 - goodness * 25).toFixed(0)}%)`;
}

/** trials: [{number, hyperparameters, score}]; direction "max" or "min". */
/** `only`: the hyperparameters to draw, in that order (default: all, by name). */
export function parallelCoordinates({ trials, direction = "max", onPick = null, only = null }) {
  const scored = trials.filter((t) => Number.isFinite(t.score));
  const names = only || [...new Set(scored.flatMap((t) => Object.keys(t.hyperparameters || {})))].sort();
  // The score first, as Optuna draws it: always in view when the chart scrolls sideways.
  const axes = [axisOf("score", scored.map((t) => t.score))];
  axes.push(...names.map((n) => axisOf(n, scored.map((t) => (t.hyperparameters || {})[n]))));
  const width = Math.max(640, 60 + (axes.length - 1) * GAP + 60);
  const x = (i) => 60 + i * GAP;
  const svg = s("svg", { viewBox: `0 0 ${width} ${H}`, class: "chart parallel", role: "img", "aria-label": "parallel coordinates", "data-points": scored.length });
  svg.setAttribute("width", width);
  if (!scored.length) {
    svg.append(s("text", { x: width / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, "no scores yet"));
    return svg;
  }
  const scores = scored.map((t) => t.score);
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const lines = s("g", { class: "lines" });
  // Best trials drawn last, so they stay on top.
  const bestLast = [...scored].sort((a, b) => (direction === "max" ? a.score - b.score : b.score - a.score));
  for (const trial of bestLast) {
    const goodness = hi > lo ? (direction === "max" ? trial.score - lo : hi - trial.score) / (hi - lo) : 1;
    const values = [trial.score, ...names.map((n) => (trial.hyperparameters || {})[n])];
    const d = values.map((v, i) => `${i ? "L" : "M"}${x(i)},${axes[i].pos(v).toFixed(1)}`).join("");
    const path = s("path", { d, stroke: colour(goodness), class: onPick ? "pline pick" : "pline", fill: "none" }, s("title", {}, `trial ${trial.number}: ${fmt(trial.score)}`));
    if (onPick) path.addEventListener("click", () => onPick(trial));
    lines.append(path);
  }
  svg.append(lines);
  axes.forEach((axis, i) => {
    const g = s("g", { class: "paxis" });
    g.append(s("line", { x1: x(i), x2: x(i), y1: TOP, y2: H - BOTTOM, class: "axisline" }));
    g.append(s("text", { x: x(i), y: 16, class: "label", "text-anchor": "middle" }, axis.log ? `${axis.name} (log)` : axis.name));
    for (const tick of axis.ticks) {
      g.append(s("text", { x: x(i) + 5, y: axis.pos(tick.v) + 4, class: "tick halo" }, tick.label));
    }
    svg.append(g);
  });
  return svg;
}
