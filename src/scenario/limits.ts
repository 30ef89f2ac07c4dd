/**
 * How scenario numbers are quoted in errors, and what one scenario may ask for.
 */
import { REPLAY_MAX_BYTES } from './replay.js';

/**
 * What one scenario may ask for (issue 18): a teaching lab or a research sweep is refused early and with
 * the numbers, never left to hang a laptop or die of out-of-memory. The README's scenario reference states
 * these; a scenario over one is refused (`ScenarioError`: the file, the key, what it asked for, the limit).
 */
export const SCENARIO_LIMITS = {
  /** Bytes of a scenario file (the 1,000-node, 100,000-flow bench file is about 13 MB). */
  fileBytes: 64 * 1024 * 1024,
  /**
   * YAML nodes the loader reads, an alias counting its anchor's nodes again each time it is used: what a
   * file may expand to (the bench file reads about 2.5 million).
   */
  yamlNodes: 4_000_000,
  /** Nodes. Every node has a VTEP for every other (a full mesh): building grows with the square of this. */
  nodes: 1000,
  /** Pods in all (each is a simulated host and a bridge port). */
  pods: 20_000,
  /** Traffic flows. */
  flows: 100_000,
  /** Packets the traffic sends, estimated before the run (`estimateCost`). */
  packets: 20_000_000,
  /** Simulator events, estimated before the run (`estimateCost`). */
  events: 50_000_000,
  /** Bytes of a capture given as `replay:`. */
  replayBytes: REPLAY_MAX_BYTES,
  /** Bytes of one TCP flow: the simulated sender's sequence arithmetic stays below 2^31 (sim/tcp.ts). */
  tcpBytes: 0x7fff_ffff,
} as const;

/** `n` with thousands separators, as limits are quoted in errors. */
export function num(n: number): string {
  return n.toLocaleString('en-US');
}
