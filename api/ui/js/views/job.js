// A job's page: header (status, progress, best, cancel), live stream, search sections, trial panel, timeline.
import { api, showError } from "../api.js";
import { age, badge, duration, fmt, h, fill } from "../dom.js";
import { followJob } from "../sse.js";
import { renderSearch } from "./search.js";
import { renderTrial } from "./trial.js";

const CANCELLABLE = new Set(["queued", "running"]);

/** Run `fn` at most once per `ms`, always once more after the last call. */
function throttle(fn, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) return void (again = true);
    fn();
    timer = setTimeout(function tick() {
      timer = null;
      if (again) (again = false), fn(), (timer = setTimeout(tick, ms));
    }, ms);
  };
}

function progress(job) {
  const p = job.progress || {};
  const trials = job.kind === "search" ? h("div", { class: "progress" }, h("label", {}, `Trials ${p.trials_done}/${p.trials_total}`),
    h("progress", { max: p.trials_total || 1, value: p.trials_done || 0, id: "trial-progress" })) : null;
  const epochs = p.epochs && job.kind === "train" ? h("div", { class: "progress" }, h("label", {}, `Epoch ${p.epoch}/${p.epochs}`),
    h("progress", { max: p.epochs, value: p.epoch || 0 })) : null;
  return h("div", { class: "progress-row" }, trials, epochs);
}

function bestBlock(best) {
  if (!best) return null;
  const val = Object.entries(best.metrics || {}).filter(([k]) => k.startsWith("val_") || k.startsWith("test_"));
  const baselines = Object.entries(best.baselines || {});
  return h("div", { class: "best" },
    h("h3", {}, "Best"),
    h("p", {}, `${best.objective || "score"} `, h("strong", { id: "best-score" }, fmt(best.score)),
      best.number !== undefined ? ` (trial ${best.number})` : "",
      best.model_id ? [" · ", h("a", { href: `#/models/${best.model_id}`, id: "best-model" }, "model card")] : null),
    val.length ? h("p", { class: "chips" }, val.map(([k, v]) => h("span", { class: "chip" }, `${k} ${fmt(v)}`))) : null,
    baselines.length ? h("p", { class: "chips" }, h("span", { class: "muted" }, "Baselines: "),
      baselines.map(([name, m]) => h("span", { class: "chip" }, `${name} ${fmt(m[best.objective])}`))) : null,
    (best.flags || []).map((f) => h("p", { class: "note" }, f.message || f.flag)),
  );
}

function header(job, { streamState, onCancel }) {
  const cancel = h("button", { type: "button", id: "cancel-job", class: "danger", disabled: !CANCELLABLE.has(job.status) }, "Cancel job");
  cancel.addEventListener("click", onCancel);
  return [
    h("div", { class: "head" },
      h("h1", {}, job.name || job.id),
      h("span", { id: "job-status" }, badge(job.status)),
      h("span", { class: "muted" }, job.kind),
      h("span", { class: `stream stream-${streamState}`, id: "stream-state" }, streamState),
      h("span", { class: "controls" }, cancel)),
    h("p", { class: "muted" },
      `target ${job.target} · dataset ${job.dataset_id} · attempt ${job.attempt} · created ${age(job.created_at)} · ran ${duration(job.started_at, job.finished_at)}`),
    progress(job),
    job.error ? h("div", { class: "error" }, h("strong", {}, job.error.code || "error"), h("p", {}, job.error.message || JSON.stringify(job.error))) : null,
    bestBlock(job.best),
  ];
}

function timelineItem(event) {
  const note = event.from === event.to;
  return h("li", { class: note ? "note" : "" },
    h("time", { datetime: event.at, title: event.at }, new Date(event.at).toLocaleTimeString()),
    " ", note ? h("span", { class: "muted" }, "note") : [event.from ? badge(event.from) : null, event.from ? " → " : "", badge(event.to)],
    event.reason ? h("span", { class: "reason" }, ` ${event.reason}`) : null);
}

export function renderJob(root, [jobId]) {
  const controller = new AbortController();
  const signal = controller.signal;
  const state = { job: null, trials: [], epochs: new Map(), selected: null, picked: false, streamState: "connecting", trialView: {}, sort: null };
  const headerEl = h("section", { class: "card", id: "job-header" }, h("p", { class: "muted" }, "Loading…"));
  const searchEl = h("div", { id: "search" });
  const trialEl = h("section", { class: "card", id: "trial-panel" });
  const timelineEl = h("ol", { class: "timeline", id: "timeline" });
  root.append(headerEl, searchEl, trialEl, h("section", { class: "card" }, h("details", { open: true }, h("summary", {}, "Event timeline"), timelineEl)));

  const objective = () => state.job?.best?.objective || state.job?.spec?.search?.objective || "val_loss";
  const direction = () => state.job?.best?.direction || state.job?.spec?.search?.direction || (objective().endsWith("loss") ? "min" : "max");

  function drawHeader() {
    if (state.job) fill(headerEl, header(state.job, { streamState: state.streamState, onCancel: cancel }));
  }
  function drawSearch() {
    if (state.job?.kind !== "search") return;
    state.sort = state.sort || { key: "score", dir: direction() === "min" ? "asc" : "desc" };
    renderSearch(searchEl, {
      trials: state.trials, direction: direction(), objective: objective(), sort: state.sort, selected: state.selected,
      onSort: (key) => {
        state.sort = { key, dir: state.sort.key === key && state.sort.dir === "desc" ? "asc" : "desc" };
        drawSearch();
      },
      onPick: (number) => {
        state.picked = true;
        pick(number);
        trialEl.scrollIntoView({ behavior: "smooth", block: "start" });
      },
    });
  }
  function drawTrial() {
    if (state.selected === null) return void fill(trialEl, h("p", { class: "muted" }, "Learning curves appear with the first epoch."));
    renderTrial(trialEl, {
      trial: state.trials.find((t) => t.number === state.selected), number: state.selected,
      executions: state.epochs.get(state.selected) || new Map(), objective: objective(), view: state.trialView,
    });
  }
  function pick(number) {
    if (state.selected !== number) state.trialView = {};
    state.selected = number;
    drawSearch();
    drawTrial();
  }

  const refreshJob = throttle(async () => {
    try {
      const first = state.job === null;
      state.job = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`, { signal, headers: { "Cache-Control": "no-cache" } });
      drawHeader();
      if (first) drawSearch(); // trials may have come first, before the job said it is a search
    } catch (error) {
      showError(error);
    }
  }, 1000);
  const refreshTrials = throttle(async () => {
    try {
      state.trials = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/trials`, { signal });
      if (!state.picked && state.job?.best && !CANCELLABLE.has(state.job.status) && state.job.status !== "cancelling") {
        state.selected = state.job.best.number ?? state.selected;
      }
      drawSearch();
      drawTrial();
    } catch (error) {
      showError(error);
    }
  }, 1000);
  const redrawTrial = throttle(drawTrial, 300);

  async function cancel() {
    if (!confirm(`Cancel ${state.job.name || state.job.id}?`)) return;
    try {
      state.job = await api("POST", `/v1/jobs/${encodeURIComponent(jobId)}/cancel`, { signal });
      drawHeader();
    } catch (error) {
      showError(error);
    }
  }

  function onEpoch(row) {
    const byRun = state.epochs.get(row.trial) || new Map();
    state.epochs.set(row.trial, byRun);
    const rows = (byRun.get(row.execution ?? 0) || []).filter((r) => r.epoch !== row.epoch);
    rows.push(row);
    rows.sort((a, b) => a.epoch - b.epoch);
    byRun.set(row.execution ?? 0, rows);
    // Follow the live trial until the user picks one; stay on it while it runs.
    const current = state.trials.find((t) => t.number === state.selected);
    if (!state.picked && (state.selected === null || (current && current.status !== "running"))) pick(row.trial);
    else if (row.trial === state.selected) redrawTrial();
  }

  function onEvent({ event, data }) {
    if (event === "epoch") return onEpoch(data);
    if (event === "status") {
      timelineEl.append(timelineItem(data));
      return refreshJob();
    }
    if (event === "trial") {
      const trial = state.trials.find((t) => t.number === data.trial);
      if (trial) trial.status = data.to;
      return refreshTrials();
    }
    if (event === "end") {
      state.streamState = "ended";
      drawHeader();
      refreshJob();
      refreshTrials();
    }
  }

  refreshJob();
  refreshTrials();
  drawTrial();
  followJob(jobId, {
    signal,
    onEvent,
    onState: (s) => {
      state.streamState = s;
      drawHeader();
    },
  }).catch(showError);
  return () => controller.abort();
}
