/**
 * What the CNI specification 1.1.0 (SPEC.md of containernetworking/cni) fixes for seine's plugin
 * and agent alike: the versions spoken, the error codes, the shape of a result and its conversion to the
 * version a network configuration asks for, and the request the plugin sends the agent.
 *
 * The plugin (src/cni/) imports this file on its start-up path: it imports nothing.
 */

/** The spec version seine implements. */
export const CNI_SPEC_VERSION = '1.1.0';
/** What VERSION answers: the result formats seine can print (0.4.0 has `version` on each IP). */
export const CNI_SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;

/** Error codes: 1–99 are the spec's ("Error codes"), 100 and up seine's own. */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  /** STATUS: the plugin cannot take ADDs now. */
  NotAvailable: 50,
  /** STATUS: ADDs are taken, but pods would have limited connectivity. */
  LimitedConnectivity: 51,
  /** ADD for a container and interface that are already attached (the spec forbids ADD twice without DEL). */
  AlreadyAttached: 100,
  /** CHECK found the attachment not as ADD left it; `msg` names what differs. */
  CheckFailed: 101,
  /** The agent failed while plugging the pod in (a TAP, an address, a route): `msg` says which step. */
  AttachFailed: 102,
} as const;

/** The spec's error object, printed on stdout with a non-zero exit. */
export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** An error that becomes a CNI error object. */
export class CniError extends Error {
  override readonly name = 'CniError';
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
  }
  toObject(cniVersion: string): CniErrorObject {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details !== '' ? { details: this.details } : {}) };
  }
}

export interface CniInterface {
  name: string;
  mac: string;
  /** 1.1.0 only. */
  mtu?: number;
  /** The namespace path for interfaces inside the container; absent for host interfaces. */
  sandbox?: string;
}
export interface CniIp {
  /** With prefix length: "10.244.1.5/24". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
}
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
/** A success result in the 1.x form (a 0.4.0 one differs by `version` on each IP: `resultFor`). */
export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: CniDns;
}

/** A version's order ("1.0.0" → [1, 0, 0]); null when it is not one. */
function parseVersion(v: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m === null ? null : [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a) ?? [0, 0, 0];
  const y = parseVersion(b) ?? [0, 0, 0];
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** The result as version `v` prints it: 0.4.0 tags each IP with its family; `mtu` on an interface is 1.1.0's. */
export function resultFor(v: string, r: CniResult): Record<string, unknown> {
  const old = compareVersions(v, '1.0.0') < 0;
  const withMtu = compareVersions(v, '1.1.0') >= 0;
  return {
    cniVersion: v,
    interfaces: r.interfaces.map((i) => {
      const { mtu, ...rest } = i;
      return withMtu && mtu !== undefined ? { ...rest, mtu } : rest;
    }),
    ips: r.ips.map((ip) => (old ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : ip)),
    routes: r.routes,
    dns: r.dns,
  };
}

/** What the plugin asks the agent (control op `cni`): the command, the `CNI_*` variables, the network configuration. */
export interface CniRequest {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS';
  containerId: string;
  /** CNI_NETNS: a path; empty when not given (DEL, GC, STATUS). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as given ("K=V;K=V"). */
  args: string;
  /** CNI_PATH: where IPAM plugins are looked up. */
  path: string;
  /** The network configuration from stdin, validated by the plugin (name, cniVersion, type, ipam…). */
  config: Record<string, unknown>;
}

/** The agent's reply to op `cni`: a result (ADD), nothing (others), or the error to print. */
export interface CniReply {
  result?: CniResult;
  cniError?: { code: number; msg: string; details?: string };
}
