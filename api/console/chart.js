// Small SVG charts drawn by hand: a stacked bar chart with an optional limit line. No chart
// library, so nothing to download and nothing to keep patched. Every label is set with
// textContent, never parsed as markup.

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#c62828", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A "nice" upper bound for an axis whose data reaches `max`. */
function niceMax(max) {
  // Counts: at least 4, so the four gridlines fall on whole numbers.
  if (max <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function short(n) {
  if (n >= 1e9) return `${+(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n * 100) / 100);
}

/**
 * A stacked bar chart.
 * labels: x-axis labels; series: [{ name, values: number[], color? }];
 * limit: optional { value, label } drawn as a dashed line; title: accessible name.
 */
export function barChart({ labels, series, limit, title, height = 220 }) {
  const wrap = document.createElement("div");
  wrap.className = "chart";
  const width = 720;
  const pad = { l: 48, r: 12, t: 12, b: 34 };
  const totals = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] || 0), 0));
  // A limit far above the data would flatten every bar: then it is named, not drawn to scale.
  const dataTop = niceMax(Math.max(0, ...totals));
  const limitInScale = limit && limit.value > 0 && limit.value <= dataTop * 2;
  const top = limitInScale ? niceMax(Math.max(dataTop, limit.value)) : dataTop;
  const innerW = width - pad.l - pad.r;
  const innerH = height - pad.t - pad.b;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title || "chart" });
  if (title) svg.appendChild(el("title", {}, title));
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    const y = pad.t + innerH - (innerH * k) / 4;
    svg.appendChild(el("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: y, y2: y }));
    svg.appendChild(el("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end" }, short(v)));
  }
  const slot = labels.length ? innerW / labels.length : innerW;
  const barW = Math.max(2, Math.min(42, slot * 0.7));
  const every = Math.max(1, Math.ceil(labels.length / 12));
  labels.forEach((label, i) => {
    const x = pad.l + slot * i + (slot - barW) / 2;
    let y = pad.t + innerH;
    series.forEach((s, j) => {
      const v = s.values[i] || 0;
      if (v <= 0) return;
      const h = (innerH * v) / top;
      y -= h;
      const r = el("rect", { x, y, width: barW, height: Math.max(h, 1), fill: s.color || PALETTE[j % PALETTE.length] });
      r.appendChild(el("title", {}, `${label} · ${s.name}: ${v}`));
      svg.appendChild(r);
    });
    if (i % every === 0) {
      svg.appendChild(el("text", { x: x + barW / 2, y: height - pad.b + 16, "text-anchor": "middle" }, label));
    }
  });
  if (limit && limit.value > 0 && !limitInScale) {
    svg.appendChild(el("text", { x: width - pad.r, y: pad.t + 10, "text-anchor": "end" }, `${limit.label || "limit"}: far above this scale`));
  }
  if (limitInScale) {
    const y = pad.t + innerH - (innerH * limit.value) / top;
    svg.appendChild(el("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, stroke: "#c62828", "stroke-dasharray": "6 4", "stroke-width": 1.5 }));
    svg.appendChild(el("text", { x: width - pad.r, y: y - 5, "text-anchor": "end" }, limit.label || `limit ${short(limit.value)}`));
  }
  wrap.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, j) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color || PALETTE[j % PALETTE.length];
    item.append(swatch, document.createTextNode(s.name));
    legend.appendChild(item);
  });
  if (series.length) wrap.appendChild(legend);
  return wrap;
}
