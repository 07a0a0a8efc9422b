// The dashboard's one reader of a job's `result` (the Python one is app/schemas/job_results.py).
// Written for the agreed flat shape (result.kind "range_test" | "trials"; curve.{lrs, losses,
// raw_losses}, validation.{steps, losses}, suggestions, stop_reason; candidates[], ranking,
// best), with a fallback for today's envelope ({kind, result: {lrs, losses, val_steps, ...}}).
const KINDS = { range_test: "range_test", "lr-range-test": "range_test", trials: "trials" };
export const SUGGESTIONS = ["recommended", "steepest", "valley", "minimum_div10", "lr_at_min"];

export function readResult(result, jobKind) {
  if (!result) return null;
  const body = result.result && typeof result.result === "object" ? result.result : result;
  let kind = KINDS[result.kind || jobKind];
  if (!kind) kind = body.candidates || body.trials ? "trials" : "range_test";
  return kind === "trials" ? trials(body) : rangeTest(body);
}

function rangeTest(b) {
  const curve = b.curve || b;
  const val = b.validation || {};
  const lrs = curve.lrs || [];
  const valSteps = val.steps || b.val_steps || [];
  return {
    kind: "range_test", lrs, losses: curve.losses || [], rawLosses: curve.raw_losses || [],
    valLrs: valSteps.map(s => lrs[s] ?? null), valLosses: val.losses || b.val_losses || [],
    suggestions: { flags: [], ...(b.suggestions || {}) }, stopReason: b.stop_reason ?? null,
    stepsRun: b.steps_run ?? null,
  };
}

function trials(b) {
  const cands = (b.candidates || b.trials || []).map(c => {
    const m = { ...c, ...(c.curves || c.curve || {}) };
    return {
      label: m.label, peakLr: m.peak_lr ?? null, optimizer: m.optimizer || {}, schedule: m.schedule || null,
      trainLosses: m.smoothed_train_losses || m.train_losses || [], valSteps: m.val_steps || [],
      valLosses: m.val_losses || [], finalValLoss: m.final_val_loss ?? null,
      finalTrainLoss: m.final_train_loss ?? null, diverged: !!m.diverged,
    };
  });
  const best = b.best && typeof b.best === "object" ? b.best.label : b.best ?? null;
  const ranking = (b.ranking || []).map(r => (r && typeof r === "object" ? r.label : r));
  return { kind: "trials", candidates: cands, ranking, best, rankedBy: b.ranked_by ?? null };
}

// The recommended LR of a job, for the job list (null when none).
export function recommendedLr(job) {
  const v = readResult(job.result, job.kind);
  return v && v.kind === "range_test" ? v.suggestions.recommended ?? null : null;
}
