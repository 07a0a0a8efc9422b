// The job list (filters, pagination, live refresh) and the form that starts a range test.
import { api } from "../api.js";
import { copyButton, errorBox, fmtDuration, fmtLr, h, jobLabel, navigate, secondsBetween, statusBadge } from "../dom.js";
import { recommendedLr } from "../results.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const KINDS = ["range_test", "trials"];  // job kinds, as the API names them everywhere
const REFRESH_MS = 2000;
const recCache = new Map();  // job id -> recommended LR of a finished job (never changes)

async function recommended(job) {
  if (job.status !== "succeeded") return null;
  if (!recCache.has(job.id)) recCache.set(job.id, api(`/v1/jobs/${job.id}`).then(recommendedLr).catch(() => null));
  return recCache.get(job.id);
}

export function jobsPage(main) {
  const statusSel = h("select", { id: "f-status", "aria-label": "Filter by status" },
    h("option", { value: "" }, "any status"), STATUSES.map(s => h("option", { value: s }, s)));
  const kindSel = h("select", { id: "f-kind", "aria-label": "Filter by kind" },
    h("option", { value: "" }, "any kind"), KINDS.map(k => h("option", { value: k }, k)));
  const limitSel = h("select", { id: "f-limit", "aria-label": "Jobs per page" }, [10, 20, 50, 100].map(n => h("option", { value: n, selected: n === 20 }, String(n))));
  const live = h("input", { type: "checkbox", id: "f-live", checked: true });
  const tbody = h("tbody");
  const msg = h("p", { role: "status", class: "muted" });
  const prev = h("button", { type: "button", disabled: true }, "← Newer");
  const next = h("button", { type: "button", disabled: true }, "Older →");
  const pageInfo = h("span", { class: "muted" });
  const cursors = [null];  // cursor of each page seen (for going back)
  let pageNo = 0, timer = null, stopped = false;

  main.append(
    h("h1", {}, "Jobs"),
    h("div", { class: "row" },
      h("label", { for: "f-status" }, "Status", statusSel), h("label", { for: "f-kind" }, "Kind", kindSel),
      h("label", { for: "f-limit" }, "Per page", limitSel),
      h("label", { for: "f-live", class: "inline" }, h("span", {}, "Live updates"), live),
      h("a", { href: "/ui/new" }, "Start a range test")),
    h("table", { id: "jobs", "aria-label": "Jobs" },
      h("thead", {}, h("tr", {}, ["Status", "Kind", "Label", "Age", "Duration", "Worker", "Recommended LR", "Id"].map(c => h("th", { scope: "col" }, c)))),
      tbody),
    h("div", { class: "pager" }, prev, pageInfo, next), msg);

  async function load() {
    const q = new URLSearchParams({ limit: limitSel.value });
    if (statusSel.value) q.append("status", statusSel.value);
    if (kindSel.value) q.append("kind", kindSel.value);
    if (cursors[pageNo]) q.set("cursor", cursors[pageNo]);
    try {
      const page = await api(`/v1/jobs?${q}`);
      if (stopped) return;
      tbody.replaceChildren(...page.items.map(row));
      if (!page.items.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No jobs.")));
      cursors[pageNo + 1] = page.next_cursor;
      next.disabled = !page.next_cursor; prev.disabled = pageNo === 0;
      pageInfo.textContent = `page ${pageNo + 1}`;
      msg.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      msg.replaceChildren(errorBox(e));
    }
  }

  function row(job) {
    const rec = h("td", { class: "rec" }, "–");
    recommended(job).then(v => { if (v !== null) rec.textContent = fmtLr(v); });
    const dur = job.started_at ? fmtDuration(secondsBetween(job.started_at, job.finished_at)) : "–";
    return h("tr", { "data-job": job.id, "data-status": job.status },
      h("td", {}, statusBadge(job.status)), h("td", {}, job.kind), h("td", {}, jobLabel(job)),
      h("td", {}, fmtDuration(secondsBetween(job.created_at)) + " ago"), h("td", {}, dur),
      h("td", {}, job.worker || "–"), rec,
      h("td", {}, h("a", { href: `/ui/jobs/${job.id}` }, job.id.slice(0, 10))));
  }

  const reset = () => { cursors.length = 1; pageNo = 0; load(); };
  statusSel.addEventListener("change", reset); kindSel.addEventListener("change", reset);
  limitSel.addEventListener("change", reset);
  next.addEventListener("click", () => { pageNo++; load(); });
  prev.addEventListener("click", () => { pageNo = Math.max(0, pageNo - 1); load(); });
  const tick = () => { if (live.checked && !document.hidden) load(); };
  timer = setInterval(tick, REFRESH_MS);
  load();
  return () => { stopped = true; clearInterval(timer); };
}

const EXAMPLE = {
  experiment: {
    data: { kind: "classification", n_samples: 1024, n_features: 16, n_classes: 4, seed: 0 },
    model: { kind: "mlp", hidden: [64] }, batch_size: 32, seed: 0,
  },
  config: { num_steps: 100, start_lr: 1e-6, end_lr: 10 },
  device: "auto",
};

export function newJobPage(main) {
  const name = h("input", { id: "job-name", value: "my range test", size: 30 });
  const spec = h("textarea", { id: "job-spec", rows: 18, "aria-label": "Range test request (JSON)" }, JSON.stringify(EXAMPLE, null, 2));
  const force = h("input", { type: "checkbox", id: "job-force" });
  const out = h("div", { role: "status" });
  const submit = h("button", { class: "primary", type: "submit", id: "submit-job" }, "Start range test");
  const form = h("form", {},
    h("div", { class: "row" }, h("label", { for: "job-name" }, "Label (name)", name),
      h("label", { for: "job-force" }, "Run again even if cached", force)),
    h("p", {}, h("label", { for: "job-spec" }, "Request: experiment, sweep settings and optimizer (JSON; see ",
      h("a", { href: "/docs#/jobs/submit_range_test_v1_jobs_lr_range_test_post" }, "the API docs"), ")")),
    spec, h("p", {}, submit, " ", copyButton(() => spec.value, "Copy JSON")), out);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    out.replaceChildren();
    let body;
    try { body = JSON.parse(spec.value); } catch (err) { out.append(errorBox(`not valid JSON: ${err.message}`)); return; }
    body.labels = { ...(body.labels || {}), ...(name.value.trim() ? { name: name.value.trim() } : {}) };
    if (force.checked) body.force = true;
    submit.disabled = true;
    try {
      const job = await api("/v1/jobs/lr-range-test", { method: "POST", body });
      navigate(`/ui/jobs/${job.id}`);
    } catch (err) { out.append(errorBox(err)); } finally { submit.disabled = false; }
  });
  main.append(h("h1", {}, "Start an LR range test"), form);
}
