/**
 * Traffic shapes taken from a capture: `loadReplay` reads a pcap or pcapng (the format from its magic
 * number) and keeps, for each IP packet in it, its IP length and its time from the first one. `udpFlow`
 * with `replay` then sends one UDP datagram of that length at that offset, so a real trace's packet
 * sizes and timing (bursts, gaps) drive the simulated network.
 *
 * The IP length is read from the IP header (IPv4 total length, IPv6 40 + payload length), so a capture
 * cut by its snaplen still gives the full lengths. Records that are not IP (ARP, LLDP, …) or too short to
 * show an IP header are skipped and counted. Link types: Ethernet (VLAN and QinQ tags are stepped over)
 * and raw IP (LINKTYPE_RAW 101, and 228/229 for IPv4/IPv6 only).
 */
import { LINKTYPE_ETHERNET, LINKTYPE_RAW } from '../capture/common.js';
import { createParser } from '../capture/reader.js';
import { rd16 } from '../wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN } from '../wire/ethernet.js';
import { readRegularFile } from './file.js';

/** The largest capture a replay reads (limits.ts `SCENARIO_LIMITS.replayBytes`). */
export const REPLAY_MAX_BYTES = 256 * 1024 * 1024;

/** LINKTYPE_IPV4 and LINKTYPE_IPV6: raw IP of one version. */
const LINKTYPE_IPV4 = 228;
const LINKTYPE_IPV6 = 229;

/** Where a replay comes from: a capture file, or its bytes. */
export type ReplaySource = { path: string } | { bytes: Uint8Array };

/** The packets of a capture as (time offset, IP length) pairs. */
export interface ReplayTrace {
  /** Time of each packet from the first kept one, ns (non-decreasing: a capture that goes back in time is held at the previous offset). */
  offsetsNs: Float64Array;
  /** IP length of each packet. */
  ipLengths: Uint32Array;
  /** Records that were not IP packets (or too short to tell their length). */
  skipped: number;
}

/** IP length of the packet in `d` of link type `linkType`, or -1 when it is not an IP packet. */
function ipLength(d: Uint8Array, linkType: number): number {
  let ip = 0;
  let version = 0;
  if (linkType === LINKTYPE_ETHERNET) {
    let o = 12;
    if (d.length < o + 2) return -1;
    let type = rd16(d, o);
    while ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && d.length >= o + 6) {
      o += 4;
      type = rd16(d, o);
    }
    if (type === ETHERTYPE_IPV4) version = 4;
    else if (type === ETHERTYPE_IPV6) version = 6;
    else return -1;
    ip = o + 2;
  } else if (linkType === LINKTYPE_RAW || linkType === LINKTYPE_IPV4 || linkType === LINKTYPE_IPV6) {
    if (d.length < 1) return -1;
    version = d[0]! >> 4;
  } else return -1;
  if (version === 4 && d.length >= ip + 4 && d[ip]! >> 4 === 4) return rd16(d, ip + 2);
  if (version === 6 && d.length >= ip + 6 && d[ip]! >> 4 === 6) return 40 + rd16(d, ip + 4);
  return -1;
}

/**
 * Reads a capture (synchronously) into a `ReplayTrace`; throws `CaptureError` on a damaged file, and
 * `FileRefused` (file.ts) for what is not a regular file of at most `REPLAY_MAX_BYTES`.
 */
export function loadReplay(src: ReplaySource): ReplayTrace {
  const bytes = 'path' in src ? readRegularFile(src.path, REPLAY_MAX_BYTES) : src.bytes;
  const parser = createParser();
  parser.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  parser.end();
  const offs: number[] = [];
  const lens: number[] = [];
  let skipped = 0;
  let t0 = 0n;
  let last = 0;
  for (const r of parser.records()) {
    const len = ipLength(r.data, r.linkType);
    if (len < 0) {
      skipped++;
      continue;
    }
    if (offs.length === 0) t0 = r.timestampNs;
    last = Math.max(last, Number(r.timestampNs - t0));
    offs.push(last);
    lens.push(len);
  }
  return { offsetsNs: Float64Array.from(offs), ipLengths: Uint32Array.from(lens), skipped };
}
