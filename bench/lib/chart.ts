/** A small dependency-free SVG chart: side-by-side panels of grouped bars with reference lines. */

export interface Bar {
  series: string;
  value: number;
  /** Text above the bar (default: the value). */
  label?: string;
}

export interface Group {
  label: string;
  bars: Bar[];
}

export interface RefLine {
  value: number;
  label: string;
  dashed?: boolean;
  /** Put the label at the left end (default: right end). */
  left?: boolean;
}

export interface Panel {
  title: string;
  yLabel: string;
  groups: Group[];
  refLines?: RefLine[];
  /** Upper end of the y axis (default: a bit above the largest bar or line). */
  yMax?: number;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 100) return String(Math.round(v));
  if (Math.abs(v) >= 10) return v.toFixed(1).replace(/\.0$/, '');
  return v.toFixed(2).replace(/0$/, '').replace(/\.$/, '');
}

function panelSvg(p: Panel, x0: number, width: number, height: number, colors: Map<string, string>): string {
  const m = { top: 34, right: 10, bottom: 48, left: 46 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const values = p.groups.flatMap((g) => g.bars.map((b) => b.value)).filter(Number.isFinite);
  const refs = p.refLines ?? [];
  const yMax = p.yMax ?? niceMax(Math.max(...values, ...refs.map((r) => r.value), 0) * 1.1);
  const y = (v: number): number => m.top + h - (Math.max(0, Math.min(v, yMax)) / yMax) * h;
  const out: string[] = [`<g transform="translate(${x0},0)">`];
  out.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="12" font-weight="bold">${esc(p.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    out.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 4}" y="${y(v) + 4}" text-anchor="end" font-size="10">${fmt(v)}</text>`);
  }
  out.push(`<text transform="translate(12,${m.top + h / 2}) rotate(-90)" text-anchor="middle" font-size="10">${esc(p.yLabel)}</text>`);
  const gw = w / Math.max(1, p.groups.length);
  p.groups.forEach((g, gi) => {
    const n = Math.max(1, g.bars.length);
    const bw = Math.min(28, (gw * 0.8) / n);
    const start = m.left + gi * gw + (gw - bw * n) / 2;
    g.bars.forEach((b, bi) => {
      const bx = start + bi * bw;
      const top = y(Number.isFinite(b.value) ? b.value : 0);
      const color = colors.get(b.series) ?? '#999';
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${top.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(m.top + h - top).toFixed(1)}" fill="${color}"><title>${esc(`${g.label} ${b.series}: ${b.label ?? fmt(b.value)}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(bx + bw / 2 - 1).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${esc(b.label ?? fmt(b.value))}</text>`,
      );
    });
    out.push(`<text x="${m.left + gi * gw + gw / 2}" y="${m.top + h + 14}" text-anchor="middle" font-size="10">${esc(g.label)}</text>`);
  });
  for (const r of refs) {
    out.push(
      `<line x1="${m.left}" x2="${m.left + w}" y1="${y(r.value)}" y2="${y(r.value)}" stroke="#c00" stroke-width="1.2"${r.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
    );
    out.push(
      `<text x="${r.left ? m.left + 3 : m.left + w}" y="${y(r.value) - 3}" text-anchor="${r.left ? 'start' : 'end'}" font-size="9" fill="#c00">${esc(r.label)}</text>`,
    );
  }
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + h}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left + w}" y1="${m.top + h}" y2="${m.top + h}" stroke="#333"/>`);
  out.push('</g>');
  return out.join('\n');
}

/** Panels side by side, a shared legend below. */
export function renderChart(panels: Panel[], opts: { title?: string; panelWidth?: number; height?: number } = {}): string {
  const pw = opts.panelWidth ?? 300;
  const ph = opts.height ?? 260;
  const series = [...new Set(panels.flatMap((p) => p.groups.flatMap((g) => g.bars.map((b) => b.series))))];
  const colors = new Map(series.map((s, i) => [s, PALETTE[i % PALETTE.length]!]));
  const titleH = opts.title ? 24 : 0;
  const legendH = 22;
  const width = pw * panels.length;
  const height = titleH + ph + legendH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  if (opts.title) out.push(`<text x="${width / 2}" y="17" text-anchor="middle" font-size="14" font-weight="bold">${esc(opts.title)}</text>`);
  out.push(`<g transform="translate(0,${titleH})">`);
  panels.forEach((p, i) => out.push(panelSvg(p, i * pw, pw, ph, colors)));
  out.push('</g>');
  let lx = 10;
  for (const s of series) {
    out.push(`<rect x="${lx}" y="${titleH + ph + 6}" width="10" height="10" fill="${colors.get(s)}"/>`);
    out.push(`<text x="${lx + 14}" y="${titleH + ph + 15}" font-size="10">${esc(s)}</text>`);
    lx += 24 + s.length * 6;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
