/**
 * The inner-flow hash a VTEP puts into the outer UDP source port, so that the underlay's ECMP and RSS
 * spread tunnels by the flows they carry: "a hash of fields from the inner packet's headers" (RFC 7348
 * §5; RFC 8926 §3.3 asks the same of Geneve).
 *
 * Hashed in 32-bit words (each word bijectively mixed in, so a change to one word always
 * changes the hash):
 * - the VLAN ID (not PCP or DEI, which are QoS marks a flow may change) of up to two 802.1Q/802.1ad tags;
 * - the EtherType and, for IPv4 or IPv6, the protocol (IPv6: the fixed header's next header — extension
 *   headers are not walked), the source and destination addresses; for anything else, the MACs;
 * - for UDP, TCP and SCTP, the two ports — except in an IPv4 fragment (MF set or offset ≠ 0), whose
 *   later pieces carry no ports: all fragments of a datagram keep one hash.
 *
 * Like Linux's flow dissector, an IP packet's MACs are not hashed: they say which hop, not which flow,
 * and leaving them out saves three of the words on the per-packet path.
 *
 * TTL, identification, checksums, lengths, DSCP/ECN and the payload are never read, so every packet of a
 * flow gets the same hash. A truncated frame hashes what is present, as if zero-padded. Each word goes
 * through its own lane (an xorshift and a multiply by a constant of its position, so that swapping two
 * words changes the hash too); the lanes are summed and finished with MurmurHash3's fmix32 so that all
 * 32 bits are well mixed: the template maps the hash with a multiply-shift, which uses the high bits.
 */
import type { PacketBuf } from '../packet/buf.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN } from '../wire/ethernet.js';
import { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from '../wire/ipproto.js';
import { IPV4_FRAG_MASK } from '../wire/ipv4.js';

/** An arbitrary seed, so that an all-zero frame does not hash to zero. */
const SEED = 0x5e1e_f10b;

/**
 * Big-endian 32-bit word at `o` as an int32; bytes at or past `end` read as zero. Never reads outside
 * [o, end). One DataView load on the common path (small enough for V8 to inline); the rare short read is
 * out of line.
 */
function word(v: DataView, o: number, end: number): number {
  return o + 4 <= end ? v.getInt32(o) : shortWord(v, o, end);
}

function shortWord(v: DataView, o: number, end: number): number {
  let w = 0;
  for (let i = 0; i < 4; i++) w = (w << 8) | (o + i < end ? v.getUint8(o + i) : 0);
  return w;
}

/**
 * One word's lane: an xorshift then a multiply by the lane's own odd constant, a bijection of `w`. The
 * lanes are summed: their multiplies do not wait on each other (a chain of per-word mixing steps made the
 * hash a dozen dependent multiplies long), and a change to one word changes its lane and so the sum. The
 * fmix32 finaliser does the avalanche.
 */
function lane(w: number, k: number): number {
  return Math.imul(w ^ (w >>> 15), k);
}

/** Lane constants: odd, one per role; address words step through odd constants from K_ADDR. */
const K_TAG0 = 0x5bd1_e995 | 0;
const K_TAG1 = 0x27d4_eb2f | 0;
const K_TYPE = 0x1656_67b1 | 0;
const K_ADDR = 0x85eb_ca6b | 0;
const K_ADDR_STEP = 0x3c6e_f372 | 0;
const K_PORTS = 0xc2b2_ae35 | 0;

/**
 * MurmurHash3 finaliser: every input bit affects every output bit. Returns a signed int32: a small integer
 * to V8, so passing it to a function that is not inlined allocates nothing (an unsigned value above 2^31
 * would be boxed as a heap number on every packet).
 */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * A 32-bit hash, as a signed int32 (`>>> 0` gives the unsigned value), of the inner flow of the Ethernet
 * frame at `[off, end)` of `b` (a DataView, such as `PacketBuf.view`: whole words are one load). See the
 * module comment for the fields. Reads nothing outside `[off, end)` (nor outside `b`), never throws and
 * allocates nothing.
 */
export function innerFlowHash(b: DataView, off: number, end: number): number {
  return hashWithin(b, off, Math.min(end, b.byteLength));
}

/**
 * `innerFlowHash` of the frame in a packet buffer, whose window never leaves its buffer (which spares
 * the per-packet read of the DataView's length, a few nanoseconds on the encapsulation path).
 */
export function packetFlowHash(p: PacketBuf): number {
  return hashWithin(p.view, p.start, p.end);
}

/** The hash, `end` not past the end of `b`. */
function hashWithin(b: DataView, off: number, end: number): number {
  if (!(off >= 0)) off = 0;
  // The common frame first, in straight-line code: untagged IPv4 without options and with room for the
  // ports. It sums the same lanes as the general walk below.
  if (end - off >= 38) {
    const w = b.getInt32(off + 12);
    if (w >>> 8 === ((ETHERTYPE_IPV4 << 8) | 0x45)) {
      const proto = b.getUint8(off + 23);
      let h = (SEED + lane((ETHERTYPE_IPV4 << 16) | proto, K_TYPE)) | 0;
      h = (h + lane(b.getInt32(off + 26), K_ADDR)) | 0;
      h = (h + lane(b.getInt32(off + 30), (K_ADDR + K_ADDR_STEP) | 0)) | 0;
      if ((b.getUint16(off + 20) & IPV4_FRAG_MASK) === 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP)) {
        h = (h + lane(b.getInt32(off + 34), K_PORTS)) | 0;
      }
      return fmix32(h);
    }
  }
  // Few call sites, so that V8 inlines every `word` and `lane` within its budget.
  let h = SEED;
  let p = off + 12;
  // The EtherType (or TPID) and the two bytes after it.
  let w = word(b, p, end);
  for (let tags = 0; tags < 2 && (w >>> 16 === ETHERTYPE_VLAN || w >>> 16 === ETHERTYPE_QINQ); tags++) {
    // TPID and VID, without PCP and DEI.
    h = (h + lane(w & 0xffff_0fff, tags === 0 ? K_TAG0 : K_TAG1)) | 0;
    p += 4;
    w = word(b, p, end);
  }
  const etherType = w >>> 16;
  const l3 = p + 2;
  // The word read for the EtherType also holds the first L3 byte (version and IHL): no extra load.
  const verIhl = l3 < end ? (w >>> 8) & 0xff : 0;
  const version = verIhl >>> 4;
  let proto = 0;
  // The source and destination addresses are [addr, addrEnd): the MACs for anything but IP.
  let addr = off;
  let addrEnd = off + 12;
  // Where the ports are, or -1 when they are unknown.
  let l4 = -1;
  if (etherType === ETHERTYPE_IPV4 && version === 4) {
    // TTL, protocol and checksum in one word; the protocol is its second byte.
    proto = l3 + 9 < end ? (word(b, l3 + 8, end) >>> 16) & 0xff : 0;
    addr = l3 + 12;
    addrEnd = l3 + 20;
    const ihl = (verIhl & 0x0f) << 2;
    // A bad header length leaves the ports unknown; so does a fragment (flags/offset: low half of word 1).
    if (ihl >= 20 && (word(b, l3 + 4, end) & IPV4_FRAG_MASK) === 0) l4 = l3 + ihl;
  } else if (etherType === ETHERTYPE_IPV6 && version === 6) {
    proto = l3 + 6 < end ? b.getUint8(l3 + 6) : 0;
    addr = l3 + 8;
    addrEnd = l3 + 40;
    l4 = addrEnd;
  }
  h = (h + lane((etherType << 16) | proto, K_TYPE)) | 0;
  for (let o = addr, k = K_ADDR; o < addrEnd; o += 4, k = (k + K_ADDR_STEP) | 0) h = (h + lane(word(b, o, end), k)) | 0;
  if (l4 >= 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP)) h = (h + lane(word(b, l4, end), K_PORTS)) | 0;
  return fmix32(h);
}
