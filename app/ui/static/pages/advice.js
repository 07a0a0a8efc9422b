// Advice: a form for the spec (choices read from the API's own OpenAPI schema), the answer as
// field -> value -> rule ids (each opening the rule's text) -> why, warnings, the snippets, a
// preview of the advised schedule, and "measure it" (the advice's trial config as a trials job).
import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { copyButton, errorBox, fmtLr, h, navigate } from "../dom.js";

const FIELDS = [  // [name, type, label, default]
  ["task", "enum", "Task *", "image_classification_cnn"],
  ["architecture", "enum", "Architecture", "cnn"],
  ["param_count", "int", "Parameters *", 25600000],
  ["batch_size", "int", "Batch size *", 256],
  ["dataset_size", "int", "Dataset size *", 1281167],
  ["dataset_unit", "enum", "Dataset unit", "examples"],
  ["seq_len", "int", "Sequence length (LLM tasks)", ""],
  ["epochs", "float", "Epochs (or total steps)", 90],
  ["total_steps", "int", "Total steps (or epochs)", ""],
  ["optimizer", "enum?", "Optimizer (optional)", ""],
];

const SMALL_EXPERIMENT = {
  data: { kind: "classification", n_samples: 1024, n_features: 16, n_classes: 4, seed: 0 },
  model: { kind: "mlp", hidden: [64] }, batch_size: 32, seed: 0,
};

let schemaPromise = null;
function enumsOf(prop, schemas) {
  if (!prop) return [];
  if (prop.enum) return prop.enum;
  if (prop.$ref) return enumsOf(schemas[prop.$ref.split("/").pop()], schemas);
  for (const k of ["anyOf", "oneOf", "allOf"]) if (prop[k]) return prop[k].flatMap(p => enumsOf(p, schemas));
  return [];
}

export async function openRule(id) {
  const dlg = document.getElementById("rule-dialog");
  document.getElementById("rule-title").textContent = `Rule ${id}`;
  const body = document.getElementById("rule-body");
  body.replaceChildren(h("p", {}, "loading…"));
  if (!dlg.open) dlg.showModal();
  try {
    const rule = await api(`/v1/rules/${encodeURIComponent(id)}`);
    const text = rule.text || rule.statement || rule.description || rule.when || "";
    body.replaceChildren(
      h("p", { id: "rule-text" }, text),
      ...Object.entries(rule).filter(([k, v]) => !["id", "text"].includes(k) && v !== null && typeof v !== "object")
        .map(([k, v]) => h("p", { class: "muted" }, `${k}: ${v}`)),
      h("p", {}, h("a", { href: `/v1/rules/${encodeURIComponent(id)}`, target: "_blank", rel: "noopener" }, "as JSON")));
  } catch (e) {
    body.replaceChildren(errorBox(e));
  }
}

export function advicePage(main) {
  const form = h("form", { id: "advice-form", class: "grid" });
  const out = h("div", { id: "advice-out" });
  main.append(h("h1", {}, "Optimizer advice"), form, out);
  schemaPromise ||= api("/openapi.json");
  schemaPromise.then(doc => {
    const schemas = doc.components.schemas, props = schemas.AdviceRequest.properties;
    for (const [name, type, label, dflt] of FIELDS) {
      const id = `adv-${name}`;
      let input;
      if (type.startsWith("enum")) {
        const opts = enumsOf(props[name], schemas);
        input = h("select", { id, name }, type === "enum?" ? h("option", { value: "" }, "let the engine pick") : null,
          opts.map(o => h("option", { value: o, selected: o === dflt }, o)));
      } else {
        input = h("input", { id, name, type: "number", step: type === "float" ? "any" : "1", min: "0", value: dflt });
      }
      form.append(h("label", { for: id }, label, input));
    }
    form.append(h("label", { for: "adv-norm" }, "Normalization", h("select", { id: "adv-norm", name: "normalization", multiple: true, size: 3 },
      enumsOf(props.normalization?.items, schemas).map(o => h("option", { value: o, selected: o === "batchnorm" }, o)))));
    form.append(h("div", {}, h("button", { class: "primary", type: "submit", id: "get-advice" }, "Get advice")));
  }).catch(e => out.replaceChildren(errorBox(e)));

  form.addEventListener("submit", async e => {
    e.preventDefault();
    const spec = {};
    for (const [name, type] of FIELDS) {
      const v = form.elements[name].value;
      if (v === "") continue;
      spec[name] = type === "int" ? parseInt(v, 10) : type === "float" ? parseFloat(v) : v;
    }
    const norm = [...form.elements.normalization.selectedOptions].map(o => o.value);
    if (norm.length) spec.normalization = norm;
    out.replaceChildren(h("p", {}, "asking…"));
    try { renderAdvice(out, await api("/v1/advice", { method: "POST", body: spec })); } catch (err) { out.replaceChildren(errorBox(err)); }
  });
}

const ruleLinks = ids => ids.flatMap((id, i) => [i ? ", " : "", h("a", { href: `/v1/rules/${encodeURIComponent(id)}`, class: "rule" }, id)]);
const show = v => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : fmtLr(v)) : typeof v === "string" ? v : JSON.stringify(v));

function renderAdvice(out, a) {
  const o = a.optimizer, s = a.schedule;
  const pytorch = a.artefacts.pytorch, hf = JSON.stringify(a.artefacts.hf_training_arguments, null, 2);
  const preview = h("div", { id: "schedule-preview", class: "card" }, "loading the schedule…");
  const expText = h("textarea", { id: "measure-experiment", rows: 6, "aria-label": "Experiment to measure on (JSON)" }, JSON.stringify(SMALL_EXPERIMENT, null, 2));
  const measureMsg = h("div", { role: "status" });
  const measure = h("button", { type: "button", id: "measure", class: "primary" }, "Measure it (trials job)");
  measure.addEventListener("click", async () => {
    let experiment;
    try { experiment = JSON.parse(expText.value); } catch (e) { measureMsg.replaceChildren(errorBox(`not valid JSON: ${e.message}`)); return; }
    try {
      const job = await api("/v1/jobs/trials", { method: "POST", body: { experiment, config: a.artefacts.trial_config, labels: { name: `advice ${o.name} lr ${fmtLr(o.lr)}` } } });
      navigate(`/ui/jobs/${job.id}`);
    } catch (e) { measureMsg.replaceChildren(errorBox(e)); }
  });
  out.replaceChildren(
    h("h2", {}, `${o.name}, peak LR ${fmtLr(o.lr)}, weight decay ${o.weight_decay}, ${s.name} (confidence ${a.confidence_label})`),
    h("div", { class: "cols" },
      h("table", { id: "rationale", "aria-label": "Advice, value by value" },
        h("thead", {}, h("tr", {}, ["Field", "Value", "Rules", "Why"].map(c => h("th", { scope: "col" }, c)))),
        h("tbody", {}, a.rationale.map(r => h("tr", {}, h("td", {}, r.field), h("td", {}, show(r.value)), h("td", {}, ruleLinks(r.rule_ids)), h("td", {}, r.text))))),
      h("div", {}, h("h2", {}, "Schedule preview"), preview,
        a.warnings.length ? [h("h2", {}, "Warnings"), h("ul", { id: "warnings" }, a.warnings.map(w => h("li", {}, "[", ruleLinks(w.rule_ids), "] ", w.text)))] : null)),
    h("h2", {}, "PyTorch"), h("p", {}, copyButton(() => pytorch, "Copy PyTorch snippet")), h("pre", { id: "snippet-pytorch" }, pytorch),
    h("h2", {}, "Hugging Face TrainingArguments"), h("p", {}, copyButton(() => hf, "Copy HF arguments")), h("pre", { id: "snippet-hf" }, hf),
    a.artefacts.hf_notes.length ? h("ul", {}, a.artefacts.hf_notes.map(n => h("li", {}, n))) : null,
    h("h2", {}, "Measure it"),
    h("p", { class: "muted" }, `Runs the advice's LR and ×⅓, ×3 for ${a.artefacts.trial_config.steps} steps on the experiment below (a small proxy of your model).`),
    expText, h("p", {}, measure), measureMsg);
  api("/v1/schedules/preview", { method: "POST", body: { schedule: s.spec, total_steps: s.total_steps, n_points: 200 } })
    .then(p => preview.replaceChildren(lineChart({
      series: [{ points: p.steps.map((x, i) => [x, p.lrs[i]]), label: `${s.name}`, colour: "var(--c0)" }],
      xLabel: "step", yLabel: "learning rate", title: "advised schedule" })))
    .catch(e => preview.replaceChildren(errorBox(e)));
}
