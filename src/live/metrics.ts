/**
 * The agent's Prometheus endpoint (prom-client): per-port packets and bytes, drops by reason (per bridge
 * port and per live device), per-peer tunnel and ESP counters, the MAC table and the packet pool. Values
 * are read from the datapath's own counters when scraped — the datapath keeps plain numbers and never
 * calls into prom-client per packet.
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { HeapReading } from './heap.js';

export interface PortSample {
  port: string;
  kind: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: Record<string, number>;
}
export interface DeviceSample {
  device: string;
  rxPackets: number;
  txPackets: number;
  rxBatches: number;
  drops: Record<string, number>;
  /** Super-frames read from a TAP or GRO'd datagrams received, and the datagrams those held; super-frames written, UDP_SEGMENT sends and their datagrams. */
  rxSuper: number;
  rxSuperSegments: number;
  txSuper: number;
  txSuperSegments: number;
}
export interface PeerSample {
  peer: string;
  txPackets: number;
  rxPackets: number;
  txInnerBytes: number;
  espOut: number;
  espIn: number;
}
export interface MetricsSnapshot {
  ports: PortSample[];
  devices: DeviceSample[];
  peers: PeerSample[];
  tunnel: Record<string, number>;
  /** The MAC table's events (learned, moved, evicted, aged, flushed) and the bridge's (flood copies, frames it generated, fragments made and merged). */
  macs: Record<string, number>;
  bridge: Record<string, number>;
  /** Super-frames segmented and the segments made (bridge); frames coalesced into super-frames (TAPs). */
  gso: Record<string, number>;
  /** Super-frames the bridge could not segment and frames the TAPs' coalescers could not give out, by reason. */
  gsoDrops: Record<string, number>;
  /** The agent's JavaScript heap: bytes allocated since the start (live/heap.ts), collections, in use. */
  heap: HeapReading;
  macEntries: number;
  poolFree: number;
  poolSize: number;
}

/** A counter whose value is read from the datapath at scrape time. */
function readCounter<L extends string>(
  reg: Registry,
  name: string,
  help: string,
  labels: readonly L[],
  read: (set: (l: Record<L, string>, v: number) => void) => void,
): void {
  new Counter<L>({
    name,
    help,
    labelNames: labels,
    registers: [reg],
    collect(this: Counter<L>) {
      this.reset();
      read((l, v) => {
        if (v > 0) this.inc(l as never, v);
      });
    },
  });
}

function readGauge<L extends string>(
  reg: Registry,
  name: string,
  help: string,
  labels: readonly L[],
  read: (set: (l: Record<L, string>, v: number) => void) => void,
): void {
  new Gauge<L>({
    name,
    help,
    labelNames: labels,
    registers: [reg],
    collect(this: Gauge<L>) {
      this.reset();
      read((l, v) => this.set(l as never, v));
    },
  });
}

export function agentRegistry(node: string, snapshot: () => MetricsSnapshot): Registry {
  const reg = new Registry();
  reg.setDefaultLabels({ node });
  collectDefaultMetrics({ register: reg, prefix: 'seine_agent_' });
  // prom-client names three gauges *_total, which promtool (rightly) refuses for a gauge: leave them out.
  for (const m of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) reg.removeSingleMetric(`seine_agent_${m}`);
  let snap: MetricsSnapshot | null = null;
  let snapAt = 0;
  // One snapshot per scrape: collectors run back to back, so one taken in the last 100 ms is this scrape's.
  const s = (): MetricsSnapshot => {
    const t = Date.now();
    if (snap === null || t - snapAt > 100) {
      snap = snapshot();
      snapAt = t;
    }
    return snap;
  };
  const portCounter = (name: string, help: string, pick: (p: PortSample) => number): void =>
    readCounter(reg, name, help, ['port', 'kind'] as const, (set) => {
      for (const p of s().ports) set({ port: p.port, kind: p.kind }, pick(p));
    });
  portCounter('seine_port_rx_packets_total', 'Frames received on a bridge port.', (p) => p.rxPackets);
  portCounter('seine_port_rx_bytes_total', 'Bytes received on a bridge port.', (p) => p.rxBytes);
  portCounter('seine_port_tx_packets_total', 'Frames sent from a bridge port.', (p) => p.txPackets);
  portCounter('seine_port_tx_bytes_total', 'Bytes sent from a bridge port.', (p) => p.txBytes);
  readCounter(reg, 'seine_port_drops_total', 'Frames dropped at a bridge port, by reason.', ['port', 'reason'] as const, (set) => {
    for (const p of s().ports) for (const [reason, v] of Object.entries(p.drops)) set({ port: p.port, reason }, v);
  });
  readCounter(reg, 'seine_device_rx_packets_total', 'Frames or datagrams read from a live device (TAP or tunnel socket).', ['device'] as const, (set) => {
    for (const d of s().devices) set({ device: d.device }, d.rxPackets);
  });
  readCounter(reg, 'seine_device_tx_packets_total', 'Frames or datagrams written to a live device.', ['device'] as const, (set) => {
    for (const d of s().devices) set({ device: d.device }, d.txPackets);
  });
  readCounter(reg, 'seine_device_rx_batches_total', 'Reads that returned frames (frames per batch = rx packets / rx batches).', ['device'] as const, (set) => {
    for (const d of s().devices) set({ device: d.device }, d.rxBatches);
  });
  readCounter(
    reg,
    'seine_device_super_frames_total',
    "Super-frames through a live device, by direction: TAP reads with TSO/USO or GRO'd datagrams received (rx), TAP super-frame writes or UDP_SEGMENT sends (tx).",
    ['device', 'direction'] as const,
    (set) => {
      for (const d of s().devices) {
        set({ device: d.device, direction: 'rx' }, d.rxSuper);
        set({ device: d.device, direction: 'tx' }, d.txSuper);
      }
    },
  );
  readCounter(
    reg,
    'seine_device_super_frame_segments_total',
    "Datagrams carried in GRO'd receives (rx) and UDP_SEGMENT sends (tx) of a tunnel socket.",
    ['device', 'direction'] as const,
    (set) => {
      for (const d of s().devices) {
        set({ device: d.device, direction: 'rx' }, d.rxSuperSegments);
        set({ device: d.device, direction: 'tx' }, d.txSuperSegments);
      }
    },
  );
  readCounter(
    reg,
    'seine_gso_events_total',
    'Super-frames segmented and the segments made (the bridge), frames coalesced into super-frames for the pods (the TAPs), by event.',
    ['event'] as const,
    (set) => {
      for (const [event, v] of Object.entries(s().gso)) set({ event }, v);
    },
  );
  readCounter(
    reg,
    'seine_gso_drops_total',
    "Super-frames the bridge could not segment and frames a TAP's coalescer could not give out, by reason.",
    ['reason'] as const,
    (set) => {
      for (const [reason, v] of Object.entries(s().gsoDrops)) set({ reason }, v);
    },
  );
  readCounter(
    reg,
    'seine_agent_heap_allocated_bytes_total',
    "Bytes the agent's JavaScript heap allocated since it started (every collection's growth added up): the live path allocates nothing per packet.",
    [] as const,
    (set) => {
      set({}, s().heap.allocatedBytes);
    },
  );
  readCounter(reg, 'seine_device_drops_total', 'Frames a live device dropped before or after the bridge, by reason.', ['device', 'reason'] as const, (set) => {
    for (const d of s().devices) for (const [reason, v] of Object.entries(d.drops)) set({ device: d.device, reason }, v);
  });
  readCounter(reg, 'seine_tunnel_tx_packets_total', 'Frames encapsulated towards a peer.', ['peer'] as const, (set) => {
    for (const p of s().peers) set({ peer: p.peer }, p.txPackets);
  });
  readCounter(reg, 'seine_tunnel_rx_packets_total', 'Frames decapsulated from a peer.', ['peer'] as const, (set) => {
    for (const p of s().peers) set({ peer: p.peer }, p.rxPackets);
  });
  readCounter(reg, 'seine_tunnel_tx_inner_bytes_total', 'Inner bytes encapsulated towards a peer.', ['peer'] as const, (set) => {
    for (const p of s().peers) set({ peer: p.peer }, p.txInnerBytes);
  });
  readCounter(reg, 'seine_esp_packets_out_total', 'ESP packets protected towards a peer.', ['peer'] as const, (set) => {
    for (const p of s().peers) set({ peer: p.peer }, p.espOut);
  });
  readCounter(reg, 'seine_esp_packets_in_total', 'ESP packets accepted from a peer.', ['peer'] as const, (set) => {
    for (const p of s().peers) set({ peer: p.peer }, p.espIn);
  });
  readCounter(
    reg,
    'seine_tunnel_events_total',
    'What the tunnel did (ICMP too-big sent, fragments, MSS clamped; with ESP: ICV failures, announcements, resyncs), by event.',
    ['event'] as const,
    (set) => {
      for (const [event, v] of Object.entries(s().tunnel)) set({ event }, v);
    },
  );
  readCounter(reg, 'seine_mac_table_events_total', 'MAC table events: entries learned, moved, evicted, aged, flushed.', ['event'] as const, (set) => {
    for (const [event, v] of Object.entries(s().macs)) set({ event }, v);
  });
  readCounter(reg, 'seine_bridge_events_total', 'Bridge events: flood copies, frames generated, fragments made and merged.', ['event'] as const, (set) => {
    for (const [event, v] of Object.entries(s().bridge)) set({ event }, v);
  });
  readGauge(reg, 'seine_mac_table_entries', 'Entries in the bridge MAC table.', [] as const, (set) => set({}, s().macEntries));
  readGauge(reg, 'seine_pool_buffers_free', 'Packet buffers free in the pool.', [] as const, (set) => set({}, s().poolFree));
  readGauge(reg, 'seine_pool_buffers', 'Packet buffers in the pool.', [] as const, (set) => set({}, s().poolSize));
  return reg;
}

/** Serves `GET /metrics` on host:port; resolves with the bound address (port 0 picks one). */
export async function serveMetrics(reg: Registry, listen: string): Promise<{ server: Server; address: string }> {
  const at = listen.lastIndexOf(':');
  const host = at > 0 ? listen.slice(0, at).replace(/^\[|\]$/g, '') : '127.0.0.1';
  const port = Number(at >= 0 ? listen.slice(at + 1) : listen);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`metrics: "${listen}" is not host:port`);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('seine agent: GET /metrics\n');
      return;
    }
    reg.metrics().then(
      (text) => res.writeHead(200, { 'content-type': reg.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e instanceof Error ? e.message : String(e)}\n`),
    );
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => {
      server.off('error', rej);
      res();
    });
  });
  const a = server.address();
  const address = typeof a === 'object' && a !== null ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : listen;
  return { server, address };
}
