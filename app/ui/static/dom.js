// Tiny DOM helpers: every text goes in as a text node (never as HTML), so a label or a server
// message cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

export const fmtLr = v => (typeof v === "number" && Number.isFinite(v) ? v.toPrecision(3) : "–");

export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export const secondsBetween = (a, b) => (a ? ((b ? Date.parse(b) : Date.now()) - Date.parse(a)) / 1000 : NaN);

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

export function copyButton(getText, label = "Copy") {
  const b = h("button", { type: "button", "aria-label": label }, label);
  b.addEventListener("click", async () => {
    const text = getText();
    try { await navigator.clipboard.writeText(text); } catch {
      const ta = h("textarea", {}, text); document.body.append(ta); ta.select();
      document.execCommand("copy"); ta.remove();
    }
    b.textContent = "Copied"; b.dataset.copied = "1";
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

export function jobLabel(job) {
  const l = job.labels || {};
  return l.name || l.label || Object.entries(l).map(([k, v]) => `${k}=${v}`).join(" ");
}

// Go to another dashboard page without a reload (app.js routes on popstate).
export function navigate(path) {
  history.pushState(null, "", path);
  dispatchEvent(new PopStateEvent("popstate"));
}
