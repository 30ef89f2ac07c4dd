/**
 * Trace records: when a packet carries the trace flag, every pipeline stage says what it decided. The
 * records are plain data (they allocate, which is fine: only traced packets make them) that the trace
 * command prints and `--json` emits as they are.
 */

/**
 * The bridge pipeline's stages, in the order a packet meets them. `segment`: a super-frame (TSO/USO)
 * split for a tunnel or a port without segmentation offload. The worlds around the datapath add stages
 * of their own to the same records (the simulator's and the live node's: `WorldStage` in sim/tracer.ts).
 */
export type Stage = 'ingress' | 'decapsulate' | 'classify' | 'learn' | 'lookup' | 'route' | 'segment' | 'encapsulate' | 'output' | 'drop';

export type TraceValue = string | number | boolean | readonly TraceValue[] | { readonly [k: string]: TraceValue };

export interface TraceRecord {
  /** The node (bridge) that made the decision. */
  node: string;
  /** A `Stage` when the bridge made the record; the world around it records stages of its own. */
  stage: string;
  /** The port the decision concerns (ingress port for ingress stages, egress port for output). */
  port: string;
  /** One line a person reads, e.g. "mac hit → pod2" or "dropped: VlanNotAllowed". */
  action: string;
  /** The facts behind it, for machines (VNI, outer addresses, UDP source port, drop reason, …). */
  detail: { readonly [k: string]: TraceValue };
}

export type TraceSink = (r: TraceRecord) => void;

/** A sink that keeps every record, with a text rendering like ofproto/trace's. */
export class TraceLog {
  readonly records: TraceRecord[] = [];
  readonly sink: TraceSink = (r) => {
    this.records.push(r);
  };

  clear(): void {
    this.records.length = 0;
  }

  /** One line per record: `node  stage  port  action  key=value …`. */
  text(): string {
    return this.records.map(formatTraceRecord).join('\n');
  }
}

/** A record's facts as `key=value …` (objects and lists as JSON). */
export function formatTraceDetail(d: { readonly [k: string]: TraceValue }): string {
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}

export function formatTraceRecord(r: TraceRecord): string {
  const kv = formatTraceDetail(r.detail);
  return `${r.node.padEnd(10)} ${r.stage.padEnd(12)} ${r.port.padEnd(10)} ${r.action}${kv === '' ? '' : `  ${kv}`}`;
}
