/**
 * Byte-level helpers shared by every wire module: big-endian loads and stores, and the text forms of
 * addresses. Loads and stores never check bounds; the view that calls them has checked the length once.
 *
 * MACs are numbers (48 bits fit exactly in a double), IPv4 addresses are unsigned 32-bit numbers, IPv6
 * addresses are 16-byte arrays. Text forms follow Wireshark so `seine decode --json` compares with tshark.
 */

/** A zero-length array, the default target of an unbound view. */
export const EMPTY: Uint8Array = new Uint8Array(0);

export function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function rd24(b: Uint8Array, o: number): number {
  return (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
}
export function wr24(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 16) & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = v & 0xff;
}
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
/** A 48-bit MAC as a number: high 16 bits × 2^32 + low 32 bits (exact in a double). */
export function rdMac(b: Uint8Array, o: number): number {
  return rd16(b, o) * 0x1_0000_0000 + rd32(b, o + 2);
}
export function wrMac(b: Uint8Array, o: number, mac: number): void {
  const hi = Math.floor(mac / 0x1_0000_0000);
  wr16(b, o, hi);
  wr32(b, o + 2, mac - hi * 0x1_0000_0000);
}
/** True for a group (multicast or broadcast) MAC: the I/G bit of the first octet. */
export function macIsGroup(mac: number): boolean {
  return (Math.floor(mac / 0x100_0000_0000) & 1) === 1;
}
export const MAC_BROADCAST = 0xffff_ffff_ffff;

/** `aa:bb:cc:dd:ee:ff`, lower case as Wireshark prints it. */
export function macToString(mac: number): string {
  let s = '';
  for (let i = 5; i >= 0; i--) {
    const octet = Math.floor(mac / 2 ** (8 * i)) & 0xff;
    s += (i === 5 ? '' : ':') + octet.toString(16).padStart(2, '0');
  }
  return s;
}
/**
 * Parses `aa:bb:cc:dd:ee:ff` (or `-` separated, any case); null when it is not a MAC. By character codes,
 * not a regular expression: building a large simulated cluster reads a million of them.
 */
export function macFromString(s: string): number | null {
  if (s.length !== 17) return null;
  let v = 0;
  for (let i = 0; i < 17; i += 3) {
    const hi = hexDigit(s.charCodeAt(i));
    const lo = hexDigit(s.charCodeAt(i + 1));
    if (hi < 0 || lo < 0) return null;
    if (i < 15) {
      const sep = s.charCodeAt(i + 2);
      if (sep !== 0x3a && sep !== 0x2d) return null;
    }
    v = v * 256 + hi * 16 + lo;
  }
  return v;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

export function ipv4ToString(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}
export function ipv4FromString(s: string): number | null {
  // By hand rather than with a regular expression: a 1,000-node simulated cluster parses millions of
  // addresses while it builds, and a match allocates an array and four strings each time.
  let v = 0,
    octet = 0,
    digits = 0,
    dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (++digits > 3) return null;
      octet = octet * 10 + (c - 0x30);
    } else if (c === 0x2e && digits > 0 && dots < 3 && octet <= 255) {
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else return null;
  }
  if (dots !== 3 || digits === 0 || octet > 255) return null;
  return v * 256 + octet;
}

/** RFC 5952 text form: lower case, longest run (≥ 2) of zero groups compressed, first on a tie. */
export function ipv6ToString(b: Uint8Array, o = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(rd16(b, o + 2 * i));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}
export function ipv6FromString(s: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    const r: number[] = [];
    for (const x of groups) {
      if (!/^[0-9a-f]{1,4}$/i.test(x)) return null;
      r.push(parseInt(x, 16));
    }
    return r;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1 ? head.length !== 8 : head.length + tail.length > 7) return null;
  head.forEach((x, i) => wr16(out, 2 * i, x));
  tail.forEach((x, i) => wr16(out, 16 - 2 * tail.length + 2 * i, x));
  return out;
}

export function hex(b: Uint8Array, o = 0, len = b.length - o): string {
  let s = '';
  for (let i = 0; i < len; i++) s += b[o + i]!.toString(16).padStart(2, '0');
  return s;
}
/** Whether the 16 bytes at `b[o]` equal those at `a[ao]` (IPv6 addresses in place). */
export function eq16(b: Uint8Array, o: number, a: Uint8Array, ao = 0): boolean {
  for (let i = 0; i < 16; i++) if (b[o + i] !== a[ao + i]) return false;
  return true;
}

/** Copies 16 bytes (an IPv6 address) from `a[ao…]` to `b[o…]` without a view object. */
export function copy16(b: Uint8Array, o: number, a: Uint8Array, ao = 0): void {
  for (let i = 0; i < 16; i += 4) wr32(b, o + i, rd32(a, ao + i));
}

export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(clean)) throw new TypeError(`not hex: ${s.slice(0, 40)}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}
