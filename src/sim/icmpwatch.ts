/**
 * ICMP seen by a flow's sender: an observer on the frames reaching a host classifies ICMP (echo replies,
 * frag-needed, packet-too-big, unreachable, time exceeded) and credits it to the flows it concerns, by
 * destination, protocol, echo identifier or source port, and time. The simulator hooks it on a pod's
 * device; a live run feeds it the frames of an agent's capture of the pod's port.
 */
import type { FrameHook } from '../datapath/observe.js';
import { eq16, rd16, rd32 } from '../wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../wire/ethernet.js';
import type { IcmpKind } from '../scenario/scenario.js';

export interface IcmpWatch {
  /** Where the kinds seen go (a flow's set). */
  seen: Set<IcmpKind>;
  family: 4 | 6;
  dst4: number;
  dst6: Uint8Array | null;
  /** IP protocol the flow sends (1/58 ping, 17 udp, 6 tcp). */
  proto: number;
  /** What tells the flow's packets apart: the echo identifier (ping) or the source port; -1 before the flow starts. */
  id: number;
  fromNs: number;
  untilNs: number;
}

/** Classifies ICMP reaching a pod and credits it to the flows it concerns (by destination, protocol, echo identifier or source port, and time). */
export class IcmpObserver {
  readonly watches: IcmpWatch[] = [];
  readonly hook: FrameHook = (p, now) => this.see(p.data, p.start, p.end, now);

  /** Looks at one Ethernet frame `b[s, end)` reaching the host at `now` (ns, the watches' clock). */
  see(b: Uint8Array, s: number, end: number, now: number): void {
    if (end - s < 14 + 28) return;
    const et = rd16(b, s + 12);
    if (et === ETHERTYPE_IPV4) {
      const ip = s + 14;
      if (b[ip + 9] !== 1) return;
      const l4 = ip + (b[ip]! & 0x0f) * 4;
      if (l4 + 8 > end) return;
      const type = b[l4]!,
        code = b[l4 + 1]!;
      let kind: IcmpKind | null = null;
      let about = 0,
        proto = 0,
        id = -1;
      if (type === 0) {
        kind = 'echo-reply';
        about = rd32(b, ip + 12);
        proto = 1;
        id = rd16(b, l4 + 4);
      } else if (type === 3 || type === 11) {
        kind = type === 11 ? 'time-exceeded' : code === 4 ? 'frag-needed' : 'dest-unreachable';
        const q = l4 + 8;
        if (q + 20 > end) return;
        about = rd32(b, q + 16);
        proto = b[q + 9]!;
        // The quoted transport header: the echo identifier, or the source port.
        const ql4 = q + (b[q]! & 0x0f) * 4;
        if (ql4 + 8 <= end) id = proto === 1 ? rd16(b, ql4 + 4) : rd16(b, ql4);
      }
      if (kind === null) return;
      for (const w of this.watches) {
        if (w.family === 4 && w.dst4 === about && w.proto === proto && w.id === id && now >= w.fromNs && now <= w.untilNs) w.seen.add(kind);
      }
    } else if (et === ETHERTYPE_IPV6) {
      const ip = s + 14;
      if (b[ip + 6] !== 58) return;
      const l4 = ip + 40;
      if (l4 + 8 > end) return;
      const type = b[l4]!;
      let kind: IcmpKind | null = null;
      let aboutAt = 0,
        proto = 0,
        id = -1;
      if (type === 129) {
        kind = 'echo-reply';
        aboutAt = ip + 8;
        proto = 58;
        id = rd16(b, l4 + 4);
      } else if (type === 1 || type === 2 || type === 3) {
        kind = type === 2 ? 'packet-too-big' : type === 3 ? 'time-exceeded' : 'dest-unreachable';
        const q = l4 + 8;
        if (q + 40 > end) return;
        aboutAt = q + 24;
        proto = b[q + 6]!;
        // The quoted transport header (when no extension header comes first): identifier or source port.
        if (q + 48 <= end) id = proto === 58 ? rd16(b, q + 44) : rd16(b, q + 40);
      }
      if (kind === null) return;
      for (const w of this.watches) {
        if (w.family === 6 && w.dst6 !== null && w.proto === proto && w.id === id && eq16(b, aboutAt, w.dst6) && now >= w.fromNs && now <= w.untilNs)
          w.seen.add(kind);
      }
    }
  }
}
