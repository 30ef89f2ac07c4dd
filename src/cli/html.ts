/**
 * The HTML run report (`seine run --html FILE`, `seine report FILE.json --html FILE`): one self-contained
 * page — no network fetch, scripts and styles inline — that shows a run the way a student reads it:
 * the topology drawn from the scenario, the per-flow table, time series over the run, drops, the
 * expectations, and any `seine trace` as a sequence diagram across nodes.
 *
 * The time series are drawn by uPlot (inlined from its package; the README's design note says why).
 * The topology and the sequence diagrams are SVG written here: they are drawings of the scenario, not
 * charts, and need nothing a library would add. The page is the same whether it comes from a run or
 * from its saved `--json`: both go through `renderHtml(record)`.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { esc } from '../plot/svg.js';
import { fmtNs, fmtPct, fmtRate } from '../sim/report.js';
import type { RunRecord, Topology } from '../sim/record.js';
import type { TraceResult } from '../sim/tracer.js';

/** uPlot's script and stylesheet, read once from the installed package. */
let uplot: { js: string; css: string } | null = null;
function uplotAssets(): { js: string; css: string } {
  if (uplot === null) {
    const dir = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
    uplot = { js: readFileSync(join(dir, 'uPlot.iife.min.js'), 'utf8'), css: readFileSync(join(dir, 'uPlot.min.css'), 'utf8') };
    // Inlined as they are: a `</script` or `</style` inside would end the element early.
    if (/<\/script|<!--/i.test(uplot.js) || /<\/style/i.test(uplot.css)) throw new Error('uPlot: its script or stylesheet cannot be inlined as is');
  }
  return uplot;
}

/** JSON inside a `<script>` element: every `<` escaped, so no `</script>` or `<!--` can end or confuse it. */
function jsonInScript(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c');
}

/** The series colours, distinguishable and readable on white (Tableau 10). */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

const fmtBps = (b: number | null): string => (b === null ? 'default' : fmtRate(b));

// ---------------------------------------------------------------------------------------------------
// Topology

/** Nodes drawn; a bigger cluster is summarised (a page of 1,000 boxes teaches nothing). */
const DRAWN_NODES = 16;
const DRAWN_PODS = 6;

function linkText(l: Topology['links'][number]): string {
  const parts: string[] = [];
  if (l.latencyNs !== null) parts.push(fmtNs(l.latencyNs));
  if (l.loss !== null) parts.push(`loss ${fmtPct(l.loss)}`);
  if (l.mtu !== null) parts.push(`MTU ${l.mtu}`);
  if (l.bandwidthBps !== null) parts.push(fmtRate(l.bandwidthBps));
  return parts.join(', ');
}

/** The cluster as an SVG: nodes with their pods on a circle, the underlay paths between them, the tunnel in the caption. */
function topologySvg(r: RunRecord): string {
  const t = r.topology!;
  const nodes = t.nodes.slice(0, DRAWN_NODES);
  const n = nodes.length;
  const boxW = 190;
  const boxH = (k: number): number => 58 + 16 * Math.min(k, DRAWN_PODS + 1);
  const maxH = Math.max(...nodes.map((x) => boxH(x.pods.length)), 60);
  const radius = n <= 1 ? 0 : n === 2 ? 230 : Math.max(200, (n * (boxW + 30)) / (2 * Math.PI));
  const w = Math.round(2 * radius + boxW + 40);
  const h = Math.round((n === 2 ? 0 : 2 * radius) + maxH + 40);
  const cx = w / 2,
    cy = h / 2;
  const pos = new Map<string, { x: number; y: number }>();
  nodes.forEach((x, i) => {
    const a = n === 2 ? Math.PI * (i === 0 ? 1 : 0) : -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos.set(x.name, { x: cx + radius * Math.cos(a), y: cy + radius * Math.sin(a) });
  });
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" class="topology" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="topology">`);
  out.push(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
  );
  // Paths: every pair when the cluster is small, else the ones that carried traffic.
  const used = new Map(r.underlay.paths.map((p) => [`${p.a}|${p.b}`, p]));
  const links = new Map(t.links.map((l) => [[l.a, l.b].sort().join('|'), l]));
  const faulted = new Set(t.faults.map((f) => (f.target.includes('-') ? f.target.split('-').sort().join('|') : f.target)));
  const pairs: Array<[string, string]> = [];
  if (n <= 8) for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([nodes[i]!.name, nodes[j]!.name]);
  else for (const p of r.underlay.paths) if (pos.has(p.a) && pos.has(p.b)) pairs.push([p.a, p.b]);
  for (const [a, b] of pairs) {
    const pa = pos.get(a)!,
      pb = pos.get(b)!;
    const key = [a, b].sort().join('|');
    const p = used.get(`${a}|${b}`) ?? used.get(`${b}|${a}`);
    const l = links.get(key);
    const fault = faulted.has(key);
    const cls = `path${p !== undefined ? ' used' : ''}${fault ? ' fault' : ''}`;
    out.push(
      `<line class="${cls}" x1="${pa.x.toFixed(1)}" y1="${pa.y.toFixed(1)}" x2="${pb.x.toFixed(1)}" y2="${pb.y.toFixed(1)}"><title>${esc(`${a} – ${b}`)}</title></line>`,
    );
    const label: string[] = [];
    if (l !== undefined) label.push(linkText(l));
    if (p !== undefined) {
      // A busy mesh keeps its labels for what stands out: overrides, drops and faults.
      if (n <= 8) label.push(`${p.sent[0] + p.sent[1]} frames`);
      const dropped = Object.entries(p.dropped)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ');
      if (dropped !== '') label.push(`dropped ${dropped}`);
    }
    if (fault) label.push('fault');
    if (label.length > 0) {
      const mx = (pa.x + pb.x) / 2,
        my = (pa.y + pb.y) / 2;
      out.push(`<text class="pathlabel" x="${mx.toFixed(1)}" y="${(my - 6).toFixed(1)}" text-anchor="middle">${esc(label.join(' · '))}</text>`);
    }
  }
  for (const x of nodes) {
    const p = pos.get(x.name)!;
    const bh = boxH(x.pods.length);
    const x0 = p.x - boxW / 2,
      y0 = p.y - bh / 2;
    const down = faulted.has(x.name);
    out.push(`<g class="node${down ? ' fault' : ''}"><rect x="${x0.toFixed(1)}" y="${y0.toFixed(1)}" width="${boxW}" height="${bh}" rx="8"/>`);
    out.push(`<text class="nodename" x="${(x0 + 10).toFixed(1)}" y="${(y0 + 18).toFixed(1)}">${esc(x.name)}</text>`);
    out.push(`<text class="small" x="${(x0 + 10).toFixed(1)}" y="${(y0 + 34).toFixed(1)}">${esc(`${x.underlayIp}  ${x.podCIDR4 ?? x.podCIDR6 ?? ''}`)}</text>`);
    x.pods.slice(0, DRAWN_PODS).forEach((pod, i) => {
      const py = y0 + 44 + 16 * i;
      out.push(`<rect class="pod" x="${(x0 + 10).toFixed(1)}" y="${py.toFixed(1)}" width="${boxW - 20}" height="14" rx="3"/>`);
      const addr = pod.ip4 ?? pod.ip6 ?? '';
      out.push(
        `<text class="small" x="${(x0 + 14).toFixed(1)}" y="${(py + 11).toFixed(1)}">${esc(`${pod.name}  ${addr}${pod.vlan !== null ? `  vlan ${pod.vlan}` : ''}`)}</text>`,
      );
    });
    if (x.pods.length > DRAWN_PODS)
      out.push(`<text class="small" x="${(x0 + 14).toFixed(1)}" y="${(y0 + 55 + 16 * DRAWN_PODS).toFixed(1)}">+${x.pods.length - DRAWN_PODS} more pods</text>`);
    out.push('</g>');
  }
  out.push('</svg>');
  return out.join('\n');
}

function topologyCaption(t: Topology, shown: number): string {
  const tun = `${t.tunnel.type.toUpperCase()} ${t.tunnel.mode}, VNI ${t.tunnel.vni}${t.tunnel.optionBytes > 0 ? `, ${t.tunnel.optionBytes} bytes of Geneve options` : ''}`;
  const espText = t.encryption === null ? 'no encryption' : `ESP ${t.encryption.cipher}${t.encryption.udpEncap ? ' in UDP' : ''} between nodes`;
  const u = t.underlay;
  const under = `underlay IPv${u.family}, MTU ${u.mtu}, latency ${fmtNs(u.latencyNs)}${u.jitterNs > 0 ? ` ± ${fmtNs(u.jitterNs)}` : ''}${u.loss > 0 ? `, loss ${fmtPct(u.loss)}` : ''}${u.bandwidthBps !== null ? `, ${fmtBps(u.bandwidthBps)}` : ''}`;
  const more = t.nodes.length > shown ? ` Drawn: the first ${shown} of ${t.nodes.length} nodes.` : '';
  const faults = t.faults.map((f) => `${f.target} ${f.action} at ${fmtNs(f.atNs)}${f.forNs !== null ? ` for ${fmtNs(f.forNs)}` : ''}`).join('; ');
  return `Tunnel: ${esc(tun)}; ${esc(espText)}. ${esc(under)}. Lines are underlay paths (bold: carried traffic; red dashed: a fault${faults !== '' ? `: ${esc(faults)}` : ''}).${esc(more)}`;
}

// ---------------------------------------------------------------------------------------------------
// Traces as sequence diagrams

/** One trace as a sequence diagram: a lifeline per node, a row per stage, an arrow where the packet crosses the underlay. */
function sequenceSvg(tr: TraceResult): string {
  const lanes: string[] = [];
  for (const s of tr.steps) if (!lanes.includes(s.node)) lanes.push(s.node);
  const laneW = 150,
    rowH = 22,
    left = 90,
    top = 44;
  const textX = left + lanes.length * laneW + 10;
  // Room for the longest line at about 6.5 px a character (11 px sans-serif).
  const longest = tr.steps.reduce((m, s) => Math.max(m, s.node.length + s.port.length + s.action.length + 3), 0);
  const w = Math.round(textX + Math.max(300, longest * 6.5) + 10);
  const h = top + tr.steps.length * rowH + 30;
  const lx = (node: string): number => left + laneW * lanes.indexOf(node) + laneW / 2;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" class="sequence" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="trace">`);
  for (const l of lanes) {
    const x = lx(l);
    out.push(`<text class="lane" x="${x}" y="20" text-anchor="middle">${esc(l)}</text>`);
    out.push(`<line class="lifeline" x1="${x}" y1="28" x2="${x}" y2="${h - 10}"/>`);
  }
  out.push(`<text class="small" x="4" y="20">time</text>`);
  tr.steps.forEach((s, i) => {
    const y = top + i * rowH;
    const x = lx(s.node);
    const prev = i > 0 ? tr.steps[i - 1]! : null;
    if (prev !== null && prev.node !== s.node) {
      const px = lx(prev.node);
      out.push(
        `<line class="msg" x1="${px}" y1="${y - rowH + 4}" x2="${x + (x > px ? -6 : 6)}" y2="${y - 4}" marker-end="url(#seqarrow)"><title>${esc(`${prev.node} → ${s.node}`)}</title></line>`,
      );
    }
    const drop = s.stage === 'drop';
    out.push(`<text class="small" x="4" y="${y + 4}">${esc(fmtNs(s.t))}</text>`);
    out.push(`<rect class="stage${drop ? ' drop' : ''}" x="${x - 40}" y="${y - 8}" width="80" height="15" rx="3"><title>${esc(s.action)}</title></rect>`);
    out.push(`<text class="small" x="${x}" y="${y + 3}" text-anchor="middle">${esc(s.stage)}</text>`);
    out.push(`<text class="small${drop ? ' droptext' : ''}" x="${textX}" y="${y + 3}">${esc(`${s.node}/${s.port}: ${s.action}`)}</text>`);
  });
  out.push(
    '<defs><marker id="seqarrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#4e79a7"/></marker></defs>',
  );
  out.push('</svg>');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Tables

function table(head: string[], rows: string[][], numeric: boolean[] = []): string {
  const th = head.map((x) => `<th>${esc(x)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((x, i) => `<td${numeric[i] === true ? ' class="num"' : ''}>${esc(x)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Flows in the table; beyond, the page says how many more (the JSON has them all). */
const TABLE_FLOWS = 500;

function flowTable(r: RunRecord): string {
  const rows = r.flows.slice(0, TABLE_FLOWS).map((f) => {
    const tcp = f.tcp !== undefined;
    return [
      f.name,
      f.type,
      `${f.from} → ${f.to}`,
      tcp ? `${f.sent} segs` : `${f.sent}${f.tooBig > 0 ? ` (+${f.tooBig} too big)` : ''}`,
      `${f.delivered}${tcp ? ' B' : ''}`,
      fmtPct(f.deliveredRatio),
      tcp ? `${f.lost} retx` : String(f.lost),
      f.latencyP50Ns === null ? '-' : fmtNs(f.latencyP50Ns),
      f.latencyP99Ns === null ? '-' : fmtNs(f.latencyP99Ns),
      fmtRate(f.throughputBps),
      fmtRate(f.goodputBps),
      tcp ? `MSS ${f.tcp!.mss}, ${f.tcp!.state}` : f.icmpSeen.length === 0 ? '-' : f.icmpSeen.join(', '),
    ];
  });
  const more = r.flows.length > TABLE_FLOWS ? `<p class="note">and ${r.flows.length - TABLE_FLOWS} more flows (in the JSON report)</p>` : '';
  return (
    table(['flow', 'type', 'from → to', 'sent', 'delivered', 'ratio', 'lost', 'p50', 'p99', 'throughput', 'goodput', 'TCP / ICMP seen'], rows, [
      false,
      false,
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      true,
      false,
    ]) + more
  );
}

function dropTable(r: RunRecord): string {
  const rows: string[][] = [];
  for (const [node, ports] of Object.entries(r.drops))
    for (const [port, reasons] of Object.entries(ports)) for (const [reason, n] of Object.entries(reasons)) rows.push([`${node}/${port}`, reason, String(n)]);
  for (const p of r.underlay.paths) for (const [k, n] of Object.entries(p.dropped)) rows.push([`underlay ${p.a}-${p.b}`, k, String(n)]);
  return rows.length === 0 ? '<p>No drops.</p>' : table(['where', 'reason', 'count'], rows, [false, false, true]);
}

function expectTable(r: RunRecord): string {
  if (r.expectations.length === 0) return '<p>The scenario states no expectations.</p>';
  const rows = r.expectations.map((e) => [e.ok ? 'ok' : 'FAIL', e.what, e.expected, e.actual]);
  const th = ['', 'what', 'expected', 'found'].map((x) => `<th>${esc(x)}</th>`).join('');
  const body = rows.map((x, i) => `<tr class="${r.expectations[i]!.ok ? 'ok' : 'fail'}">${x.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

// ---------------------------------------------------------------------------------------------------
// The page

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .note, figcaption { color: #555; font-size: 13px; }
.ok-banner { color: #1b7f2a; font-weight: 600; } .fail-banner { color: #c62828; font-weight: 600; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 3px 8px; border-bottom: 1px solid #e6e6e6; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } tr.fail td { color: #c62828; } tr.ok td:first-child { color: #1b7f2a; }
.scroll { overflow-x: auto; } figure { margin: 0 0 16px; }
svg text { font: 12px system-ui, sans-serif; fill: #222; } svg text.small { font-size: 11px; } svg text.nodename { font-weight: 600; font-size: 13px; }
svg .node rect { fill: #f4f7fb; stroke: #4e79a7; stroke-width: 1.5; } svg .node.fault > rect { stroke: #c62828; stroke-dasharray: 5 3; }
svg rect.pod { fill: #fff; stroke: #9bb3cf; } svg line.path { stroke: #aaa; stroke-width: 1.2; }
svg line.path.used { stroke: #4e79a7; stroke-width: 3; } svg line.path.fault { stroke: #c62828; stroke-dasharray: 6 4; }
svg text.pathlabel { font-size: 11px; fill: #333; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
svg line.lifeline { stroke: #bbb; stroke-dasharray: 4 3; } svg text.lane { font-weight: 600; }
svg rect.stage { fill: #eef3f9; stroke: #4e79a7; } svg rect.stage.drop { fill: #fdecea; stroke: #c62828; }
svg line.msg { stroke: #4e79a7; stroke-width: 1.5; } svg text.droptext { fill: #c62828; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(640px, 1fr)); gap: 16px; }
`;

/**
 * Builds the charts from the embedded series. Plain ES2017 run by the browser: no modules, no fetches.
 * Each chart is a `<figure>` whose `data-chart` names it; a chart with nothing to draw says so instead.
 */
const CHART_SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('seine-series').textContent);
  var palette = ${JSON.stringify(PALETTE)};
  var t = data.t.map(function (x) { return x / 1e9; });
  function draw(id, title, yLabel, lines) {
    var el = document.querySelector('[data-chart="' + id + '"] .plot');
    if (lines.length === 0) { el.textContent = 'nothing to draw in this run'; el.className += ' note'; return; }
    var width = Math.max(480, Math.min(el.clientWidth || 640, 900));
    var series = [{ label: 'time (s)' }].concat(lines.map(function (l, i) {
      return { label: l.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: l.spanGaps === true, points: { show: t.length < 60 } };
    }));
    var opts = {
      title: title, width: width, height: 260, series: series,
      scales: { x: { time: false } },
      axes: [{ label: 'simulated time (s)' }, { label: yLabel, size: 70 }]
    };
    new uPlot(opts, [t].concat(lines.map(function (l) { return l.values; })), el);
  }
  var mbit = function (a) { return a.map(function (x) { return x / 1e6; }); };
  var thr = data.flows.map(function (f) { return { label: f.name, values: mbit(f.goodputBps) }; });
  thr.push({ label: 'all pods (Ethernet)', values: mbit(data.totals.podDeliveredBps) });
  thr.push({ label: 'underlay (all tunnels)', values: mbit(data.totals.underlayBps) });
  draw('throughput', 'Throughput delivered per interval', 'Mbit/s', thr);
  draw('latency', 'Latency of what arrived (ping RTT, UDP one way, TCP RTT)', 'ms', data.flows.map(function (f) {
    return { label: f.name + ' (' + (f.type === 'udp' ? 'one way' : 'RTT') + ')', spanGaps: true, values: f.latencyNs.map(function (x) { return x === null ? null : x / 1e6; }) };
  }));
  draw('cwnd', 'TCP congestion window', 'KiB', data.flows.filter(function (f) { return f.cwndBytes !== undefined; }).map(function (f) {
    return { label: f.name, values: f.cwndBytes.map(function (x) { return x / 1024; }) };
  }));
  draw('drops', 'Drops per interval by reason', 'packets', Object.keys(data.drops).sort().map(function (k) { return { label: k, values: data.drops[k] }; }));
  document.body.setAttribute('data-charts-drawn', String(document.querySelectorAll('.uplot').length));
})();
`;

function chartFigure(id: string, caption: string): string {
  return `<figure data-chart="${id}"><div class="plot"></div><figcaption>${esc(caption)}</figcaption></figure>`;
}

/** The whole page for a run record. */
export function renderHtml(r: RunRecord): string {
  const { js, css } = uplotAssets();
  const title = `seine run report: ${r.scenario}`;
  const parts: string[] = [];
  parts.push(
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    // Nothing may leave the page: no fetches, no frames; inline scripts and styles only.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${css}</style><style>${STYLE}</style>`,
    '</head><body>',
    `<h1>${esc(title)}</h1>`,
  );
  const world =
    r.live === undefined
      ? `simulated ${fmtNs(r.durationNs)}, seed ${r.seed}, ${r.events} events`
      : `live in lab ${r.live.lab}, ${fmtNs(r.live.wallMs * 1e6)} of wall-clock time`;
  const overhead =
    r.wireOverheadPct === null
      ? 'no tunnel traffic'
      : `wire overhead ${r.wireOverheadPct.toFixed(1)}% (${r.outerBytes} bytes on the underlay for ${r.innerBytes} inner)`;
  parts.push(`<p class="meta">${esc(`${world}; pod MTU ${r.podMtu}; ${overhead}`)}</p>`);
  if (r.expectations.length > 0) {
    const failed = r.expectations.filter((e) => !e.ok).length;
    parts.push(
      failed === 0
        ? `<p class="ok-banner">All ${r.expectations.length} expectations met.</p>`
        : `<p class="fail-banner">${failed} of ${r.expectations.length} expectations failed.</p>`,
    );
  }
  if (r.topology !== undefined) {
    const t = r.topology;
    if (t.description !== '') parts.push(`<p>${esc(t.description)}</p>`);
    if (t.lesson !== '') parts.push(`<p><b>Lesson.</b> ${esc(t.lesson)}</p>`);
    parts.push(
      '<h2>Topology</h2>',
      `<figure class="scroll">${topologySvg(r)}<figcaption>${topologyCaption(t, Math.min(t.nodes.length, DRAWN_NODES))}</figcaption></figure>`,
    );
  }
  parts.push('<h2>Flows</h2>', `<div class="scroll">${flowTable(r)}</div>`);
  const s = r.series;
  if (s !== undefined) {
    const omitted = s.flowsOmitted > 0 ? ` The first ${s.flows.length} flows have lines of their own; the other ${s.flowsOmitted} are in the totals.` : '';
    parts.push(
      '<h2>Over time</h2>',
      `<p class="note">${esc(`Sampled every ${fmtNs(s.intervalNs)} of simulated time; each point is the interval ending there.${omitted}`)}</p>`,
      '<div class="charts">',
      chartFigure(
        'throughput',
        "Payload delivered per flow (ping: echo payload answered; UDP: datagram payload; TCP: bytes acknowledged), with every pod's received Ethernet bytes and the underlay's.",
      ),
      chartFigure('latency', 'Mean latency of the packets that arrived in each interval; gaps where nothing arrived.'),
      chartFigure('cwnd', "Each TCP sender's congestion window at the sample time: slow start, halving at a fast retransmit, one MSS after a timeout."),
      chartFigure(
        'drops',
        "Packets dropped in each interval, by reason: the bridges' and gateways' reasons on every node, and the underlay paths' (underlay:loss, underlay:down, …).",
      ),
      '</div>',
    );
  }
  parts.push('<h2>Drops</h2>', dropTable(r));
  if (r.traces !== undefined && r.traces.length > 0) {
    parts.push('<h2>Traces</h2>');
    for (const tr of r.traces) {
      const head = `${tr.proto.toUpperCase()} ${tr.from} (${tr.src}) → ${tr.to} (${tr.dst}), ${tr.size} bytes of IP: ${tr.outcome}${tr.reason !== null ? ` — ${tr.reason}` : ''}`;
      parts.push(`<figure class="scroll">${sequenceSvg(tr)}<figcaption>${esc(head)}</figcaption></figure>`);
    }
  }
  if (r.skipped !== undefined && r.skipped.length > 0)
    parts.push(
      '<h2>Skipped</h2>',
      table(
        ['part', 'why'],
        r.skipped.map((x) => [x.part, x.reason]),
      ),
    );
  parts.push('<h2>Expectations</h2>', expectTable(r));
  if (s !== undefined) {
    parts.push(`<script id="seine-series" type="application/json">${jsonInScript(s)}</script>`);
    parts.push(`<script>${js}</script>`, `<script>${CHART_SCRIPT}</script>`);
  }
  parts.push('</body></html>', '');
  return parts.join('\n');
}
