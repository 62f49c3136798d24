// Hand-drawn SVG charts: line charts (learning curves, gradient norms), scatter, horizontal bars.
import { s, fmt } from "./dom.js";

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const H = 300;
const PAD = { left: 56, right: 16, top: 30, bottom: 40 };

/** Drawing width: 640 units on laptops, about the screen's width on phones, so text keeps its size. */
export function chartWidth() {
  return Math.round(Math.min(640, Math.max(320, window.innerWidth - 48)));
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05];
  return [lo, hi];
}

/** Scales and axes for a chart frame; `logY` plots log10(y) (gradient norms span decades). */
function frame({ W, xs, ys, xLabel, yLabel, logY = false, integerX = false, top = PAD.top }) {
  const ty = (y) => (logY ? Math.log10(y) : y);
  const [x0, x1] = extent(xs);
  const [y0, y1] = extent(ys.filter((y) => !logY || y > 0).map(ty));
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((ty(y) - y0) / (y1 - y0 || 1)) * (H - top - PAD.bottom);
  const axes = s("g", { class: "axes" });
  let xTicks = niceTicks(x0, x1, W < 500 ? 4 : 6);
  if (integerX) xTicks = xTicks.filter((t) => Number.isInteger(t));
  for (const t of xTicks) {
    axes.append(s("line", { x1: sx(t), x2: sx(t), y1: top, y2: H - PAD.bottom, class: "grid" }));
    axes.append(s("text", { x: sx(t), y: H - PAD.bottom + 16, class: "tick", "text-anchor": "middle" }, fmt(t, 2)));
  }
  for (const t of niceTicks(y0, y1, 5)) {
    const y = H - PAD.bottom - ((t - y0) / (y1 - y0 || 1)) * (H - top - PAD.bottom);
    axes.append(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
    const label = logY ? fmt(10 ** t, 3) : fmt(t, 3);
    axes.append(s("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, label));
  }
  axes.append(s("text", { x: (W + PAD.left) / 2, y: H - 6, class: "label", "text-anchor": "middle" }, xLabel));
  axes.append(
    s("text", { x: 14, y: H / 2, class: "label", "text-anchor": "middle", transform: `rotate(-90 14 ${H / 2})` }, yLabel),
  );
  return { sx, sy, axes };
}

function svgRoot(W, title, points) {
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title, "data-points": points });
}

function legendColumns(W) {
  return Math.max(1, Math.floor((W - PAD.left) / 112));
}

function legend(W, series) {
  const columns = legendColumns(W);
  return s(
    "g",
    { class: "legend" },
    series.map((line, i) =>
      s(
        "g",
        // Above the plot area (PAD.top), so it never hides a curve.
        { transform: `translate(${PAD.left + 8 + (i % columns) * 112} ${12 + Math.floor(i / columns) * 14})` },
        s("line", { x1: 0, x2: 18, y1: 0, y2: 0, stroke: line.color, "stroke-dasharray": line.dash || null, class: "line" }),
        s("text", { x: 24, y: 4, class: "tick" }, line.name),
      ),
    ),
  );
}

/**
 * Lines over a shared x axis. `series`: [{name, points: [[x, y], ...], color, dash}]. The svg carries
 * data-points (how many points it draws) so a watcher can tell it grew.
 */
export function lineChart({ title, series, xLabel, yLabel, logY = false }) {
  const W = chartWidth();
  const drawn = series.filter((line) => line.points.length);
  const all = drawn.flatMap((line) => line.points.filter(([, y]) => Number.isFinite(y) && (!logY || y > 0)));
  const svg = svgRoot(W, title, all.length);
  if (!all.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, "no epochs yet"));
    return svg;
  }
  const top = PAD.top + Math.floor((drawn.length - 1) / legendColumns(W)) * 14;
  const { sx, sy, axes } = frame({ W, xs: all.map((p) => p[0]), ys: all.map((p) => p[1]), xLabel, yLabel, logY, integerX: true, top });
  svg.append(axes);
  for (const line of drawn) {
    const pts = line.points.filter(([, y]) => Number.isFinite(y) && (!logY || y > 0));
    const d = pts.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    svg.append(s("path", { d, stroke: line.color, "stroke-dasharray": line.dash || null, class: "line", fill: "none" }));
    const [lx, ly] = pts[pts.length - 1];
    svg.append(s("circle", { cx: sx(lx), cy: sy(ly), r: 3, fill: line.color }, s("title", {}, `${line.name} @ ${lx}: ${fmt(ly)}`)));
  }
  svg.append(legend(W, drawn));
  return svg;
}

/** Points (e.g. score per trial number), optionally with a step line (the best so far). */
export function scatterChart({ title, points, xLabel, yLabel, step = null, onPick = null }) {
  const W = chartWidth();
  const svg = svgRoot(W, title, points.length);
  if (!points.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, "no scores yet"));
    return svg;
  }
  const ys = points.map((p) => p.y).concat(step ? step.map((p) => p[1]) : []);
  const { sx, sy, axes } = frame({ W, xs: points.map((p) => p.x), ys, xLabel, yLabel, integerX: true });
  svg.append(axes);
  if (step && step.length) {
    const d = step.map(([x, y], i) => (i ? `H${sx(x).toFixed(1)}V${sy(y).toFixed(1)}` : `M${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)).join("");
    svg.append(s("path", { d, stroke: PALETTE[1], class: "line", fill: "none" }));
  }
  for (const p of points) {
    const dot = s("circle", { cx: sx(p.x), cy: sy(p.y), r: 5, fill: PALETTE[0], class: onPick ? "pick" : null }, s("title", {}, p.label));
    if (onPick) dot.addEventListener("click", () => onPick(p));
    svg.append(dot);
  }
  return svg;
}

/** Horizontal bars of values in [0, 1] (hyperparameter importance). */
export function barChart({ title, bars }) {
  const W = chartWidth();
  const rowH = 28;
  const height = Math.max(1, bars.length) * rowH + 12;
  const labelW = W < 500 ? 120 : 170;
  const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, class: "chart bars", role: "img", "aria-label": title, "data-points": bars.length });
  bars.forEach((bar, i) => {
    const y = 6 + i * rowH;
    const width = Math.max(1, bar.value * (W - labelW - 70));
    svg.append(
      s("text", { x: labelW - 8, y: y + 17, class: "tick", "text-anchor": "end" }, bar.label),
      s("rect", { x: labelW, y: y + 4, width, height: rowH - 10, fill: PALETTE[i % PALETTE.length], rx: 3 }),
      s("text", { x: labelW + width + 6, y: y + 17, class: "tick" }, `${(bar.value * 100).toFixed(1)} %`),
    );
  });
  return svg;
}
