/**
 * Addresses and prefixes as configuration writes them ("10.244.1.5", "fd00::1", "10.244.1.0/24"): the
 * one parser of their text for the tunnel's VTEPs, the gateway's routes, the simulated hosts and the
 * scenario loader, and the masks prefixes match with. Text in, numbers and bytes out; `parse…` throws a
 * RangeError naming `what`, `…FromString` returns null.
 */
import { ipv4FromString, ipv6FromString } from './bytes.js';

/** An IPv4 address as a uint32, or an IPv6 address as 16 bytes; the other member is empty. */
export type Addr = { family: 4; v4: number; v6: null } | { family: 6; v4: 0; v6: Uint8Array };

export interface Prefix4 {
  family: 4;
  addr: number;
  len: number;
}
export interface Prefix6 {
  family: 6;
  addr: Uint8Array;
  len: number;
}
/** An address and a prefix length; the address is kept as written (host bits not cleared). */
export type Prefix = Prefix4 | Prefix6;

export function addrFromString(s: string): Addr | null {
  const v4 = ipv4FromString(s);
  if (v4 !== null) return { family: 4, v4, v6: null };
  const v6 = ipv6FromString(s);
  return v6 === null ? null : { family: 6, v4: 0, v6 };
}

export function parseAddr(s: string, what: string): Addr {
  const a = addrFromString(s);
  if (a === null) throw new RangeError(`${what}: "${s}" is not an IPv4 or IPv6 address`);
  return a;
}

/**
 * "address/length" with a decimal length of at most the family's bits. The address alone (no "/") gives
 * `len` -1, so that a caller can say which half is wrong; null when the address is not one.
 */
function splitPrefix(s: string): { a: Addr; len: number } | null {
  const slash = s.indexOf('/');
  const a = addrFromString(slash < 0 ? s : s.slice(0, slash));
  if (a === null) return null;
  // One to three decimal digits only (Number() would take " 24", "0x18" and "2.4e1" too), read by hand:
  // a 1,000-node simulated cluster parses a million routes while it builds.
  let len = slash < 0 || s.length - slash - 1 < 1 || s.length - slash - 1 > 3 ? -1 : 0;
  for (let i = slash + 1; len >= 0 && i < s.length; i++) {
    const c = s.charCodeAt(i);
    len = c >= 0x30 && c <= 0x39 ? len * 10 + (c - 0x30) : -1;
  }
  return { a, len: len <= (a.family === 4 ? 32 : 128) ? len : -1 };
}

function toPrefix(a: Addr, len: number): Prefix {
  return a.family === 4 ? { family: 4, addr: a.v4, len } : { family: 6, addr: a.v6, len };
}

export function prefixFromString(s: string): Prefix | null {
  const p = splitPrefix(s);
  return p === null || p.len < 0 ? null : toPrefix(p.a, p.len);
}

/** Parses "10.244.1.0/24" or "fd00::/64" (the address part kept as written: `addr` is not masked). */
export function parsePrefix(s: string, what: string): Prefix {
  const p = splitPrefix(s);
  if (p === null) throw new RangeError(`${what}: "${s}" is not an IPv4 or IPv6 prefix (address/length)`);
  if (p.len < 0) throw new RangeError(`${what}: "${s}" needs a prefix length 0-${p.a.family === 4 ? 32 : 128} after "/"`);
  return toPrefix(p.a, p.len);
}

/** The IPv4 netmask of a prefix length 0–32, as a uint32. */
export function mask4(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** The 16-byte netmask of each IPv6 prefix length 0–128, built once. */
const MASK6: readonly Uint8Array[] = Array.from({ length: 129 }, (_, len) =>
  Uint8Array.from({ length: 16 }, (_, i) => (0xff00 >>> Math.max(0, Math.min(8, len - 8 * i))) & 0xff),
);

/** The IPv6 netmask of a prefix length 0–128, 16 bytes (shared: not to be written). */
export function mask6(len: number): Uint8Array {
  return MASK6[len]!;
}

/** Writes the 16 bytes at `src[so]` masked to `len` bits into `out`. */
export function mask6Into(src: Uint8Array, so: number, len: number, out: Uint8Array): void {
  const m = MASK6[len]!;
  for (let i = 0; i < 16; i++) out[i] = src[so + i]! & m[i]!;
}
