/**
 * The virtio-net header a TAP opened with IFF_VNET_HDR puts in front of every frame (virtio 1.x,
 * `struct virtio_net_hdr_v1`, 12 bytes, little-endian as the kernel uses it on little-endian hosts):
 *
 * ```
 *  0 flags        u8   NEEDS_CSUM (1): the checksum at csum_start + csum_offset holds only the
 *                      pseudo-header sum; DATA_VALID (2): the checksum was checked
 *  1 gso_type     u8   NONE 0, TCPV4 1, UDP 3 (UFO), TCPV6 4, UDP_L4 5 (USO); | ECN 0x80
 *  2 hdr_len      u16  bytes of headers in front of the payload (a hint)
 *  4 gso_size     u16  payload bytes per segment
 *  6 csum_start   u16  offset of the checksummed range from the frame's start
 *  8 csum_offset  u16  offset of the checksum field within it
 * 10 num_buffers  u16  (mergeable receive buffers; unused with a TAP)
 * ```
 *
 * `PacketBuf` keeps the same facts in its offload fields, with `csumStart` made absolute, so pushing an
 * outer header in front does not move it.
 */
import type { PacketBuf } from './buf.js';
import { finish, onesSum } from '../wire/checksum.js';
import { DropReason } from '../wire/drop.js';

export const VNET_HDR_LEN = 12;
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5;
export const VNET_GSO_ECN = 0x80;

/**
 * Reads the header at `at` (the frame starts at `at + VNET_HDR_LEN`, `p.start` already there) into the
 * buffer's offload fields. Returns a drop reason when the header cannot describe this frame.
 */
export function readVnetHeader(p: PacketBuf, at: number): DropReason | null {
  const d = p.data;
  const flags = d[at]!;
  const gso = d[at + 1]!;
  const frameLen = p.end - p.start;
  p.gsoType = gso;
  p.hdrLen = d[at + 2]! | (d[at + 3]! << 8);
  p.gsoSize = d[at + 4]! | (d[at + 5]! << 8);
  if ((flags & VNET_F_NEEDS_CSUM) !== 0) {
    const start = d[at + 6]! | (d[at + 7]! << 8);
    const off = d[at + 8]! | (d[at + 9]! << 8);
    // The checksum field (2 bytes) must lie inside the frame, behind the range's start.
    if (start + off + 2 > frameLen) return DropReason.VnetHdrBad;
    p.csumStart = p.start + start;
    p.csumOffset = off;
  } else {
    p.csumStart = -1;
    p.csumOffset = 0;
  }
  if ((gso & ~VNET_GSO_ECN) !== VNET_GSO_NONE && p.gsoSize === 0) return DropReason.VnetHdrBad;
  return null;
}

/** Writes the buffer's offload fields as a header at `at` (12 bytes, every field, reserved ones too). */
export function writeVnetHeader(p: PacketBuf, at: number): void {
  const d = p.data;
  const csum = p.csumStart >= 0;
  const start = csum ? p.csumStart - p.start : 0;
  const off = csum ? p.csumOffset : 0;
  d[at] = csum ? VNET_F_NEEDS_CSUM : 0;
  d[at + 1] = p.gsoType;
  d[at + 2] = p.hdrLen & 0xff;
  d[at + 3] = p.hdrLen >>> 8;
  d[at + 4] = p.gsoSize & 0xff;
  d[at + 5] = p.gsoSize >>> 8;
  d[at + 6] = start & 0xff;
  d[at + 7] = start >>> 8;
  d[at + 8] = off & 0xff;
  d[at + 9] = off >>> 8;
  d[at + 10] = 0;
  d[at + 11] = 0;
}

/**
 * Completes a partial checksum (NEEDS_CSUM): the field holds the pseudo-header sum, so the one's
 * complement sum of `[csumStart, end)` with it in place is the checksum (as the kernel's
 * `skb_checksum_help`). A zero UDP result is sent as 0xffff (RFC 768). Clears the request.
 */
export function completeChecksum(p: PacketBuf): void {
  const start = p.csumStart;
  if (start < 0) return;
  const at = start + p.csumOffset;
  const d = p.data;
  let c = finish(onesSum(d, start, p.end - start));
  if (c === 0) c = 0xffff;
  d[at] = c >>> 8;
  d[at + 1] = c & 0xff;
  p.csumStart = -1;
  p.csumOffset = 0;
}
