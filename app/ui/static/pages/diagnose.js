// Diagnose: paste or upload a training log (CSV with a header, or JSON), see it plotted with the
// verdict and the evidence marked.
import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { errorBox, h } from "../dom.js";

const EXAMPLE = "step,loss,val_loss\n" + [2.3, 1.8, 1.4, 1.1, 0.9, 0.7, 0.55, 0.45, 0.36, 0.3, 0.25, 0.2]
  .map((l, i) => `${i},${l},${[2.3, 1.9, "", 1.6, "", 1.5, "", 1.45, "", 1.5, 1.6, 1.7][i]}`).join("\n");

const num = v => (v === "" || v === undefined ? null : (x => (Number.isFinite(x) ? x : null))(Number(v)));

// A CSV log -> a TrainingLog body: columns loss (required), step, val_loss, lr, grad_norm.
export function parseLog(text) {
  const t = text.trim();
  if (t.startsWith("{")) return JSON.parse(t);
  const rows = t.split(/\r?\n/).filter(Boolean).map(r => r.split(",").map(c => c.trim()));
  const head = rows.shift().map(c => c.toLowerCase());
  const col = name => head.indexOf(name);
  if (col("loss") < 0) throw new Error("the CSV needs a header with a 'loss' column (and optionally step, val_loss, lr, grad_norm)");
  const log = { loss: rows.map(r => num(r[col("loss")])) };
  const steps = col("step") >= 0 ? rows.map(r => parseInt(r[col("step")], 10)) : null;
  if (steps) log.steps = steps;
  for (const k of ["lr", "grad_norm"]) if (col(k) >= 0) log[k] = rows.map(r => num(r[col(k)]));
  if (col("val_loss") >= 0) {
    const pairs = rows.map((r, i) => [steps ? steps[i] : i, num(r[col("val_loss")])]).filter(([, v]) => v !== null);
    if (pairs.length) { log.val_steps = pairs.map(p => p[0]); log.val_loss = pairs.map(p => p[1]); }
  }
  return log;
}

const EVIDENCE_STEPS = ["min_step", "rise_step", "best_val_step", "end_val_step"];

export function diagnosePage(main) {
  const text = h("textarea", { id: "log-text", rows: 12, "aria-label": "Training log (CSV or JSON)" }, EXAMPLE);
  const file = h("input", { type: "file", id: "log-file", accept: ".csv,.json,text/csv,application/json" });
  const out = h("div", { id: "diagnosis" });
  file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  const form = h("form", {}, h("p", {}, h("label", { for: "log-file" }, "Upload a log (CSV or JSON) ", file)),
    h("p", {}, h("label", { for: "log-text" }, "…or paste it: CSV with a header (loss, and optionally step, val_loss, lr, grad_norm) or a JSON TrainingLog")),
    text, h("p", {}, h("button", { class: "primary", type: "submit", id: "run-diagnose" }, "Diagnose")));
  form.addEventListener("submit", async e => {
    e.preventDefault();
    let log;
    try { log = parseLog(text.value); } catch (err) { out.replaceChildren(errorBox(err)); return; }
    try { render(out, log, await api("/v1/diagnose", { method: "POST", body: log })); } catch (err) { out.replaceChildren(errorBox(err)); }
  });
  main.append(h("h1", {}, "Diagnose a training log"), form, out);
}

function render(out, log, d) {
  const steps = log.steps || log.loss.map((_, i) => i);
  const marks = [];
  const colours = ["var(--rec)", "#9467bd", "#ff7f0e", "#2ca02c"];
  d.findings.forEach((f, fi) => {
    for (const k of EVIDENCE_STEPS) if (typeof f.evidence[k] === "number") marks.push({ x: f.evidence[k], label: `${f.kind}: ${k}`, colour: colours[fi % 4] });
    if (Array.isArray(f.evidence.steps)) f.evidence.steps.forEach((s, i) => marks.push({ x: s, label: `${f.kind}: ${i ? "to" : "from"}`, colour: colours[fi % 4] }));
  });
  const series = [{ points: steps.map((s, i) => [s, log.loss[i]]), label: "train loss", colour: "var(--c0)" }];
  if (log.val_loss) series.push({ points: log.val_steps.map((s, i) => [s, log.val_loss[i]]), label: "validation loss", colour: "var(--val)", dash: "4 2" });
  out.replaceChildren(
    h("h2", {}, "Verdict: ", h("span", { id: "verdict" }, d.findings.map(f => f.kind).join(", ") || "nothing found")),
    h("div", { class: "cols" }, h("div", { class: "card" }, lineChart({ series, marks, xLabel: "step", yLabel: "loss", title: "training log" })),
      h("div", {}, d.findings.map(f => h("div", { class: "card finding" },
        h("h2", {}, f.kind, " ", h("span", { class: "muted" }, `(${f.rule_ids.join(", ")})`)), h("p", {}, f.summary),
        h("p", { class: "muted" }, "evidence: ", JSON.stringify(f.evidence)),
        Object.keys(f.change).length ? h("p", {}, "change: ", JSON.stringify(f.change)) : null)))));
}
