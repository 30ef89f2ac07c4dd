/**
 * Live labs, the plan: what `seine lab up <scenario>` builds on one Linux machine, as plain data, before
 * anything is created. `planLab` is pure (no I/O); `checkLabFeasible` adds what it learns of the host.
 *
 * The topology:
 *
 *     seine-<lab>-u               the underlay: a Linux bridge br0 (MTU = underlay MTU)
 *       br0 ─┬─ n0-node1 ┄┄ veth ┄┄ eth0  seine-<lab>-node1   (underlayIp/prefix, MTU = underlay MTU)
 *            └─ n1-node2 ┄┄ veth ┄┄ eth0  seine-<lab>-node2
 *     seine-<lab>-<node>-<pod>    one empty namespace per pod (its TAP comes from the node's agent)
 *
 * Names: the lab is a slug of the scenario's name (a 4-digit hash is added when it had to be cut);
 * nodes and pods are slugs of theirs, made unique with a suffix when two collide. Interface names stay
 * within 15 characters because no lab name is in them: each lives in the lab's own namespaces.
 *
 * ## The underlay model (netem/tbf)
 *
 * The simulator gives each pair of nodes its own wire with a one-way latency, a jitter, a loss and a
 * bandwidth. Here every frame from node A to node B crosses two egress queues: A's `eth0` (in A's
 * namespace: what A sends) and the bridge port towards B (in the underlay namespace: what B receives).
 * Each egress gets half the path:
 *
 * - delay: half the one-way latency, so a path has the scenario's latency and a ping's RTT is twice it;
 * - jitter: the standard deviation over √2 (netem's `distribution normal`), so the path's two normal
 *   delays add up to the scenario's spread. netem's jitter is symmetric around the mean and may reorder
 *   frames; the simulator's is a half-normal added to the latency and keeps frames in order. tc counts
 *   netem's times in whole microseconds (rounded here), and takes a jitter only with a delay (≥ 1us);
 * - loss: `1 − √(1 − p)` at each egress, so a frame survives both with probability `1 − p`;
 * - bandwidth: the full rate at each egress (tbf, or htb classes below), a queue of 1000 frames as in
 *   the simulator. Unlike the simulator's per-pair wires, a node's rate is shared by everything it sends
 *   (and everything it receives): the rate of a NIC, not of a pair.
 *
 * Per node pair overrides (`links`) that differ in latency, jitter, loss or bandwidth become classes:
 * the egress gets an `htb` root whose default class carries the underlay's parameters and one class per
 * overriding peer (rate = the pair's bandwidth, or 100 Gbit/s for "unlimited"), each with its own
 * netem; `u32` filters pick the class by the peer's underlay address (destination on `eth0`, source on
 * the bridge port). Without overrides an egress gets `netem` (with a `tbf` child for a bandwidth), a
 * lone `tbf`, or nothing.
 *
 * A pair's smaller MTU (`links[].mtu`, a PMTU black hole) and a pair going down (a fault) cannot be a
 * port's MTU or carrier on a shared bridge: they are drops by classic-BPF filters (`cls_bpf`, direct
 * action) on the `clsact` ingress of the bridge port the frame comes in by, matching the destination's
 * underlay address (and, for the MTU, the frame's length). Being in the underlay, they are silent to the
 * sender, like a wire. A node that is an end of such an MTU rule has `gso_max_segs 1` on its `eth0`, so
 * its stack segments GSO super-frames before the wire and the rule judges each real frame.
 *
 * A node going down is its bridge port going down (`ip link set n0-node1 down` in the underlay
 * namespace): the node's `eth0` loses carrier and keeps its addresses and routes, as the simulator's
 * uplink does. Faults are timed actions with the commands they mean; a runner carries them out.
 *
 * A pair's MTU above the underlay's changes nothing (the uplinks' MTU is the underlay's, as in the
 * simulator).
 */
import { ipv4ToString, ipv6ToString } from '../../wire/bytes.js';
import type { FaultTarget, LinkSpec, NodeSpec, Scenario } from '../../scenario/scenario.js';
import { fmtDuration, ipBig, LIVE_FEATURES, type LiveFeature } from '../../scenario/scenario.js';
import { KERNEL_PIECES, LAB_TOOLS, TOOL_PACKAGES, probeHost, type HostFacts } from './host.js';

// ---------------------------------------------------------------------------------------------------
// Types

/** Parts of a scenario a lab can leave out (`LabPlanOptions.without`; a scenario's `live.without` names them too). */
export type LabFeature = LiveFeature;
export const LAB_FEATURES: readonly LabFeature[] = LIVE_FEATURES;

/** Kernel pieces a lab may use. */
export type KernelFeature = 'netns' | 'veth' | 'bridge' | 'ipv6' | 'netem' | 'tbf' | 'htb' | 'u32' | 'clsact' | 'bpf';

export interface LabPlanOptions {
  /** The lab's name: lowercase letters, digits and dashes, at most 32 (default: from the scenario's name). */
  name?: string;
  /** Parts of the scenario to leave out; each one left out is listed in `LabPlan.omitted`. */
  without?: readonly LabFeature[];
}

/** One egress queue's share of a path: netem's part and tbf/htb's part. */
export interface NetemParams {
  delayNs: number;
  /** Standard deviation of a normal delay around `delayNs`. */
  jitterNs: number;
  /** Probability 0-1 that this egress loses a frame. */
  loss: number;
}

export interface Shaping {
  /** Null when delay, jitter and loss are all 0 (or left out). */
  netem: NetemParams | null;
  /** Bits per second; null for unlimited. */
  rateBps: number | null;
}

/** A per-peer class on an egress (a scenario `links` override). */
export interface PeerClass {
  peer: string;
  /** Which address of the frame names the peer: the destination on a node's eth0, the source on a bridge port. */
  match: 'dst' | 'src';
  peerIp: string;
  shaping: Shaping;
}

/** One egress queue: its device, what it does to frames, and the tc commands that set it up. */
export interface LabEgress {
  ns: string;
  dev: string;
  shaping: Shaping;
  perPeer: PeerClass[];
  /** argv lists (`tc -n NS …`), in order. Empty when the egress is left alone. */
  tc: string[][];
}

/** A smaller MTU towards one peer: frames longer than it are dropped on the bridge port's ingress. */
export interface MtuRule {
  peer: string;
  peerIp: string;
  /** L3 MTU: frames whose length less the 14-byte Ethernet header is above it are dropped. */
  mtu: number;
}

export interface LabPodPlan {
  name: string;
  node: string;
  ns: string;
  /** The interface its node's agent will create in `ns`. */
  ifname: string;
  ip4: string | null;
  ip6: string | null;
  mtu: number;
  vlan: number | null;
  vni: number | null;
}

export interface LabNodePlan {
  name: string;
  index: number;
  ns: string;
  underlayIp: string;
  /** underlayIp with its prefix length, as put on eth0. */
  address: string;
  podCIDR4: string | null;
  podCIDR6: string | null;
  gateway4: string | null;
  gateway6: string | null;
  uplink: {
    /** In the node's namespace. */
    dev: string;
    /** The veth's other end, a port of the bridge in the underlay namespace. */
    peer: string;
    mtu: number;
    /** 1 when the node is an end of an MTU rule (GSO segments before the wire); null: the kernel's default. */
    gsoMaxSegs: number | null;
  };
  /** On-link routes to peers (only when the underlay addresses share no usable subnet). */
  routes: { dst: string; dev: string }[];
  /** What the node sends: eth0's egress in the node's namespace. */
  egress: LabEgress;
  /** What the node receives: the bridge port's egress in the underlay namespace. */
  ingress: LabEgress;
  /** Drops on the bridge port's ingress, by destination. */
  mtuRules: MtuRule[];
  /** Whether the bridge port gets a clsact qdisc (for MTU rules and link faults). */
  clsact: boolean;
  /** tc commands for the bridge port's clsact and MTU rules. */
  filterTc: string[][];
  pods: LabPodPlan[];
}

/** A fault as a timed action: what it does and the commands that do it. */
export interface LabFaultAction {
  atNs: number;
  action: 'down' | 'up';
  target: FaultTarget;
  /** Index in the scenario's `faults`. */
  fault: number;
  what: string;
  commands: string[][];
  /**
   * A failure of a command that says this means the state was already there (e.g. `up` on a path
   * that was not down); a runner may ignore it.
   */
  benignError: string | null;
}

/** A kernel piece the plan uses, for which part of the scenario. */
export interface LabNeed {
  kernel: KernelFeature;
  /** The scenario key it serves (`underlay.latency`, `links[0].mtu`, `faults[1]`) or `lab`. */
  part: string;
  /** What to leave out (`without`) to do without it; null for the lab itself. */
  feature: LabFeature | null;
}

/** A reason a scenario, or a part of it, cannot go live. */
export interface LabRefusal {
  /** `host`, `lab`, or a scenario key such as `underlay.latency` or `links[0].mtu`. */
  part: string;
  /** Leaving this out (`without`) would let the rest go live; null when nothing would. */
  feature: LabFeature | null;
  reason: string;
}

export interface LabPlan {
  lab: string;
  scenario: string;
  family: 4 | 6;
  underlay: {
    ns: string;
    bridge: string;
    mtu: number;
    /** The subnet all node addresses share, or null when they share none (then `/32` or `/128` and on-link routes). */
    subnet: string | null;
    prefix: number;
  };
  nodes: LabNodePlan[];
  faults: LabFaultAction[];
  /** Every namespace, in creation order (underlay, nodes, pods). */
  namespaces: string[];
  needs: LabNeed[];
  omitted: { feature: LabFeature; part: string; what: string }[];
}

/** A scenario that cannot be planned; `refusals` says why. */
export class LabPlanError extends Error {
  constructor(readonly refusals: LabRefusal[]) {
    super(`the scenario cannot go live:\n${formatRefusals(refusals)}`);
    this.name = 'LabPlanError';
  }
}

/** A lab that cannot be built on this machine (nothing was created); `refusals` says why. */
export class LabRefusedError extends Error {
  constructor(
    readonly lab: string,
    readonly refusals: LabRefusal[],
  ) {
    super(`lab ${lab} cannot go live on this machine:\n${formatRefusals(refusals)}`);
    this.name = 'LabRefusedError';
  }
}

/** Refusals one per line, with what to leave out where that helps. */
export function formatRefusals(refusals: readonly LabRefusal[]): string {
  return refusals.map((r) => `  ${r.part}: ${r.reason}${r.feature === null ? '' : ` (leave it out: without ${r.feature})`}`).join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Names

const NS_PREFIX = 'seine-';
const UPLINK_DEV = 'eth0';
const BRIDGE_DEV = 'br0';
const POD_IFNAME = 'eth0';
const IFNAMSIZ = 15;
/** A bridge has at most 1024 ports (BR_MAX_PORTS), numbered from 1. */
const MAX_NODES = 1023;
const LAB_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

/** Lowercase letters, digits and single dashes, at most `max` characters. */
export function slug(s: string, max: number): string {
  const t = s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return t.length <= max ? t : t.slice(0, max).replace(/-+$/, '');
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The default lab name of a scenario: its slug, cut to 24 characters with a hash of the whole name when longer. */
export function labName(scenarioName: string): string {
  const full = slug(scenarioName, 1000);
  if (full === '') return `lab-${(fnv1a(scenarioName) & 0xffff).toString(16).padStart(4, '0')}`;
  if (full.length <= 24) return full;
  return `${full.slice(0, 19).replace(/-+$/, '')}-${(fnv1a(scenarioName) & 0xffff).toString(16).padStart(4, '0')}`;
}

/** Whether `name` is a valid lab name. */
export function isLabName(name: string): boolean {
  return LAB_NAME_RE.test(name);
}

/** The underlay namespace of a lab. */
function underlayNs(lab: string): string {
  return `${NS_PREFIX}${lab}-u`;
}

// ---------------------------------------------------------------------------------------------------
// Addresses

type Addr = NonNullable<ReturnType<typeof ipBig>>;

function ipText(a: Addr): string {
  if (a.family === 4) return ipv4ToString(Number(a.n));
  const b = new Uint8Array(16);
  for (let i = 15, n = a.n; i >= 0; i--, n >>= 8n) b[i] = Number(n & 0xffn);
  return ipv6ToString(b);
}

const bitsOf = (f: 4 | 6): number => (f === 4 ? 32 : 128);

function commonPrefix(family: 4 | 6, xs: bigint[]): number {
  const bits = bitsOf(family);
  let p = bits;
  for (const x of xs) {
    const d = x ^ xs[0]!;
    if (d !== 0n) p = Math.min(p, bits - d.toString(2).length);
  }
  return p;
}

/**
 * The subnet the underlay addresses share: the scenario's default range (172.18.0.0/16, fd00:18::/64)
 * when they are all in it, else their longest common prefix (at most /24, /64). Null when that is
 * shorter than /16 (/48) or makes an address a network or broadcast address: then each node gets a host
 * prefix and on-link routes to the others.
 */
function underlaySubnet(family: 4 | 6, ips: Addr[]): { net: bigint; prefix: number } | null {
  const bits = bitsOf(family);
  const inside = (net: bigint, prefix: number): boolean => ips.every((a) => a.n >> BigInt(bits - prefix) === net >> BigInt(bits - prefix));
  const usable = (net: bigint, prefix: number): boolean => {
    if (family === 6) return true;
    const host = (1n << BigInt(bits - prefix)) - 1n;
    return ips.every((a) => a.n !== net && a.n !== (net | host));
  };
  const def = family === 4 ? { net: 0xac12_0000n, prefix: 16 } : { net: ipBig('fd00:18::')!.n, prefix: 64 };
  if (inside(def.net, def.prefix) && usable(def.net, def.prefix)) return def;
  const prefix = Math.min(
    family === 4 ? 24 : 64,
    commonPrefix(
      family,
      ips.map((a) => a.n),
    ),
  );
  if (prefix < (family === 4 ? 16 : 48)) return null;
  const net = (ips[0]!.n >> BigInt(bits - prefix)) << BigInt(bits - prefix);
  return usable(net, prefix) ? { net, prefix } : null;
}

// ---------------------------------------------------------------------------------------------------
// tc commands

/** The rate an htb class gets when the path has no bandwidth: nothing a veth reaches. */
const UNLIMITED_BPS = 100e9;
/** Frames a queue holds, as the simulator's links (LinkConfig.queuePackets). */
const QUEUE_FRAMES = 1000;
const ETH_HLEN = 14;
const HTB_QUANTUM = 200_000;

/** tc reads netem's times in whole microseconds (a fraction is cut off): round to the nearest. */
function usText(ns: number): string {
  return `${Math.round(ns / 1000)}us`;
}

function pctText(p: number): string {
  return `${+(p * 100).toPrecision(6)}%`;
}

/** netem's arguments for one egress. */
function netemArgs(n: NetemParams): string[] {
  const out = ['netem', 'limit', String(QUEUE_FRAMES)];
  if (n.delayNs > 0 || n.jitterNs > 0) {
    // tc takes a distribution only with a delay and a jitter of at least 1us: 1us stands in for less
    // (netem clamps the negative delays of a normal distribution at 0).
    out.push('delay', usText(n.jitterNs > 0 ? Math.max(1000, n.delayNs) : n.delayNs));
    if (n.jitterNs > 0) out.push(usText(Math.max(1000, n.jitterNs)), 'distribution', 'normal');
  }
  if (n.loss > 0) out.push('loss', 'random', pctText(n.loss));
  return out;
}

/** Bytes a shaper may send back to back: two frames, or a millisecond at the rate. */
function burstBytes(rateBps: number, mtu: number): number {
  return Math.max(2 * (mtu + ETH_HLEN), Math.ceil(rateBps / 8 / 1000));
}

/** tbf's arguments: the rate, a burst, and a queue of QUEUE_FRAMES full frames. */
function tbfArgs(rateBps: number, mtu: number): string[] {
  const burst = burstBytes(rateBps, mtu);
  return ['tbf', 'rate', `${Math.round(rateBps)}bit`, 'burst', String(burst), 'limit', String(Math.max(burst, QUEUE_FRAMES * (mtu + ETH_HLEN)))];
}

function htbClassArgs(classid: string, rateBps: number | null, mtu: number): string[] {
  const rate = rateBps ?? UNLIMITED_BPS;
  const burst = String(burstBytes(rate, mtu));
  const r = `${Math.round(rate)}bit`;
  return ['class', 'add', 'parent', '1:', 'classid', classid, 'htb', 'rate', r, 'ceil', r, 'burst', burst, 'cburst', burst, 'quantum', String(HTB_QUANTUM)];
}

function withDev(args: string[], dev: string): string[] {
  // `tc qdisc add dev D …`, `tc class add dev D …`, `tc filter add dev D …`
  return [args[0]!, args[1]!, 'dev', dev, ...args.slice(2)];
}

/** The tc commands for an egress: nothing, netem (+ tbf child), tbf, or htb classes with u32 filters. */
function egressCommands(ns: string, dev: string, family: 4 | 6, mtu: number, shaping: Shaping, perPeer: readonly PeerClass[]): string[][] {
  const tcNs = (args: string[]): string[] => ['tc', '-n', ns, ...withDev(args, dev)];
  const out: string[][] = [];
  if (perPeer.length === 0) {
    if (shaping.netem !== null) {
      out.push(tcNs(['qdisc', 'add', 'root', 'handle', '1:', ...netemArgs(shaping.netem)]));
      if (shaping.rateBps !== null) out.push(tcNs(['qdisc', 'add', 'parent', '1:1', 'handle', '2:', ...tbfArgs(shaping.rateBps, mtu)]));
    } else if (shaping.rateBps !== null) {
      out.push(tcNs(['qdisc', 'add', 'root', 'handle', '1:', ...tbfArgs(shaping.rateBps, mtu)]));
    }
    return out;
  }
  out.push(tcNs(['qdisc', 'add', 'root', 'handle', '1:', 'htb', 'default', '1']));
  const classes: Shaping[] = [shaping, ...perPeer.map((p) => p.shaping)];
  classes.forEach((s, i) => {
    const minor = (i + 1).toString(16);
    out.push(tcNs(htbClassArgs(`1:${minor}`, s.rateBps, mtu)));
    if (s.netem !== null) out.push(tcNs(['qdisc', 'add', 'parent', `1:${minor}`, 'handle', `${(0x100 + i + 1).toString(16)}:`, ...netemArgs(s.netem)]));
  });
  perPeer.forEach((p, k) => {
    const match = family === 4 ? ['match', 'ip', p.match, `${p.peerIp}/32`] : ['match', 'ip6', p.match, `${p.peerIp}/128`];
    out.push(
      tcNs(['filter', 'add', 'parent', '1:', 'protocol', family === 4 ? 'ip' : 'ipv6', 'pref', '1', 'u32', ...match, 'flowid', `1:${(k + 2).toString(16)}`]),
    );
  });
  return out;
}

// Classic BPF (the opcodes of linux/filter.h), for cls_bpf in direct-action mode: the program's return
// value is a TC_ACT_* verdict.
const BPF_LDH_ABS = 0x28;
const BPF_LD_ABS = 0x20;
const BPF_LD_LEN = 0x80;
const BPF_JEQ_K = 0x15;
const BPF_JGT_K = 0x25;
const BPF_RET_K = 0x06;
const TC_ACT_UNSPEC = 0xffff_ffff; // -1: no verdict, the next filter decides
const TC_ACT_SHOT = 2;

type Insn = { code: number; k: number; jt?: string; jf?: string } | { label: string };

function assemble(prog: Insn[]): string {
  const labels = new Map<string, number>();
  const insns: { code: number; k: number; jt?: string; jf?: string }[] = [];
  for (const x of prog) {
    if ('label' in x) labels.set(x.label, insns.length);
    else insns.push(x);
  }
  const off = (i: number, l: string | undefined): number => {
    if (l === undefined) return 0;
    const t = labels.get(l);
    if (t === undefined || t <= i) throw new Error(`bpf: bad jump to ${l}`);
    return t - i - 1;
  };
  return [String(insns.length), ...insns.map((x, i) => `${x.code} ${off(i, x.jt)} ${off(i, x.jf)} ${x.k >>> 0}`)].join(',');
}

/**
 * A classic BPF program (tc's `bytecode` text) that drops Ethernet frames to `dstIp`, or only those
 * whose L3 length is above `maxL3` when it is given, and leaves every other frame to the next filter.
 */
export function dropBytecode(dstIp: string, maxL3: number | null): string {
  const a = ipBig(dstIp);
  if (a === null) throw new Error(`bpf: not an address: ${dstIp}`);
  const prog: Insn[] = [
    { code: BPF_LDH_ABS, k: 12 },
    { code: BPF_JEQ_K, k: a.family === 4 ? 0x0800 : 0x86dd, jf: 'pass' },
  ];
  const last = maxL3 === null ? 'drop' : 'len';
  if (a.family === 4) {
    prog.push({ code: BPF_LD_ABS, k: ETH_HLEN + 16 }, { code: BPF_JEQ_K, k: Number(a.n), jt: last, jf: 'pass' });
  } else {
    for (let w = 0; w < 4; w++) {
      const word = Number((a.n >> BigInt(96 - 32 * w)) & 0xffff_ffffn);
      prog.push({ code: BPF_LD_ABS, k: ETH_HLEN + 24 + 4 * w }, { code: BPF_JEQ_K, k: word, ...(w === 3 ? { jt: last } : {}), jf: 'pass' });
    }
  }
  if (maxL3 !== null) prog.push({ label: 'len' }, { code: BPF_LD_LEN, k: 0 }, { code: BPF_JGT_K, k: maxL3 + ETH_HLEN, jt: 'drop', jf: 'pass' });
  prog.push({ label: 'pass' }, { code: BPF_RET_K, k: TC_ACT_UNSPEC }, { label: 'drop' }, { code: BPF_RET_K, k: TC_ACT_SHOT });
  return assemble(prog);
}

/** Filter priorities on a bridge port's clsact ingress: MTU rules, then one per faulty pair. */
const MTU_PREF_BASE = 100;
const FAULT_PREF_BASE = 1000;

function bpfFilter(verb: 'add' | 'replace', ns: string, dev: string, pref: number, bytecode: string): string[] {
  return ['tc', '-n', ns, 'filter', verb, 'dev', dev, 'ingress', 'pref', String(pref), 'handle', '1', 'protocol', 'all', 'bpf', 'da', 'bytecode', bytecode];
}

// ---------------------------------------------------------------------------------------------------
// The plan

interface PathParams {
  latencyNs: number;
  jitterNs: number;
  loss: number;
  bandwidthBps: number | null;
}

/** One egress's half of a path (see the model above), less what is left out. */
export function egressShare(p: PathParams, without: ReadonlySet<LabFeature> = new Set()): Shaping {
  const delayNs = without.has('latency') ? 0 : p.latencyNs / 2;
  const jitterNs = without.has('jitter') ? 0 : p.jitterNs / Math.SQRT2;
  const loss = without.has('loss') || p.loss === 0 ? 0 : p.loss >= 1 ? 1 : 1 - Math.sqrt(1 - p.loss);
  const netem = delayNs > 0 || jitterNs > 0 || loss > 0 ? { delayNs, jitterNs, loss } : null;
  return { netem, rateBps: without.has('bandwidth') ? null : p.bandwidthBps };
}

function sameShaping(a: Shaping, b: Shaping): boolean {
  return a.rateBps === b.rateBps && JSON.stringify(a.netem) === JSON.stringify(b.netem);
}

/** What planning a lab finds as it goes: what cannot be planned, what the kernel must have, what is left out. */
class PlanBooks {
  readonly refusals: LabRefusal[] = [];
  readonly needs: LabNeed[] = [];
  readonly omitted: LabPlan['omitted'] = [];
  constructor(readonly without: ReadonlySet<LabFeature>) {}
  need(kernel: KernelFeature, part: string, feature: LabFeature | null): void {
    if (!this.needs.some((n) => n.kernel === kernel && n.part === part)) this.needs.push({ kernel, part, feature });
  }
}

/**
 * The lab a scenario makes. Throws a `LabPlanError` listing what cannot be planned (whatever the host);
 * `checkLabFeasible` adds what the host lacks.
 */
export function planLab(s: Scenario, opts: LabPlanOptions = {}): LabPlan {
  const books = new PlanBooks(new Set(opts.without ?? []));
  const lab = opts.name ?? labName(s.name);
  const family = s.underlay.family;
  checkLab(s, lab, books);
  const parts = shapingParts(s);
  const names = labNames(s, lab);
  const uNs = names.underlayNs;

  // Addresses.
  const ips = s.nodes.map((n) => {
    const a = ipBig(n.underlayIp);
    if (a === null || a.family !== family) throw new Error(`node ${n.name}: underlayIp ${n.underlayIp} is not an IPv${family} address`);
    return a;
  });
  const subnet = ips.length === 0 ? null : underlaySubnet(family, ips);
  const prefix = subnet?.prefix ?? bitsOf(family);

  const index = new Map(s.nodes.map((n, i) => [n.name, i]));
  const paths = pairPaths(s, index, books);
  partNeeds(parts, paths, books);
  const { faults, clsactFor } = planFaults(s, names, index, books);
  if (books.refusals.length > 0) throw new LabPlanError(books.refusals);

  const nodes: LabNodePlan[] = s.nodes.map((n: NodeSpec, i) => {
    const ns = names.nodes[i]!.ns;
    const port = names.portOf(i);
    const pc = paths.peerClasses[i]!;
    const rules = paths.mtuRules[i]!;
    const clsact = rules.length > 0 || clsactFor.has(i);
    const filterTc: string[][] = [];
    if (clsact) filterTc.push(['tc', '-n', uNs, 'qdisc', 'add', 'dev', port, 'clsact']);
    rules.forEach((r, k) => filterTc.push(bpfFilter('add', uNs, port, MTU_PREF_BASE + k, dropBytecode(r.peerIp, r.mtu))));
    const u = s.underlay;
    const share = paths.defaultShare;
    return {
      name: n.name,
      index: i,
      ns,
      underlayIp: n.underlayIp,
      address: `${n.underlayIp}/${prefix}`,
      podCIDR4: n.podCIDR4,
      podCIDR6: n.podCIDR6,
      gateway4: n.gateway4,
      gateway6: n.gateway6,
      uplink: { dev: UPLINK_DEV, peer: port, mtu: u.mtu, gsoMaxSegs: paths.gsoCap.has(i) ? 1 : null },
      routes: subnet === null ? s.nodes.filter((_, j) => j !== i).map((m) => ({ dst: `${m.underlayIp}/${bitsOf(family)}`, dev: UPLINK_DEV })) : [],
      egress: { ns, dev: UPLINK_DEV, shaping: share, perPeer: pc.out, tc: egressCommands(ns, UPLINK_DEV, family, u.mtu, share, pc.out) },
      ingress: { ns: uNs, dev: port, shaping: share, perPeer: pc.in, tc: egressCommands(uNs, port, family, u.mtu, share, pc.in) },
      mtuRules: rules,
      clsact,
      filterTc,
      pods: n.pods.map((p, j) => ({
        name: p.name,
        node: n.name,
        ns: names.pods[i]![j]!,
        ifname: POD_IFNAME,
        ip4: p.ip4,
        ip6: p.ip6,
        mtu: p.mtu,
        vlan: p.vlan,
        vni: p.vni,
      })),
    };
  });

  return {
    lab,
    scenario: s.name,
    family,
    underlay: {
      ns: uNs,
      bridge: BRIDGE_DEV,
      mtu: s.underlay.mtu,
      subnet: subnet === null ? null : `${ipText({ family, n: subnet.net })}/${subnet.prefix}`,
      prefix,
    },
    nodes,
    faults,
    namespaces: [uNs, ...nodes.map((n) => n.ns), ...nodes.flatMap((n) => n.pods.map((p) => p.ns))],
    needs: books.needs,
    omitted: books.omitted,
  };
}

/** What no lab can be, whatever the host (refusals), and what every lab needs of the kernel. */
function checkLab(s: Scenario, lab: string, books: PlanBooks): void {
  if (!isLabName(lab))
    books.refusals.push({
      part: 'lab',
      feature: null,
      reason: `lab name ${JSON.stringify(lab)}: expected 1-32 lowercase letters, digits and dashes, not starting or ending with a dash`,
    });
  if (s.nodes.length > MAX_NODES)
    books.refusals.push({ part: 'nodes', feature: null, reason: `${s.nodes.length} nodes: a Linux bridge takes at most ${MAX_NODES} ports` });
  const family = s.underlay.family;
  // GRE has no port to bind: the agent takes it on a raw IP socket, and a raw IPv6 socket hands over no
  // IPv6 header (RFC 3542), so the outer header could not be checked (live/devices.ts).
  if (family === 6 && s.tunnel.type === 'gre')
    books.refusals.push({ part: 'tunnel.type', feature: null, reason: 'gre over an IPv6 underlay: the agent receives GRE on a raw socket, IPv4 only live' });
  books.need('netns', 'lab', null);
  books.need('veth', 'lab', null);
  books.need('bridge', 'lab', null);
  if (family === 6) books.need('ipv6', 'underlay.family', null);
}

/** A shaping setting of the scenario beyond a plain wire: the underlay's, or a link's that differs from it. */
interface ShapingPart {
  feature: LabFeature;
  part: string;
  text: string;
  link: number | null;
  bps?: number;
}

function shapingParts(s: Scenario): ShapingPart[] {
  const u = s.underlay;
  const parts: ShapingPart[] = [];
  const addParts = (link: number | null, l: { latencyNs: number | null; jitterNs: number | null; loss: number | null; bandwidthBps: number | null }): void => {
    const key = link === null ? 'underlay' : `links[${link}]`;
    const differs = <T>(v: T | null, base: T, none: T): v is T => (link === null ? v !== none : v !== null && v !== base);
    if (differs(l.latencyNs, u.latencyNs, 0)) parts.push({ feature: 'latency', part: `${key}.latency`, text: fmtDuration(l.latencyNs), link });
    if (differs(l.jitterNs, u.jitterNs, 0)) parts.push({ feature: 'jitter', part: `${key}.jitter`, text: fmtDuration(l.jitterNs), link });
    if (differs(l.loss, u.loss, 0)) parts.push({ feature: 'loss', part: `${key}.loss`, text: pctText(l.loss), link });
    if (l.bandwidthBps !== null && (link === null || l.bandwidthBps !== u.bandwidthBps))
      parts.push({ feature: 'bandwidth', part: `${key}.bandwidth`, text: `${l.bandwidthBps} bit/s`, link, bps: l.bandwidthBps });
  };
  addParts(null, u);
  s.links.forEach((l, i) => addParts(i, l));
  return parts;
}

/** The lab's namespaces, each unique even when two scenario names slug alike, and the nodes' bridge ports. */
interface LabNames {
  underlayNs: string;
  nodes: { slug: string; ns: string }[];
  /** Per node, per pod: its namespace. */
  pods: string[][];
  portOf(i: number): string;
}

function labNames(s: Scenario, lab: string): LabNames {
  const uNs = underlayNs(lab);
  const taken = new Set<string>([uNs]);
  const unique = (base: string, fallback: string, prefix: string): { slug: string; ns: string } => {
    const b = base === '' ? fallback : base;
    for (let k = 1; ; k++) {
      const sl = k === 1 ? b : `${b}-${k}`;
      const ns = `${prefix}${sl}`;
      if (!taken.has(ns)) {
        taken.add(ns);
        return { slug: sl, ns };
      }
    }
  };
  const nodes = s.nodes.map((n, i) => unique(slug(n.name, 24), `n${i}`, `${NS_PREFIX}${lab}-`));
  const pods = s.nodes.map((n, i) => n.pods.map((p, j) => unique(slug(p.name, 24), `p${j}`, `${nodes[i]!.ns}-`).ns));
  return { underlayNs: uNs, nodes, pods, portOf: (i) => peerName(i, nodes[i]!.slug) };
}

/** Per node: the shaping classes of the pairs whose path differs from the default, and the link MTU rules. */
interface PairPaths {
  defaultShare: Shaping;
  peerClasses: { out: PeerClass[]; in: PeerClass[] }[];
  mtuRules: MtuRule[][];
  /** Nodes whose uplink must not send super-frames (a link MTU below the underlay's is enforced by a filter). */
  gsoCap: Set<number>;
  /** Links whose path gets its own classes. */
  classLinks: Set<number>;
}

function pairPaths(s: Scenario, index: ReadonlyMap<string, number>, books: PlanBooks): PairPaths {
  const u = s.underlay;
  const without = books.without;
  const pathOf = (l: LinkSpec | null): PathParams => ({
    latencyNs: l?.latencyNs ?? u.latencyNs,
    jitterNs: l?.jitterNs ?? u.jitterNs,
    loss: l?.loss ?? u.loss,
    bandwidthBps: l?.bandwidthBps ?? u.bandwidthBps,
  });
  const defaultShare = egressShare(pathOf(null), without);
  const peerClasses = s.nodes.map(() => ({ out: [] as PeerClass[], in: [] as PeerClass[] }));
  const mtuRules: MtuRule[][] = s.nodes.map(() => []);
  const gsoCap = new Set<number>();
  const classLinks = new Set<number>();
  s.links.forEach((l, li) => {
    const a = index.get(l.a)!;
    const b = index.get(l.b)!;
    const share = egressShare(pathOf(l), without);
    if (!sameShaping(share, defaultShare)) {
      classLinks.add(li);
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        peerClasses[x]!.out.push({ peer: s.nodes[y]!.name, match: 'dst', peerIp: s.nodes[y]!.underlayIp, shaping: share });
        peerClasses[x]!.in.push({ peer: s.nodes[y]!.name, match: 'src', peerIp: s.nodes[y]!.underlayIp, shaping: share });
      }
    }
    if (l.mtu !== null && l.mtu < u.mtu) {
      const part = `links[${li}].mtu`;
      if (without.has('linkMtu')) {
        books.omitted.push({ feature: 'linkMtu', part, what: `${part} ${l.mtu} between ${l.a} and ${l.b} left out` });
        return;
      }
      books.need('clsact', part, 'linkMtu');
      books.need('bpf', part, 'linkMtu');
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const)
        mtuRules[x]!.push({ peer: s.nodes[y]!.name, peerIp: s.nodes[y]!.underlayIp, mtu: l.mtu });
      gsoCap.add(a).add(b);
    }
  });
  return { defaultShare, peerClasses, mtuRules, gsoCap, classLinks };
}

/** What each shaping part needs of the kernel, now that it is known which egresses get classes. */
function partNeeds(parts: readonly ShapingPart[], paths: PairPaths, books: PlanBooks): void {
  const anyClasses = paths.peerClasses.some((c) => c.out.length > 0);
  const allClasses = paths.peerClasses.every((c) => c.out.length > 0);
  for (const p of parts) {
    if (books.without.has(p.feature)) {
      books.omitted.push({ feature: p.feature, part: p.part, what: `${p.part} ${p.text} left out` });
      continue;
    }
    if (p.bps !== undefined && p.bps < 8)
      books.refusals.push({ part: p.part, feature: p.feature, reason: `${p.bps} bit/s: tc's rates count whole bytes per second (at least 8 bit/s)` });
    if (p.feature !== 'bandwidth') books.need('netem', p.part, p.feature);
    else if (p.link !== null) books.need('htb', p.part, p.feature);
    else {
      if (!allClasses) books.need('tbf', p.part, p.feature);
      if (anyClasses) books.need('htb', p.part, p.feature);
    }
    if (p.link !== null && paths.classLinks.has(p.link)) {
      books.need('htb', p.part, p.feature);
      books.need('u32', p.part, p.feature);
    }
  }
}

/**
 * The scenario's faults as commands at their times: a node's uplink set down and up on the underlay
 * bridge, a path cut by a BPF filter on both nodes' bridge ports. `clsactFor`: the nodes whose port needs
 * a clsact qdisc for those filters.
 */
function planFaults(s: Scenario, names: LabNames, index: ReadonlyMap<string, number>, books: PlanBooks): { faults: LabFaultAction[]; clsactFor: Set<number> } {
  const uNs = names.underlayNs;
  const faults: LabFaultAction[] = [];
  const faultPairs: string[] = [];
  const clsactFor = new Set<number>();
  s.faults.forEach((f, fi) => {
    const part = `faults[${fi}]`;
    const feature: LabFeature = f.target.kind === 'node' ? 'nodeFaults' : 'linkFaults';
    const targetText = f.target.kind === 'node' ? `node ${f.target.node}` : `path ${f.target.a}-${f.target.b}`;
    if (books.without.has(feature)) {
      books.omitted.push({ feature, part, what: `${part} (${targetText} ${f.action} at ${fmtDuration(f.atNs)}) left out` });
      return;
    }
    const steps: { atNs: number; action: 'down' | 'up' }[] = [{ atNs: f.atNs, action: f.action }];
    if (f.forNs !== null) steps.push({ atNs: f.atNs + f.forNs, action: 'up' });
    for (const st of steps) {
      let commands: string[][];
      let benign: string | null = null;
      if (f.target.kind === 'node') {
        const i = index.get(f.target.node)!;
        commands = [['ip', '-n', uNs, 'link', 'set', names.portOf(i), st.action]];
      } else {
        books.need('clsact', part, feature);
        books.need('bpf', part, feature);
        const a = index.get(f.target.a)!;
        const b = index.get(f.target.b)!;
        const key = a < b ? `${a}-${b}` : `${b}-${a}`;
        let q = faultPairs.indexOf(key);
        if (q < 0) q = faultPairs.push(key) - 1;
        const pref = FAULT_PREF_BASE + q;
        clsactFor.add(a).add(b);
        commands = [
          [a, b],
          [b, a],
        ].map(([x, y]) =>
          st.action === 'down'
            ? bpfFilter('replace', uNs, names.portOf(x!), pref, dropBytecode(s.nodes[y!]!.underlayIp, null))
            : ['tc', '-n', uNs, 'filter', 'del', 'dev', names.portOf(x!), 'ingress', 'pref', String(pref)],
        );
        if (st.action === 'up') benign = 'Cannot find specified filter chain';
      }
      faults.push({
        atNs: st.atNs,
        action: st.action,
        target: f.target,
        fault: fi,
        what: `${targetText} ${st.action} at ${fmtDuration(st.atNs)}`,
        commands,
        benignError: benign,
      });
    }
  });
  faults.sort((x, y) => x.atNs - y.atNs);
  return { faults, clsactFor };
}

/** The bridge port of node `i`: `n<i>-<slug>`, cut to 15 characters. */
function peerName(i: number, nodeSlug: string): string {
  return `n${i}-${nodeSlug}`.slice(0, IFNAMSIZ).replace(/-+$/, '');
}

// ---------------------------------------------------------------------------------------------------
// Feasibility

export interface FeasibilityOptions extends LabPlanOptions {
  /** What the machine offers (default: `probeHost()`, which only reads files). */
  host?: HostFacts;
}

/** What keeps this machine from running any lab: not Linux, not root, tools missing. */
function hostRefusals(host: HostFacts): LabRefusal[] {
  const out: LabRefusal[] = [];
  if (host.platform !== 'linux')
    out.push({ part: 'host', feature: null, reason: `live labs need Linux (network namespaces, veth, tc); this is ${host.platform}` });
  if (!host.root) out.push({ part: 'host', feature: null, reason: 'live labs need root (creating namespaces, links and qdiscs)' });
  for (const t of LAB_TOOLS) {
    if (host.tools[t] === null) out.push({ part: 'host', feature: null, reason: `${t} is not installed (apt-get install ${TOOL_PACKAGES[t]})` });
  }
  return out;
}

/** Why this plan cannot be built on this machine: the host's refusals, then each kernel piece it lacks. */
export function checkPlanFeasible(plan: LabPlan, host: HostFacts = probeHost()): LabRefusal[] {
  const out = hostRefusals(host);
  for (const n of plan.needs) {
    if (host.kernel[n.kernel] !== false) continue;
    const piece = KERNEL_PIECES[n.kernel];
    out.push({
      part: n.part,
      feature: n.feature,
      reason: `needs ${piece.what} (${piece.config}), which this kernel does not have${host.kernelSource === null ? '' : ` (per ${host.kernelSource})`}`,
    });
  }
  const jitter = plan.needs.find((n) => n.feature === 'jitter');
  if (jitter !== undefined && !host.netemNormalDist)
    out.push({ part: jitter.part, feature: 'jitter', reason: "netem's normal distribution table (normal.dist, from iproute2) is not installed" });
  return out;
}

/**
 * Every reason the scenario, or a part of it, cannot go live on this machine; empty when it can.
 * Nothing is created: the host is only looked at. A part whose `feature` is set can be left out with
 * `without` (the rest then goes live); the others cannot.
 */
export function checkLabFeasible(s: Scenario, opts: FeasibilityOptions = {}): LabRefusal[] {
  const host = opts.host ?? probeHost();
  let plan: LabPlan;
  try {
    plan = planLab(s, opts);
  } catch (e: unknown) {
    if (e instanceof LabPlanError) return [...hostRefusals(host), ...e.refusals];
    throw e;
  }
  return checkPlanFeasible(plan, host);
}
