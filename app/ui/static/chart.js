// A small hand-written SVG line chart: log or linear x, several series, vertical marks with
// labels, an x band. Colours come from CSS variables, so it follows light and dark mode.
const NS = "http://www.w3.org/2000/svg";
const W = 760, H = 400, L = 62, R = 170, T = 16, B = 44;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

const finite = v => typeof v === "number" && Number.isFinite(v);

function linTicks(lo, hi, n = 5) {
  const raw = (hi - lo) / n || 1;
  let step = 10 ** Math.floor(Math.log10(raw));
  step *= [1, 2, 5, 10].find(m => raw <= step * m);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) out.push(+t.toPrecision(12));
  return out;
}

function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    const v = 10 ** e;
    if (v >= lo && v <= hi) out.push(v);
  }
  return out;
}

// series: [{points: [[x, y]], label, colour, width, dash, opacity}]; marks: [{x, label, colour,
// width}]; band: {from, to, label}; yClip: trim a diverging tail (the y range stops a little
// above where the curves start).
export function lineChart({ series, marks = [], band = null, logX = false, xLabel = "", yLabel = "",
                            title = "", yClip = false }) {
  const svg = el("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(el("title", {}, title));
  const pts = series.map(s => s.points.filter(([x, y]) => finite(x) && finite(y) && (!logX || x > 0)));
  const ys = pts.flat().map(p => p[1]);
  if (!ys.length) {
    svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet"));
    return svg;
  }
  let x0 = Math.min(...pts.flat().map(p => p[0])), x1 = Math.max(...pts.flat().map(p => p[0]));
  if (x0 === x1) { x0 = logX ? x0 / 10 : x0 - 1; x1 = logX ? x1 * 10 : x1 + 1; }
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (yClip) {
    const starts = pts.filter(p => p.length).map(p => p[0][1]);
    y1 = Math.min(y1, Math.max(...starts) + 0.5 * (Math.max(...starts) - y0));
  }
  if (y1 <= y0) y1 = y0 + (Math.abs(y0) || 1) * 0.1;
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const fx = logX ? v => Math.log10(v) : v => v;
  const sx = v => L + (fx(v) - fx(x0)) / (fx(x1) - fx(x0)) * (W - L - R);
  const sy = v => H - B - (v - y0) / (y1 - y0) * (H - T - B);
  const g = el("g");
  for (const t of logX ? logTicks(x0, x1) : linTicks(x0, x1)) {
    g.append(el("line", { class: "grid", x1: sx(t), x2: sx(t), y1: T, y2: H - B }));
    g.append(el("text", { x: sx(t), y: H - B + 15, "text-anchor": "middle" }, logX ? t.toExponential(0) : String(t)));
  }
  for (const t of linTicks(y0, y1)) {
    g.append(el("line", { class: "grid", x1: L, x2: W - R, y1: sy(t), y2: sy(t) }));
    g.append(el("text", { x: L - 5, y: sy(t) + 4, "text-anchor": "end" }, (+t.toPrecision(4)).toString()));
  }
  g.append(el("rect", { class: "frame", x: L, y: T, width: W - L - R, height: H - T - B }));
  g.append(el("text", { x: L + (W - L - R) / 2, y: H - 8, "text-anchor": "middle" }, xLabel));
  g.append(el("text", { x: 14, y: T + (H - T - B) / 2, "text-anchor": "middle",
                        transform: `rotate(-90 14 ${T + (H - T - B) / 2})` }, yLabel));
  svg.append(g);
  const clipId = "clip" + Math.random().toString(36).slice(2);
  const defs = el("defs"); const cp = el("clipPath", { id: clipId });
  cp.append(el("rect", { x: L, y: T, width: W - L - R, height: H - T - B })); defs.append(cp); svg.append(defs);
  let ly = T + 6;
  const legend = (colour, label, dash, box) => {
    const lx = W - R + 10;
    svg.append(box ? el("rect", { x: lx, y: ly - 5, width: 20, height: 9, fill: colour, "fill-opacity": 0.25 })
                   : el("line", { x1: lx, x2: lx + 20, y1: ly, y2: ly, stroke: colour, "stroke-width": 2, "stroke-dasharray": dash }));
    svg.append(el("text", { x: lx + 26, y: ly + 4 }, label.length > 22 ? label.slice(0, 21) + "…" : label));
    ly += 17;
  };
  if (band && finite(band.from) && finite(band.to)) {
    const a = Math.max(band.from, x0), b = Math.min(band.to, x1);
    if (b > a) {
      svg.append(el("rect", { class: "band", x: sx(a), y: T, width: sx(b) - sx(a), height: H - T - B,
                              fill: "var(--rec)", "fill-opacity": 0.08 }));
      legend("var(--rec)", band.label, null, true);
    }
  }
  series.forEach((s, i) => {
    const p = pts[i];
    if (!p.length) return;
    const d = p.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    const path = el("path", { d, fill: "none", stroke: s.colour, "stroke-width": s.width || 2,
                              "stroke-dasharray": s.dash, "stroke-opacity": s.opacity ?? 1,
                              "clip-path": `url(#${clipId})`, "data-series": s.label });
    path.append(el("title", {}, s.label));
    svg.append(path);
    legend(s.colour, s.label, s.dash);
  });
  for (const m of marks) {
    if (!finite(m.x) || m.x < x0 || m.x > x1) continue;
    const line = el("line", { class: "mark", "data-mark": m.name || m.label, x1: sx(m.x), x2: sx(m.x), y1: T, y2: H - B,
                              stroke: m.colour, "stroke-width": m.width || 1.5, "stroke-dasharray": "5 3" });
    line.append(el("title", {}, m.label));
    svg.append(line);
    legend(m.colour, m.label, "5 3");
  }
  return svg;
}

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
export const MARK_COLOURS = { recommended: "var(--rec)", steepest: "#2ca02c", valley: "#9467bd",
                              minimum_div10: "#ff7f0e", lr_at_min: "#7f7f7f" };
