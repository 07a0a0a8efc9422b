// The dashboard's one reader of a job's `result` (the Python one is app/schemas/job_results.py),
// for the typed union of GET /v1/jobs/{id} (optim_core/specs/results.py): result.kind
// "range_test" (curve.{lrs, losses, raw_losses}, validation.{steps, losses}, suggestions,
// stop_reason, steps_run) | "trials" (candidates[] with curve and validation, ranking, best).
export const SUGGESTIONS = ["recommended", "steepest", "valley", "minimum_div10", "lr_at_min"];

export function readResult(result) {
  if (!result) return null;
  return result.kind === "trials" ? trials(result) : rangeTest(result);
}

function rangeTest(b) {
  const curve = b.curve || {};
  const val = b.validation || {};
  const lrs = curve.lrs || [];
  return {
    kind: "range_test", lrs, losses: curve.losses || [], rawLosses: curve.raw_losses || [],
    valLrs: (val.steps || []).map(s => lrs[s] ?? null), valLosses: val.losses || [],
    suggestions: { flags: [], ...(b.suggestions || {}) }, stopReason: b.stop_reason ?? null,
    stepsRun: b.steps_run ?? null,
  };
}

function trials(b) {
  const cands = (b.candidates || []).map(c => {
    const curve = c.curve || {};
    const val = c.validation || {};
    return {
      label: c.label, peakLr: c.peak_lr ?? null, optimizer: c.optimizer || {}, schedule: c.schedule || null,
      phase: c.phase || "trial",
      trainLosses: curve.smoothed_train_losses || curve.train_losses || [], valSteps: val.steps || [],
      valLosses: val.losses || [], finalValLoss: c.final_val_loss ?? null,
      finalTrainLoss: c.final_train_loss ?? null, diverged: !!c.diverged,
    };
  });
  return { kind: "trials", candidates: cands, ranking: b.ranking || [], best: b.best ?? null,
           rankedBy: b.ranked_by ?? null, verdict: b.verdict?.sentence ?? null };
}

// The recommended LR of a job, for the job list (null when none).
export function recommendedLr(job) {
  const v = readResult(job.result);
  return v && v.kind === "range_test" ? v.suggestions.recommended ?? null : null;
}
