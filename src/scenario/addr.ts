/**
 * Addresses and prefixes as the scenario loader checks them: any family as a bigint, so one comparison
 * serves IPv4 and IPv6 (inside a podCIDR, overlapping podCIDRs, the next free address).
 */
import type { TunnelMode } from '../overlay/tunnel.js';
import { addrFromString, prefixFromString } from '../wire/addr.js';
import { ipv4ToString, ipv6ToString } from '../wire/bytes.js';
import type { Reader, V } from './reader.js';
import type { PodSpec } from './types.js';

export interface Cidr {
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

export function ipText(family: 4 | 6, n: bigint): string {
  if (family === 4) return ipv4ToString(Number(n));
  const b = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    b[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return ipv6ToString(b);
}

export const bits = (f: 4 | 6): number => (f === 4 ? 32 : 128);

export function inCidr(c: Cidr, family: 4 | 6, n: bigint): boolean {
  if (family !== c.family) return false;
  const shift = BigInt(bits(family) - c.prefix);
  return n >> shift === c.net >> shift;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = BigInt(bits(a.family) - Math.min(a.prefix, b.prefix));
  return a.net >> p === b.net >> p;
}

/** A podCIDR of either family, host bits zero. */
export function parseCidr(r: Reader, v: V): Cidr {
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

export function addrKey(mode: TunnelMode, pod: PodSpec, ip: string): string {
  // Pods on different l2 segments (VNI, VLAN) may reuse addresses: that is what tenants do.
  return mode === 'l2' ? `${pod.vni}/${pod.vlan ?? 0}/${ip}` : ip;
}

/** Takes `ip` for `pod`: refused when another pod (on the same segment in l2 mode) has it. */
export function claim(r: Reader, addrs: Map<string, string>, mode: TunnelMode, pod: PodSpec, ip: string, v: V): void {
  const k = addrKey(mode, pod, ip);
  const prev = addrs.get(k);
  if (prev !== undefined) r.fail(v, `a unique address (${prev} has it)`, ip);
  addrs.set(k, v.path);
}
