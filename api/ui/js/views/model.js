// A model's card (task, classes, inputs, metrics, checksum, exports), its download and a predict form.
import { api, download, showError } from "../api.js";
import { age, fmt, h, fill } from "../dom.js";

function inputsTable(inputs) {
  return h("div", { class: "scroll" }, h("table", { class: "table", id: "model-inputs" },
    h("thead", {}, h("tr", {}, ["Column", "Type", "Values"].map((c) => h("th", {}, c)))),
    h("tbody", {}, inputs.map((i) => h("tr", {},
      h("td", {}, i.column),
      h("td", {}, i.dtype),
      h("td", { class: "muted" }, i.dtype === "numeric"
        ? `mean ${fmt(i.mean)} · std ${fmt(i.std)} · ${fmt(i.min)} … ${fmt(i.max)}${(i.missing_markers || []).length ? ` · missing: ${i.missing_markers.join(", ")}` : ""}`
        : (i.vocabulary || []).join(", ")))))));
}

function metricsList(metrics) {
  return h("p", { class: "chips", id: "model-metrics" },
    Object.entries(metrics || {}).map(([k, v]) => h("span", { class: "chip" }, `${k} ${fmt(v)}`)));
}

/** A row from the form: blanks stay blank (the model imputes them), numbers become numbers. */
export function rowFromForm(form, inputs) {
  const row = {};
  for (const input of inputs) {
    const raw = form.elements[`col:${input.column}`].value.trim();
    const number = Number(raw);
    row[input.column] = input.dtype === "numeric" && raw !== "" && Number.isFinite(number) ? number : raw;
  }
  return row;
}

function predictionView(predictions) {
  return h("div", { id: "predictions" }, predictions.map((p, i) => {
    if (p.label === undefined) return h("p", {}, `row ${i + 1}: `, h("strong", {}, fmt(p.value)));
    const probs = Object.entries(p.probabilities || {}).sort((a, b) => b[1] - a[1]);
    return h("div", { class: "prediction" },
      h("p", {}, predictions.length > 1 ? `row ${i + 1}: ` : "", h("strong", { class: "label" }, String(p.label))),
      probs.map(([label, prob]) => h("div", { class: "prob" },
        h("span", {}, label),
        h("meter", { min: 0, max: 1, value: prob }),
        h("span", { class: "num" }, `${(prob * 100).toFixed(1)} %`))));
  }));
}

function predictForm(model) {
  const inputs = model.input_schema.inputs || [];
  const out = h("div", { class: "predict-out" });
  const fields = inputs.map((i) => {
    const id = `col-${i.input || i.column}`;
    const control = i.dtype === "numeric"
      ? h("input", { id, name: `col:${i.column}`, inputmode: "decimal", value: Number.isFinite(i.mean) ? +i.mean.toPrecision(4) : "", autocomplete: "off" })
      : h("input", { id, name: `col:${i.column}`, list: `${id}-values`, value: (i.vocabulary || [""])[0], autocomplete: "off" });
    return h("div", { class: "field" }, h("label", { for: id }, i.column), control,
      i.vocabulary ? h("datalist", { id: `${id}-values` }, i.vocabulary.map((v) => h("option", { value: v }))) : null);
  });
  const form = h("form", { id: "predict-form" },
    h("div", { class: "fields" }, fields),
    h("p", { class: "hint" }, "A blank field is a missing value: the model fills it as it was trained to."),
    h("button", { type: "submit" }, "Predict"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(out, h("p", { class: "muted" }, "Predicting…"));
    try {
      const answer = await api("POST", `/v1/models/${encodeURIComponent(model.id)}/predict`, { json: { rows: [rowFromForm(form, inputs)] } });
      fill(out, predictionView(answer.predictions));
    } catch (error) {
      fill(out);
      showError(error, out);
    }
  });
  const batch = h("textarea", { rows: 4, id: "predict-json", "aria-label": "rows as JSON", placeholder: '[{"column": value, ...}, ...]' });
  const batchOut = h("div");
  const batchForm = h("form", {}, batch, h("button", { type: "submit", class: "secondary" }, "Predict these rows"));
  batchForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(batchOut);
    try {
      const rows = JSON.parse(batch.value);
      const answer = await api("POST", `/v1/models/${encodeURIComponent(model.id)}/predict`, { json: { rows } });
      fill(batchOut, predictionView(answer.predictions));
    } catch (error) {
      showError(error instanceof SyntaxError ? new Error(`Not JSON: ${error.message}`) : error, batchOut);
    }
  });
  return [form, out, h("details", {}, h("summary", {}, "Several rows (JSON)"), batchForm, batchOut)];
}

export function renderModel(root, [modelId]) {
  const card = h("section", { class: "card", id: "model-card" }, h("p", { class: "muted" }, "Loading…"));
  root.append(card);
  const controller = new AbortController();
  api("GET", `/v1/models/${encodeURIComponent(modelId)}`, { signal: controller.signal }).then((model) => {
    const schema = model.input_schema || {};
    const downloadButton = h("button", { type: "button", id: "download-model" }, `Download .keras (${(model.size_bytes / 1024).toFixed(0)} KiB)`);
    downloadButton.addEventListener("click", () => download(`/v1/models/${encodeURIComponent(model.id)}/download`, `${model.id}.keras`).catch((e) => showError(e)));
    fill(card,
      h("div", { class: "head" }, h("h1", {}, `Model ${model.id}`), h("span", { class: "controls" }, downloadButton)),
      h("p", { class: "muted" }, `${model.task} · target ${model.target} · from `, h("a", { href: `#/jobs/${model.job_id}` }, model.job_id),
        ` · ${model.format} · created ${age(model.created_at)}`),
      schema.classes ? h("p", { id: "model-classes" }, h("span", { class: "muted" }, "Classes: "), schema.classes.map(String).join(", ")) : null,
      h("h2", {}, "Metrics"), metricsList(model.metrics),
      h("p", { class: "muted small" }, `sha256 ${model.sha256}`),
      Object.keys(model.exports || {}).length ? h("p", {}, "Exports: ", Object.entries(model.exports).map(([f, e]) => `${f} (${fmt(e.bytes / 1024, 0)} KiB)`).join(", ")) : null,
      h("h2", {}, `Inputs (${(schema.inputs || []).length})`), inputsTable(schema.inputs || []),
    );
    root.append(h("section", { class: "card", id: "predict" }, h("h2", {}, "Predict"), predictForm(model)));
  }).catch((error) => {
    fill(card, h("p", { class: "muted" }, "No model to show."));
    showError(error);
  });
  return () => controller.abort();
}
