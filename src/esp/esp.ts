/**
 * ESP in transport mode over the outer (tunnel) IP packet, as Antrea's and OVS's IPsec use it (RFC 4303
 * §3.1.1), optionally inside UDP on port 4500 (RFC 3948) — encrypted and decrypted in place in the
 * packet buffer.
 *
 * Protecting (`espProtect`) turns
 *
 * ```text
 *   link | IP (+ unfragmentable IPv6 extension headers) | payload
 * into
 *   link | IP | [UDP] | SPI | seq | IV | payload | padding | pad len | next hdr | ICV
 *                                      \_________ encrypted ____________________/
 * ```
 *
 * The link and IP headers move back into the headroom by 16 bytes (24 with UDP); the payload stays where
 * it is and is encrypted in place; padding (1, 2, 3, … up to a 4-byte boundary: both AEADs are stream
 * ciphers, block size 1), the trailer and the ICV go into the tailroom (at most 3 + 2 + 16 bytes). The
 * layout is exactly `espOverhead` (mtu/overhead.ts). Unprotecting reverses it, moving the headers forward.
 *
 * Checks come in cost order and the packet is used only once authenticated: outer headers, SPI lookup,
 * the anti-replay pre-check, then decryption with ICV verification, then the window update, then the
 * trailer. A failed check leaves the buffer as it arrived, except after `EspAuthFailed` with ChaCha20-
 * Poly1305, where libsodium zero-fills the ciphertext (the buffer is not restored; see esp/aead.ts), and
 * after `EspBadPadding`, where the payload is decrypted in place but the headers are as received.
 *
 * Neither function throws on any bytes, and neither allocates beyond what the AEAD backend forces
 * (esp/aead.ts).
 *
 * The live datapath does the same work over a batch (`EspSealBatch`, `EspOpenBatch` at the end of this
 * file): the checks and header work per packet as here, the AEAD of the whole batch in one call
 * (esp/aead-batch.ts: the native addon), the same bytes. A packet that fails authentication in a native
 * batch is left as it arrived.
 */
import type { PacketBuf } from '../packet/buf.js';
import { rd16, rd32, wr16 } from '../wire/bytes.js';
import { fold, onesSum, pseudoSumV6At, updateChecksum16 } from '../wire/checksum.js';
import { DropReason } from '../wire/drop.js';
import { ESP_HEADER_LEN, ESP_NEXT_HEADER_DUMMY, ESP_TRAILER_LEN, ESP_UDP_PORT, espPadLen } from '../wire/esp.js';
import { IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPPROTO_ESP, IPPROTO_UDP } from '../wire/ipproto.js';
import {
  IPV6_FRAG_HEADER_LEN,
  IPV6_HEADER_LEN,
  IPV6_NH_AH,
  IPV6_NH_DEST_OPTS,
  IPV6_NH_FRAGMENT,
  IPV6_NH_HOP_BY_HOP,
  IPV6_NH_ROUTING,
  Ipv6Walk,
  walkIpv6,
} from '../wire/ipv6.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import { AeadBatch, type NativeAead } from './aead-batch.js';
import { ESP_ICV_LEN, ESP_IV_LEN, type InboundSa, type OutboundSa } from './sa.js';

/** What `espUnprotect` returns for a packet that is not ESP; the packet is untouched (see there). */
export const ESP_NOT_ESP = -1;
/**
 * What `espUnprotect` returns for an authenticated dummy packet (next header 59, RFC 4303 §2.6): the
 * receiver discards it silently. Not a drop; counted in the SA's `packets`.
 */
export const ESP_DUMMY = -2;

/** ESP header and IV in front of the payload. */
const ESP_FRONT = ESP_HEADER_LEN + ESP_IV_LEN;
/** The smallest ESP packet: header, IV, the two trailer bytes, ICV. */
const ESP_MIN_LEN = ESP_FRONT + ESP_TRAILER_LEN + ESP_ICV_LEN;
/** Padding aligns to 4 bytes: both AEADs are stream ciphers (block size 1, RFC 4106 §3.2, RFC 7634 §3). */
const BLOCK_SIZE = 1;

export interface EspUdpEncap {
  srcPort: number;
  /** 4500 between peers that found a NAT (RFC 3948 §2). */
  dstPort: number;
}

export interface EspProtectOptions {
  /** ESP-in-UDP (RFC 3948) with these ports; absent: plain ESP, IP protocol 50. */
  udpEncap?: EspUdpEncap | undefined;
}

/**
 * Where the ESP (or ESP-in-UDP) header goes in an outgoing packet, and what it carries. Filled by
 * `locate`; one module-level instance, as everything here runs to completion without yielding.
 */
class Site {
  /** Offset of the first byte ESP protects (the IP payload after the unfragmentable part). */
  ins = 0;
  /** End of the IP packet (link-layer padding may follow). */
  ipEnd = 0;
  /** Offset of the byte naming the protocol at `ins`: IPv4's protocol field or an IPv6 next-header byte. */
  nhOff = 0;
  /** IPv6: where the upper-layer pseudo-header's destination address is. */
  pseudoDst = 0;
  v6 = false;
  // Set by `protectFrame`: the ESP packet to seal, and for ESP-in-UDP over IPv6 the checksum's inputs.
  esp = 0;
  espEnd = 0;
  udpV6 = false;
  udp = 0;
  udpLen = 0;
  src = 0;
}
const site = new Site();
const walk = new Ipv6Walk();

/**
 * Finds the outer packet at `l3` and where ESP goes: after the IPv4 header with its options, or after the
 * IPv6 header and the unfragmentable part — Hop-by-Hop, Routing, and Destination Options that precede a
 * Routing header (RFC 4303 §3.1.1, RFC 8200 §4.5). 0, or the reason the packet cannot be protected.
 */
function locate(b: Uint8Array, start: number, end: number, l3: number, s: Site): number {
  if (!(l3 >= start && end - l3 >= 1)) return DropReason.Ipv4Truncated;
  const ver = b[l3]! >>> 4;
  if (ver === 4) {
    if (end - l3 < IPV4_HEADER_LEN) return DropReason.Ipv4Truncated;
    const hl = (b[l3]! & 0x0f) << 2;
    if (hl < IPV4_HEADER_LEN || hl > end - l3) return DropReason.Ipv4BadHeaderLen;
    const tl = rd16(b, l3 + 2);
    if (tl < hl || tl > end - l3) return DropReason.Ipv4BadTotalLen;
    // RFC 4303 §3.3.4: ESP protects whole datagrams; fragmentation comes after it.
    if ((rd16(b, l3 + 6) & 0x3fff) !== 0) return DropReason.TunnelFragment;
    s.v6 = false;
    s.ins = l3 + hl;
    s.ipEnd = l3 + tl;
    s.nhOff = l3 + 9;
    return 0;
  }
  if (ver === 6) {
    if (end - l3 < IPV6_HEADER_LEN) return DropReason.Ipv6Truncated;
    const ipEnd = l3 + IPV6_HEADER_LEN + rd16(b, l3 + 4);
    if (ipEnd > end) return DropReason.Ipv6BadPayloadLen;
    const r = walkIpv6(b, l3, ipEnd, walk);
    if (r !== null) return r;
    if (walk.fragOff >= 0) return DropReason.TunnelFragment;
    // The chain up to walk.upperOff is within the packet (walkIpv6 checked it); stop at the first header
    // that belongs after ESP.
    let nhOff = l3 + 6;
    let o = l3 + IPV6_HEADER_LEN;
    let nh = b[nhOff]!;
    while (o < walk.upperOff && (nh === IPV6_NH_HOP_BY_HOP || nh === IPV6_NH_ROUTING || (nh === IPV6_NH_DEST_OPTS && b[o] === IPV6_NH_ROUTING))) {
      nhOff = o;
      nh = b[o]!;
      o += (b[o + 1]! + 1) << 3;
    }
    s.v6 = true;
    s.ins = o;
    s.ipEnd = ipEnd;
    s.nhOff = nhOff;
    s.pseudoDst = walk.pseudoDstOff < o ? walk.pseudoDstOff : l3 + 24;
    return 0;
  }
  return DropReason.Ipv4BadVersion;
}

/*
 * Header moves by 32-bit words: for the few dozen bytes of link and IP headers this is cheaper than
 * `copyWithin`, which measured ~70 ns next to the AEAD call on the protect path. The distance is at least
 * 16 bytes, so a word is always read before anything is written over it.
 */

/** Moves `b[from, from+len)` down to `to` (< from): front to back. */
function moveDown(b: Uint8Array, dv: DataView, from: number, to: number, len: number): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) dv.setUint32(to + i, dv.getUint32(from + i));
  for (; i < len; i++) b[to + i] = b[from + i]!;
}

/** Moves `b[from, from+len)` up to `to` (> from): back to front. */
function moveUp(b: Uint8Array, dv: DataView, from: number, to: number, len: number): void {
  let i = len;
  for (; i >= 4; i -= 4) dv.setUint32(to + i - 4, dv.getUint32(from + i - 4));
  for (; i > 0; i--) b[to + i - 1] = b[from + i - 1]!;
}

/**
 * Protects the outer IP packet at `l3` of the frame in `p` (link header in `[p.start, l3)`) with the SA:
 * the next sequence number (the IV is that number), padding, trailer, encryption in place and ICV, then
 * the IP protocol / next header (50, or 17 with `udpEncap`), the IPv4 total length and header checksum
 * (updated incrementally, RFC 1624) or the IPv6 payload length, and the UDP header (checksum zero over
 * IPv4 as RFC 3948 §2.1 allows, computed over IPv6, RFC 8200 §8.1).
 *
 * Afterwards `p.start`/`p.end` frame the protected packet, `p.l2`/`p.l3` have moved with the headers,
 * `p.l4` is the ESP (or UDP) header, the inner offsets are -1, and `sa.seqHi`/`sa.seqLo` are the packet's
 * sequence number (with `sa.spi`, what a trace records).
 *
 * Returns 0 or the reason nothing was done (the packet and the SA are then unchanged, except for the drop
 * counter of `EspSaExhausted`): the outer packet does not parse; it is a fragment (`TunnelFragment`:
 * ESP comes before fragmentation); the buffer has less than 16 (24) bytes of headroom or
 * padding + 18 bytes of tailroom behind the IP packet (`HeadroomShort`); the result would exceed 65,535
 * bytes (`MtuExceeded`); the SA is expired or its sequence numbers are used up (`EspSaExhausted`).
 */
export function espProtect(p: PacketBuf, l3: number, sa: OutboundSa, now: number, opts?: EspProtectOptions): number {
  const s = site;
  const r = protectFrame(p, l3, sa, now, opts, s);
  if (r !== 0) return r;
  // The IV is the sequence number. (seal fails only for ranges outside `b`, excluded by protectFrame.)
  sa.crypto.seal(p.data, s.esp, s.espEnd, sa.seqHi, sa.seqHi, sa.seqLo);
  if (s.udpV6) udpChecksumV6(p.data, s);
  return 0;
}

/**
 * Everything of `espProtect` but the AEAD and, for ESP-in-UDP over IPv6, the UDP checksum (it covers the
 * ciphertext): the SA's next sequence number, the headers moved and rewritten, the trailer, the ESP header
 * and the packet's offsets. `s.esp`/`s.espEnd` frame the ESP packet to seal; `s.udpV6` says the checksum
 * is owed (`udpChecksumV6`, after sealing).
 */
function protectFrame(p: PacketBuf, l3: number, sa: OutboundSa, now: number, opts: EspProtectOptions | undefined, s: Site): number {
  const b = p.data;
  const r = locate(b, p.start, p.end, l3, s);
  if (r !== 0) return r;
  const udp = opts?.udpEncap;
  const front = udp === undefined ? ESP_FRONT : ESP_FRONT + UDP_HEADER_LEN;
  const ins = s.ins;
  const ipEnd = s.ipEnd;
  const payLen = ipEnd - ins;
  const pad = espPadLen(payLen, BLOCK_SIZE);
  const ptEnd = ipEnd + pad + ESP_TRAILER_LEN;
  const tail = pad + ESP_TRAILER_LEN + ESP_ICV_LEN;
  if (p.start < front || b.length - ipEnd < tail) return DropReason.HeadroomShort;
  const oldLen = s.v6 ? rd16(b, l3 + 4) : rd16(b, l3 + 2);
  const newLen = oldLen + front + tail;
  if (newLen > 0xffff) return DropReason.MtuExceeded;
  if (sa.expired(now) || !sa.next()) {
    sa.drops[DropReason.EspSaExhausted]!++;
    return DropReason.EspSaExhausted;
  }
  const nextHeader = b[s.nhOff]!;
  // Headers back into the headroom; the payload stays put.
  const start = p.start;
  moveDown(b, p.view, start, start - front, ins - start);
  const esp = ins - ESP_FRONT;
  const dv = p.view;
  dv.setUint32(esp, sa.spi);
  dv.setUint32(esp + 4, sa.seqLo);
  // Trailer: padding 1, 2, 3, … (RFC 4303 §2.4), pad length, next header.
  for (let i = 0; i < pad; i++) b[ipEnd + i] = i + 1;
  b[ipEnd + pad] = pad;
  b[ipEnd + pad + 1] = nextHeader;
  s.esp = esp;
  s.espEnd = ptEnd + ESP_ICV_LEN;
  s.udpV6 = false;
  const nl3 = l3 - front;
  const proto = udp === undefined ? IPPROTO_ESP : IPPROTO_UDP;
  b[s.nhOff - front] = proto;
  if (s.v6) {
    wr16(b, nl3 + 4, newLen);
  } else {
    const ck = rd16(b, nl3 + 10);
    const ttl = b[nl3 + 8]! << 8;
    wr16(b, nl3 + 2, newLen);
    wr16(b, nl3 + 10, updateChecksum16(updateChecksum16(ck, oldLen, newLen), ttl | nextHeader, ttl | proto));
  }
  if (udp !== undefined) {
    const u = ins - front;
    const udpLen = ptEnd + ESP_ICV_LEN - u;
    dv.setUint32(u, ((udp.srcPort & 0xffff) << 16) | (udp.dstPort & 0xffff));
    dv.setUint32(u + 4, udpLen << 16);
    if (s.v6) {
      s.udpV6 = true;
      s.udp = u;
      s.udpLen = udpLen;
      s.src = nl3 + 8;
      s.pseudoDst -= front;
    }
    p.l4 = u;
  } else {
    p.l4 = esp;
  }
  p.start = start - front;
  p.end = ptEnd + ESP_ICV_LEN;
  if (p.l2 >= 0) p.l2 -= front;
  p.l3 = nl3;
  p.innerL2 = p.innerL3 = p.innerL4 = -1;
  sa.packets++;
  sa.bytes += payLen;
  return 0;
}

/** The UDP checksum of ESP-in-UDP over IPv6 (RFC 8200 §8.1: mandatory), over the sealed packet. */
function udpChecksumV6(b: Uint8Array, s: Site | UdpV6Pending): void {
  const u = s.udp;
  const c = ~fold(onesSum(b, u, s.udpLen, pseudoSumV6At(b, s.src, s.pseudoDst, IPPROTO_UDP, s.udpLen))) & 0xffff;
  wr16(b, u + 6, c === 0 ? 0xffff : c);
}

/** What `udpChecksumV6` needs once a batch is sealed. */
interface UdpV6Pending {
  udp: number;
  udpLen: number;
  src: number;
  pseudoDst: number;
}

/**
 * What `espUnprotect` learned about a packet, for trace records: filled as far as the packet got (the
 * SPI once the header is read, the SA once found, the high sequence bits once inferred, the next header
 * once decrypted). Allocate one and pass it to every call.
 */
export class EspRxInfo {
  spi = 0;
  seqHi = 0;
  seqLo = 0;
  sa: InboundSa | null = null;
  /** The packet came in UDP (RFC 3948). */
  udpEncap = false;
  /** The protocol ESP carried, or -1 before decryption. */
  nextHeader = -1;

  clear(): void {
    this.spi = this.seqHi = this.seqLo = 0;
    this.sa = null;
    this.udpEncap = false;
    this.nextHeader = -1;
  }

  copy(o: EspRxInfo): void {
    this.spi = o.spi;
    this.seqHi = o.seqHi;
    this.seqLo = o.seqLo;
    this.sa = o.sa;
    this.udpEncap = o.udpEncap;
    this.nextHeader = o.nextHeader;
  }
}

/** Where the ESP packet of an incoming datagram is. Filled by `find`. */
class Found {
  /** Offset of ESP's first byte, and the end of the ESP packet. */
  esp = 0;
  espEnd = 0;
  /** Offset of what ESP is removed from (the UDP header with encapsulation, else the ESP header). */
  cut = 0;
  /** Offset of the byte naming the protocol at `cut`. */
  nhOff = 0;
  ipEnd = 0;
  v6 = false;
  udp = false;
  // Set by `unprotectCheck` for a packet to open: its SA and sequence number.
  sa: InboundSa | null = null;
  seqHi = 0;
  seqLo = 0;
}
const found = new Found();

/**
 * A fragment of ESP or of UDP is `TunnelFragment`, to be reassembled and looked at again whole: only the
 * first fragment of a UDP datagram shows its port, and the others of an ESP-in-UDP packet must not be
 * taken for cleartext (they would be refused as `EspRequired` and the datagram never completed). A UDP
 * datagram that turns out not to be ESP is refused after reassembly as any other.
 */
function fragmentVerdict(proto: number): number {
  return proto === IPPROTO_ESP || proto === IPPROTO_UDP ? DropReason.TunnelFragment : ESP_NOT_ESP;
}

function find(b: Uint8Array, start: number, end: number, l3: number, f: Found): number {
  if (!(l3 >= start && end - l3 >= 1)) return DropReason.Ipv4Truncated;
  const ver = b[l3]! >>> 4;
  let proto: number;
  let l4: number;
  if (ver === 4) {
    if (end - l3 < IPV4_HEADER_LEN) return DropReason.Ipv4Truncated;
    const hl = (b[l3]! & 0x0f) << 2;
    if (hl < IPV4_HEADER_LEN || hl > end - l3) return DropReason.Ipv4BadHeaderLen;
    const tl = rd16(b, l3 + 2);
    if (tl < hl || tl > end - l3) return DropReason.Ipv4BadTotalLen;
    proto = b[l3 + 9]!;
    l4 = l3 + hl;
    f.ipEnd = l3 + tl;
    const ff = rd16(b, l3 + 6);
    if ((ff & 0x3fff) !== 0) return fragmentVerdict(proto);
    f.nhOff = l3 + 9;
    f.v6 = false;
  } else if (ver === 6) {
    if (end - l3 < IPV6_HEADER_LEN) return DropReason.Ipv6Truncated;
    const ipEnd = l3 + IPV6_HEADER_LEN + rd16(b, l3 + 4);
    if (ipEnd > end) return DropReason.Ipv6BadPayloadLen;
    const r = walkIpv6(b, l3, ipEnd, walk);
    if (r !== null) return r;
    proto = walk.upperProto;
    l4 = walk.upperOff;
    f.ipEnd = ipEnd;
    if (walk.fragOff >= 0) return fragmentVerdict(proto);
    f.nhOff = ipv6NextHeaderOffset(b, l3, l4);
    f.v6 = true;
  } else {
    return ESP_NOT_ESP;
  }
  if (proto === IPPROTO_ESP) {
    f.udp = false;
    f.esp = f.cut = l4;
    f.espEnd = f.ipEnd;
    return 0;
  }
  if (proto !== IPPROTO_UDP || f.ipEnd - l4 < UDP_HEADER_LEN || rd16(b, l4 + 2) !== ESP_UDP_PORT) return ESP_NOT_ESP;
  const udpLen = rd16(b, l4 + 4);
  if (udpLen < UDP_HEADER_LEN || udpLen > f.ipEnd - l4) return DropReason.UdpBadLength;
  // RFC 3948 §2.2, §2.3: a NAT-keepalive (one 0xff byte) and an IKE message (four zero bytes, the non-ESP
  // marker, where the SPI would be) share the port; neither is ESP.
  if (udpLen - UDP_HEADER_LEN < 4 || rd32(b, l4 + UDP_HEADER_LEN) === 0) return ESP_NOT_ESP;
  f.udp = true;
  f.cut = l4;
  f.esp = l4 + UDP_HEADER_LEN;
  f.espEnd = l4 + udpLen;
  return 0;
}

/** The offset of the next-header byte that names the header at `upper`, in a chain `walkIpv6` checked. */
function ipv6NextHeaderOffset(b: Uint8Array, l3: number, upper: number): number {
  let nhOff = l3 + 6;
  let nh = b[nhOff]!;
  let o = l3 + IPV6_HEADER_LEN;
  while (o < upper) {
    nhOff = o;
    const len = nh === IPV6_NH_AH ? (b[o + 1]! + 2) << 2 : nh === IPV6_NH_FRAGMENT ? IPV6_FRAG_HEADER_LEN : (b[o + 1]! + 1) << 3;
    nh = b[o]!;
    o += len;
  }
  return nhOff;
}

/**
 * Unprotects the outer IP packet at `l3` of the frame in `p`: plain ESP (IP protocol 50) or ESP-in-UDP
 * (UDP to port 4500 with a non-zero SPI). `lookup` finds the inbound SA for an SPI, or null. The UDP
 * checksum of ESP-in-UDP is not verified: receivers may not rely on it (RFC 3948 §2.1, it is usually
 * zero), and the ICV covers everything it would.
 *
 * Order: outer headers; SPI lookup (`EspUnknownSpi`, also for an SA whose hard lifetime is over at
 * `now`); the window's pre-check (`EspReplay`, `EspOutsideWindow`); decryption with ICV verification
 * (`EspAuthFailed`); the window update; the trailer (`EspBadPadding`: pad length beyond the payload or
 * padding other than 1, 2, 3, …). Then the original packet is restored in place: the headers move
 * forward over ESP's header, IV (and UDP header), the trailer and ICV are cut, the protocol / next header
 * comes from the trailer, and the lengths and the IPv4 checksum (incrementally) are updated. `p.l2`/`p.l3`
 * move with the headers, `p.l4` is the restored payload's first header, the inner offsets are -1.
 *
 * Returns 0; a `DropReason` (counted on the SA once there is one); `ESP_NOT_ESP` for a packet that is not
 * ESP — another protocol, UDP to another port, a NAT-keepalive or an IKE message behind the non-ESP
 * marker — left untouched for the caller to pass on or drop by policy; or `ESP_DUMMY` for an
 * authenticated dummy packet to discard. A fragment of ESP is `TunnelFragment`: reassemble first.
 * `info`, when given, receives the SPI, sequence number and SA for a trace record.
 */
export function espUnprotect(p: PacketBuf, l3: number, lookup: (spi: number) => InboundSa | null, now: number, info?: EspRxInfo): number {
  const f = found;
  info?.clear();
  const r = unprotectCheck(p, l3, lookup, now, info, f);
  if (r !== 0) return r;
  return unprotectFinish(p, l3, f, f.sa!.crypto.open(p.data, f.esp, f.espEnd, f.seqHi), info);
}

/**
 * `espUnprotect` up to the decryption: outer headers, SPI lookup, lifetime, the window's pre-check. 0 when
 * the packet is to be opened (`f` says where, with which SA and high sequence bits), else what
 * `espUnprotect` returns. Nothing in the packet is changed.
 */
function unprotectCheck(p: PacketBuf, l3: number, lookup: (spi: number) => InboundSa | null, now: number, info: EspRxInfo | undefined, f: Found): number {
  const b = p.data;
  f.sa = null;
  const r0 = find(b, p.start, p.end, l3, f);
  if (r0 !== 0) return r0;
  const esp = f.esp;
  const espEnd = f.espEnd;
  if (espEnd - esp < ESP_MIN_LEN) return DropReason.EspTruncated;
  const spi = rd32(b, esp);
  const seqLo = rd32(b, esp + 4);
  if (info !== undefined) {
    info.spi = spi;
    info.seqLo = seqLo;
    info.udpEncap = f.udp;
  }
  // SPI 0 is reserved and never sent (RFC 4303 §2.1).
  const sa = spi === 0 ? null : lookup(spi);
  if (sa === null) return DropReason.EspUnknownSpi;
  if (info !== undefined) info.sa = sa;
  if (sa.expired(now)) return count(sa, DropReason.EspUnknownSpi);
  const rc = sa.check(seqLo);
  if (rc !== 0) return count(sa, rc);
  const seqHi = sa.checkedHi;
  if (info !== undefined) info.seqHi = seqHi;
  f.sa = sa;
  f.seqHi = seqHi;
  f.seqLo = seqLo;
  return 0;
}

/**
 * `espUnprotect` after the decryption (`ok`: the ICV verified): the window update, the trailer, and the
 * original packet restored in place.
 */
function unprotectFinish(p: PacketBuf, l3: number, f: Found, ok: boolean, info: EspRxInfo | undefined): number {
  const b = p.data;
  const sa = f.sa!;
  const esp = f.esp;
  const espEnd = f.espEnd;
  if (!ok) return count(sa, DropReason.EspAuthFailed);
  const ra = sa.accept(f.seqHi, f.seqLo);
  if (ra !== 0) return count(sa, ra);
  const t = espEnd - ESP_ICV_LEN - ESP_TRAILER_LEN;
  const padLen = b[t]!;
  const nextHeader = b[t + 1]!;
  const payStart = esp + ESP_FRONT;
  const payEnd = t - padLen;
  if (payEnd < payStart) return count(sa, DropReason.EspBadPadding);
  for (let i = 0; i < padLen; i++) if (b[payEnd + i] !== i + 1) return count(sa, DropReason.EspBadPadding);
  if (info !== undefined) info.nextHeader = nextHeader;
  sa.packets++;
  sa.bytes += payEnd - payStart;
  if (nextHeader === ESP_NEXT_HEADER_DUMMY) return ESP_DUMMY;
  // Headers forward over UDP, ESP header and IV; the payload stays put.
  const cut = f.cut;
  const front = payStart - cut;
  const start = p.start;
  moveUp(b, p.view, start, start + front, cut - start);
  const nl3 = l3 + front;
  const nhOff = f.nhOff + front;
  const oldProto = b[nhOff]!;
  b[nhOff] = nextHeader;
  if (f.v6) {
    wr16(b, nl3 + 4, payEnd - nl3 - IPV6_HEADER_LEN);
  } else {
    const oldLen = rd16(b, nl3 + 2);
    const newLen = payEnd - nl3;
    const ck = rd16(b, nl3 + 10);
    const ttl = b[nl3 + 8]! << 8;
    wr16(b, nl3 + 2, newLen);
    wr16(b, nl3 + 10, updateChecksum16(updateChecksum16(ck, oldLen, newLen), ttl | oldProto, ttl | nextHeader));
  }
  p.start = start + front;
  p.end = payEnd;
  if (p.l2 >= 0) p.l2 += front;
  p.l3 = nl3;
  p.l4 = payStart;
  p.innerL2 = p.innerL3 = p.innerL4 = -1;
  return 0;
}

function count(sa: InboundSa, r: number): number {
  sa.drops[r]!++;
  return r;
}

// ---- batches: the AEAD of many packets in one call ------------------------------------------------------

/**
 * `espProtect` for a batch: `protect` does everything but the AEAD (and, for ESP-in-UDP over IPv6, the
 * UDP checksum that covers the ciphertext) and queues the packet; `seal` encrypts every queued packet in
 * one call (esp/aead-batch.ts: natively when `native` is given, else per packet) and finishes them. A
 * queued packet is not ready to leave before `seal`: its payload is still plaintext. A full batch seals
 * itself before it takes the next packet.
 *
 * The bytes are `espProtect`'s (the same sequence numbers, headers and ciphertext); only the cipher's
 * calls are batched.
 */
export class EspSealBatch {
  readonly aead: AeadBatch;
  /** ESP-in-UDP over IPv6 queued: the buffer and the checksum's inputs, done after sealing. */
  private readonly v6Bufs: Array<Uint8Array | null>;
  private readonly v6: UdpV6Pending[];
  private v6Len = 0;

  constructor(native: NativeAead | null, capacity = 256) {
    this.aead = new AeadBatch(true, native, capacity);
    this.v6Bufs = new Array<Uint8Array | null>(capacity).fill(null);
    this.v6 = Array.from({ length: capacity }, () => ({ udp: 0, udpLen: 0, src: 0, pseudoDst: 0 }));
  }

  /** Packets queued and not yet sealed. */
  get pending(): number {
    return this.aead.length;
  }

  /** As `espProtect`, with the AEAD queued (see the class comment). Returns 0 or `espProtect`'s reasons. */
  protect(p: PacketBuf, l3: number, sa: OutboundSa, now: number, opts?: EspProtectOptions): number {
    if (this.aead.length === this.aead.capacity) this.seal();
    const s = site;
    const r = protectFrame(p, l3, sa, now, opts, s);
    if (r !== 0) return r;
    // Cannot fail: the batch has room and protectFrame checked the ranges.
    sa.crypto.queueSeal(this.aead, p.data, s.esp, s.espEnd, sa.seqHi, sa.seqHi, sa.seqLo);
    if (s.udpV6) {
      const k = this.v6Len++;
      this.v6Bufs[k] = p.data;
      const u = this.v6[k]!;
      u.udp = s.udp;
      u.udpLen = s.udpLen;
      u.src = s.src;
      u.pseudoDst = s.pseudoDst;
    }
    return 0;
  }

  /** Seals every queued packet (one AEAD call) and finishes them. */
  seal(): void {
    if (this.aead.length === 0) return;
    this.aead.run();
    this.aead.clear();
    for (let k = 0; k < this.v6Len; k++) {
      udpChecksumV6(this.v6Bufs[k]!, this.v6[k]!);
      this.v6Bufs[k] = null;
    }
    this.v6Len = 0;
  }
}

/**
 * `espUnprotect` for a batch, in three steps: `check` each packet (outer headers, SPI lookup, lifetime,
 * the window's pre-check — nothing changes in the packet) and queue those to open; `open` them all in one
 * AEAD call; then `finish` each queued packet in order (window update only for an authenticated packet,
 * trailer, headers restored), with the SA as it is by then: one whose hard lifetime ran out during the
 * batch drops the packet (`EspUnknownSpi`); `InboundSa.accept` repeats the replay check, so a sequence
 * number twice in one batch is taken once; and a packet that fails authentication after an earlier one
 * of the batch took its number is a replay (`EspReplay`, as one at a time), not an ICV failure. Without `check`'s 0 a packet is not queued and
 * `check`'s answer is `espUnprotect`'s.
 *
 * With ESN the high sequence bits are inferred at `check`, from the window before the batch: a batch that
 * carries the window across a 2^32 boundary and also packets from just before it may infer them
 * differently than one packet at a time would, and such a packet then fails authentication.
 */
export class EspOpenBatch {
  readonly aead: AeadBatch;
  /** Per queued packet: where its ESP packet is, its SA and sequence number, its outer l3. */
  private readonly jobs: Found[];
  private readonly l3s: Int32Array;
  private readonly idx: Int32Array;
  /** Packets queued. */
  length = 0;

  constructor(
    native: NativeAead | null,
    readonly capacity = 256,
  ) {
    this.aead = new AeadBatch(false, native, capacity);
    this.jobs = Array.from({ length: capacity }, () => new Found());
    this.l3s = new Int32Array(capacity);
    this.idx = new Int32Array(capacity);
  }

  /**
   * The checks before decryption. 0: queued as packet `length - 1` (to `open`, then `finish`); else what
   * `espUnprotect` returns, the packet untouched. Call only while `length < capacity`. `info` is filled
   * as `espUnprotect` fills it.
   */
  check(p: PacketBuf, l3: number, lookup: (spi: number) => InboundSa | null, now: number, info?: EspRxInfo): number {
    info?.clear();
    const k = this.length;
    if (k === this.capacity) throw new RangeError(`EspOpenBatch: full (${this.capacity} packets)`);
    const f = this.jobs[k]!;
    const r = unprotectCheck(p, l3, lookup, now, info, f);
    if (r !== 0) return r;
    const j = f.sa!.crypto.queueOpen(this.aead, p.data, f.esp, f.espEnd, f.seqHi);
    if (j < 0) throw new Error('EspOpenBatch: a checked packet did not fit its AEAD batch'); // unreachable: sizes checked above
    this.l3s[k] = l3;
    this.idx[k] = j;
    this.length = k + 1;
    return 0;
  }

  /** Authenticates and decrypts every queued packet (one AEAD call). */
  open(): void {
    this.aead.run();
  }

  /**
   * Finishes queued packet `k` (after `open`), which is `p`: 0, a `DropReason` or `ESP_DUMMY`, as
   * `espUnprotect`. `info` is filled as there.
   */
  finish(k: number, p: PacketBuf, now: number, info?: EspRxInfo): number {
    const f = this.jobs[k]!;
    const ok = this.aead.ok(this.idx[k]!);
    const sa = f.sa!;
    // Packets before this one in the batch may have used up the SA's hard lifetime, or taken this
    // sequence number (a duplicate) or moved the window past it: one at a time, this packet would have
    // been refused so before decryption, and an ICV failure is not what it counts as.
    if (sa.expired(now)) return count(sa, DropReason.EspUnknownSpi);
    if (!ok) {
      const rc = sa.check(f.seqLo);
      if (rc !== 0) return count(sa, rc);
    }
    return unprotectFinish(p, this.l3s[k]!, f, ok, info);
  }

  /** Fills `info` with what `check` learned about queued packet `k` (for a trace record). */
  describe(k: number, p: PacketBuf, info: EspRxInfo): void {
    const f = this.jobs[k]!;
    info.clear();
    info.spi = rd32(p.data, f.esp);
    info.seqLo = f.seqLo;
    info.seqHi = f.seqHi;
    info.sa = f.sa;
    info.udpEncap = f.udp;
  }

  /** The SA queued packet `k` was checked against. */
  saOf(k: number): InboundSa {
    return this.jobs[k]!.sa!;
  }

  /** Forgets the batch (its SAs are let go). */
  clear(): void {
    for (let k = 0; k < this.length; k++) this.jobs[k]!.sa = null;
    this.length = 0;
    this.aead.clear();
  }
}
