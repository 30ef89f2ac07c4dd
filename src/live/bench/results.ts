/**
 * `seine bench live`, the numbers: what one measurement's tool printed turned into figures (iperf3's
 * JSON, ping's output, CPU times from /proc), figures of repeated runs summed up as a median and a
 * spread (min–max), ratios to the kernel and to Open vSwitch's userspace datapath measured in the same
 * run, the issue's targets checked against them, and the outputs: a text table, the JSON object and one
 * SVG bar chart per metric (drawn with plot/svg.ts's helpers). Pure: no processes or files here (cli/benchlive.ts runs the labs).
 */
import { esc, fmt, niceAxis } from '../../plot/svg.js';
import { parsePing } from '../lab/traffic.js';
import { median } from '../../sim/latency.js';

export type Datapath = 'seine' | 'kernel' | 'ovs-netdev';
export type EspSetup = 'none' | 'aes-gcm-128' | 'chacha20-poly1305';
export const DATAPATHS: readonly Datapath[] = ['seine', 'kernel', 'ovs-netdev'];
export const ESP_SETUPS: readonly EspSetup[] = ['none', 'aes-gcm-128', 'chacha20-poly1305'];

/** The figures of one datapath and setup, in the JSON's names. */
export const METRICS = ['tcp_gbps', 'tcp4_gbps', 'udp64_kpps', 'udp1400_kpps', 'rtt_ms', 'cpu_s_per_gb'] as const;
export type Metric = (typeof METRICS)[number];

/** What each metric is, for the table and the charts; `lower`: smaller is better. */
const METRIC_INFO: Record<Metric, { title: string; unit: string; lower: boolean }> = {
  tcp_gbps: { title: 'TCP pod to pod, 1 stream', unit: 'Gbit/s', lower: false },
  tcp4_gbps: { title: 'TCP pod to pod, 4 streams', unit: 'Gbit/s', lower: false },
  udp64_kpps: { title: 'UDP 64-byte payload, delivered', unit: 'kpps', lower: false },
  udp1400_kpps: { title: 'UDP 1400-byte payload, delivered', unit: 'kpps', lower: false },
  rtt_ms: { title: 'ping RTT pod to pod (median)', unit: 'ms', lower: true },
  cpu_s_per_gb: { title: 'datapath CPU per GB moved (TCP 1 stream)', unit: 'CPU s/GB', lower: true },
};

/** A figure's median over its runs and their spread. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function spreadOf(xs: readonly number[]): Spread {
  if (xs.length === 0) return { median: NaN, min: NaN, max: NaN, runs: 0 };
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length };
}

export interface BenchResult {
  datapath: Datapath;
  esp: EspSetup;
  tcp_gbps: number;
  tcp4_gbps: number;
  udp64_kpps: number;
  udp1400_kpps: number;
  rtt_ms: number;
  cpu_s_per_gb: number;
  /** Whole-machine busy CPU (every process and the kernel, /proc/stat) per GB in the same runs: one measure for all datapaths. */
  machine_cpu_s_per_gb: number;
  /** What `cpu_s_per_gb` counts for this datapath. */
  cpu_source: string;
  /** What the generator offered in the UDP runs (median kpps sent): a delivered figure near it says the sender, not the datapath, was the limit. */
  udp64_offered_kpps: number;
  udp1400_offered_kpps: number;
  /** How the UDP figures were taken (udpgen.ts `UDP_METHOD`). */
  udp_method: string;
  /**
   * CPU of the UDP generator and sink (median CPU seconds per second of the send window: cores busy);
   * they share the machine's cores with the datapath, alike for every datapath.
   */
  udp_tool_cores: { udp64: { sender: number; sink: number }; udp1400: { sender: number; sink: number } };
  /** The payload of the "1400-byte" UDP runs: 1400, or less when ESP leaves a smaller pod MTU (no fragments). */
  udp_large_payload: number;
  /**
   * seine only (null for the others): bytes of JavaScript heap the agents allocated per frame they read
   * or wrote during the 1-stream TCP runs (median), from their heap meters (live/heap.ts) — the live
   * check of "nothing allocated per packet"; timers, the control socket and the meter's own reads are in it.
   */
  heap_bytes_per_frame: number | null;
  /** Every figure's median, min, max and number of runs (rtt_ms: over the single pings). */
  spread: Record<Metric | 'machine_cpu_s_per_gb', Spread>;
}

/** `seine`, `seine+aes-gcm-128`, `kernel`, `ovs-netdev`: a result's name in the table, the charts and `ratios`. */
export function setupName(r: { datapath: Datapath; esp: EspSetup }): string {
  return r.esp === 'none' ? r.datapath : `${r.datapath}+${r.esp}`;
}

// ---------------------------------------------------------------------------------------------------
// Tools' output

export interface TcpRun {
  /** Bytes the receiver got, and over how long. */
  bytes: number;
  seconds: number;
  gbps: number;
}

interface IperfTcpSum {
  bytes?: number;
  seconds?: number;
  bits_per_second?: number;
}

/**
 * Reads `iperf3 -c … -J` (TCP, one or more streams): what the receiver got (`end.sum_received`, the
 * sum over streams). Throws when it is not iperf3's JSON, when iperf3 reports an error, or when nothing
 * arrived.
 */
export function parseIperfTcp(json: string): TcpRun {
  let d: { error?: string; end?: { sum_received?: IperfTcpSum } };
  try {
    d = JSON.parse(json) as typeof d;
  } catch (e) {
    throw new Error(`iperf3 printed no JSON (${(e as Error).message}): ${json.slice(0, 200)}`);
  }
  if (typeof d.error === 'string') throw new Error(`iperf3: ${d.error}`);
  const r = d.end?.sum_received;
  if (r === undefined || !(typeof r.bytes === 'number' && r.bytes > 0) || !(typeof r.seconds === 'number' && r.seconds > 0)) {
    throw new Error('iperf3: the receiver got nothing (no end.sum_received bytes)');
  }
  return { bytes: r.bytes, seconds: r.seconds, gbps: (r.bytes * 8) / r.seconds / 1e9 };
}

/** Round-trip times (ms) out of ping's output; throws when fewer than half the echoes came back. */
export function parsePingRtts(stdout: string, stderr = ''): number[] {
  const p = parsePing(stdout, stderr);
  if (p.transmitted === 0 || p.rttsNs.length * 2 < p.transmitted) throw new Error(`ping: ${p.rttsNs.length} of ${p.transmitted} echoes answered`);
  return p.rttsNs.map((ns) => ns / 1e6);
}

/** utime + stime (clock ticks) of a process, from the text of /proc/PID/stat; null when unreadable. */
export function procCpuTicks(statText: string): number | null {
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const rest = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  const u = Number(rest[11]),
    s = Number(rest[12]);
  return Number.isFinite(u) && Number.isFinite(s) ? u + s : null;
}

export interface MachineCpu {
  /** Clock ticks in the kernel: system, irq and softirq. */
  kernel: number;
  /** Every tick not idle or waiting for I/O (guest time is already inside user). */
  busy: number;
}

/** The first line of /proc/stat (all CPUs together). */
export function parseProcStat(text: string): MachineCpu {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('/proc/stat: no "cpu" line');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { kernel: system + irq + softirq, busy: user + nice + system + irq + softirq + steal };
}

// ---------------------------------------------------------------------------------------------------
// Ratios and targets

/** Per setup, each figure divided by the same figure of the kernel and of OVS-netdev (plaintext), or null. */
export type Ratios = Record<string, { vs_kernel: Record<Metric, number | null> | null; vs_ovs_netdev: Record<Metric, number | null> | null }>;

export function ratiosOf(results: readonly BenchResult[]): Ratios {
  const ref = (d: Datapath): BenchResult | undefined => results.find((r) => r.datapath === d && r.esp === 'none');
  const kernel = ref('kernel'),
    ovs = ref('ovs-netdev');
  const div = (r: BenchResult, b: BenchResult | undefined): Record<Metric, number | null> | null => {
    if (b === undefined || b === r) return null;
    const o = {} as Record<Metric, number | null>;
    for (const m of METRICS) o[m] = b[m] > 0 && Number.isFinite(r[m]) ? r[m] / b[m] : null;
    return o;
  };
  const out: Ratios = {};
  for (const r of results) out[setupName(r)] = { vs_kernel: div(r, kernel), vs_ovs_netdev: div(r, ovs) };
  return out;
}

export interface TargetCheck {
  /** What the issue asks. */
  what: string;
  /** The measured ratio (or null when a datapath it needs was not measured). */
  ratio: number | null;
  target: number;
  /** A stretch goal: reported, never a failure. */
  stretch: boolean;
  /** `ratio >= target` for figures where more is better, `ratio <= target` for RTT; null when not measured. */
  ok: boolean | null;
}

/** The issue's targets for seine, each as a ratio measured in this run. */
export function checkTargets(results: readonly BenchResult[]): TargetCheck[] {
  const find = (d: Datapath, esp: EspSetup = 'none'): BenchResult | undefined => results.find((r) => r.datapath === d && r.esp === esp);
  const seine = find('seine'),
    aes = find('seine', 'aes-gcm-128'),
    kernel = find('kernel'),
    ovs = find('ovs-netdev');
  const t = (what: string, a: BenchResult | undefined, b: BenchResult | undefined, m: Metric, target: number, atMost = false): TargetCheck => {
    const ratio = a !== undefined && b !== undefined && b[m] > 0 ? a[m] / b[m] : null;
    return { what, ratio, target, stretch: what.includes('(stretch)'), ok: ratio === null ? null : atMost ? ratio <= target : ratio >= target };
  };
  return [
    t('TCP 1 stream: seine / OVS-netdev ≥ 2', seine, ovs, 'tcp_gbps', 2),
    t('TCP 1 stream: seine / kernel ≥ 0.3 (stretch)', seine, kernel, 'tcp_gbps', 0.3),
    t('TCP 1 stream: seine+aes-gcm-128 / OVS-netdev plaintext ≥ 1', aes, ovs, 'tcp_gbps', 1),
    t('ping RTT: seine / OVS-netdev ≤ 1', seine, ovs, 'rtt_ms', 1, true),
    t('UDP 64-byte delivered pps: seine / OVS-netdev ≥ 2', seine, ovs, 'udp64_kpps', 2),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Output

export interface Skipped {
  datapath: Datapath;
  esp?: EspSetup;
  why: string;
}

export interface BenchReport {
  results: BenchResult[];
  ratios: Ratios;
  targets: TargetCheck[];
  machine: { cores: number; kernel: string; node: string; cpu: string };
  /** Seconds per measurement and runs per figure. */
  settings: { duration_s: number; runs: number; pings: number; commit: string | null };
  skipped: Skipped[];
}

const ratioText = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : `${fmt(x)}x`);

function pad(rows: string[][], right: ReadonlySet<number>): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (right.has(i) ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** The text table: per setup each figure's median with its spread, then the ratios and the targets. */
export function formatBenchTable(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(
    `seine bench live  ${r.machine.cores} cores  Linux ${r.machine.kernel}  node ${r.machine.node}  ${r.settings.duration_s} s per measurement, ${r.settings.runs} run(s) each${r.settings.commit !== null ? `  commit ${r.settings.commit}` : ''}`,
  );
  lines.push('');
  const head = ['setup', ...METRICS.map((m) => `${m} (${METRIC_INFO[m].unit})`)];
  const rows = [
    head,
    ...r.results.map((x) => [setupName(x), ...METRICS.map((m) => `${fmt(x.spread[m].median)} [${fmt(x.spread[m].min)}-${fmt(x.spread[m].max)}]`)]),
  ];
  lines.push(...pad(rows, new Set(METRICS.map((_, i) => i + 1))));
  lines.push('', 'median [min-max] over the runs; rtt over the single pings. cpu_s_per_gb counts:');
  for (const x of r.results) lines.push(`  ${setupName(x)}: ${x.cpu_source}; whole machine ${fmt(x.machine_cpu_s_per_gb)} CPU s/GB`);
  lines.push('UDP offered by the generator (kpps sent; delivered near it: the sender was the limit) and the cores its sender and sink used:');
  for (const x of r.results) {
    const c = x.udp_tool_cores;
    lines.push(
      `  ${setupName(x)}: ${fmt(x.udp64_offered_kpps)} at 64 bytes (sender ${fmt(c.udp64.sender)}, sink ${fmt(c.udp64.sink)}), ${fmt(x.udp1400_offered_kpps)} at ${x.udp_large_payload} bytes (sender ${fmt(c.udp1400.sender)}, sink ${fmt(c.udp1400.sink)})`,
    );
  }
  const heap = r.results.filter((x) => x.heap_bytes_per_frame !== null);
  if (heap.length > 0) {
    lines.push('JavaScript heap the agents allocated per frame they moved (1-stream TCP runs; timers and control reads included):');
    for (const x of heap) lines.push(`  ${setupName(x)}: ${fmt(x.heap_bytes_per_frame!)} bytes`);
  }
  for (const ref of ['vs_ovs_netdev', 'vs_kernel'] as const) {
    const have = r.results.filter((x) => r.ratios[setupName(x)]?.[ref] != null);
    if (have.length === 0) continue;
    lines.push('', `ratio to ${ref === 'vs_kernel' ? 'the kernel' : 'OVS-netdev'} (plaintext), same run:`);
    lines.push(
      ...pad(
        [['setup', ...METRICS], ...have.map((x) => [setupName(x), ...METRICS.map((m) => ratioText(r.ratios[setupName(x)]![ref]![m]))])],
        new Set(METRICS.map((_, i) => i + 1)),
      ),
    );
  }
  const measured = r.targets.filter((t) => t.ok !== null);
  if (measured.length > 0) {
    lines.push('', 'targets:');
    for (const t of measured) lines.push(`  ${t.ok === true ? 'met   ' : 'missed'}  ${t.what}: ${ratioText(t.ratio)}`);
  }
  for (const s of r.skipped) lines.push('', `skipped: ${s.esp !== undefined && s.esp !== 'none' ? `${s.datapath}+${s.esp}` : s.datapath}: ${s.why}`);
  return lines.join('\n');
}

const COLOURS: Record<Datapath, string> = { seine: '#2b6cb0', kernel: '#718096', 'ovs-netdev': '#c05621' };

/**
 * One metric as a bar chart: a bar per setup (its median), a whisker for min–max, the value above, the
 * setup under it, and a y axis with the unit. Small, hand-written SVG 1.1.
 */
export function svgChart(metric: Metric, results: readonly BenchResult[]): string {
  const info = METRIC_INFO[metric];
  const W = Math.max(420, 120 + 110 * results.length),
    H = 340;
  const left = 70,
    right = 20,
    top = 50,
    bottom = 70;
  const plotH = H - top - bottom,
    plotW = W - left - right;
  const vals = results.map((r) => r.spread[metric]);
  const { top: yTop, step } = niceAxis(Math.max(0, ...vals.map((s) => (Number.isFinite(s.max) ? s.max : 0))));
  const y = (v: number): number => top + plotH - (Math.max(0, v) / yTop) * plotH;
  const n = (v: number): string => (+v.toFixed(1)).toString();
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${esc(`${info.title} (${info.unit})`)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(info.title)}</text>`);
  out.push(
    `<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(`median of the runs, whiskers min–max; ${info.lower ? 'lower' : 'higher'} is better`)}</text>`,
  );
  for (let v = 0; v <= yTop + step / 2; v += step) {
    out.push(`<line x1="${left}" y1="${n(y(v))}" x2="${W - right}" y2="${n(y(v))}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${n(y(v) + 4)}" text-anchor="end">${esc(fmt(v))}</text>`);
  }
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="black"/>`);
  out.push(`<line x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}" stroke="black"/>`);
  out.push(`<text x="16" y="${top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + plotH / 2})">${esc(info.unit)}</text>`);
  const slot = plotW / Math.max(1, results.length);
  results.forEach((r, i) => {
    const s = vals[i]!;
    const cx = left + slot * (i + 0.5),
      bw = Math.min(60, slot * 0.6);
    const med = Number.isFinite(s.median) ? s.median : 0;
    out.push(
      `<rect x="${n(cx - bw / 2)}" y="${n(y(med))}" width="${n(bw)}" height="${n(top + plotH - y(med))}" fill="${COLOURS[r.datapath]}" fill-opacity="${r.esp === 'none' ? 1 : 0.6}"/>`,
    );
    if (Number.isFinite(s.min) && Number.isFinite(s.max) && s.runs > 1) {
      out.push(`<line x1="${n(cx)}" y1="${n(y(s.min))}" x2="${n(cx)}" y2="${n(y(s.max))}" stroke="black"/>`);
      for (const v of [s.min, s.max]) out.push(`<line x1="${n(cx - 6)}" y1="${n(y(v))}" x2="${n(cx + 6)}" y2="${n(y(v))}" stroke="black"/>`);
    }
    out.push(`<text x="${n(cx)}" y="${n(Math.min(y(med), y(Number.isFinite(s.max) ? s.max : med)) - 6)}" text-anchor="middle">${esc(fmt(s.median))}</text>`);
    const [name, esp] = r.esp === 'none' ? [r.datapath, ''] : [r.datapath, `+${r.esp}`];
    out.push(`<text x="${n(cx)}" y="${top + plotH + 18}" text-anchor="middle">${esc(name)}</text>`);
    if (esp !== '') out.push(`<text x="${n(cx)}" y="${top + plotH + 34}" text-anchor="middle" fill="#555">${esc(esp)}</text>`);
  });
  out.push(`<text x="${left + plotW / 2}" y="${H - 10}" text-anchor="middle">datapath and setup</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
