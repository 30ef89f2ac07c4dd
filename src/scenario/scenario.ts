/**
 * Scenario files: a lab or an experiment as one YAML document, loaded into a typed, normalised
 * `Scenario` (units converted to ns and bit/s, defaults filled in, pod addresses assigned) or refused
 * with a `ScenarioError` that names the file, line, column and key and says what was expected:
 *
 *     scenarios/x.yaml:7:5: nodes[0].podCidr: expected one of the keys name, podCIDR, underlayIp, pods, got "podCidr" (did you mean "podCIDR"?)
 *
 * The schema (every key optional unless marked *; durations are `<number><ns|us|ms|s>`, bandwidths
 * `<number><bit|Kbit|Mbit|Gbit|Tbit>`, losses a fraction or a percentage):
 *
 * ```yaml
 * name: two-nodes-vxlan            # * text
 * description: ...                 # text: what the lab shows
 * lesson: ...                      # text: what to look at afterwards
 * seed: 1                          # PRNG seed, an integer (default 1)
 * duration: 10s                    # simulated time (default 10s)
 * underlay: { mtu: 1500, latency: 100us, jitter: 0ns, bandwidth: 10Gbit, loss: 0, family: 4 }
 *                                  # defaults: mtu 1500, latency 0, jitter 0, bandwidth unlimited, loss 0, family 4
 * tunnel:                          # the overlay between nodes
 *   type: vxlan                    # vxlan | geneve (default vxlan)
 *   mode: routed                   # routed (per-node podCIDR, gateway) | l2 (flood-and-learn segments)
 *   vni: 1                         # routed mode's VNI, and the default segment of l2 pods
 *   options: [{ class: 0x0102, type: 0x80, data: "0000000a" }]   # geneve only; class*, type*; data is hex, 4n bytes
 *   fragmentPolicy: outer          # outer | inner | drop
 *   icmpTooBig: true               # false: silent drops, a PMTU black hole
 *   mssClamp: true
 * encryption: { cipher: aes-gcm-128, udpEncap: false, secret: seine }   # ESP between nodes, optional; cipher*
 * nodes:                           # * at least one
 *   - name: node1                  # *
 *     podCIDR: 10.244.1.0/24       # one or a list of two (IPv4 and IPv6); * in routed mode
 *     underlayIp: 172.18.0.2       # default 172.18.0.0/16 + i + 2 (fd00:18::<i+2> over IPv6)
 *     pods:
 *       - name: a                  # *
 *         ip: 10.244.1.2           # one or a list (IPv4 and/or IPv6); default the next free address of podCIDR
 *         vlan: 10                 # access VLAN 1-4094 (default untagged)
 *         vni: 100                 # l2 mode: the pod's segment (default tunnel.vni)
 *         mtu: 1450                # default the pod MTU the underlay and overlay leave (mtu/overhead.ts)
 * links:                           # per node pair overrides of the underlay
 *   - { between: [node1, node2], mtu: 1400, latency: 1ms, jitter: 0ns, bandwidth: 1Gbit, loss: 1% }   # between*
 * traffic:
 *   - name: ping-ab                # default flow-<i+1>
 *     type: ping                   # * ping | udp | tcp
 *     from: node1/a                # * node/pod or node (the node's own stack; routed mode)
 *     to: node2/b                  # *
 *     family: 4                    # which address (default 4 if both ends have one, else 6)
 *     start: 1s                    # default 0
 *     count: 10                    # ping/udp packets (default 5 / 100; with replay, the capture's)
 *     interval: 100ms              # default 1s for ping, 1ms for udp; or give `rate` (udp); not for tcp
 *     rate: 100Mbit                # udp: interval follows from rate and size
 *     size: 1400                   # IP packet bytes (default ping 84, or 104 over IPv6; udp 1000); not for tcp; or
 *     sizes: imix                  # imix (Simple IMIX: 7×64, 4×576, 1×1500) or a list of sizes
 *     replay: captures/x.pcapng    # udp: sizes and timing from a capture's IP packets (relative to this file)
 *     bytes: 1000000               # tcp: bytes to send (default 1 MB)
 *     df: true                     # default true for ping and tcp, false for udp
 * faults:
 *   - { at: 2s, link: node1-node2, action: down, for: 1s }   # at*, link*, action*; link: a node (its uplink), a-b or [a, b]
 * capture: [node1/a, node1/underlay]      # a pod's port or the node's uplink (the gateway is inside the bridge: no wire)
 * expect:
 *   - flow: ping-ab                # a traffic name
 *     delivered: ">= 99%"
 *     latencyP50: "< 1ms"          # also latencyP99, latencyMax
 *     icmpSeen: frag-needed        # or a list: frag-needed, packet-too-big, echo-reply, dest-unreachable, time-exceeded, none
 *   - drops: { node1: { MtuExceeded: ">0" } }   # node → DropReason name → count or comparison
 *     counters: { node1.tunnel.icmpSent: ">= 1" }
 * live:                            # how the lab goes live (`seine run --live`, `seine lab up`), when a part cannot
 *   without: [latency]             # parts left out by default (the --without default): latency, jitter, loss,
 *                                  # bandwidth, linkMtu, linkFaults, nodeFaults
 *   note: "..."                    # * why, and what the live report then shows differently
 * ```
 *
 * Besides the shape, the loader refuses impossible topologies: duplicate node or pod names, duplicate
 * addresses (per segment in l2 mode), overlapping podCIDRs (routed mode), a pod address outside its
 * node's podCIDR, references to missing nodes, pods or flows, MTUs below 576 (IPv4) or 1280 (IPv6),
 * an underlay that leaves pods less than that after the overlay's overhead, fault times past the end.
 * (One VNI on two different VLANs across nodes in l2 mode is refused when the cluster is built.)
 * And it refuses what no run could finish: `SCENARIO_LIMITS` below bounds the file, what its aliases
 * expand to, the nodes, pods and flows, and the packets and events the run is estimated to take.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import { FileRefused, readRegularFile } from './file.js';
import { loadReplay, REPLAY_MAX_BYTES } from './replay.js';
import { ESP_CIPHERS, podMtu, type EspCipher, type OverheadSpec } from '../mtu/overhead.js';
import type { FragmentPolicy, TunnelMode } from '../overlay/tunnel.js';
import type { TunnelKind } from '../overlay/template.js';
import { addrFromString, prefixFromString } from '../wire/addr.js';
import { ipv4ToString, ipv6ToString } from '../wire/bytes.js';
import { DropReason } from '../wire/drop.js';

import { LineCounter, isAlias, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type YamlNode } from './yaml.js';

// ---------------------------------------------------------------------------------------------------
// Limits

/**
 * What one scenario may ask for (issue 18): a teaching lab or a research sweep is refused early and with
 * the numbers, never left to hang a laptop or die of out-of-memory. The README's scenario reference states
 * these; a scenario over one is refused (`ScenarioError`: the file, the key, what it asked for, the limit).
 */
export const SCENARIO_LIMITS = {
  /** Bytes of a scenario file (the 1,000-node, 100,000-flow bench file is about 13 MB). */
  fileBytes: 64 * 1024 * 1024,
  /**
   * YAML nodes the loader reads, an alias counting its anchor's nodes again each time it is used: what a
   * file may expand to (the bench file reads about 2.5 million).
   */
  yamlNodes: 4_000_000,
  /** Nodes. Every node has a VTEP for every other (a full mesh): building grows with the square of this. */
  nodes: 1000,
  /** Pods in all (each is a simulated host and a bridge port). */
  pods: 20_000,
  /** Traffic flows. */
  flows: 100_000,
  /** Packets the traffic sends, estimated before the run (`estimateCost`). */
  packets: 20_000_000,
  /** Simulator events, estimated before the run (`estimateCost`). */
  events: 50_000_000,
  /** Bytes of a capture given as `replay:`. */
  replayBytes: REPLAY_MAX_BYTES,
  /** Bytes of one TCP flow: the simulated sender's sequence arithmetic stays below 2^31 (sim/tcp.ts). */
  tcpBytes: 0x7fff_ffff,
} as const;

/** `n` with thousands separators, as limits are quoted in errors. */
function num(n: number): string {
  return n.toLocaleString('en-US');
}

// ---------------------------------------------------------------------------------------------------
// The normalised form

export interface UnderlaySpec {
  mtu: number;
  latencyNs: number;
  jitterNs: number;
  /** Bits per second; null for an unlimited link. */
  bandwidthBps: number | null;
  /** Probability of losing a frame, 0-1. */
  loss: number;
  family: 4 | 6;
}

export interface GeneveOptionSpec {
  class: number;
  type: number;
  /** Lowercase hex, a multiple of 4 bytes. */
  data: string;
}

export interface TunnelSpec {
  type: TunnelKind;
  mode: TunnelMode;
  vni: number;
  options: GeneveOptionSpec[];
  fragmentPolicy: FragmentPolicy;
  icmpTooBig: boolean;
  mssClamp: boolean;
}

export interface EncryptionSpec {
  cipher: EspCipher;
  udpEncap: boolean;
  secret: string;
}

export interface PodSpec {
  name: string;
  node: string;
  ip4: string | null;
  ip6: string | null;
  /** Access VLAN, null for untagged. */
  vlan: number | null;
  /** The segment's VNI in l2 mode (tunnel.vni by default); null in routed mode. */
  vni: number | null;
  mtu: number;
}

export interface NodeSpec {
  name: string;
  podCIDR4: string | null;
  podCIDR6: string | null;
  /** The gateway addresses: the first address of each podCIDR. */
  gateway4: string | null;
  gateway6: string | null;
  underlayIp: string;
  pods: PodSpec[];
}

export interface LinkSpec {
  a: string;
  b: string;
  mtu: number | null;
  latencyNs: number | null;
  jitterNs: number | null;
  bandwidthBps: number | null;
  loss: number | null;
}

/** A node (the node's own address) or a pod on it. */
export interface Endpoint {
  node: string;
  pod: string | null;
}

export type TrafficType = 'ping' | 'udp' | 'tcp';

export interface TrafficSpec {
  name: string;
  type: TrafficType;
  from: Endpoint;
  to: Endpoint;
  family: 4 | 6;
  startNs: number;
  /** Packets (ping, udp); 0 for tcp. */
  count: number;
  intervalNs: number;
  /** IP packet sizes, cycled through. */
  sizes: number[];
  /** tcp: bytes to send; 0 otherwise. */
  bytes: number;
  df: boolean;
  /** udp: a pcap/pcapng whose IP packets give the sizes and timing (path resolved from the scenario's folder); null otherwise. */
  replay: string | null;
}

export type FaultTarget = { kind: 'node'; node: string } | { kind: 'link'; a: string; b: string };

export interface FaultSpec {
  atNs: number;
  target: FaultTarget;
  action: 'down' | 'up';
  /** A `down` that lasts this long (then `up`); null for until further notice. */
  forNs: number | null;
}

export interface CaptureSpec {
  node: string;
  /** A pod name, `underlay` or `gw`. */
  port: string;
}

export type CmpOp = '>=' | '>' | '<=' | '<' | '==';
export interface Comparison {
  op: CmpOp;
  value: number;
}

export type IcmpKind = 'frag-needed' | 'packet-too-big' | 'echo-reply' | 'dest-unreachable' | 'time-exceeded' | 'none';

export interface ExpectSpec {
  flow: string | null;
  /** Ratio 0-1. */
  delivered: Comparison | null;
  latencyP50Ns: Comparison | null;
  latencyP99Ns: Comparison | null;
  latencyMaxNs: Comparison | null;
  icmpSeen: IcmpKind[];
  /** node → drop reason name → comparison. */
  drops: Record<string, Record<string, Comparison>>;
  counters: Record<string, Comparison>;
}

/** The parts of a scenario a live lab can leave out (live/lab/plan.ts `LabFeature`). */
export const LIVE_FEATURES = ['latency', 'jitter', 'loss', 'bandwidth', 'linkMtu', 'linkFaults', 'nodeFaults'] as const;
export type LiveFeature = (typeof LIVE_FEATURES)[number];

/** What the scenario says about going live: parts to leave out by default, and why. */
export interface LiveSpec {
  without: LiveFeature[];
  note: string;
}

export interface Scenario {
  name: string;
  description: string;
  lesson: string;
  seed: number;
  durationNs: number;
  underlay: UnderlaySpec;
  tunnel: TunnelSpec;
  encryption: EncryptionSpec | null;
  /** The pod MTU the underlay leaves after the overlay's (and ESP's) overhead. */
  podMtu: number;
  nodes: NodeSpec[];
  links: LinkSpec[];
  traffic: TrafficSpec[];
  faults: FaultSpec[];
  capture: CaptureSpec[];
  expect: ExpectSpec[];
  /** Null when the scenario says nothing about going live. */
  live: LiveSpec | null;
}

// ---------------------------------------------------------------------------------------------------
// Errors

/** A scenario that cannot be run, with where and why. */
export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    /** A path such as `nodes[1].pods[0].ip`; empty for the document as a whole. */
    readonly key: string,
    readonly expected: string,
    readonly got: string,
    readonly hint: string | null = null,
  ) {
    // A last guard: `describe` quotes values as excerpts already; names and paths may be long too.
    super(
      `${excerpt(file, 400)}:${line}:${column}: ${key === '' ? '' : excerpt(key, 400) + ': '}expected ${excerpt(expected, 400)}, got ${excerpt(got, 400)}${hint === null ? '' : ` (${excerpt(hint, 400)})`}`,
    );
    this.name = 'ScenarioError';
  }
}

/** The longest text an error quotes from the file (a key, a value): longer ones are cut, with their length said. */
export const EXCERPT_CHARS = 120;

/** `s`, or its first `EXCERPT_CHARS` characters and how long it was: an error line stays one line. */
export function excerpt(s: string, max = EXCERPT_CHARS): string {
  if (s.length <= max) return s;
  return `${s.slice(0, max)}… (${num(s.length)} characters)`;
}

/** Levenshtein distance (small strings only). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest candidate within distance 2 (case differences count 0.5), or null. */
export function didYouMean(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = Math.min(editDistance(word, c), editDistance(word.toLowerCase(), c.toLowerCase()) + 0.5);
    if (d <= 2 && d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------
// Reading YAML nodes with their positions

type N = YamlNode | null;

/** A value in the document and its key path. */
interface V {
  node: N;
  path: string;
  /** Where to point when `node` is null (a key without a value): its key, or the enclosing map. */
  at: number;
}

class Reader {
  /**
   * Each alias's anchored node, found in one walk of the document when the first alias is met (yaml's
   * `Alias.resolve(doc)` walks the whole document per call: quadratic in aliases); null until then, so a
   * file without aliases is not walked at all.
   */
  private targets: Map<unknown, YamlNode> | null = null;
  /** YAML nodes read so far (`SCENARIO_LIMITS.yamlNodes`). */
  private read = 0;

  constructor(
    readonly file: string,
    readonly lc: LineCounter,
    readonly doc: Document,
  ) {}

  private findTargets(): Map<unknown, YamlNode> {
    // Document order, a collection before its contents, as YAML resolves an alias: to the last node
    // before it with that anchor. An explicit stack: a deeply nested file must not overflow ours.
    const targets = new Map<unknown, YamlNode>();
    const anchors = new Map<string, YamlNode>();
    const stack: unknown[] = [this.doc.contents];
    while (stack.length > 0) {
      const n = stack.pop();
      if (n === null || n === undefined) continue;
      if (isAlias(n)) {
        const t = anchors.get(n.source);
        if (t !== undefined) targets.set(n, t);
        continue;
      }
      if (isPair(n)) {
        stack.push(n.value, n.key);
        continue;
      }
      const node = n as YamlNode;
      if (node.anchor !== undefined) anchors.set(node.anchor, node);
      if (isMap(node) || isSeq(node)) for (let i = node.items.length - 1; i >= 0; i--) stack.push(node.items[i]);
    }
    return targets;
  }

  /** Counts `n` more nodes read at `v`; past the limit, the file expands to too much (aliases, usually). */
  spend(v: V, n: number): void {
    this.read += n;
    if (this.read > SCENARIO_LIMITS.yamlNodes)
      this.fail(
        v,
        `a file that expands to at most ${num(SCENARIO_LIMITS.yamlNodes)} YAML nodes (an alias counts its anchor's nodes each time it is used)`,
        `more, by here`,
      );
  }

  pos(v: V): { line: number; col: number } {
    const off = v.node?.range?.[0] ?? v.at;
    return this.lc.linePos(off);
  }

  fail(v: V, expected: string, got: string = describe(v.node), hint: string | null = null): never {
    const p = this.pos(v);
    throw new ScenarioError(this.file, p.line, p.col, v.path, expected, got, hint);
  }

  resolve(n: unknown): N {
    if (n === null || n === undefined) return null;
    if (isAlias(n)) return (this.targets ??= this.findTargets()).get(n) ?? null;
    return n as YamlNode;
  }

  /** A mapping's entries by key, refusing keys not in `allowed`. */
  /** (`allowed` may be a set: a node's name among a thousand is looked up, not searched for.) */
  map(
    v: V,
    allowed: readonly string[] | ReadonlySet<string>,
    what = 'a mapping',
    keysWhat: string | (() => string) = () => `one of the keys ${[...allowed].join(', ')}`,
  ): Obj {
    if (!isMap(v.node)) this.fail(v, what);
    this.spend(v, 1 + 2 * v.node.items.length);
    const entries = new Map<string, V>();
    for (const pair of v.node.items) {
      const k = this.resolve(pair.key);
      const kv: V = { node: k, path: v.path, at: k?.range?.[0] ?? v.at };
      if (!isScalar(k) || typeof k.value !== 'string') this.fail(kv, 'a string key', describe(k));
      const name = k.value;
      const path = v.path === '' ? name : `${v.path}.${name}`;
      if (!('has' in allowed ? allowed.has(name) : allowed.includes(name))) {
        const s = didYouMean(name, [...allowed]);
        const shown = excerpt(name);
        this.fail(
          { node: k, path: v.path === '' ? shown : `${v.path}.${shown}`, at: kv.at },
          typeof keysWhat === 'string' ? keysWhat : keysWhat(),
          JSON.stringify(shown),
          s === null ? null : `did you mean "${s}"?`,
        );
      }
      entries.set(name, { node: this.resolve(pair.value), path, at: k.range?.[0] ?? v.at });
    }
    return new Obj(this, v, entries);
  }

  list(v: V, what = 'a list'): V[] {
    if (v.node === null) return [];
    if (!isSeq(v.node)) this.fail(v, what);
    this.spend(v, 1 + v.node.items.length);
    return v.node.items.map((n, i) => ({ node: this.resolve(n), path: `${v.path}[${i}]`, at: v.node?.range?.[0] ?? v.at }));
  }

  /** A scalar or a list of scalars, as a list. */
  oneOrList(v: V): V[] {
    return isSeq(v.node) ? this.list(v) : [v];
  }

  scalar(v: V): unknown {
    return isScalar(v.node) ? v.node.value : undefined;
  }

  str(v: V, what = 'a string'): string {
    const x = this.scalar(v);
    if (typeof x !== 'string' || x === '') this.fail(v, what);
    return x;
  }

  text(v: V): string {
    const x = this.scalar(v);
    if (typeof x !== 'string') this.fail(v, 'text');
    return x;
  }

  bool(v: V): boolean {
    const x = this.scalar(v);
    if (typeof x !== 'boolean') this.fail(v, 'true or false');
    return x;
  }

  int(v: V, min: number, max: number, what = `an integer in ${min}-${max}`): number {
    const x = this.scalar(v);
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) this.fail(v, what);
    return x;
  }

  oneOf<T extends string | number>(v: V, choices: readonly T[]): T {
    const x = this.scalar(v);
    if ((choices as readonly unknown[]).includes(x)) return x as T;
    const s = typeof x === 'string' ? didYouMean(x, choices.map(String)) : null;
    this.fail(v, `one of ${choices.join(', ')}`, describe(v.node), s === null ? null : `did you mean "${s}"?`);
  }

  duration(v: V): number {
    const ns = durationOf(this.scalar(v));
    if (ns === null) this.fail(v, 'a duration with a unit (ns, us, ms, s), e.g. 100ms');
    if (!Number.isSafeInteger(ns)) this.fail(v, 'a duration below 2^53 ns');
    return ns;
  }

  bandwidth(v: V): number {
    const x = this.scalar(v);
    const m = typeof x === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(bit|bps)(?:\/s)?\s*$/.exec(x) : null;
    if (m === null) this.fail(v, 'a bandwidth such as 10Gbit or 1Mbit');
    const bps = Math.round(Number(m[1]) * BANDWIDTH_UNITS[m[2]!.toLowerCase()]!);
    if (bps <= 0) this.fail(v, 'a bandwidth above 0');
    return bps;
  }

  /** A probability: 0-1, or a percentage string. */
  fraction(v: V, what = 'a fraction 0-1 or a percentage such as 1%'): number {
    const f = fractionOf(this.scalar(v));
    if (f === null) this.fail(v, what);
    return f;
  }

  /** A comparison `>= 99%`, `< 2ms`, `>0` or a bare value (==). */
  cmp(v: V, kind: 'ratio' | 'duration' | 'count'): Comparison {
    const what =
      kind === 'ratio' ? 'a comparison such as ">= 99%"' : kind === 'duration' ? 'a comparison such as "< 2ms"' : 'a count or a comparison such as ">0"';
    const x = this.scalar(v);
    if (kind === 'ratio' && typeof x === 'number') {
      const f = fractionOf(x);
      if (f === null) this.fail(v, what);
      return { op: '==', value: f };
    }
    if (kind === 'count' && typeof x === 'number') {
      if (!Number.isInteger(x) || x < 0) this.fail(v, what);
      return { op: '==', value: x };
    }
    const m = typeof x === 'string' ? /^\s*(>=|<=|==|>|<|=)?\s*(.+?)\s*$/.exec(x) : null;
    if (m === null) this.fail(v, what);
    const op = (m[1] === undefined || m[1] === '=' ? '==' : m[1]) as CmpOp;
    const raw = m[2]!;
    const value = kind === 'ratio' ? fractionOf(raw) : kind === 'duration' ? durationOf(raw) : /^\d+$/.test(raw) ? Number(raw) : null;
    if (value === null) this.fail(v, what);
    return { op, value };
  }
}

/** A duration value (`0` or a number with a unit) in ns, or null. */
/** A duration such as `100ms` or `1.5s` (units ns, us, µs, ms, s) in ns, or null. */
export function durationOf(x: unknown): number | null {
  if (x === 0) return 0;
  const m = typeof x === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*$/.exec(x) : null;
  return m === null ? null : Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

/** A fraction 0-1 (a number or a percentage string), or null. */
function fractionOf(x: unknown): number | null {
  let f = NaN;
  if (typeof x === 'number') f = x;
  else if (typeof x === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(x);
    if (m !== null) f = Number(m[1]) / 100;
  }
  return f >= 0 && f <= 1 ? f : null;
}

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 };
const BANDWIDTH_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

class Obj {
  constructor(
    private readonly r: Reader,
    readonly self: V,
    private readonly entries: Map<string, V>,
  ) {}
  has(k: string): boolean {
    return this.entries.has(k);
  }
  /** The keys given, in file order. */
  keys(): IterableIterator<string> {
    return this.entries.keys();
  }
  get(k: string): V | undefined {
    const v = this.entries.get(k);
    return v === undefined || v.node === null ? undefined : v;
  }
  /** A required key: missing, the error points at the mapping. */
  req(k: string, what: string): V {
    const v = this.get(k);
    if (v === undefined) {
      const e = this.entries.get(k);
      const path = this.self.path === '' ? k : `${this.self.path}.${k}`;
      this.r.fail({ node: e === undefined ? this.self.node : null, path, at: e?.at ?? this.self.at }, `${what} (required)`, 'nothing');
    }
    return v;
  }
}

function describe(n: N): string {
  if (n === null) return 'nothing';
  if (isMap(n)) return 'a mapping';
  if (isSeq(n)) return 'a list';
  if (isScalar(n)) {
    const x = n.value;
    if (x === null) return 'nothing';
    if (typeof x === 'string') return JSON.stringify(excerpt(x));
    return String(x);
  }
  return 'something else';
}

// ---------------------------------------------------------------------------------------------------
// Addresses

interface Cidr {
  family: 4 | 6;
  /** The network as a bigint (128 bits for IPv6). */
  net: bigint;
  prefix: number;
  text: string;
}

/** An IPv4 or IPv6 address as a number (a bigint: 128 bits for IPv6), or null when it is neither. */
export function ipBig(s: string): { family: 4 | 6; n: bigint } | null {
  const a = addrFromString(s);
  return a === null ? null : { family: a.family, n: addrBig(a.family === 4 ? a.v4 : a.v6) };
}

function addrBig(a: number | Uint8Array): bigint {
  if (typeof a === 'number') return BigInt(a >>> 0);
  let n = 0n;
  for (const b of a) n = (n << 8n) | BigInt(b);
  return n;
}

function ipText(family: 4 | 6, n: bigint): string {
  if (family === 4) return ipv4ToString(Number(n));
  const b = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    b[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return ipv6ToString(b);
}

const bits = (f: 4 | 6): number => (f === 4 ? 32 : 128);

function inCidr(c: Cidr, family: 4 | 6, n: bigint): boolean {
  if (family !== c.family) return false;
  const shift = BigInt(bits(family) - c.prefix);
  return n >> shift === c.net >> shift;
}

function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = BigInt(bits(a.family) - Math.min(a.prefix, b.prefix));
  return a.net >> p === b.net >> p;
}

const DROP_REASONS: readonly string[] = Object.keys(DropReason).filter((k) => Number.isNaN(Number(k)));
const ICMP_KINDS: readonly IcmpKind[] = ['frag-needed', 'packet-too-big', 'echo-reply', 'dest-unreachable', 'time-exceeded', 'none'];
/** Simple IMIX: 7 × 64, 4 × 576, 1 × 1500 bytes of IP. */
export const IMIX: ReadonlyArray<{ size: number; weight: number }> = [
  { size: 64, weight: 7 },
  { size: 576, weight: 4 },
  { size: 1500, weight: 1 },
];
const IMIX_SIZES: readonly number[] = IMIX.flatMap((x) => new Array<number>(x.weight).fill(x.size));

const ROOT_KEYS = [
  'name',
  'description',
  'lesson',
  'seed',
  'duration',
  'underlay',
  'tunnel',
  'encryption',
  'nodes',
  'links',
  'traffic',
  'faults',
  'capture',
  'expect',
  'live',
] as const;
const LIVE_KEYS = ['without', 'note'] as const;
const UNDERLAY_KEYS = ['mtu', 'latency', 'jitter', 'bandwidth', 'loss', 'family'] as const;
const TUNNEL_KEYS = ['type', 'mode', 'vni', 'options', 'fragmentPolicy', 'icmpTooBig', 'mssClamp'] as const;
const OPTION_KEYS = ['class', 'type', 'data'] as const;
const ENCRYPTION_KEYS = ['cipher', 'udpEncap', 'secret'] as const;
const NODE_KEYS = ['name', 'podCIDR', 'underlayIp', 'pods'] as const;
const POD_KEYS = ['name', 'ip', 'vlan', 'vni', 'mtu'] as const;
const LINK_KEYS = ['between', 'mtu', 'latency', 'jitter', 'bandwidth', 'loss'] as const;
/** Port names a node keeps for itself: its uplink, its gateway, and its own stack (sim/cluster.ts). */
const RESERVED_PORTS: readonly string[] = ['underlay', 'gw', 'host'];
const TRAFFIC_KEYS = ['name', 'type', 'from', 'to', 'family', 'start', 'count', 'interval', 'rate', 'size', 'sizes', 'replay', 'bytes', 'df'] as const;
const FAULT_KEYS = ['at', 'link', 'action', 'for'] as const;
const EXPECT_KEYS = ['flow', 'delivered', 'latencyP50', 'latencyP99', 'latencyMax', 'icmpSeen', 'drops', 'counters'] as const;

// ---------------------------------------------------------------------------------------------------
// Parsing

/**
 * Reads and parses a scenario file; a file that cannot be read, is not a regular file (a FIFO, a device) or
 * is over `SCENARIO_LIMITS.fileBytes` becomes a ScenarioError at 1:1 too, before anything is read from it.
 */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readRegularFile(path, SCENARIO_LIMITS.fileBytes).toString('utf8');
  } catch (e: unknown) {
    if (e instanceof FileRefused) throw new ScenarioError(path, 1, 1, '', 'a readable scenario file', e.what);
    throw e;
  }
  return parseScenario(text, path);
}

/** Parses a scenario's text; `file` names it in errors. */
export function parseScenario(text: string, file: string): Scenario {
  if (text.length > SCENARIO_LIMITS.fileBytes)
    throw new ScenarioError(file, 1, 1, '', `a scenario of at most ${num(SCENARIO_LIMITS.fileBytes)} bytes`, `${num(text.length)} characters`);
  const lc = new LineCounter();
  let doc: Document;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  } catch (e: unknown) {
    // The parser recurses into nested collections: thousands of levels exhaust its stack.
    if (e instanceof RangeError) throw new ScenarioError(file, 1, 1, '', 'YAML nested to a sensible depth', `nesting too deep for the parser (${e.message})`);
    throw e;
  }
  const bad = doc.errors[0];
  if (bad !== undefined) {
    const p = lc.linePos(bad.pos[0]);
    const msg = bad.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ScenarioError(file, p.line, p.col, '', 'well-formed YAML', `a syntax error: ${msg}`);
  }
  const r: Reader = new Reader(file, lc, doc);
  const root: V = { node: r.resolve(doc.contents), path: '', at: 0 };
  if (root.node === null) r.fail(root, 'a scenario mapping', 'an empty document');
  const o = r.map(root, ROOT_KEYS, 'a scenario mapping');

  const name = r.str(o.req('name', 'a scenario name'));
  const optText = (k: string): string => {
    const v = o.get(k);
    return v === undefined ? '' : r.text(v);
  };
  const description = optText('description');
  const lesson = optText('lesson');
  const seedV = o.get('seed');
  const seed = seedV === undefined ? 1 : r.int(seedV, 0, 0xffffffff);
  const durV = o.get('duration');
  const durationNs = durV === undefined ? 10e9 : r.duration(durV);
  if (durV !== undefined && durationNs <= 0) r.fail(durV, 'a duration above 0');

  // underlay
  const uV = o.get('underlay');
  const u = uV === undefined ? null : r.map(uV, UNDERLAY_KEYS);
  const familyV = u?.get('family');
  const family = familyV === undefined ? 4 : r.oneOf(familyV, [4, 6] as const);
  const umtuV = u?.get('mtu');
  const minMtu = family === 4 ? 576 : 1280;
  const underlayMtu = umtuV === undefined ? 1500 : r.int(umtuV, minMtu, 65535, `an MTU in ${minMtu}-65535 (IPv${family} underlay)`);
  const getDur = (ob: Obj | null, k: string): number | null => {
    const v = ob?.get(k);
    return v === undefined ? null : r.duration(v);
  };
  const getBw = (ob: Obj | null, k: string): number | null => {
    const v = ob?.get(k);
    return v === undefined ? null : r.bandwidth(v);
  };
  const getLoss = (ob: Obj | null, k: string): number | null => {
    const v = ob?.get(k);
    return v === undefined ? null : r.fraction(v);
  };
  const underlay: UnderlaySpec = {
    mtu: underlayMtu,
    latencyNs: getDur(u, 'latency') ?? 0,
    jitterNs: getDur(u, 'jitter') ?? 0,
    bandwidthBps: getBw(u, 'bandwidth'),
    loss: getLoss(u, 'loss') ?? 0,
    family,
  };

  // tunnel
  const tV = o.get('tunnel');
  const t = tV === undefined ? null : r.map(tV, TUNNEL_KEYS);
  const typeV = t?.get('type');
  const tunnelType = typeV === undefined ? 'vxlan' : r.oneOf(typeV, ['vxlan', 'geneve'] as const);
  const modeV = t?.get('mode');
  const mode = modeV === undefined ? 'routed' : r.oneOf(modeV, ['routed', 'l2'] as const);
  const vniV = t?.get('vni');
  const vni = vniV === undefined ? 1 : r.int(vniV, 0, 0xffffff, 'a VNI in 0-16777215');
  const options: GeneveOptionSpec[] = [];
  const optsV = t?.get('options');
  if (optsV !== undefined) {
    if (tunnelType !== 'geneve') r.fail(optsV, "no options (they are Geneve's; tunnel.type is vxlan)", describe(optsV.node));
    for (const ov of r.list(optsV)) {
      const oo = r.map(ov, OPTION_KEYS);
      const cls = r.int(oo.req('class', 'an option class'), 0, 0xffff, 'a 16-bit option class');
      const type = r.int(oo.req('type', 'an option type'), 0, 0xff, 'an 8-bit option type');
      const dV = oo.get('data');
      const raw = dV === undefined ? '' : r.scalar(dV);
      if (typeof raw !== 'string') r.fail(dV!, 'hex data in quotes, a multiple of 4 bytes, at most 124');
      const data = raw.toLowerCase();
      if (dV !== undefined && (!/^[0-9a-f]*$/.test(data) || data.length % 8 !== 0 || data.length > 248))
        r.fail(dV, 'hex data in quotes, a multiple of 4 bytes, at most 124');
      options.push({ class: cls, type, data });
    }
  }
  const optBytes = options.reduce((s, x) => s + 4 + x.data.length / 2, 0);
  if (optsV !== undefined && optBytes > 252) r.fail(optsV, 'Geneve options of at most 252 bytes in all', `${optBytes} bytes`);
  const fpV = t?.get('fragmentPolicy');
  const tbV = t?.get('icmpTooBig');
  const mcV = t?.get('mssClamp');
  const tunnel: TunnelSpec = {
    type: tunnelType,
    mode,
    vni,
    options,
    fragmentPolicy: fpV === undefined ? 'outer' : r.oneOf(fpV, ['outer', 'inner', 'drop'] as const),
    icmpTooBig: tbV === undefined ? true : r.bool(tbV),
    mssClamp: mcV === undefined ? true : r.bool(mcV),
  };

  // encryption
  const eV = o.get('encryption');
  let encryption: EncryptionSpec | null = null;
  if (eV !== undefined) {
    const e = r.map(eV, ENCRYPTION_KEYS);
    const ueV = e.get('udpEncap');
    const sV = e.get('secret');
    encryption = {
      cipher: r.oneOf(e.req('cipher', 'an ESP cipher'), Object.keys(ESP_CIPHERS) as EspCipher[]),
      udpEncap: ueV === undefined ? false : r.bool(ueV),
      secret: sV === undefined ? 'seine' : r.str(sV),
    };
  }

  // the pod MTU the overlay leaves
  const spec: OverheadSpec = {
    tunnel: tunnelType,
    underlay: family,
    geneveOptionBytes: optBytes,
    esp: encryption === null ? null : { cipher: encryption.cipher, udpEncap: encryption.udpEncap },
  };
  const mtuAt: V = umtuV ?? uV ?? { node: null, path: 'underlay.mtu', at: 0 };
  let defaultPodMtu: number;
  try {
    defaultPodMtu = podMtu(underlayMtu, spec);
  } catch {
    r.fail({ ...mtuAt, path: 'underlay.mtu' }, 'an underlay MTU that leaves pods at least 576 bytes after the overlay', String(underlayMtu));
  }
  if (defaultPodMtu < 576)
    r.fail(
      { ...mtuAt, path: 'underlay.mtu' },
      'an underlay MTU that leaves pods at least 576 bytes after the overlay',
      `${underlayMtu} (pod MTU ${defaultPodMtu})`,
    );

  // nodes and pods
  const nodesV = o.req('nodes', 'a list of nodes');
  const nodeVs = r.list(nodesV, 'a list of nodes');
  if (nodeVs.length === 0) r.fail(nodesV, 'at least one node', 'an empty list');
  if (nodeVs.length > SCENARIO_LIMITS.nodes)
    r.fail(
      nodesV,
      `at most ${num(SCENARIO_LIMITS.nodes)} nodes (each has a VTEP for every other: the mesh grows with the square of the nodes)`,
      `${num(nodeVs.length)} nodes`,
    );
  let podCount = 0;
  const nodes: NodeSpec[] = [];
  const nodeIndex = new Map<string, NodeSpec>();
  const podIndex = new Map<string, PodSpec>();
  const cidrs: Array<{ c: Cidr; path: string }> = [];
  const addrs = new Map<string, string>();
  const underlayIps = new Map<string, string>();
  const pendingPods: Array<{ pod: PodSpec; pv: V; ipV: V | undefined; c4: Cidr | null; c6: Cidr | null; mtuV: V | undefined }> = [];
  nodeVs.forEach((nv, i) => {
    const no = r.map(nv, NODE_KEYS);
    const nameV = no.req('name', 'a node name');
    const nname = r.str(nameV, 'a node name');
    if (!/^[A-Za-z0-9_.-]+$/.test(nname) || nname === 'underlay' || nname === 'gw')
      r.fail(nameV, 'a node name of letters, digits, ".", "_" and "-" (not "underlay" or "gw")');
    if (nodeIndex.has(nname)) r.fail(nameV, 'a unique node name', `${JSON.stringify(nname)} (a second time)`);
    let c4: Cidr | null = null;
    let c6: Cidr | null = null;
    const pcV = mode === 'routed' ? no.req('podCIDR', 'a podCIDR (routed mode)') : no.get('podCIDR');
    if (pcV !== undefined) {
      for (const cv of r.oneOrList(pcV)) {
        const c = parseCidr(r, cv);
        if ((c.family === 4 ? c4 : c6) !== null) r.fail(cv, 'at most one IPv4 and one IPv6 podCIDR');
        if (c.prefix > bits(c.family) - 2)
          r.fail(cv, `a podCIDR with room for a gateway and pods (prefix at most /${bits(c.family) - 2})`, JSON.stringify(c.text));
        if (mode === 'routed') {
          for (const o2 of cidrs)
            if (cidrsOverlap(o2.c, c)) r.fail(cv, `a podCIDR that overlaps no other (${o2.path} is ${o2.c.text})`, JSON.stringify(c.text));
          cidrs.push({ c, path: cv.path });
        }
        if (c.family === 4) c4 = c;
        else c6 = c;
      }
    }
    const uipV = no.get('underlayIp');
    let uip: string;
    if (uipV !== undefined) {
      const a = ipBig(r.str(uipV, 'an IP address'));
      if (a === null) r.fail(uipV, 'an IP address');
      if (a.family !== family) r.fail(uipV, `an IPv${family} address (underlay.family is ${family})`);
      uip = ipText(a.family, a.n);
    } else {
      if (family === 4 && i + 2 > 0xfffe) r.fail(nameV, 'at most 65,533 nodes with default underlay addresses (172.18.0.2-172.18.255.254); give underlayIp');
      uip = family === 4 ? ipv4ToString((0xac12_0000 + i + 2) >>> 0) : `fd00:18::${(i + 2).toString(16)}`;
    }
    const prevU = underlayIps.get(uip);
    if (prevU !== undefined) r.fail(uipV ?? nv, 'a unique underlay address', `${uip} (also ${prevU})`);
    underlayIps.set(uip, `${nv.path}.underlayIp`);
    const node: NodeSpec = {
      name: nname,
      podCIDR4: c4?.text ?? null,
      podCIDR6: c6?.text ?? null,
      gateway4: c4 === null ? null : ipText(4, c4.net + 1n),
      gateway6: c6 === null ? null : ipText(6, c6.net + 1n),
      underlayIp: uip,
      pods: [],
    };
    nodes.push(node);
    nodeIndex.set(nname, node);
    const podsV = no.get('pods');
    const podVs = podsV === undefined ? [] : r.list(podsV, 'a list of pods');
    podCount += podVs.length;
    if (podCount > SCENARIO_LIMITS.pods) r.fail(podsV!, `at most ${num(SCENARIO_LIMITS.pods)} pods in all`, `${num(podCount)} by node ${nname}`);
    const podNames = new Set<string>();
    for (const pv of podVs) {
      const po = r.map(pv, POD_KEYS);
      const pnV = po.req('name', 'a pod name');
      const pname = r.str(pnV, 'a pod name');
      if (!/^[A-Za-z0-9_.-]+$/.test(pname) || RESERVED_PORTS.includes(pname))
        r.fail(pnV, `a pod name of letters, digits, ".", "_" and "-" (not ${RESERVED_PORTS.map((x) => `"${x}"`).join(', ')})`);
      if (podNames.has(pname)) r.fail(pnV, `a pod name unique on node ${nname}`, `${JSON.stringify(pname)} (a second time)`);
      podNames.add(pname);
      const vlanV = po.get('vlan');
      const pvniV = po.get('vni');
      if (pvniV !== undefined && mode !== 'l2') r.fail(pvniV, 'no vni (pods choose a segment in l2 mode only)');
      const pod: PodSpec = {
        name: pname,
        node: nname,
        ip4: null,
        ip6: null,
        vlan: vlanV === undefined ? null : r.int(vlanV, 1, 4094, 'a VLAN in 1-4094'),
        vni: mode === 'l2' ? (pvniV === undefined ? vni : r.int(pvniV, 0, 0xffffff, 'a VNI in 0-16777215')) : null,
        mtu: 0,
      };
      const ipV = po.get('ip');
      if (ipV !== undefined) {
        for (const av of r.oneOrList(ipV)) {
          const a = ipBig(r.str(av, 'an IP address'));
          if (a === null) r.fail(av, 'an IP address');
          if ((a.family === 4 ? pod.ip4 : pod.ip6) !== null) r.fail(av, 'at most one IPv4 and one IPv6 address');
          const c = a.family === 4 ? c4 : c6;
          if (c !== null && !inCidr(c, a.family, a.n)) r.fail(av, `an address inside ${nname}'s podCIDR ${c.text}`, ipText(a.family, a.n));
          if (c === null && mode === 'routed') r.fail(av, `an address in a podCIDR of ${nname} (it has no IPv${a.family} podCIDR)`, ipText(a.family, a.n));
          if (c !== null && (a.n === c.net || a.n === c.net + 1n))
            r.fail(av, `a pod address (${ipText(a.family, c.net)} is the network, ${ipText(a.family, c.net + 1n)} the gateway)`, ipText(a.family, a.n));
          if (a.family === 4 && c !== null && a.n === c.net + (1n << BigInt(32 - c.prefix)) - 1n)
            r.fail(av, 'a pod address, not the broadcast address', ipText(4, a.n));
          const txt = ipText(a.family, a.n);
          if (a.family === 4) pod.ip4 = txt;
          else pod.ip6 = txt;
          claim(r, addrs, mode, pod, txt, av);
        }
      }
      node.pods.push(pod);
      pendingPods.push({ pod, pv, ipV, c4, c6, mtuV: po.get('mtu') });
    }
  });
  // Assign addresses not given, in file order, skipping those taken (explicit ones count first).
  const next = new Map<string, bigint>();
  for (const pp of pendingPods) {
    if (pp.ipV !== undefined) continue;
    const node = nodeIndex.get(pp.pod.node)!;
    if (pp.c4 === null && pp.c6 === null)
      r.fail({ node: pp.pv.node, path: `${pp.pv.path}.ip`, at: pp.pv.at }, `an ip (node ${node.name} has no podCIDR to assign one from)`, 'nothing');
    for (const c of [pp.c4, pp.c6]) {
      if (c === null) continue;
      const key = `${node.name}/${c.family}`;
      let n = next.get(key) ?? c.net + 2n;
      const last = c.net + (1n << BigInt(bits(c.family) - c.prefix)) - (c.family === 4 ? 2n : 1n);
      while (n <= last && addrs.has(addrKey(mode, pp.pod, ipText(c.family, n)))) n++;
      if (n > last) r.fail({ node: pp.pv.node, path: `${pp.pv.path}.ip`, at: pp.pv.at }, `a free address in ${c.text}`, 'a full podCIDR');
      next.set(key, n + 1n);
      const txt = ipText(c.family, n);
      if (c.family === 4) pp.pod.ip4 = txt;
      else pp.pod.ip6 = txt;
      addrs.set(addrKey(mode, pp.pod, txt), `${pp.pv.path}.ip`);
    }
  }
  for (const pp of pendingPods) {
    const min = pp.pod.ip6 !== null ? 1280 : 576;
    if (pp.mtuV !== undefined) pp.pod.mtu = r.int(pp.mtuV, min, 65535, `an MTU in ${min}-65535${min === 1280 ? ' (the pod has an IPv6 address)' : ''}`);
    else {
      if (defaultPodMtu < min)
        r.fail(
          { ...mtuAt, path: 'underlay.mtu' },
          `an underlay MTU that leaves IPv6 pods at least 1280 bytes after the overlay (${pp.pv.path} has an IPv6 address)`,
          `${underlayMtu} (pod MTU ${defaultPodMtu})`,
        );
      pp.pod.mtu = defaultPodMtu;
    }
    podIndex.set(`${pp.pod.node}/${pp.pod.name}`, pp.pod);
  }

  const nodeNames: ReadonlySet<string> = new Set(nodeIndex.keys());
  const nodePos = new Map(nodes.map((n, i) => [n.name, i]));
  const nodeRef = (v: V, s: string = r.str(v, 'a node name')): NodeSpec => {
    const n = nodeIndex.get(s);
    if (n === undefined) {
      const h = didYouMean(s, [...nodeIndex.keys()]);
      r.fail(v, `a node (one of ${[...nodeIndex.keys()].join(', ')})`, JSON.stringify(s), h === null ? null : `did you mean "${h}"?`);
    }
    return n;
  };
  const endpoint = (v: V): Endpoint => {
    const s = r.str(v, 'node/pod or node');
    const slash = s.indexOf('/');
    const nn = slash < 0 ? s : s.slice(0, slash);
    if (!nodeIndex.has(nn)) {
      const h = didYouMean(nn, [...nodeIndex.keys()]);
      r.fail(
        v,
        `node/pod or node naming an existing node (${[...nodeIndex.keys()].join(', ')})`,
        JSON.stringify(s),
        h === null ? null : `did you mean "${h}"?`,
      );
    }
    if (slash < 0) return { node: nn, pod: null };
    const pn = s.slice(slash + 1);
    if (!podIndex.has(`${nn}/${pn}`)) {
      const names = nodeIndex.get(nn)!.pods.map((p) => p.name);
      const h = didYouMean(pn, names);
      r.fail(
        v,
        `a pod of node ${nn} (${names.length === 0 ? 'it has none' : names.join(', ')})`,
        JSON.stringify(s),
        h === null ? null : `did you mean "${nn}/${h}"?`,
      );
    }
    return { node: nn, pod: pn };
  };

  // links
  const links: LinkSpec[] = [];
  const linkPairs = new Set<string>();
  const linksV = o.get('links');
  for (const lv of linksV === undefined ? [] : r.list(linksV)) {
    const lo = r.map(lv, LINK_KEYS);
    const bV = lo.req('between', 'the two nodes the link joins, [a, b]');
    const ends = r.list(bV, 'the two nodes the link joins, [a, b]');
    if (ends.length !== 2) r.fail(bV, 'two nodes, [a, b]', `${ends.length} item(s)`);
    const a = nodeRef(ends[0]!).name;
    const b = nodeRef(ends[1]!).name;
    if (a === b) r.fail(ends[1]!, 'a node other than the first', JSON.stringify(b));
    const pair = a < b ? `${a}\0${b}` : `${b}\0${a}`;
    if (linkPairs.has(pair)) r.fail(bV, 'one override per node pair', `${a}-${b} a second time`);
    linkPairs.add(pair);
    const mV = lo.get('mtu');
    links.push({
      a,
      b,
      mtu: mV === undefined ? null : r.int(mV, minMtu, 65535, `an MTU in ${minMtu}-65535 (IPv${family} underlay)`),
      latencyNs: getDur(lo, 'latency'),
      jitterNs: getDur(lo, 'jitter'),
      bandwidthBps: getBw(lo, 'bandwidth'),
      loss: getLoss(lo, 'loss'),
    });
  }

  // traffic
  const traffic: TrafficSpec[] = [];
  const trafficNames = new Set<string>();
  const trafficV = o.get('traffic');
  const trafficVs = trafficV === undefined ? [] : r.list(trafficV);
  if (trafficVs.length > SCENARIO_LIMITS.flows) r.fail(trafficV!, `at most ${num(SCENARIO_LIMITS.flows)} flows`, `${num(trafficVs.length)} flows`);
  const trafficAt: V[] = [];
  for (const [i, tv] of trafficVs.entries()) {
    trafficAt.push(tv);
    const to = r.map(tv, TRAFFIC_KEYS);
    const nV = to.get('name');
    const tname = nV === undefined ? `flow-${i + 1}` : r.str(nV, 'a flow name');
    if (trafficNames.has(tname)) r.fail(nV ?? tv, 'a unique flow name', `${JSON.stringify(tname)} (a second time)`);
    trafficNames.add(tname);
    const type = r.oneOf(to.req('type', 'a traffic type'), ['ping', 'udp', 'tcp'] as const);
    const fromV = to.req('from', 'the sender, node/pod or node');
    const toV = to.req('to', 'the receiver, node/pod or node');
    const from = endpoint(fromV);
    const dst = endpoint(toV);
    if (from.node === dst.node && from.pod === dst.pod) r.fail(toV, 'a receiver other than the sender', JSON.stringify(r.scalar(toV)));
    for (const [e, v] of [
      [from, fromV],
      [dst, toV],
    ] as const) {
      if (e.pod === null && mode !== 'routed')
        r.fail(v, "a pod (node/pod): a node's own stack sits behind its gateway, which l2 mode has not", JSON.stringify(r.scalar(v)));
    }
    const has = (e: Endpoint, f: 4 | 6): boolean => {
      if (e.pod === null) {
        const n = nodeIndex.get(e.node)!;
        return (f === 4 ? n.gateway4 : n.gateway6) !== null;
      }
      const p = podIndex.get(`${e.node}/${e.pod}`)!;
      return (f === 4 ? p.ip4 : p.ip6) !== null;
    };
    const fV = to.get('family');
    const fam: 4 | 6 = fV !== undefined ? r.oneOf(fV, [4, 6] as const) : has(from, 4) && has(dst, 4) ? 4 : 6;
    if (!has(from, fam)) r.fail(fV ?? fromV, `a sender with an IPv${fam} address`, JSON.stringify(r.scalar(fromV)));
    if (!has(dst, fam)) r.fail(fV ?? toV, `a receiver with an IPv${fam} address`, JSON.stringify(r.scalar(toV)));
    const startV = to.get('start');
    const startNs = startV === undefined ? 0 : r.duration(startV);
    if (startV !== undefined && startNs >= durationNs) r.fail(startV, `a start before the end of the scenario (${fmtDuration(durationNs)})`);
    const minSize = fam === 4 ? 28 : 48;
    const sizeV = to.get('size');
    const sizesV = to.get('sizes');
    if (sizeV !== undefined && sizesV !== undefined) r.fail(sizesV, 'size or sizes, not both');
    let sizes: number[];
    if (sizesV !== undefined) {
      if (isScalar(sizesV.node)) {
        r.oneOf(sizesV, ['imix'] as const);
        sizes = [...IMIX_SIZES];
      } else sizes = r.list(sizesV, 'imix or a list of sizes').map((sv) => r.int(sv, minSize, 65535, `an IP packet size in ${minSize}-65535`));
      if (sizes.length === 0) r.fail(sizesV, 'at least one size', 'an empty list');
    } else
      sizes = [sizeV === undefined ? (type === 'ping' ? (fam === 4 ? 84 : 104) : 1000) : r.int(sizeV, minSize, 65535, `an IP packet size in ${minSize}-65535`)];
    const countV = to.get('count');
    const bytesV = to.get('bytes');
    const intervalV = to.get('interval');
    const rateV = to.get('rate');
    if (type === 'tcp' && countV !== undefined) r.fail(countV, 'no count for tcp (give bytes)');
    for (const [k, v] of [
      ['interval', intervalV],
      ['size', sizeV],
      ['sizes', sizesV],
    ] as const) {
      if (type === 'tcp' && v !== undefined) r.fail(v, `no ${k} for tcp (segments follow the MSS and the window; give bytes)`);
    }
    if (type !== 'tcp' && bytesV !== undefined) r.fail(bytesV, 'no bytes for ping or udp (give count)');
    if (rateV !== undefined && type !== 'udp') r.fail(rateV, 'no rate (udp only)');
    if (rateV !== undefined && intervalV !== undefined) r.fail(rateV, 'interval or rate, not both');
    const count = type === 'tcp' ? 0 : countV === undefined ? (type === 'ping' ? 5 : 100) : r.int(countV, 1, 1e9, 'a packet count in 1-1000000000');
    let intervalNs: number;
    if (rateV !== undefined) {
      const bps = r.bandwidth(rateV);
      const mean = sizes.reduce((s, x) => s + x, 0) / sizes.length;
      intervalNs = Math.max(1, Math.round((mean * 8 * 1e9) / bps));
    } else if (intervalV !== undefined) {
      intervalNs = r.duration(intervalV);
      if (intervalNs <= 0) r.fail(intervalV, 'an interval above 0');
    } else intervalNs = type === 'ping' ? 1e9 : type === 'udp' ? 1e6 : 0;
    const dfV = to.get('df');
    const replayV = to.get('replay');
    let replay: string | null = null;
    let replayCount = 0;
    if (replayV !== undefined) {
      if (type !== 'udp') r.fail(replayV, 'no replay (udp only)');
      for (const k of ['size', 'sizes', 'rate', 'interval'] as const) {
        const v = to.get(k);
        if (v !== undefined) r.fail(v, `no ${k} with replay (the capture gives sizes and timing)`);
      }
      replay = resolvePath(dirname(file), r.str(replayV, 'a pcap or pcapng file'));
      try {
        replayCount = loadReplay({ path: replay }).ipLengths.length;
      } catch (e: unknown) {
        const err = e as NodeJS.ErrnoException;
        r.fail(replayV, 'a readable pcap or pcapng file', `${JSON.stringify(r.scalar(replayV))} (${err.code === 'ENOENT' ? 'no such file' : err.message})`);
      }
      if (replayCount === 0) r.fail(replayV, 'a capture with at least one IP packet', JSON.stringify(r.scalar(replayV)));
    }
    traffic.push({
      name: tname,
      type,
      from,
      to: dst,
      family: fam,
      startNs,
      count: replay !== null ? Math.min(countV === undefined ? Infinity : count, replayCount) : count,
      intervalNs,
      sizes,
      replay,
      bytes:
        type === 'tcp'
          ? bytesV === undefined
            ? 1_000_000
            : r.int(bytesV, 1, SCENARIO_LIMITS.tcpBytes, `a byte count in 1-${SCENARIO_LIMITS.tcpBytes} (the simulated sender's limit)`)
          : 0,
      df: dfV === undefined ? type !== 'udp' : r.bool(dfV),
    });
  }

  // What the traffic costs, refused before anything is built when it is more than a run may take.
  const cost = estimateCost({ durationNs, podMtu: defaultPodMtu, traffic });
  for (const k of ['packets', 'events'] as const) {
    if (cost[k] <= SCENARIO_LIMITS[k]) continue;
    const big = cost.largest;
    const t = traffic[big]!;
    r.fail(
      trafficAt[big]!,
      `traffic of at most ${num(SCENARIO_LIMITS[k])} ${k} in all (the run's estimate, before it starts)`,
      `${num(cost[k])} ${k}, the most from this flow, "${excerpt(t.name)}" (${num(cost.perFlow[big]!)} packets)`,
    );
  }

  // faults
  const faults: FaultSpec[] = [];
  const faultsV = o.get('faults');
  for (const fv of faultsV === undefined ? [] : r.list(faultsV)) {
    const fo = r.map(fv, FAULT_KEYS);
    const atV = fo.req('at', 'a time');
    const atNs = r.duration(atV);
    if (atNs > durationNs) r.fail(atV, `a time within the scenario's duration (${fmtDuration(durationNs)})`);
    const lV = fo.req('link', 'a node, a-b or [a, b]');
    let target: FaultTarget;
    if (isSeq(lV.node)) {
      const ends = r.list(lV);
      if (ends.length !== 2) r.fail(lV, 'two nodes, [a, b]', `${ends.length} item(s)`);
      target = { kind: 'link', a: nodeRef(ends[0]!).name, b: nodeRef(ends[1]!).name };
    } else {
      const s = r.str(lV, 'a node, a-b or [a, b]');
      if (nodeIndex.has(s)) target = { kind: 'node', node: s };
      else {
        let found: FaultTarget | null = null;
        for (let k = s.indexOf('-'); k >= 0; k = s.indexOf('-', k + 1)) {
          const a = s.slice(0, k);
          const b = s.slice(k + 1);
          if (nodeIndex.has(a) && nodeIndex.has(b)) {
            found = { kind: 'link', a, b };
            break;
          }
        }
        if (found === null) {
          const h = didYouMean(s, [...nodeIndex.keys()]);
          r.fail(
            lV,
            `a node or a link a-b between existing nodes (${[...nodeIndex.keys()].join(', ')})`,
            JSON.stringify(s),
            h === null ? null : `did you mean "${h}"?`,
          );
        }
        target = found;
      }
    }
    if (target.kind === 'link' && target.a === target.b) r.fail(lV, 'a link between two different nodes', `${target.a}-${target.b}`);
    const action = r.oneOf(fo.req('action', 'down or up'), ['down', 'up'] as const);
    const forV = fo.get('for');
    let forNs: number | null = null;
    if (forV !== undefined) {
      if (action !== 'down') r.fail(forV, 'no "for" on an up action');
      forNs = r.duration(forV);
      if (forNs <= 0) r.fail(forV, 'a duration above 0');
      if (atNs + forNs > durationNs)
        r.fail(forV, `a fault that ends within the scenario's duration (${fmtDuration(durationNs)})`, `${fmtDuration(forNs)} from ${fmtDuration(atNs)}`);
    }
    faults.push({ atNs, target, action, forNs });
  }

  // capture
  const capture: CaptureSpec[] = [];
  const captured = new Set<string>();
  const capV = o.get('capture');
  for (const cv of capV === undefined ? [] : r.list(capV)) {
    const s = r.str(cv, 'node/pod or node/underlay');
    const slash = s.indexOf('/');
    if (slash < 0) r.fail(cv, 'node/pod or node/underlay');
    const node = nodeRef(cv, s.slice(0, slash)).name;
    const port = s.slice(slash + 1);
    if (port === 'gw') r.fail(cv, 'node/pod or node/underlay (the gateway is inside the bridge and has no wire to capture)', JSON.stringify(s));
    if (port !== 'underlay') endpoint(cv);
    if (captured.has(`${node}/${port}`)) r.fail(cv, 'each capture point once', JSON.stringify(s));
    captured.add(`${node}/${port}`);
    capture.push({ node, port });
  }

  // expectations
  const expect: ExpectSpec[] = [];
  const expV = o.get('expect');
  for (const ev of expV === undefined ? [] : r.list(expV)) {
    const eo = r.map(ev, EXPECT_KEYS);
    const flowV = eo.get('flow');
    let flow: string | null = null;
    if (flowV !== undefined) {
      flow = r.str(flowV, 'a flow name');
      if (!trafficNames.has(flow)) {
        const names = traffic.map((x) => x.name);
        const h = didYouMean(flow, names);
        r.fail(
          flowV,
          `a flow named in traffic (${names.length === 0 ? 'there is none' : names.join(', ')})`,
          JSON.stringify(flow),
          h === null ? null : `did you mean "${h}"?`,
        );
      }
    }
    const flowOnly = (k: string): V | undefined => {
      const v = eo.get(k);
      if (v !== undefined && flow === null) r.fail(v, `a flow for ${k} (add flow: <name>)`, 'no flow');
      return v;
    };
    const dV = flowOnly('delivered');
    const p50 = flowOnly('latencyP50');
    const p99 = flowOnly('latencyP99');
    const pmax = flowOnly('latencyMax');
    const icV = flowOnly('icmpSeen');
    const drops: Record<string, Record<string, Comparison>> = {};
    const dropsV = eo.get('drops');
    if (dropsV !== undefined) {
      const dm = r.map(dropsV, nodeNames, 'a mapping node → { DropReason: count }', () => `a node name (${[...nodeNames].join(', ')})`);
      // In node order, as the nodes are listed (not as the expectation happens to list them).
      for (const nn of [...dm.keys()].sort((x, y) => nodePos.get(x)! - nodePos.get(y)!)) {
        const rv = dm.get(nn);
        if (rv === undefined) continue;
        const rm = r.map(rv, DROP_REASONS, 'a mapping DropReason → count', 'a drop reason (a DropReason name, see wire/drop.ts)');
        const per: Record<string, Comparison> = {};
        for (const reason of DROP_REASONS) {
          const cv = rm.get(reason);
          if (cv !== undefined) per[reason] = r.cmp(cv, 'count');
        }
        drops[nn] = per;
      }
    }
    const counters: Record<string, Comparison> = {};
    const ctV = eo.get('counters');
    if (ctV !== undefined) {
      if (!isMap(ctV.node)) r.fail(ctV, 'a mapping counter → count');
      for (const pair of ctV.node.items) {
        const k = r.resolve(pair.key);
        const kv: V = { node: k, path: ctV.path, at: ctV.at };
        if (!isScalar(k) || typeof k.value !== 'string') r.fail(kv, 'a counter name such as node1.tunnel.icmpSent');
        const cname = k.value;
        const nn = cname.split('.')[0]!;
        const path = `${ctV.path}.${cname}`;
        if (!nodeIndex.has(nn))
          r.fail({ node: k, path, at: kv.at }, `a counter name that starts with a node (${[...nodeIndex.keys()].join(', ')})`, JSON.stringify(cname));
        counters[cname] = r.cmp({ node: r.resolve(pair.value), path, at: k.range?.[0] ?? ctV.at }, 'count');
      }
    }
    if (flow === null && dropsV === undefined && ctV === undefined)
      r.fail(ev, 'an expectation: flow with delivered/latency/icmpSeen, drops or counters', 'none');
    expect.push({
      flow,
      delivered: dV === undefined ? null : r.cmp(dV, 'ratio'),
      latencyP50Ns: p50 === undefined ? null : r.cmp(p50, 'duration'),
      latencyP99Ns: p99 === undefined ? null : r.cmp(p99, 'duration'),
      latencyMaxNs: pmax === undefined ? null : r.cmp(pmax, 'duration'),
      icmpSeen: icV === undefined ? [] : r.oneOrList(icV).map((x) => r.oneOf(x, ICMP_KINDS)),
      drops,
      counters,
    });
  }

  // live
  let live: LiveSpec | null = null;
  const liveV = o.get('live');
  if (liveV !== undefined) {
    const lo = r.map(liveV, LIVE_KEYS);
    const wV = lo.get('without');
    const without: LiveFeature[] = [];
    for (const fv of wV === undefined ? [] : r.oneOrList(wV)) {
      const f = r.oneOf(fv, LIVE_FEATURES);
      if (!without.includes(f)) without.push(f);
    }
    const note = r.text(lo.req('note', 'a note: why a part cannot go live'));
    if (note.trim() === '') r.fail(lo.req('note', 'a note'), 'a note saying why a part cannot go live', 'an empty note');
    live = { without, note };
  }

  return {
    name,
    description,
    lesson,
    seed,
    durationNs,
    underlay,
    tunnel,
    encryption,
    podMtu: defaultPodMtu,
    nodes,
    links,
    traffic,
    faults,
    capture,
    expect,
    live,
  };
}

/** A run's cost as `estimateCost` sees it. */
export interface CostEstimate {
  /** Packets the traffic puts on the wire: ping requests and replies, UDP datagrams, TCP segments and ACKs. */
  packets: number;
  /** Simulator events: a departure and an arrival per packet, a ping's reply leaving within its request's arrival, TCP's segments within the arrivals that clock them. */
  events: number;
  /** Packets per flow, and the flow with the most. */
  perFlow: number[];
  largest: number;
}

/**
 * What running the traffic costs, from the normalised flows alone (before anything is built): a ping or UDP
 * flow sends its count, or what fits before the end of the scenario at its interval; TCP sends its bytes in
 * segments of the pod MTU's MSS (at least 536) and an ACK for each.
 */
export function estimateCost(s: Pick<Scenario, 'durationNs' | 'podMtu' | 'traffic'>): CostEstimate {
  let packets = 0,
    events = 0,
    largest = 0;
  const perFlow: number[] = [];
  for (let i = 0; i < s.traffic.length; i++) {
    const t = s.traffic[i]!;
    let n: number;
    let ev: number;
    if (t.type === 'tcp') {
      const mss = Math.max(536, s.podMtu - (t.family === 4 ? 40 : 60));
      n = 2 * Math.ceil(t.bytes / mss);
      ev = n;
    } else {
      // A replay's packets keep the capture's timing; others leave every interval until the end.
      const fit = t.replay !== null || t.intervalNs <= 0 ? t.count : Math.floor((s.durationNs - t.startNs) / t.intervalNs) + 1;
      const c = Math.min(t.count, fit);
      n = t.type === 'ping' ? 2 * c : c;
      ev = t.type === 'ping' ? 3 * c : 2 * c;
    }
    perFlow.push(n);
    packets += n;
    events += ev;
    if (n > perFlow[largest]!) largest = i;
  }
  return { packets, events, perFlow, largest };
}

function parseCidr(r: Reader, v: V): Cidr {
  const s = r.str(v, 'a CIDR such as 10.244.1.0/24').trim();
  const p = prefixFromString(s);
  if (p === null) {
    const a = s.includes('/') ? ipBig(s.slice(0, s.indexOf('/'))) : null;
    r.fail(v, a === null ? 'a CIDR such as 10.244.1.0/24 or fd00:10:244:1::/64' : `a prefix length in 0-${bits(a.family)}`);
  }
  const a = { family: p.family, n: addrBig(p.addr) };
  const prefix = p.len;
  const host = (1n << BigInt(bits(a.family) - prefix)) - 1n;
  if ((a.n & host) !== 0n) r.fail(v, `a network address with the host bits zero (${ipText(a.family, a.n & ~host)}/${prefix})`);
  return { family: a.family, net: a.n, prefix, text: `${ipText(a.family, a.n)}/${prefix}` };
}

function addrKey(mode: TunnelMode, pod: PodSpec, ip: string): string {
  // Pods on different l2 segments (VNI, VLAN) may reuse addresses: that is what tenants do.
  return mode === 'l2' ? `${pod.vni}/${pod.vlan ?? 0}/${ip}` : ip;
}

function claim(r: Reader, addrs: Map<string, string>, mode: TunnelMode, pod: PodSpec, ip: string, v: V): void {
  const k = addrKey(mode, pod, ip);
  const prev = addrs.get(k);
  if (prev !== undefined) r.fail(v, `a unique address (${prev} has it)`, ip);
  addrs.set(k, v.path);
}

/** A duration in the largest unit that keeps it an integer: `1500000ns` → `1500us`. */
export function fmtDuration(ns: number): string {
  if (ns === 0) return '0s';
  if (ns % 1e9 === 0) return `${ns / 1e9}s`;
  if (ns % 1e6 === 0) return `${ns / 1e6}ms`;
  if (ns % 1e3 === 0) return `${ns / 1e3}us`;
  return `${ns}ns`;
}

function fmtBandwidth(bps: number): string {
  if (bps % 1e9 === 0) return `${bps / 1e9}Gbit`;
  if (bps % 1e6 === 0) return `${bps / 1e6}Mbit`;
  if (bps % 1e3 === 0) return `${bps / 1e3}Kbit`;
  return `${bps}bit`;
}

function fmtCmp(c: Comparison, kind: 'ratio' | 'duration' | 'count'): string | number {
  if (kind === 'count' && c.op === '==') return c.value;
  const v = kind === 'ratio' ? `${+(c.value * 100).toPrecision(12)}%` : kind === 'duration' ? fmtDuration(c.value) : String(c.value);
  return `${c.op} ${v}`;
}

/**
 * A normalised scenario back in file syntax, every default written out: `parseScenario` of its YAML
 * gives the same `Scenario` again (the tests check this on generated scenarios).
 */
/** An endpoint as written in a scenario: `node/pod`, or `node` for the node's own stack. */
export function endpointText(e: Endpoint): string {
  return e.pod === null ? e.node : `${e.node}/${e.pod}`;
}

export function scenarioToObject(s: Scenario): Record<string, unknown> {
  const ep = endpointText;
  const link = (l: LinkSpec): Record<string, unknown> => {
    const o: Record<string, unknown> = { between: [l.a, l.b] };
    if (l.mtu !== null) o.mtu = l.mtu;
    if (l.latencyNs !== null) o.latency = fmtDuration(l.latencyNs);
    if (l.jitterNs !== null) o.jitter = fmtDuration(l.jitterNs);
    if (l.bandwidthBps !== null) o.bandwidth = fmtBandwidth(l.bandwidthBps);
    if (l.loss !== null) o.loss = l.loss;
    return o;
  };
  const under: Record<string, unknown> = {
    mtu: s.underlay.mtu,
    latency: fmtDuration(s.underlay.latencyNs),
    jitter: fmtDuration(s.underlay.jitterNs),
    loss: s.underlay.loss,
    family: s.underlay.family,
  };
  if (s.underlay.bandwidthBps !== null) under.bandwidth = fmtBandwidth(s.underlay.bandwidthBps);
  const tunnel: Record<string, unknown> = {
    type: s.tunnel.type,
    mode: s.tunnel.mode,
    vni: s.tunnel.vni,
    fragmentPolicy: s.tunnel.fragmentPolicy,
    icmpTooBig: s.tunnel.icmpTooBig,
    mssClamp: s.tunnel.mssClamp,
  };
  if (s.tunnel.options.length > 0) tunnel.options = s.tunnel.options.map((o) => (o.data === '' ? { class: o.class, type: o.type } : { ...o }));
  const out: Record<string, unknown> = {
    name: s.name,
    description: s.description,
    lesson: s.lesson,
    seed: s.seed,
    duration: fmtDuration(s.durationNs),
    underlay: under,
    tunnel,
  };
  if (s.encryption !== null) out.encryption = { ...s.encryption };
  out.nodes = s.nodes.map((n) => {
    const o: Record<string, unknown> = { name: n.name };
    const cidrs = [n.podCIDR4, n.podCIDR6].filter((x): x is string => x !== null);
    if (cidrs.length > 0) o.podCIDR = cidrs.length === 1 ? cidrs[0] : cidrs;
    o.underlayIp = n.underlayIp;
    o.pods = n.pods.map((p) => {
      const po: Record<string, unknown> = { name: p.name, ip: [p.ip4, p.ip6].filter((x) => x !== null) };
      if (p.vlan !== null) po.vlan = p.vlan;
      if (p.vni !== null) po.vni = p.vni;
      po.mtu = p.mtu;
      return po;
    });
    return o;
  });
  out.links = s.links.map(link);
  out.traffic = s.traffic.map((t) => {
    const o: Record<string, unknown> = { name: t.name, type: t.type, from: ep(t.from), to: ep(t.to), family: t.family, start: fmtDuration(t.startNs) };
    if (t.replay !== null) {
      o.count = t.count;
      o.replay = t.replay;
    } else if (t.type === 'tcp') o.bytes = t.bytes;
    else {
      o.count = t.count;
      o.interval = fmtDuration(t.intervalNs);
      o.sizes = [...t.sizes];
    }
    o.df = t.df;
    return o;
  });
  out.faults = s.faults.map((f) => {
    const o: Record<string, unknown> = { at: fmtDuration(f.atNs), link: f.target.kind === 'node' ? f.target.node : [f.target.a, f.target.b], action: f.action };
    if (f.forNs !== null) o.for = fmtDuration(f.forNs);
    return o;
  });
  out.capture = s.capture.map((c) => `${c.node}/${c.port}`);
  out.expect = s.expect.map((e) => {
    const o: Record<string, unknown> = {};
    if (e.flow !== null) o.flow = e.flow;
    if (e.delivered !== null) o.delivered = fmtCmp(e.delivered, 'ratio');
    if (e.latencyP50Ns !== null) o.latencyP50 = fmtCmp(e.latencyP50Ns, 'duration');
    if (e.latencyP99Ns !== null) o.latencyP99 = fmtCmp(e.latencyP99Ns, 'duration');
    if (e.latencyMaxNs !== null) o.latencyMax = fmtCmp(e.latencyMaxNs, 'duration');
    if (e.icmpSeen.length > 0) o.icmpSeen = [...e.icmpSeen];
    if (Object.keys(e.drops).length > 0)
      o.drops = Object.fromEntries(
        Object.entries(e.drops).map(([n, m]) => [n, Object.fromEntries(Object.entries(m).map(([k, c]) => [k, fmtCmp(c, 'count')]))]),
      );
    if (Object.keys(e.counters).length > 0) o.counters = Object.fromEntries(Object.entries(e.counters).map(([k, c]) => [k, fmtCmp(c, 'count')]));
    return o;
  });
  if (s.live !== null) out.live = { without: [...s.live.without], note: s.live.note };
  return out;
}
