/**
 * The normalised form of a scenario (scenario.ts parses a file into it): units converted to ns and bit/s,
 * defaults filled in, pod addresses assigned.
 */
import type { EspCipher } from '../mtu/overhead.js';
import type { FragmentPolicy, TunnelMode } from '../overlay/tunnel.js';
import type { TunnelKind } from '../overlay/template.js';

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
