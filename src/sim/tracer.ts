/**
 * `seine trace`: one packet injected into a simulated cluster and every decision on its way, like OVS's
 * ofproto/trace or Antrea's Traceflow — but the packet really crosses the simulated datapath: the source
 * pod sends it (after ARP, untraced), the first frame it puts on the wire towards the destination gets the
 * trace flag, and each bridge stage, the underlay path and the receiving pod say what they did.
 *
 * The scenario's topology, links and faults are used; its traffic is not. `atNs` picks the moment (a
 * fault may be in force then).
 */
import { formatTraceDetail, type TraceRecord } from '../datapath/trace.js';
import { ipv4ToString, ipv6ToString, rd16, rd32 } from '../wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../wire/ethernet.js';
import type { SimTask } from './engine.js';
import { Cluster, SimBuildError, TCP_PORT, type PodRt } from './cluster.js';
import type { Scenario } from '../scenario/scenario.js';

export type TraceProto = 'icmp' | 'udp' | 'tcp';

export interface TraceRequest {
  /** `node/pod`, or `node` for the node's own stack (routed mode). */
  from: string;
  /** `node/pod`, or `node` for the node's gateway address. */
  to: string;
  proto: TraceProto;
  /** IP packet bytes (default 84 for ICMP over IPv4, 104 over IPv6; 100 for UDP; TCP sends a SYN). */
  size?: number;
  /** Default 4 when both ends have an IPv4 address. */
  family?: 4 | 6;
  /** When to send (simulated time, default 0). */
  atNs?: number;
  seed?: number;
}

/**
 * Stages the worlds around the datapath add to its trace records: the simulator's `send` (a pod
 * sending), `underlay` (a frame crossing it) and `deliver` (a pod receiving), which a live trace shares,
 * and the live node's `coalesce` (a pod's TAP with TSO merging TCP segments into a super-frame, or not).
 */
export type WorldStage = 'send' | 'underlay' | 'deliver' | 'coalesce';

export interface TraceStep extends TraceRecord {
  /** Simulated time of the decision, ns. */
  t: number;
}

export interface TraceResult {
  scenario: string;
  from: string;
  to: string;
  proto: TraceProto;
  family: 4 | 6;
  src: string;
  dst: string;
  size: number;
  steps: TraceStep[];
  /** delivered, dropped (with `reason`), lost (vanished on the underlay), or not-sent. */
  outcome: 'delivered' | 'dropped' | 'lost' | 'not-sent';
  reason: string | null;
}

const HOW_LONG_NS = 3e9;

/** Sends the traced packet at the chosen moment. */
class Inject implements SimTask {
  constructor(private readonly go: () => void) {}
  run(): void {
    this.go();
  }
}

function resolve(c: Cluster, ep: string, what: string): { node: string; pod: PodRt | null } {
  const [node, pod, ...rest] = ep.split('/');
  const names = [...c.nodes.keys()];
  const n = node === undefined ? undefined : c.nodes.get(node);
  if (n === undefined || rest.length > 0) throw new SimBuildError(`${what} '${ep}': expected node/pod with a node of ${names.join(', ')}`);
  if (pod === undefined || pod === '') return { node: n.spec.name, pod: n.stack };
  const p = n.pods.get(pod);
  if (p === undefined) throw new SimBuildError(`${what} '${ep}': node ${node} has no pod ${pod} (its pods: ${[...n.pods.keys()].join(', ') || 'none'})`);
  return { node: n.spec.name, pod: p };
}

export function traceScenario(s: Scenario, req: TraceRequest): TraceResult {
  const c = new Cluster(s, {
    traffic: false,
    tracing: true,
    capture: false,
    largestPacket: req.size ?? 0,
    nodeStacks: s.tunnel.mode === 'routed',
    ...(req.seed !== undefined ? { seed: req.seed } : {}),
  });
  // A node stands for its own stack, which exists in routed mode (it sits behind the gateway).
  const src = resolve(c, req.from, '--from');
  const dst = resolve(c, req.to, '--to');
  for (const [e, opt] of [
    [src, `--from '${req.from}'`],
    [dst, `--to '${req.to}'`],
  ] as const) {
    if (e.pod === null) throw new SimBuildError(`${opt}: a node's own stack sits behind its gateway, which l2 mode has not; give a pod (node/pod)`);
  }
  const sp = src.pod!,
    dp = dst.pod!;
  const family: 4 | 6 = req.family ?? (sp.spec.ip4 !== null && dp.spec.ip4 !== null ? 4 : 6);
  const srcAddr = family === 4 ? sp.spec.ip4 : sp.spec.ip6;
  const dstAddr = family === 4 ? dp.spec.ip4 : dp.spec.ip6;
  if (srcAddr === null) throw new SimBuildError(`--from '${req.from}' has no IPv${family} address`);
  if (dstAddr === null) throw new SimBuildError(`--to '${req.to}' has no IPv${family} address`);
  const hdr = family === 4 ? 20 : 40;
  const size = req.proto === 'tcp' ? hdr + 20 + 4 : (req.size ?? (req.proto === 'icmp' ? hdr + 64 : 100));
  if (req.proto === 'tcp' && req.size !== undefined) throw new SimBuildError("--size: a TCP trace follows the connection's SYN, whose size is fixed");
  const min = hdr + (req.proto === 'udp' ? 8 + 16 : 8);
  if (req.proto !== 'tcp' && (!Number.isInteger(size) || size < min || size > 65535))
    throw new SimBuildError(`--size ${size}: expected an IP packet size in ${min}-65535 for ${req.proto} over IPv${family}`);
  const proto = req.proto === 'icmp' ? (family === 4 ? 1 : 58) : req.proto === 'udp' ? 17 : 6;

  const steps: TraceStep[] = [];
  const add = (r: TraceRecord): void => {
    steps.push({ ...r, t: c.sim.now });
  };
  for (const n of c.nodes.values()) n.bridge.trace = add;
  c.fabric.trace = add;

  let marked = false;
  let delivered: string | null = null;
  // The first frame from the source towards the destination with the protocol gets the flag.
  sp.observer!.onRx = (p): void => {
    if (marked) return;
    const b = p.data,
      o = p.start;
    if (p.end - o < 14 + hdr) return;
    const et = rd16(b, o + 12);
    let match = false;
    if (family === 4 && et === ETHERTYPE_IPV4) match = b[o + 14 + 9] === proto && ipv4ToString(rd32(b, o + 30)) === dstAddr;
    else if (family === 6 && et === ETHERTYPE_IPV6) match = b[o + 14 + 6] === proto && ipv6ToString(b, o + 38) === dstAddr;
    if (!match) return;
    marked = true;
    p.traced = true;
    const frag = family === 4 && (rd16(b, o + 14 + 6) & 0x2000) !== 0;
    const what = frag
      ? `the first fragment (${p.length - 14} bytes of IP) of a ${size}-byte datagram the pod fragmented for its MTU ${sp.host.mtu}; the trace follows it`
      : `${p.length - 14} bytes of IP`;
    add({
      node: src.node,
      stage: 'send',
      port: sp.spec.name,
      action: `${req.proto.toUpperCase()} ${srcAddr} → ${dstAddr}, ${what}`,
      detail: { src: srcAddr, dst: dstAddr, bytes: p.length - 14, ...(frag ? { datagram: size } : {}) },
    });
  };
  for (const n of c.nodes.values()) {
    for (const pod of n.stack === null ? n.pods.values() : [...n.pods.values(), n.stack]) {
      pod.observer!.onTx = (p): void => {
        if (!p.traced || delivered !== null) return;
        // The pod may answer in the same buffer: the answer is not part of the trace.
        p.traced = false;
        if (pod === dp) {
          delivered = `${n.spec.name}/${pod.spec.name}`;
          const who = pod === n.stack ? `the node's own stack` : `pod ${pod.spec.name}`;
          add({
            node: n.spec.name,
            stage: 'deliver',
            port: pod.spec.name,
            action: `delivered to ${who} (${p.length - 14} bytes of IP)`,
            detail: { pod: delivered },
          });
        } else {
          // An ICMP error built from the traced packet (it keeps the flag), or a flood copy.
          const what =
            pod === sp
              ? `back at the sender ${pod.spec.name}: an answer or ICMP error built in the traced buffer`
              : `a copy reached pod ${pod.spec.name}, not the destination`;
          add({
            node: n.spec.name,
            stage: 'deliver',
            port: pod.spec.name,
            action: `${what} (${p.length - 14} bytes of IP)`,
            detail: { pod: `${n.spec.name}/${pod.spec.name}` },
          });
        }
      };
    }
  }

  const at = req.atNs ?? 0;
  c.sim.schedule(
    at,
    new Inject(() => {
      if (req.proto === 'icmp') sp.host.ping({ dst: dstAddr, count: 1, size: size - hdr - 8, df: family === 4 });
      else if (req.proto === 'udp') {
        dp.host.udpSink(33434);
        sp.host.udpFlow({ dst: dstAddr, dstPort: 33434, ratePps: 1, sizes: size, count: 1 });
      } else {
        // A connection's SYN (the MSS option shows the clamping).
        dp.host.tcpListen(TCP_PORT);
        sp.host.tcpSend({ dst: dstAddr, dstPort: TCP_PORT, bytes: 1 });
      }
    }),
    0,
  );
  c.sim.run(at + HOW_LONG_NS);

  let outcome: TraceResult['outcome'];
  let reason: string | null = null;
  const lastDrop = [...steps].reverse().find((x) => x.stage === 'drop');
  if (!marked) {
    outcome = 'not-sent';
    const hc = sp.host.counters;
    reason =
      hc.neighDrops > 0
        ? 'the source pod never resolved its next hop (ARP/ND failed)'
        : `the source pod did not send it: larger than its MTU ${sp.host.mtu} or its path MTU with DF`;
  } else if (
    delivered !== null ||
    (req.proto === 'icmp' && steps.some((x) => x.node === dst.node && x.stage === 'route' && x.detail['local'] === 'echo reply'))
  )
    outcome = 'delivered';
  else if (lastDrop !== undefined) {
    outcome = 'dropped';
    reason = lastDrop.action.replace(/^dropped:?\s*/, '');
  } else {
    outcome = 'lost';
    reason = 'it never arrived (lost on the underlay or held)';
  }
  return { scenario: s.name, from: req.from, to: req.to, proto: req.proto, family, src: srcAddr, dst: dstAddr, size, steps, outcome, reason };
}

function fmtT(ns: number): string {
  return `${(ns / 1e6).toFixed(6)}ms`;
}

export function formatTrace(r: TraceResult): string {
  const out = [`trace ${r.proto.toUpperCase()} ${r.from} (${r.src}) → ${r.to} (${r.dst}), ${r.size} bytes of IP, scenario ${r.scenario}`, ''];
  const rows = r.steps.map((s) => [fmtT(s.t), s.node, s.stage, s.port, s.action, formatTraceDetail(s.detail)]);
  const w = [0, 0, 0, 0];
  for (const x of rows) for (let i = 0; i < 4; i++) if (x[i]!.length > w[i]!) w[i] = x[i]!.length;
  for (const x of rows)
    out.push(
      `${x[0]!.padStart(w[0]!)}  ${x[1]!.padEnd(w[1]!)}  ${x[2]!.padEnd(w[2]!)}  ${x[3]!.padEnd(w[3]!)}  ${x[4]}${x[5] === '' ? '' : `\n${' '.repeat(w[0]! + w[1]! + w[2]! + w[3]! + 8)}${x[5]}`}`,
    );
  out.push('', `outcome: ${r.outcome}${r.reason !== null ? ` — ${r.reason}` : ''}`);
  return out.join('\n');
}
