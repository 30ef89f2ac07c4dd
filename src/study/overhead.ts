/**
 * The encapsulation-overhead study behind `seine bench overhead`: a sweep of inner packet sizes ×
 * encapsulation × encryption × underlay (IP version, MTU), each cell computed twice —
 *
 * - **analytically**, from mtu/overhead.ts (the one place seine's overhead arithmetic lives) and RFC 791's
 *   fragmentation rule for messages larger than the pod MTU;
 * - **measured**, by sending real packets through the simulated datapath: a cluster generated in code (two
 *   nodes on the real node builder, bridge, tunnel and ESP code; src/sim/), one UDP message per size from a
 *   pod on node1 to a pod on node2, and the frames that left node1 on the underlay read back from the
 *   capture (pcapng, as Wireshark would read it), counted and summed per message.
 *
 * The two must agree exactly: every figure is a ratio of integer totals (bytes, frames, messages), and the
 * totals are compared, not the ratios. A disagreement is a bug in one of them and is reported per cell.
 *
 * Definitions (also in the JSON, `definitions`):
 * - a *message* of size S is one UDP datagram whose IPv4 packet is S bytes (the pod's IP MTU and the
 *   sizes are the pod's, inner IPv4: the simulated pods fragment IPv4 at the source, not IPv6); it carries
 *   S − 28 bytes of *payload*. A message larger than the pod MTU leaves the pod in fragments (RFC 791);
 * - *L2 wire bytes*: the underlay's Ethernet frames from the destination MAC to the end of the payload
 *   (what a capture shows; no FCS). *L1 wire bytes* add what the physical layer sends per frame: padding to
 *   the 60-byte minimum, the 4-byte FCS, the 8-byte preamble and start delimiter and the 12-byte
 *   inter-frame gap (IEEE 802.3);
 * - *wire bytes per payload byte* = wire bytes / payload bytes; *goodput efficiency* = payload / wire
 *   bytes (its inverse); *packets per message* = underlay frames / messages;
 * - the *largest pod MTU* = the largest inner IP packet that crosses in one underlay frame. Measured with
 *   Don't-Fragment probes around the analytic value from a pod whose own MTU does not limit them: each
 *   probe is delivered in one frame or refused by the tunnel (ICMP frag-needed) or the link (MtuExceeded).
 *
 * Encapsulation `none` is the baseline: pods on one node switched by the bridge, their link MTU the
 * underlay's, the frames counted on the receiving pod's port. seine's ESP protects tunnels between nodes,
 * so `none` has no encrypted cells.
 */
import { createParser, LINKTYPE_ETHERNET } from '../capture/index.js';
import { type EspCipher, type OverheadSpec, overheadFor, podMtu } from '../mtu/overhead.js';
import { IMIX, parseScenario } from '../scenario/scenario.js';
import { Cluster } from '../sim/cluster.js';
import { median } from '../sim/latency.js';
import { rd16 } from '../wire/bytes.js';
import { ETH_HEADER_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../wire/ethernet.js';
import { IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';

// ---------------------------------------------------------------------------------------------------
// The axes of the sweep: tables, so that an encapsulation is one row

/** An encapsulation of the sweep. */
export interface Encapsulation {
  /** Its name on the command line, in the CSV and in the plots. */
  name: string;
  /** null: no overlay (the baseline). */
  tunnel: { type: 'vxlan' | 'geneve' | 'gre'; optionBytes: number; greKey: boolean } | null;
  /**
   * Whether the datapath can send it yet: a cell it cannot is computed analytically only, `measured`
   * null with the reason in `note`.
   */
  simulated: boolean;
}

export const ENCAPSULATIONS: readonly Encapsulation[] = [
  { name: 'none', tunnel: null, simulated: true },
  { name: 'vxlan', tunnel: { type: 'vxlan', optionBytes: 0, greKey: false }, simulated: true },
  { name: 'geneve', tunnel: { type: 'geneve', optionBytes: 0, greKey: false }, simulated: true },
  { name: 'geneve+8', tunnel: { type: 'geneve', optionBytes: 8, greKey: false }, simulated: true },
  { name: 'geneve+32', tunnel: { type: 'geneve', optionBytes: 32, greKey: false }, simulated: true },
  { name: 'gre-key', tunnel: { type: 'gre', optionBytes: 0, greKey: true }, simulated: true },
  { name: 'gre', tunnel: { type: 'gre', optionBytes: 0, greKey: false }, simulated: true },
];

/** An encryption of the sweep: none, or ESP (RFC 4303 transport over the outer IP) directly or in UDP (RFC 3948). */
export interface Encryption {
  name: string;
  esp: { cipher: EspCipher; udpEncap: boolean } | null;
}

export const ENCRYPTIONS: readonly Encryption[] = [
  { name: 'none', esp: null },
  { name: 'esp-aes-gcm', esp: { cipher: 'aes-gcm-128', udpEncap: false } },
  { name: 'esp-aes-gcm-udp', esp: { cipher: 'aes-gcm-128', udpEncap: true } },
  { name: 'esp-chacha20', esp: { cipher: 'chacha20-poly1305', udpEncap: false } },
  { name: 'esp-chacha20-udp', esp: { cipher: 'chacha20-poly1305', udpEncap: true } },
];

export const FAMILIES: readonly (4 | 6)[] = [4, 6];
export const UNDERLAY_MTUS: readonly number[] = [1500, 9000];

/** The default sizes: inner IP packet bytes from 64 to 9000 (the issue's range), plus Simple IMIX. */
export const DEFAULT_SIZES: readonly number[] = [64, 128, 256, 512, 576, 1024, 1280, 1400, 1450, 1500, 2048, 4000, 8192, 9000];

/**
 * The smallest message the simulated sender builds (IPv4 + UDP + its 16-byte flow header, sim/host.ts);
 * smaller sizes in a capture are counted and sent at this size, as `replay:` does.
 */
export const MIN_SIZE = IPV4_HEADER_LEN + UDP_HEADER_LEN + 16;
export const MAX_SIZE = 65535;

/** One point of the size axis: a single size, or a distribution (IMIX, a capture's sizes). */
export interface SizePoint {
  /** `64`, `imix`, `pcap`. */
  label: string;
  /** Sizes with their weights (messages of that size per message of the point). */
  dist: ReadonlyArray<{ size: number; weight: number }>;
}

export function sizePoint(size: number): SizePoint {
  return { label: String(size), dist: [{ size, weight: 1 }] };
}
export const IMIX_POINT: SizePoint = { label: 'imix', dist: IMIX };

/**
 * A capture's IP packet lengths as a size distribution (one entry per distinct length, weighted by how
 * often it occurs), lengths below `MIN_SIZE` raised to it; `clamped` counts them.
 */
export function distributionOf(ipLengths: ArrayLike<number>, label = 'pcap'): { point: SizePoint; clamped: number; packets: number } {
  const counts = new Map<number, number>();
  let clamped = 0;
  for (let i = 0; i < ipLengths.length; i++) {
    let n = ipLengths[i]!;
    if (n < MIN_SIZE) {
      n = MIN_SIZE;
      clamped++;
    }
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  const dist = [...counts].sort((a, b) => a[0] - b[0]).map(([size, weight]) => ({ size, weight }));
  return { point: { label, dist }, clamped, packets: ipLengths.length };
}

/** One configuration of the datapath: everything but the size. */
export interface Config {
  encap: Encapsulation;
  encryption: Encryption;
  family: 4 | 6;
  mtu: number;
}

/** The sweep: `encaps × encryptions × families × mtus`, less `none` with ESP (see the module comment). */
export function configs(axes: {
  encaps?: readonly Encapsulation[];
  encryptions?: readonly Encryption[];
  families?: readonly (4 | 6)[];
  mtus?: readonly number[];
}): Config[] {
  const out: Config[] = [];
  for (const encap of axes.encaps ?? ENCAPSULATIONS)
    for (const encryption of axes.encryptions ?? ENCRYPTIONS) {
      if (encap.tunnel === null && encryption.esp !== null) continue;
      for (const family of axes.families ?? FAMILIES) for (const mtu of axes.mtus ?? UNDERLAY_MTUS) out.push({ encap, encryption, family, mtu });
    }
  return out;
}

/** The README's rows: every encapsulation in plaintext, then VXLAN with each encryption, over a 1500-byte IPv4 underlay. */
export function README_CONFIGS(): Config[] {
  const vxlan = ENCAPSULATIONS.filter((e) => e.name === 'vxlan');
  return [
    ...configs({ encryptions: [ENCRYPTIONS[0]!], families: [4], mtus: [1500] }),
    ...configs({ encaps: vxlan, encryptions: ENCRYPTIONS.slice(1), families: [4], mtus: [1500] }),
  ];
}

/** The overhead spec of a tunnelled config (mtu/overhead.ts), or null for `none`. */
function specOf(c: Config): OverheadSpec | null {
  const t = c.encap.tunnel;
  if (t === null) return null;
  return {
    tunnel: t.type,
    underlay: c.family,
    ...(t.optionBytes > 0 ? { geneveOptionBytes: t.optionBytes } : {}),
    ...(t.type === 'gre' ? { greKey: t.greKey } : {}),
    esp: c.encryption.esp,
  };
}

// ---------------------------------------------------------------------------------------------------
// The figures

/** Integer totals over a point's messages (weighted); every figure is a ratio of two of them. */
export interface Totals {
  messages: number;
  payloadBytes: number;
  frames: number;
  wireBytesL2: number;
  wireBytesL1: number;
}

/** Bytes the physical layer adds to a frame: 4 FCS + 8 preamble and SFD + 12 inter-frame gap; frames are padded to 60 first. */
const L1_PER_FRAME = 4 + 8 + 12;
const MIN_FRAME = 60;

function l1Bytes(frameLen: number): number {
  return Math.max(frameLen, MIN_FRAME) + L1_PER_FRAME;
}

export interface Figures {
  /** Largest inner IP packet carried in one underlay frame. */
  podMtu: number;
  totals: Totals;
  wirePerPayloadL2: number;
  wirePerPayloadL1: number;
  efficiencyL2: number;
  efficiencyL1: number;
  packetsPerMessage: number;
}

function figures(podMtuV: number, t: Totals): Figures {
  return {
    podMtu: podMtuV,
    totals: t,
    wirePerPayloadL2: t.wireBytesL2 / t.payloadBytes,
    wirePerPayloadL1: t.wireBytesL1 / t.payloadBytes,
    efficiencyL2: t.payloadBytes / t.wireBytesL2,
    efficiencyL1: t.payloadBytes / t.wireBytesL1,
    packetsPerMessage: t.frames / t.messages,
  };
}

/** The IP packet lengths an IPv4 datagram of `size` bytes leaves in over a link of `mtu` (RFC 791 §2.3: fragment data in multiples of 8). */
export function ipv4Fragments(size: number, mtu: number): number[] {
  if (size <= mtu) return [size];
  const per = Math.floor((mtu - IPV4_HEADER_LEN) / 8) * 8;
  const out: number[] = [];
  for (let left = size - IPV4_HEADER_LEN; left > 0; left -= per) out.push(IPV4_HEADER_LEN + Math.min(per, left));
  return out;
}

/** The largest pod MTU of a config, analytically: the underlay's without an overlay, else mtu/overhead.ts's. */
function analyticPodMtu(c: Config): number {
  const spec = specOf(c);
  return spec === null ? c.mtu : podMtu(c.mtu, spec);
}

/** The L2 frame length of one inner IP packet of `len` bytes on the underlay (or the pod's link for `none`). */
export function analyticFrameLen(c: Config, len: number): number {
  const spec = specOf(c);
  return ETH_HEADER_LEN + len + (spec === null ? 0 : overheadFor(spec, len));
}

/** A cell computed from the arithmetic alone. */
export function analyticCell(c: Config, p: SizePoint): Figures {
  const mtu = analyticPodMtu(c);
  const t: Totals = { messages: 0, payloadBytes: 0, frames: 0, wireBytesL2: 0, wireBytesL1: 0 };
  for (const { size, weight } of p.dist) {
    t.messages += weight;
    t.payloadBytes += weight * (size - IPV4_HEADER_LEN - UDP_HEADER_LEN);
    for (const frag of ipv4Fragments(size, mtu)) {
      const f = analyticFrameLen(c, frag);
      t.frames += weight;
      t.wireBytesL2 += weight * f;
      t.wireBytesL1 += weight * l1Bytes(f);
    }
  }
  return figures(mtu, t);
}

// ---------------------------------------------------------------------------------------------------
// Measured: real packets through the simulated datapath

/** Simulated time between two messages: each message's frames leave at one instant, which names it in the capture. */
const GAP_NS = 10_000;
/** Probes either side of the analytic pod MTU. */
const PROBE_SPAN = 4;

/** A scenario (as JSON, which the YAML loader reads) measuring `sizes` and probing the pod MTU around `mtuGuess`. */
function measureScenario(c: Config, sizes: readonly number[], mtuGuess: number): { text: string; probes: number[] } {
  const t = c.encap.tunnel;
  const probes: number[] = [];
  for (let s = mtuGuess - PROBE_SPAN; s <= mtuGuess + PROBE_SPAN; s++) if (s >= MIN_SIZE && s <= MAX_SIZE) probes.push(s);
  const traffic: object[] = [];
  let at = 0;
  const flow = (name: string, from: string, size: number, df: boolean): void => {
    at += GAP_NS;
    traffic.push({ name, type: 'udp', from, to: t === null ? 'node1/b' : 'node2/b', size, count: 1, df, start: `${at}ns` });
  };
  sizes.forEach((s, i) => flow(`m${i}`, 'node1/a', s, false));
  probes.forEach((s, i) => flow(`p${i}`, 'node1/p', s, true));
  // The probing pod's own MTU must not be what stops a probe: the link's (none) or the underlay's. Not
  // more than that: the simulator's buffers are sized for the largest MTU, and a pod's reassembly budget
  // counts whole buffers (64 KiB ones would leave room for 4 fragments per source).
  const probeMtu = t === null ? mtuGuess + PROBE_SPAN : c.mtu;
  // The sender's MTU is the computed pod MTU (a scenario's default assumes GRE's key; the probes check it).
  const pods =
    t === null
      ? [
          { name: 'a', mtu: c.mtu },
          { name: 'p', mtu: probeMtu },
          { name: 'b', mtu: c.mtu },
        ]
      : [
          { name: 'a', mtu: mtuGuess },
          { name: 'p', mtu: probeMtu },
        ];
  const nodes: object[] = [{ name: 'node1', podCIDR: '10.244.1.0/24', pods }];
  if (t !== null) nodes.push({ name: 'node2', podCIDR: '10.244.2.0/24', pods: [{ name: 'b', mtu: mtuGuess }] });
  const scenario: Record<string, unknown> = {
    name: `overhead-${c.encap.name}-${c.encryption.name}-ipv${c.family}-${c.mtu}`,
    seed: 1,
    duration: `${at + 1_000_000}ns`,
    underlay: { mtu: c.mtu, family: c.family, latency: '1us' },
    nodes,
    traffic,
    capture: [t === null ? 'node1/b' : 'node1/underlay'],
  };
  if (t !== null) {
    const tunnel: Record<string, unknown> = { type: t.type, mode: 'routed' };
    // One option of optionBytes − 4 bytes of data (its 4-byte header included in the count).
    if (t.optionBytes > 0) tunnel.options = [{ class: 0x0102, type: 0x80, data: '00'.repeat(t.optionBytes - 4) }];
    scenario.tunnel = tunnel;
  }
  if (c.encryption.esp !== null) scenario.encryption = { cipher: c.encryption.esp.cipher, udpEncap: c.encryption.esp.udpEncap, secret: 'overhead' };
  return { text: JSON.stringify(scenario, null, 1), probes };
}

/** What one message did on the wire. */
interface MessageWire {
  frames: number;
  l2: number;
  l1: number;
  delivered: boolean;
}

/** Measures every size of `sizes` and the pod MTU of `c` on the simulated datapath. */
function measureConfig(c: Config, sizes: readonly number[]): { podMtu: number | null; bySize: Map<number, MessageWire> } {
  const guess = analyticPodMtu(c);
  const { text, probes } = measureScenario(c, sizes, guess);
  const t = c.encap.tunnel;
  // GRE's key is the cluster's choice, not the scenario's (sim/cluster.ts ClusterOptions.greKey).
  const cluster = new Cluster(
    parseScenario(text, `<${c.encap.name}/${c.encryption.name}/ipv${c.family}/${c.mtu}>`),
    t?.type === 'gre' ? { greKey: t.greKey } : {},
  );
  cluster.run();
  const flows = cluster.report().flows;
  const n = sizes.length + probes.length;
  const wire: MessageWire[] = Array.from({ length: n }, (_, i) => ({ frames: 0, l2: 0, l1: 0, delivered: flows[i]!.delivered === 1 }));
  // The capture, read back as a file would be: each IP frame belongs to the message sent at its time.
  const parser = createParser();
  parser.push(cluster.captures[0]!.bytes());
  parser.end();
  for (const r of parser.records()) {
    if (r.linkType !== LINKTYPE_ETHERNET || r.data.length < ETH_HEADER_LEN) continue;
    const type = rd16(r.data, 12);
    if (type !== ETHERTYPE_IPV4 && type !== ETHERTYPE_IPV6) continue; // ARP between pods (none)
    const ns = Number(r.timestampNs);
    const k = ns / GAP_NS - 1;
    if (!Number.isInteger(k) || k < 0 || k >= n) throw new Error(`overhead: a frame at ${ns} ns belongs to no message (${describeConfig(c)})`);
    if (r.origLen !== r.data.length) throw new Error(`overhead: a frame was captured cut (${r.data.length} of ${r.origLen} bytes)`);
    const w = wire[k]!;
    w.frames++;
    w.l2 += r.data.length;
    w.l1 += l1Bytes(r.data.length);
  }
  const bySize = new Map<number, MessageWire>();
  sizes.forEach((s, i) => bySize.set(s, wire[i]!));
  // The largest probe carried whole, provided every smaller probe was too and no larger one was.
  let best: number | null = null;
  let contiguous = true;
  probes.forEach((s, j) => {
    const w = wire[sizes.length + j]!;
    const whole = w.delivered && w.frames === 1;
    if (whole && best !== null && best !== s - 1) contiguous = false;
    if (whole) best = s;
    else if (best === null && j > 0) contiguous = false;
  });
  return { podMtu: contiguous ? best : null, bySize };
}

function measuredCell(p: SizePoint, m: { podMtu: number | null; bySize: Map<number, MessageWire> }): Figures | null {
  if (m.podMtu === null) return null;
  const t: Totals = { messages: 0, payloadBytes: 0, frames: 0, wireBytesL2: 0, wireBytesL1: 0 };
  for (const { size, weight } of p.dist) {
    const w = m.bySize.get(size)!;
    if (!w.delivered) return null;
    t.messages += weight;
    t.payloadBytes += weight * (size - IPV4_HEADER_LEN - UDP_HEADER_LEN);
    t.frames += weight * w.frames;
    t.wireBytesL2 += weight * w.l2;
    t.wireBytesL1 += weight * w.l1;
  }
  return figures(m.podMtu, t);
}

function describeConfig(c: Config): string {
  return `${c.encap.name}${c.encryption.esp !== null ? ` + ${c.encryption.name}` : ''} over IPv${c.family}, MTU ${c.mtu}`;
}

// ---------------------------------------------------------------------------------------------------
// The sweep

export interface Cell {
  encap: string;
  encryption: string;
  family: 4 | 6;
  underlayMtu: number;
  size: string;
  analytic: Figures;
  /** null when the datapath cannot send it (`note` says why) or a message was lost. */
  measured: Figures | null;
  /** Analytic and measured totals and pod MTU identical. */
  agree: boolean;
  note: string | null;
}

function sameFigures(a: Figures, b: Figures | null): boolean {
  if (b === null) return false;
  const x = a.totals,
    y = b.totals;
  return (
    a.podMtu === b.podMtu &&
    x.messages === y.messages &&
    x.payloadBytes === y.payloadBytes &&
    x.frames === y.frames &&
    x.wireBytesL2 === y.wireBytesL2 &&
    x.wireBytesL1 === y.wireBytesL1
  );
}

export interface SweepOptions {
  configs: readonly Config[];
  points: readonly SizePoint[];
  /** Told after each config (done, total, the config). */
  progress?: (done: number, total: number, c: Config) => void;
}

export function sweep(o: SweepOptions): Cell[] {
  const sizes = [...new Set(o.points.flatMap((p) => p.dist.map((d) => d.size)))].sort((a, b) => a - b);
  const cells: Cell[] = [];
  o.configs.forEach((c, i) => {
    const m = c.encap.simulated ? measureConfig(c, sizes) : null;
    for (const p of o.points) {
      const analytic = analyticCell(c, p);
      const measured = m === null ? null : measuredCell(p, m);
      cells.push({
        encap: c.encap.name,
        encryption: c.encryption.name,
        family: c.family,
        underlayMtu: c.mtu,
        size: p.label,
        analytic,
        measured,
        agree: sameFigures(analytic, measured),
        note: m === null ? `analytic only: seine's datapath has no ${c.encap.name} tunnel yet` : measured === null ? 'a message or probe was lost' : null,
      });
    }
    o.progress?.(i + 1, o.configs.length, c);
  });
  return cells;
}

// ---------------------------------------------------------------------------------------------------
// TCP goodput in the simulator against MTU and loss

export interface TcpPoint {
  underlayMtu: number;
  loss: number;
  podMtu: number;
  mss: number;
  /** The median over the seeds, and the spread. */
  goodputBps: number;
  goodputMinBps: number;
  goodputMaxBps: number;
  /** Per seed, in `seeds` order. */
  runs: Array<{ seed: number; goodputBps: number; retransmits: number; timeouts: number; completed: boolean }>;
}

export interface TcpSweepOptions {
  mtus: readonly number[];
  losses: readonly number[];
  /** Bytes per transfer. */
  bytes: number;
  bandwidth: string;
  latency: string;
  encap: 'vxlan' | 'geneve';
  /** One transfer per seed (loss is random: one seed's retransmission timeout can dominate a point). */
  seeds: readonly number[];
}

export const TCP_DEFAULTS: TcpSweepOptions = {
  mtus: [1500, 3000, 4500, 6000, 9000],
  losses: [0, 0.001, 0.01],
  bytes: 4_000_000,
  bandwidth: '1Gbit',
  latency: '100us',
  encap: 'vxlan',
  seeds: [1, 2, 3],
};

/** Transfers pod to pod across two nodes per (MTU, loss, seed), on the simulator's NewReno (sim/tcp.ts). */
export function tcpSweep(o: TcpSweepOptions, progress?: (done: number, total: number) => void): TcpPoint[] {
  const out: TcpPoint[] = [];
  const total = o.mtus.length * o.losses.length * o.seeds.length;
  let done = 0;
  for (const mtu of o.mtus)
    for (const loss of o.losses) {
      const s = {
        name: `tcp-${mtu}-${loss}`,
        duration: '60s',
        underlay: { mtu, latency: o.latency, bandwidth: o.bandwidth, loss },
        tunnel: { type: o.encap, mode: 'routed' },
        nodes: [
          { name: 'node1', podCIDR: '10.244.1.0/24', pods: [{ name: 'a' }] },
          { name: 'node2', podCIDR: '10.244.2.0/24', pods: [{ name: 'b' }] },
        ],
        traffic: [{ name: 'tcp', type: 'tcp', from: 'node1/a', to: 'node2/b', bytes: o.bytes }],
      };
      const scenario = parseScenario(JSON.stringify(s), `<${s.name}>`);
      let mss = 0;
      const runs: TcpPoint['runs'] = [];
      for (const seed of o.seeds) {
        const cluster = new Cluster(scenario, { seed });
        cluster.run();
        const f = cluster.report().flows[0]!;
        mss = f.tcp?.mss ?? 0;
        runs.push({
          seed,
          goodputBps: f.goodputBps,
          retransmits: f.tcp?.retransmits ?? 0,
          timeouts: f.tcp?.timeouts ?? 0,
          completed: f.tcp?.completedNs != null,
        });
        progress?.(++done, total);
      }
      const g = runs.map((r) => r.goodputBps);
      out.push({
        underlayMtu: mtu,
        loss,
        podMtu: scenario.podMtu,
        mss,
        goodputBps: median(g),
        goodputMinBps: Math.min(...g),
        goodputMaxBps: Math.max(...g),
        runs,
      });
    }
  return out;
}
