/**
 * `seine run --live`'s captures: one per port that something needs — the scenario's capture points
 * (`--pcap`), the sender's port of a UDP flow (the ICMP it is sent) and its receiver's (which of iperf3's
 * datagrams arrived, and when they were sent).
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { PcapngParser } from '../../capture/index.js';
import { iperfDatagramOf } from '../../live/lab/traffic.js';
import { IcmpObserver } from '../../sim/icmpwatch.js';
import { controlPath, tapCapture, type CaptureTap } from '../lab.js';
import type { Ctx, LiveFlow, UdpSink } from './flows.js';
import { MONO_TO_EPOCH_NS } from './tools.js';

export interface Tap {
  key: string;
  tap: CaptureTap | null;
  observer: IcmpObserver | null;
  file: string | null;
  /** UDP streams received on this port: `<dport>/<sport>` → what arrived. */
  udp: Map<string, UdpSink> | null;
}

/**
 * Opens the captures a run needs: the scenario's capture points (`--pcap`), and for UDP flows the
 * sender's port (the ICMP it is sent) and the receiver's (which of iperf3's datagrams it was given,
 * and when they were sent). One capture per port, shared. Ping and TCP need none: ping prints the ICMP
 * it gets, TCP_INFO says what TCP learnt, and a capture slows its agent down.
 */
export async function openTaps(c: Ctx, flows: LiveFlow[], pcapDir: string | null): Promise<Map<string, Tap>> {
  const taps = new Map<string, Tap>();
  interface Want {
    node: string;
    port: string;
    file: string | null;
    observe: boolean;
    udp: boolean;
  }
  const want = new Map<string, Want>();
  const need = (node: string, port: string): Want => {
    const key = `${node}/${port}`;
    let w = want.get(key);
    if (w === undefined) {
      w = { node, port, file: null, observe: false, udp: false };
      want.set(key, w);
    }
    return w;
  };
  if (pcapDir !== null) for (const cp of c.s.capture) need(cp.node, cp.port).file = join(pcapDir, `${cp.node}-${cp.port}.pcapng`);
  for (const f of flows) {
    if (f.t.type !== 'udp') continue;
    need(f.srcNode, f.srcPort).observe = true;
    need(f.t.to.node, f.dstPort).udp = true;
  }
  for (const [key, w] of want) {
    const observer = w.observe ? new IcmpObserver() : null;
    const udp = w.udp ? new Map<string, UdpSink>() : null;
    const parser = observer !== null || udp !== null ? new PcapngParser() : null;
    let broken = false;
    const onBlock =
      parser === null
        ? undefined
        : (block: Buffer): void => {
            if (broken) return;
            try {
              parser.push(new Uint8Array(block));
              for (const rec of parser.records()) {
                const ts = Number(rec.timestampNs);
                observer?.see(rec.data, 0, rec.data.length, ts);
                if (udp !== null) {
                  const d = iperfDatagramOf(rec.data);
                  const sink = d === null ? undefined : udp.get(`${d.dport}/${d.sport}`);
                  if (d !== null && sink !== undefined) {
                    if (sink.seqs.has(d.seq)) sink.duplicates++;
                    else {
                      sink.seqs.add(d.seq);
                      // iperf3 stamps its datagrams with CLOCK_MONOTONIC (older versions: the wall clock); the agent's capture with the wall clock.
                      const sent = d.sentNs > 1e18 ? d.sentNs : d.sentNs + MONO_TO_EPOCH_NS;
                      const l = ts - sent;
                      if (l >= 0 && l < 60e9) sink.latNs.push(l);
                    }
                  }
                }
              }
            } catch (e) {
              broken = true;
              c.notes.push(`capture of ${key} could not be read (${(e as Error).message}): its ICMP and UDP counts are incomplete`);
            }
          };
    const out = w.file !== null ? createWriteStream(w.file) : undefined;
    try {
      const tap = await tapCapture(controlPath(c.lab, w.node), w.port, {
        ...(out !== undefined ? { out } : {}),
        ...(onBlock !== undefined ? { onBlock } : {}),
      });
      taps.set(key, { key, tap, observer, file: w.file, udp });
    } catch (e) {
      out?.end();
      const lost = [
        w.file !== null ? 'no pcapng for it' : '',
        w.observe ? 'no ICMP seen for the UDP flows sent from it' : '',
        w.udp ? "UDP delivery there is iperf3's own count" : '',
      ].filter((x) => x !== '');
      c.notes.push(`capture of ${key} could not start (${(e as Error).message}): ${lost.join('; ')}`);
      taps.set(key, { key, tap: null, observer: null, file: null, udp: null });
    }
  }
  // Each UDP stream's sink, on its receiver's port.
  for (const f of flows) {
    if (f.t.type !== 'udp') continue;
    const udp = taps.get(`${f.t.to.node}/${f.dstPort}`)?.udp ?? null;
    if (udp === null) continue;
    for (const sv of f.servers) {
      sv.sink = { seqs: new Set(), duplicates: 0, latNs: [] };
      udp.set(`${sv.port}/${sv.cport}`, sv.sink);
    }
  }
  return taps;
}
