// The one place the dashboard talks to the API: the key (kept in sessionStorage, sent as
// `Authorization: Bearer`), problem documents turned into readable errors, and a fetch-based
// Server-Sent Events reader (EventSource cannot send an Authorization header).
const KEY = "optim-advisor.api-key";

export const getKey = () => sessionStorage.getItem(KEY) || "";
export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(formatProblem(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

export function formatProblem(status, p) {
  const lines = [`${status} ${p.title || "error"}${p.detail ? ": " + p.detail : ""}`];
  for (const e of p.errors || []) {
    lines.push(`${e.field}: ${e.message}${e.allowed ? ` (allowed: ${e.allowed})` : ""}`);
  }
  return lines.join("\n");
}

export async function api(path, { method = "GET", body, raw = false } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  if (!resp.ok) {
    let problem;
    try { problem = await resp.json(); } catch { problem = { title: resp.statusText }; }
    throw new ApiError(resp.status, problem);
  }
  return raw ? resp.text() : resp.json();
}

// Read `text/event-stream` with fetch: onEvent({event, data, id}) for each event; resumes from
// the last id after a dropped connection; resolves when the stream ends (final status).
export async function streamEvents(path, onEvent, signal) {
  let lastId = null;
  for (let attempt = 0; attempt < 20 && !signal?.aborted; attempt++) {
    const h = headers({ Accept: "text/event-stream" });
    if (lastId) h["Last-Event-ID"] = lastId;
    let resp;
    try {
      resp = await fetch(path, { headers: h, signal });
    } catch (e) {
      if (signal?.aborted) return;
      await new Promise(r => setTimeout(r, 500 * (attempt + 1)));
      continue;
    }
    if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "", ended = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) { ended = true; break; }
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          const ev = { event: "message", data: "", id: null };
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const i = line.indexOf(":");
            const k = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (k === "event") ev.event = v; else if (k === "data") ev.data += v; else if (k === "id") ev.id = v;
          }
          if (!ev.data) continue;
          if (ev.id) lastId = ev.id;
          try { ev.data = JSON.parse(ev.data); } catch { /* keep the text */ }
          onEvent(ev);
        }
      }
    } catch (e) {
      if (signal?.aborted) return;
    }
    if (ended) return;  // the server closes the stream after the final status
  }
}
