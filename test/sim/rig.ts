/**
 * Shared by the simulated-host tests: two hosts (a 10.0.0.1/fd00::1, b 10.0.0.2/fd00::2) joined by one
 * SimLink, with static neighbours unless they are to resolve them.
 */
import { PacketPool } from '../../src/packet/buf.js';
import { Simulator } from '../../src/sim/engine.js';
import { SimHost, type HostConfig } from '../../src/sim/host.js';
import { SimLink, type LinkConfig } from '../../src/sim/link.js';
export { assertPoolFull } from '../datapath/topology.js';

export const MAC_A = 0x020000000001;
export const MAC_B = 0x020000000002;

export interface Rig {
  sim: Simulator;
  pool: PacketPool;
  a: SimHost;
  b: SimHost;
}

/** The two hosts, not yet connected. */
export function hosts(sim: Simulator, pool: PacketPool, cfgA: Partial<HostConfig> = {}, cfgB: Partial<HostConfig> = cfgA): [SimHost, SimHost] {
  const a = new SimHost(sim, pool, { name: 'a', mac: MAC_A, ipv4: '10.0.0.1/24', ipv6: 'fd00::1/64', ...cfgA });
  const b = new SimHost(sim, pool, { name: 'b', mac: MAC_B, ipv4: '10.0.0.2/24', ipv6: 'fd00::2/64', ...cfgB });
  return [a, b];
}

export interface DirectOptions {
  /** Let the hosts resolve each other (ARP/ND) instead of static neighbours. */
  resolve?: boolean;
  a?: Partial<HostConfig>;
  b?: Partial<HostConfig>;
}

/** The two hosts joined by one SimLink of `link`. */
export function direct(link: LinkConfig, seed = 1, opts: DirectOptions = {}): Rig & { link: SimLink } {
  const sim = new Simulator(seed);
  const pool = new PacketPool({ count: 4096, frameCapacity: 2048 });
  const [a, b] = hosts(sim, pool, opts.a ?? {}, opts.b ?? {});
  const l = new SimLink(sim, pool, link);
  a.connect(l.a);
  b.connect(l.b);
  if (opts.resolve !== true) {
    a.addNeighbor('10.0.0.2', MAC_B);
    b.addNeighbor('10.0.0.1', MAC_A);
    a.addNeighbor('fd00::2', MAC_B);
    b.addNeighbor('fd00::1', MAC_A);
  }
  return { sim, pool, a, b, link: l };
}
