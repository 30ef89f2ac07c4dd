/**
 * `seine bench overhead`, the outputs: the JSON object (`--json`, `overhead.json`), the CSV (one row per
 * cell), the text table, and the SVG plots (goodput efficiency against size per encapsulation and per
 * encryption; TCP goodput against MTU and loss), drawn with plot/svg.ts. Pure: no files here.
 */
import { fmt, lineChart } from '../plot/svg.js';
import type { Cell, Figures, SizePoint, TcpPoint, TcpSweepOptions } from './overhead.js';

export const DEFINITIONS = {
  message: 'one UDP datagram whose inner IPv4 packet is `size` bytes; larger than the pod MTU, it leaves the pod in RFC 791 fragments',
  payload: 'the UDP payload: size − 28 bytes per message',
  wireBytesL2: 'bytes of the underlay Ethernet frames, destination MAC to the end of the payload (as captured; no FCS)',
  wireBytesL1: 'L2 bytes, each frame padded to 60, plus 24 per frame: FCS 4, preamble and start-of-frame delimiter 8, inter-frame gap 12 (IEEE 802.3)',
  wirePerPayload: 'wire bytes / payload bytes (L2 and L1)',
  efficiency: 'goodput efficiency: payload bytes / wire bytes (L2 and L1)',
  packetsPerMessage: 'underlay frames / messages',
  podMtu: 'the largest inner IP packet that crosses in one underlay frame (measured with DF probes around the analytic value)',
  none: 'no overlay: pods switched on one node, their link MTU the underlay MTU, frames counted on the receiving pod’s port',
  measured: 'real packets through seine’s simulated datapath (node builder, bridge, tunnel, ESP), the underlay capture read back',
} as const;

export interface OverheadReport {
  study: 'seine bench overhead';
  definitions: typeof DEFINITIONS;
  axes: { encapsulations: string[]; encryptions: string[]; families: number[]; underlayMtus: number[]; sizes: string[] };
  /** What the sweep leaves out, and why. */
  excluded: string[];
  /** A `--pcap` distribution: the file, its IP packets and those raised to the smallest size. */
  pcap: { file: string; packets: number; distinctSizes: number; clamped: number } | null;
  cells: Cell[];
  summary: { cells: number; measured: number; agree: number; analyticOnly: number; disagree: number };
  tcp: { parameters: Omit<TcpSweepOptions, 'mtus' | 'losses'> & { window: string; inner: string }; points: TcpPoint[] } | null;
}

export function summarize(cells: readonly Cell[]): OverheadReport['summary'] {
  const measured = cells.filter((c) => c.measured !== null).length;
  const agree = cells.filter((c) => c.agree).length;
  const analyticOnly = cells.filter((c) => c.note?.startsWith('analytic only') === true).length;
  return { cells: cells.length, measured, agree, analyticOnly, disagree: cells.length - agree - analyticOnly };
}

// ---------------------------------------------------------------------------------------------------
// CSV

const CSV_HEAD = [
  'encap',
  'encryption',
  'family',
  'underlay_mtu',
  'size',
  'pod_mtu',
  'messages',
  'payload_bytes',
  'frames',
  'wire_bytes_l2',
  'wire_bytes_l1',
  'wire_per_payload_l2',
  'wire_per_payload_l1',
  'efficiency_l2',
  'efficiency_l1',
  'packets_per_message',
  'measured_pod_mtu',
  'measured_frames',
  'measured_wire_bytes_l2',
  'measured_wire_bytes_l1',
  'agree',
  'note',
];

const csvText = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
const r6 = (x: number): string => (+x.toFixed(6)).toString();

/** One row per cell: the analytic figures, the measured totals beside them, whether they agree. */
export function toCsv(cells: readonly Cell[]): string {
  const rows = [CSV_HEAD.join(',')];
  for (const c of cells) {
    const a = c.analytic,
      m = c.measured;
    rows.push(
      [
        c.encap,
        c.encryption,
        c.family,
        c.underlayMtu,
        csvText(c.size),
        a.podMtu,
        a.totals.messages,
        a.totals.payloadBytes,
        a.totals.frames,
        a.totals.wireBytesL2,
        a.totals.wireBytesL1,
        r6(a.wirePerPayloadL2),
        r6(a.wirePerPayloadL1),
        r6(a.efficiencyL2),
        r6(a.efficiencyL1),
        r6(a.packetsPerMessage),
        m?.podMtu ?? '',
        m?.totals.frames ?? '',
        m?.totals.wireBytesL2 ?? '',
        m?.totals.wireBytesL1 ?? '',
        c.agree,
        csvText(c.note ?? ''),
      ].join(','),
    );
  }
  return rows.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------
// Text

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function pad(rows: string[][]): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** Per config: pod MTU and the L1 goodput efficiency at each size point (at most eight columns). */
export function formatTable(r: OverheadReport): string {
  const labels = r.axes.sizes;
  const wanted = ['64', '576', '1400', '1500', '9000', 'imix', 'pcap'];
  const cols = labels.length <= 8 ? labels : labels.filter((l) => wanted.includes(l));
  const byConfig = new Map<string, Cell[]>();
  for (const c of r.cells) {
    const k = `${c.encap}|${c.encryption}|${c.family}|${c.underlayMtu}`;
    byConfig.set(k, [...(byConfig.get(k) ?? []), c]);
  }
  const rows: string[][] = [['setup', 'underlay', 'pod MTU', ...cols.map((l) => `eff@${l}`)]];
  for (const cells of byConfig.values()) {
    const c0 = cells[0]!;
    const mark = c0.note?.startsWith('analytic only') === true ? ' (analytic)' : '';
    rows.push([
      `${c0.encap}${c0.encryption === 'none' ? '' : ` + ${c0.encryption}`}${mark}`,
      `IPv${c0.family}/${c0.underlayMtu}`,
      String(c0.analytic.podMtu),
      ...cols.map((l) => {
        const c = cells.find((x) => x.size === l);
        return c === undefined ? '-' : pct(c.analytic.efficiencyL1);
      }),
    ]);
  }
  const s = r.summary;
  const lines = [
    'seine bench overhead: goodput efficiency (UDP payload / bytes on the wire with preamble, FCS and inter-frame gap) per inner IP packet size',
    '',
    ...pad(rows),
    '',
    `${s.cells} cells: ${s.agree} measured on the simulated datapath and equal to the arithmetic, ${s.analyticOnly} analytic only, ${s.disagree} disagreeing`,
  ];
  for (const c of r.cells.filter((x) => !x.agree && x.note?.startsWith('analytic only') !== true))
    lines.push(`  DISAGREE ${c.encap} ${c.encryption} IPv${c.family}/${c.underlayMtu} size ${c.size}: ${c.note ?? 'totals differ'}`);
  for (const x of r.excluded) lines.push(`not in the sweep: ${x}`);
  if (r.tcp !== null) {
    lines.push('', `TCP goodput in the simulator (${r.tcp.parameters.encap}, ${r.tcp.parameters.bandwidth}, latency ${r.tcp.parameters.latency} each way):`);
    const losses = [...new Set(r.tcp.points.map((p) => p.loss))];
    const mtus = [...new Set(r.tcp.points.map((p) => p.underlayMtu))];
    const t: string[][] = [['underlay MTU', 'pod MTU', ...losses.map((l) => `loss ${pct(l)}`)]];
    for (const m of mtus) {
      const ps = r.tcp.points.filter((p) => p.underlayMtu === m);
      t.push([String(m), String(ps[0]!.podMtu), ...losses.map((l) => `${fmt((ps.find((p) => p.loss === l)?.goodputBps ?? NaN) / 1e6)} Mbit/s`)]);
    }
    lines.push(...pad(t));
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Plots

/** A cell's figures for a plot: measured when there are any, else the arithmetic's (the series' name says so). */
const shown = (c: Cell): Figures => c.measured ?? c.analytic;

export interface Plot {
  file: string;
  svg: string;
}

/** The caption's last line: where the figures come from, and which series are computed only. */
function measuredNote(cells: readonly Cell[], at: string): string {
  const computed = cells.some((c) => c.measured === null);
  return `Measured on seine's simulated datapath${at}, equal to the arithmetic at every measured point (seine bench overhead)${computed ? '; "(analytic)" series are computed only' : ''}.`;
}

const CAPTION_EFFICIENCY =
  'Efficiency = UDP payload / wire bytes per message: outer Ethernet header, FCS 4, preamble+SFD 8, inter-frame gap 12 per frame (frames padded to 60).';

/**
 * The plots of a sweep: per underlay (IP version and MTU), goodput efficiency against the inner packet
 * size, one series per encapsulation (no ESP), and one per encryption over VXLAN (Geneve when VXLAN is not
 * in the sweep); only the single-size points make curves (IMIX and a capture's distribution are in the
 * CSV). Plus TCP goodput against MTU, one series per loss.
 */
export function plots(cells: readonly Cell[], points: readonly SizePoint[], tcp: OverheadReport['tcp'], commit: string | null): Plot[] {
  const sizes = points.filter((p) => p.dist.length === 1 && p.label === String(p.dist[0]!.size)).map((p) => p.label);
  const out: Plot[] = [];
  const underlays = [...new Set(cells.map((c) => `${c.family}|${c.underlayMtu}`))];
  const at = commit === null ? '' : ` at ${commit}`;
  if (sizes.length >= 2) {
    for (const u of underlays) {
      const [fam, mtu] = u.split('|').map(Number) as [number, number];
      const here = cells.filter((c) => c.family === fam && c.underlayMtu === mtu && sizes.includes(c.size));
      const analyticMark = (c: Cell): string => (c.measured === null ? ' (analytic)' : '');
      const pods = (cs: Cell[]): string =>
        [...new Map(cs.map((c) => [`${c.encap}${c.encryption === 'none' ? '' : `+${c.encryption}`}`, c.analytic.podMtu])).entries()]
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
      /** An efficiency chart of `cs`, one series per `name`. */
      const chart = (file: string, title: string, subtitle: string, cs: Cell[], name: (c: Cell) => string, podNote: string): Plot => {
        const groups = new Map<string, Cell[]>();
        for (const c of cs) {
          const n = name(c) + analyticMark(c);
          const g = groups.get(n);
          if (g === undefined) groups.set(n, [c]);
          else g.push(c);
        }
        return {
          file,
          svg: lineChart({
            title,
            subtitle,
            xLabel: 'inner IP packet size (bytes)',
            yLabel: 'goodput efficiency on the wire (%)',
            xLog: true,
            yMax: 100,
            yTick: (v) => String(v),
            series: [...groups].map(([n, g]) => ({ name: n, points: g.map((c) => ({ x: Number(c.size), y: +(shown(c).efficiencyL1 * 100).toFixed(3) })) })),
            caption: [CAPTION_EFFICIENCY, `Pod MTU: ${pods(cs)}${podNote}`, measuredNote(here, at)],
          }),
        };
      };
      const plain = here.filter((c) => c.encryption === 'none');
      if (plain.length > 0)
        out.push(
          chart(
            `efficiency-ipv${fam}-${mtu}.svg`,
            `Goodput efficiency by encapsulation, IPv${fam} underlay, MTU ${mtu}`,
            'no encryption; inner IPv4 UDP, one message per size',
            plain,
            (c) => c.encap,
            '; larger messages are fragmented by the pod (RFC 791).',
          ),
        );
      const base = here.some((c) => c.encap === 'vxlan') ? 'vxlan' : 'geneve';
      const enc = here.filter((c) => c.encap === base);
      if (new Set(enc.map((c) => c.encryption)).size >= 2)
        out.push(
          chart(
            `efficiency-esp-ipv${fam}-${mtu}.svg`,
            `Goodput efficiency with ESP over ${base}, IPv${fam} underlay, MTU ${mtu}`,
            'ESP transport over the outer IP (RFC 4303), or in UDP (RFC 3948, -udp)',
            enc,
            (c) => c.encryption,
            '.',
          ),
        );
    }
  }
  if (tcp !== null && tcp.points.length > 0) {
    const p = tcp.parameters;
    const losses = [...new Set(tcp.points.map((x) => x.loss))];
    out.push({
      file: 'tcp-goodput.svg',
      svg: lineChart({
        title: 'TCP goodput in the simulator against underlay MTU and loss',
        subtitle: `one NewReno transfer pod to pod over ${p.encap}, ${p.bandwidth} underlay`,
        xLabel: 'underlay MTU (bytes)',
        yLabel: 'goodput (Mbit/s)',
        series: losses.map((l) => ({
          name: `loss ${+(l * 100).toFixed(3)}%`,
          points: tcp.points.filter((x) => x.loss === l).map((x) => ({ x: x.underlayMtu, y: +(x.goodputBps / 1e6).toFixed(3) })),
        })),
        caption: [
          `${p.bytes.toLocaleString('en-US')} bytes per transfer; underlay ${p.bandwidth}, latency ${p.latency} each way, loss on every frame both ways; the median of seeds ${p.seeds.join(', ')} (each run and the spread in overhead.json).`,
          `TCP: ${p.window}; inner ${p.inner}; MSS = pod MTU − 40. A run that meets a retransmission timeout (at least 200 ms, Linux's TCP_RTO_MIN) loses more time than the whole transfer takes: the dips under loss are timeouts (per run in overhead.json).`,
          `Simulated time, so the figures do not depend on the machine (seine's sim/tcp.ts${at}).`,
        ],
      }),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The README's table

/** The README's sizes: the columns of its table. */
export const README_SIZES = ['64', '576', '1400', '1500', '9000', 'imix'] as const;

/**
 * The README's results table (Markdown) from the cells of one underlay: per setup the pod MTU, the goodput
 * efficiency on the wire at each of `README_SIZES`, and the frames a 9000-byte message takes. A test
 * recomputes it, so the README cannot drift from the study.
 */
export function formatReadmeTable(cells: readonly Cell[]): string {
  const setups = [...new Set(cells.map((c) => `${c.encap}|${c.encryption}`))];
  const rows = [
    `| setup | pod MTU | ${README_SIZES.map((s) => (s === 'imix' ? 'IMIX' : `${s} B`)).join(' | ')} | frames per 9000-byte message |`,
    `|---|---:|${README_SIZES.map(() => '---:').join('|')}|---:|`,
  ];
  for (const k of setups) {
    const [encap, encryption] = k.split('|') as [string, string];
    const here = cells.filter((c) => c.encap === encap && c.encryption === encryption);
    const at = (s: string): Cell | undefined => here.find((c) => c.size === s);
    const c0 = here[0]!;
    const mark = c0.measured === null ? ' (analytic)' : '';
    rows.push(
      `| ${encap}${encryption === 'none' ? '' : ` + ${encryption}`}${mark} | ${c0.analytic.podMtu} | ${README_SIZES.map((s) => {
        const c = at(s);
        return c === undefined ? '-' : pct(shown(c).efficiencyL1);
      }).join(' | ')} | ${at('9000') === undefined ? '-' : shown(at('9000')!).packetsPerMessage} |`,
    );
  }
  return rows.join('\n');
}
