/**
 * Ethernet II (IEEE 802.3 clause 3) with 802.1Q customer tags and 802.1ad service tags.
 *
 * A tag is 4 bytes placed where the EtherType was: TPID (0x8100 or 0x88a8) then TCI (PCP, DEI, VID)
 * then the next EtherType. The views follow Wireshark's layering: `EthernetView` is the 14-byte header
 * whose `etherType` may be a TPID, and `VlanView` sits 2 bytes before a tag's TCI so that its
 * `etherType` is the type that follows the tag.
 */
import { rd16, rdMac, wr16, wrMac } from './bytes.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

export const ETH_HEADER_LEN = 14;
export const VLAN_TAG_LEN = 4;
/** Frames with more stacked tags than this are dropped (QinQ uses two). */
export const MAX_VLAN_TAGS = 4;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_IPV6 = 0x86dd;
/** Transparent Ethernet bridging: an Ethernet frame inside Geneve or GRE. */
export const ETHERTYPE_TEB = 0x6558;

const DST = 0;
const SRC = 6;
const TYPE = 12;

export function isVlanTpid(t: number): boolean {
  return t === ETHERTYPE_VLAN || t === ETHERTYPE_QINQ;
}

export class EthernetView extends WireView {
  check(avail: number): DropReason | null {
    return avail < ETH_HEADER_LEN ? DropReason.EthTruncated : null;
  }
  get dst(): number {
    return rdMac(this.bytes, this.off + DST);
  }
  set dst(v: number) {
    wrMac(this.bytes, this.off + DST, v);
  }
  get src(): number {
    return rdMac(this.bytes, this.off + SRC);
  }
  set src(v: number) {
    wrMac(this.bytes, this.off + SRC, v);
  }
  /** The EtherType field at offset 12: a TPID when the frame is tagged. */
  get etherType(): number {
    return rd16(this.bytes, this.off + TYPE);
  }
  set etherType(v: number) {
    wr16(this.bytes, this.off + TYPE, v);
  }
  get payloadOffset(): number {
    return this.off + ETH_HEADER_LEN;
  }
}

/** A tag's TCI and the EtherType after it; `off` is the offset of the TCI. */
export class VlanView extends WireView {
  check(avail: number): DropReason | null {
    return avail < VLAN_TAG_LEN ? DropReason.VlanTruncated : null;
  }
  get tci(): number {
    return rd16(this.bytes, this.off);
  }
  set tci(v: number) {
    wr16(this.bytes, this.off, v);
  }
  get pcp(): number {
    return this.bytes[this.off]! >>> 5;
  }
  get dei(): boolean {
    return (this.bytes[this.off]! & 0x10) !== 0;
  }
  get vid(): number {
    return this.tci & 0x0fff;
  }
  set vid(v: number) {
    this.tci = (this.tci & 0xf000) | (v & 0x0fff);
  }
  get etherType(): number {
    return rd16(this.bytes, this.off + 2);
  }
  set etherType(v: number) {
    wr16(this.bytes, this.off + 2, v);
  }
}

export interface VlanTag {
  /** 0x8100 (802.1Q C-tag) or 0x88a8 (802.1ad S-tag). */
  tpid: number;
  pcp: number;
  dei: boolean;
  vid: number;
}

export interface EthernetRepr {
  dst: number;
  src: number;
  /** Outermost first. */
  vlans: VlanTag[];
  /** The EtherType after the last tag. */
  etherType: number;
}

/**
 * Offset of the payload after the header and all tags, and the final EtherType, without allocating.
 * Returns a negative DropReason on failure (so one number carries both), else the payload offset;
 * the EtherType is left in `out[0]`.
 */
export function ethPayload(bytes: Uint8Array, off: number, end: number, out: Uint16Array): number {
  if (end - off < ETH_HEADER_LEN) return -DropReason.EthTruncated;
  let type = rd16(bytes, off + TYPE);
  let p = off + ETH_HEADER_LEN;
  let tags = 0;
  while (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) {
    if (++tags > MAX_VLAN_TAGS) return -DropReason.VlanTooManyTags;
    if (end - p < VLAN_TAG_LEN) return -DropReason.VlanTruncated;
    type = rd16(bytes, p + 2);
    p += VLAN_TAG_LEN;
  }
  out[0] = type;
  return p;
}

export function parseEthernet(v: EthernetView, avail: number): EthernetRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  const vlans: VlanTag[] = [];
  let tpid = v.etherType;
  let p = v.payloadOffset;
  const end = v.off + avail;
  const tag = new VlanView(v.bytes, p);
  while (isVlanTpid(tpid)) {
    if (vlans.length === MAX_VLAN_TAGS) return DropReason.VlanTooManyTags;
    tag.at(v.bytes, p);
    const tr = tag.check(end - p);
    if (tr !== null) return tr;
    vlans.push({ tpid, pcp: tag.pcp, dei: tag.dei, vid: tag.vid });
    tpid = tag.etherType;
    p += VLAN_TAG_LEN;
  }
  return { dst: v.dst, src: v.src, vlans, etherType: tpid };
}

export function ethernetBufferLen(repr: EthernetRepr): number {
  return ETH_HEADER_LEN + VLAN_TAG_LEN * repr.vlans.length;
}

export function emitEthernet(repr: EthernetRepr, bytes: Uint8Array, off: number): void {
  wrMac(bytes, off + DST, repr.dst);
  wrMac(bytes, off + SRC, repr.src);
  let p = off + TYPE;
  for (const t of repr.vlans) {
    wr16(bytes, p, t.tpid);
    wr16(bytes, p + 2, ((t.pcp & 7) << 13) | (t.dei ? 0x1000 : 0) | (t.vid & 0x0fff));
    p += VLAN_TAG_LEN;
  }
  wr16(bytes, p, repr.etherType);
}
