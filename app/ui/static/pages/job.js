// A job's page: live progress from the SSE stream (read with fetch, so the API key goes along),
// the range test's curve with every suggestion marked, or the trials' curves and ranking;
// cancel, resubmit, and the request as JSON.
import { api, streamEvents } from "../api.js";
import { lineChart, MARK_COLOURS, PALETTE } from "../chart.js";
import { copyButton, errorBox, fmtDuration, fmtLr, h, jobLabel, navigate, secondsBetween, statusBadge } from "../dom.js";
import { readResult, SUGGESTIONS } from "../results.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const SUBMIT_URL = { range_test: "/v1/jobs/lr-range-test", trials: "/v1/jobs/trials" };

export function jobPage(main, id) {
  const ctrl = new AbortController();
  const head = h("div"), prog = h("progress", { id: "progress", max: 1, value: 0, "aria-label": "Progress" });
  const progText = h("span", { id: "progress-text", role: "status", "aria-live": "polite" }, "waiting for the worker…");
  const chartBox = h("div", { id: "chart", class: "card" });
  const side = h("div", { id: "summary" });
  const actions = h("div", { class: "row" });
  const extra = h("div");
  const msg = h("div");
  main.append(h("h1", {}, "Job ", h("code", {}, id)), head, h("p", {}, prog, progText), msg, actions,
              h("div", { class: "cols" }, chartBox, side), extra);
  const live = [];  // [lr or step, loss] from progress events while running
  let job = null;

  function drawLive() {
    if (!live.length || (job && job.status === "succeeded")) return;
    const isRange = !job || job.kind !== "trials";
    chartBox.replaceChildren(h("h2", {}, "Live loss"), lineChart({
      series: [{ points: live, label: "smoothed loss", colour: "var(--c0)" }],
      logX: isRange, xLabel: isRange ? "learning rate (log)" : "step", yLabel: "loss",
      title: "loss so far", yClip: true }));
  }

  function setProgress(step, total) {
    if (total) { prog.max = total; prog.value = step; }
    progText.textContent = total ? `step ${step} of ${total} (${Math.round(100 * step / total)} %)` : "";
  }

  function renderHead() {
    head.replaceChildren(h("table", { "aria-label": "Job details" }, h("tbody", {},
      h("tr", {}, h("th", {}, "Status"), h("td", { id: "job-status" }, statusBadge(job.status), job.cancel_requested && !TERMINAL.has(job.status) ? " (cancel requested)" : "")),
      h("tr", {}, h("th", {}, "Kind"), h("td", {}, job.kind), h("th", {}, "Label"), h("td", {}, jobLabel(job) || "–")),
      h("tr", {}, h("th", {}, "Created"), h("td", {}, job.created_at || "–"), h("th", {}, "Duration"),
        h("td", {}, job.started_at ? fmtDuration(secondsBetween(job.started_at, job.finished_at)) : "–")),
      h("tr", {}, h("th", {}, "Worker"), h("td", {}, job.worker || "–"), h("th", {}, "Queue"), h("td", {}, job.queue || "–")))));
    const cancel = h("button", { type: "button", id: "cancel", disabled: TERMINAL.has(job.status) }, "Cancel job");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { job = await api(`/v1/jobs/${id}`, { method: "DELETE" }); renderHead(); } catch (e) { msg.replaceChildren(errorBox(e)); }
    });
    const resubmit = h("button", { type: "button", id: "resubmit", disabled: !job.request }, "Resubmit");
    resubmit.addEventListener("click", async () => {
      try {
        const body = { ...job.request, labels: job.labels, force: true };
        const again = await api(SUBMIT_URL[job.kind], { method: "POST", body });
        navigate(`/ui/jobs/${again.id}`);
      } catch (e) { msg.replaceChildren(errorBox(e)); }
    });
    actions.replaceChildren(cancel, resubmit);
    if (job.problem) msg.replaceChildren(errorBox(`${job.problem.title}: ${job.problem.detail || ""}`));
  }

  function renderResult() {
    const view = readResult(job.result);
    if (!view) return;
    prog.value = prog.max;
    progText.textContent = "done";
    if (view.kind === "range_test") renderRangeTest(view); else renderTrials(view);
  }

  function renderRangeTest(v) {
    const s = v.suggestions;
    const marks = SUGGESTIONS.filter(n => typeof s[n] === "number").map(n => ({
      name: n, x: s[n], label: `${n} ${fmtLr(s[n])}`, colour: MARK_COLOURS[n], width: n === "recommended" ? 3 : 1.5 }));
    const pair = (xs, ys) => xs.map((x, i) => [x, ys[i]]);
    chartBox.replaceChildren(h("h2", {}, "Loss against learning rate"), lineChart({
      series: [
        { points: pair(v.lrs, v.rawLosses), label: "raw loss", colour: "var(--raw)", width: 1, opacity: 0.8 },
        { points: pair(v.lrs, v.losses), label: "smoothed loss", colour: "var(--c0)", width: 2.2 },
        { points: pair(v.valLrs, v.valLosses), label: "validation loss", colour: "var(--val)", width: 1.8, dash: "2 2" },
      ],
      marks, band: { from: s.cycle_min_lr, to: s.cycle_max_lr, label: "1cycle bounds" },
      logX: true, xLabel: "learning rate (log)", yLabel: "loss", title: "LR range test", yClip: true }));
    side.replaceChildren(h("div", { class: "card" },
      h("h2", {}, "Recommended LR"), h("p", { class: "big", id: "recommended" }, fmtLr(s.recommended)),
      h("p", {}, "confidence ", h("strong", { id: "confidence" }, typeof s.confidence === "number" ? s.confidence.toFixed(2) : "–")),
      h("p", { class: "flags", id: "flags" }, "flags: ", s.flags.length ? s.flags.map(f => h("span", {}, f)) : "none"),
      h("p", { id: "reason" }, s.reason || ""),
      h("p", {}, `1cycle: ${fmtLr(s.cycle_min_lr)} → ${fmtLr(s.cycle_max_lr)}`),
      h("table", { "aria-label": "Suggestions" }, h("thead", {}, h("tr", {}, h("th", {}, "suggestion"), h("th", {}, "LR"))),
        h("tbody", {}, SUGGESTIONS.map(n => h("tr", {}, h("td", {}, n), h("td", {}, fmtLr(s[n])))))),
      h("p", { class: "muted" }, `stopped: ${v.stopReason || "–"}; ${v.stepsRun ?? v.lrs.length} steps`)));
  }

  function renderTrials(v) {
    const series = v.candidates.map((c, i) => ({
      points: c.trainLosses.map((y, j) => [j + 1, y]), label: (c.label === v.best ? "★ " : "") + c.label,
      colour: PALETTE[i % PALETTE.length], width: c.label === v.best ? 3 : 1.6 }));
    chartBox.replaceChildren(h("h2", {}, "Candidates' train loss (smoothed)"),
      lineChart({ series, xLabel: "step", yLabel: "train loss", title: "trials", yClip: true }));
    const byLabel = new Map(v.candidates.map(c => [c.label, c]));
    const order = v.ranking.length ? v.ranking.map(l => byLabel.get(l)).filter(Boolean) : v.candidates;
    side.replaceChildren(h("div", { class: "card" },
      h("h2", {}, "Winner"), h("p", { class: "big", id: "winner" }, v.best || "–"),
      h("p", {}, "peak LR ", h("strong", {}, fmtLr(byLabel.get(v.best)?.peakLr))),
      // the verdict in words: by how much it won, how sure, and whether the optimum may lie beyond
      v.verdict ? h("p", { id: "verdict" }, v.verdict) : null,
      h("table", { id: "ranking", "aria-label": "Ranking" },
        h("thead", {}, h("tr", {}, ["#", "candidate", "peak LR", "final val loss", "diverged", "added by"].map(c => h("th", {}, c)))),
        // "added by": the grid search's own candidates (past an edge, or half a step beside the best)
        h("tbody", {}, order.map((c, i) => h("tr", {}, h("td", {}, i + 1), h("td", {}, c.label), h("td", {}, fmtLr(c.peakLr)),
          h("td", {}, fmtLr(c.finalValLoss)), h("td", {}, c.diverged ? "yes" : ""),
          h("td", {}, c.phase === "trial" ? "" : c.phase))))),
      h("p", { class: "muted" }, `ranked by ${v.rankedBy || "–"}`)));
  }

  function renderRequest() {
    if (!job.request) return;
    const text = JSON.stringify({ ...job.request, labels: job.labels }, null, 2);
    extra.replaceChildren(h("h2", {}, "Request"), h("p", {}, copyButton(() => text, "Copy request JSON")),
      h("pre", { id: "request-json" }, text));
  }

  async function refresh() {
    job = await api(`/v1/jobs/${id}`);
    renderHead();
    if (job.progress) setProgress(job.progress.step, job.progress.total);
    if (job.status === "succeeded") renderResult();
    else if (TERMINAL.has(job.status)) progText.textContent = job.status;
    renderRequest();
  }

  (async () => {
    try {
      await refresh();
      if (TERMINAL.has(job.status)) return;
      await streamEvents(`/v1/jobs/${id}/events`, ev => {
        if (ev.event === "progress" && ev.data) {
          setProgress(ev.data.step, ev.data.total);
          if (typeof ev.data.loss === "number") {
            live.push([job.kind === "trials" ? ev.data.step : ev.data.lr, ev.data.loss]);
            drawLive();
          }
        } else if (ev.event === "status") {
          if (job) { job.status = ev.data.status; renderHead(); }
        }
      }, ctrl.signal);
      if (!ctrl.signal.aborted) await refresh();
    } catch (e) {
      if (!ctrl.signal.aborted) msg.replaceChildren(errorBox(e));
    }
  })();
  return () => ctrl.abort();
}
