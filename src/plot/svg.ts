/**
 * Small hand-written SVG 1.1 charts, the one place seine draws them (`seine bench live`'s bars, `seine
 * bench overhead`'s curves): XML escaping, "nice" axis ticks, number formatting, and a line chart with a
 * title, axes with units, a legend and a caption. Pure: strings in, a string out; no fonts or scripts, so
 * a chart opens anywhere (a browser, an editor, a paper's figure pipeline).
 *
 * Each series of a line chart is a `<g class="series" data-series="NAME">` holding one `<polyline>` and a
 * `<circle data-x="…" data-y="…">` per point, so a test (or a reader with an XML tool) gets the data back
 * out of the picture.
 */

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text for XML, SVG and HTML, element content and attribute values alike (either quote). */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]!);
}

/** A number with about three significant digits, no exponent. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  const d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4;
  return x.toFixed(d);
}

/** A "nice" axis top and tick step at or above `max` (four or five ticks from 0). */
export function niceAxis(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * p).find((s) => s >= raw)!;
  return { top: step * Math.ceil(max / step), step };
}

/** Coordinates rounded to 0.1 (the files stay small and diffable). */
const n1 = (v: number): string => (+v.toFixed(1)).toString();

/** Distinguishable on white and in greyscale print (with the dash patterns below). */
export const PALETTE = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b7791f', '#c53030', '#2c7a7b', '#4a5568', '#97266d', '#718096'];
const DASHES = ['', '6 3', '2 2', '8 3 2 3', '4 4', '1 3'];

export interface LineSeries {
  name: string;
  points: ReadonlyArray<{ x: number; y: number }>;
}

export interface LineChart {
  title: string;
  /** One line under the title (what is compared). */
  subtitle?: string;
  /** Axis labels with their units, e.g. `inner IP packet (bytes)`. */
  xLabel: string;
  yLabel: string;
  /** A logarithmic x axis (sizes from 64 to 9000 bytes); ticks at the x values of the data then. */
  xLog?: boolean;
  /** The y axis range; default from 0 to a nice top above the data. */
  yMin?: number;
  yMax?: number;
  /** How tick values read (default `fmt`). */
  yTick?: (v: number) => string;
  series: readonly LineSeries[];
  /** Lines under the plot: the parameters a reader needs to take the chart on its own. */
  caption: readonly string[];
}

/** `text` cut at spaces into lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** A line chart (see the module comment for its structure). */
export function lineChart(c: LineChart): string {
  const legendW = 190;
  const W = 760,
    left = 70,
    top = c.subtitle === undefined ? 46 : 62,
    plotW = W - left - legendW - 20,
    plotH = 300;
  const captionTop = top + plotH + 56;
  // About 6.5 px per character of 12 px sans-serif: caption lines are wrapped to the chart's width.
  const caption = c.caption.flatMap((l) => wrap(l, Math.floor((W - left - 10) / 6.5)));
  const H = captionTop + 16 * caption.length + 8;
  const xs = [...new Set(c.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const ys = c.series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => Number.isFinite(y));
  const log = c.xLog === true && xs.length > 0 && xs[0]! > 0;
  const tx = (v: number): number => (log ? Math.log(v) : v);
  const x0 = xs.length > 0 ? tx(xs[0]!) : 0,
    x1 = xs.length > 1 ? tx(xs[xs.length - 1]!) : x0 + 1;
  const yMin = c.yMin ?? 0;
  const ax = niceAxis(Math.max(...ys, yMin + 1e-9) - yMin);
  const yMax = c.yMax ?? yMin + ax.top;
  const yStep = c.yMax === undefined ? ax.step : niceAxis(yMax - yMin).step;
  const X = (v: number): number => left + ((tx(v) - x0) / (x1 - x0 || 1)) * plotW;
  const Y = (v: number): number => top + plotH - ((Math.min(Math.max(v, yMin), yMax) - yMin) / (yMax - yMin || 1)) * plotH;
  const yTick = c.yTick ?? fmt;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${esc(c.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`);
  if (c.subtitle !== undefined) out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">${esc(c.subtitle)}</text>`);
  // y grid and ticks
  for (let v = yMin, k = 0; v <= yMax + yStep / 2 && k < 50; v = yMin + ++k * yStep) {
    out.push(`<line x1="${left}" y1="${n1(Y(v))}" x2="${left + plotW}" y2="${n1(Y(v))}" stroke="#e2e2e2"/>`);
    out.push(`<text x="${left - 6}" y="${n1(Y(v) + 4)}" text-anchor="end">${esc(yTick(v))}</text>`);
  }
  // x ticks: the data's x values on a log axis (thinned so labels do not overlap), else a nice linear axis
  const xTicks: number[] = [];
  if (log) {
    let last = -Infinity;
    for (const v of xs)
      if (X(v) - last >= 34) {
        xTicks.push(v);
        last = X(v);
      }
  } else if (xs.length > 0) {
    for (const v of xs) xTicks.push(v);
  }
  for (const v of xTicks) {
    out.push(`<line x1="${n1(X(v))}" y1="${top}" x2="${n1(X(v))}" y2="${top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${n1(X(v))}" y="${top + plotH + 16}" text-anchor="middle">${esc(String(v))}</text>`);
  }
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="black"/>`);
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="black"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle">${esc(c.xLabel + (log ? ', log scale' : ''))}</text>`);
  out.push(`<text x="18" y="${top + plotH / 2}" text-anchor="middle" transform="rotate(-90 18 ${top + plotH / 2})">${esc(c.yLabel)}</text>`);
  // series
  c.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / 2) % DASHES.length]!;
    const pts = s.points.filter((p) => Number.isFinite(p.y) && (!log || p.x > 0));
    out.push(`<g class="series" data-series="${esc(s.name)}" stroke="${colour}" fill="${colour}">`);
    out.push(
      `<polyline fill="none" stroke-width="2"${dash !== '' ? ` stroke-dasharray="${dash}"` : ''} points="${pts.map((p) => `${n1(X(p.x))},${n1(Y(p.y))}`).join(' ')}"/>`,
    );
    for (const p of pts) out.push(`<circle cx="${n1(X(p.x))}" cy="${n1(Y(p.y))}" r="2.5" data-x="${p.x}" data-y="${p.y}"/>`);
    out.push('</g>');
  });
  // legend
  const lx = left + plotW + 20;
  out.push(`<g class="legend">`);
  c.series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / 2) % DASHES.length]!;
    const ly = top + 10 + i * 20;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${colour}" stroke-width="2"${dash !== '' ? ` stroke-dasharray="${dash}"` : ''}/>`);
    out.push(`<text x="${lx + 32}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</g>');
  // caption
  out.push(`<g class="caption" fill="#333">`);
  caption.forEach((line, i) => out.push(`<text x="${left}" y="${captionTop + i * 16}">${esc(line)}</text>`));
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}
