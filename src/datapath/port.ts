/**
 * A bridge port: admin and link state, MTU, MAC, VLAN mode, counters, and the device (or internal
 * handler) behind it. Ports are numbered by the bridge; MAC table entries store that number.
 */
import { PacketBatch } from '../packet/buf.js';
import { DROP_REASON_COUNT, type DropReason, dropReasonName } from '../wire/drop.js';
import type { Device } from './device.js';

/**
 * `veth`: one end of a veth-like pair. `device`: backed by a TAP or a simulated link. `gateway`: the
 * node's internal L3 port (answers ARP/ND for the gateway address and routes). `tunnel`: VXLAN/Geneve.
 */
export type PortKind = 'veth' | 'device' | 'gateway' | 'tunnel';

/** VLAN ids run 1–4094 on the wire; segment 0 is the untagged default. */
export const VLAN_MAX = 4094;

export class PortCounters {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  /** Drops by `DropReason`, indexed by its number. */
  readonly drops = new Float64Array(DROP_REASON_COUNT);

  /** Sum of all drops. */
  get dropped(): number {
    let n = 0;
    for (let i = 0; i < this.drops.length; i++) n += this.drops[i]!;
    return n;
  }

  /** Non-zero drops by reason name. */
  dropsByReason(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 1; i < this.drops.length; i++) if (this.drops[i]! > 0) out[dropReasonName(i as DropReason)] = this.drops[i]!;
    return out;
  }

  reset(): void {
    this.rxPackets = this.rxBytes = this.txPackets = this.txBytes = 0;
    this.drops.fill(0);
  }
}

export interface VlanConfig {
  /** Access port: frames are untagged on the wire and belong to this VLAN (0 = the untagged segment). */
  vlan?: number;
  /**
   * Trunk port: 802.1Q-tagged frames of these VLANs are accepted and sent tagged. Untagged frames belong
   * to `native` (default 0) and frames of `native` leave untagged.
   */
  trunk?: readonly number[];
  native?: number;
}

export class Port {
  private admin = true;
  private link = true;
  /** adminUp && linkUp, kept as a field because every packet reads it. */
  up = true;
  /** A gateway or tunnel port: output takes the long way. */
  special = false;
  readonly counters = new PortCounters();
  /** Frames waiting to be handed to the device at the end of the batch. */
  readonly out = new PacketBatch();
  /** Access VLAN, or for a trunk its native VLAN. */
  vlan = 0;
  /** For a trunk: allowed[v] = 1 for each allowed tagged VLAN; null for an access port. */
  allowed: Uint8Array | null = null;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly kind: PortKind,
    public mac: number,
    public mtu: number,
    /** The device behind a veth or device port, or the underlay of a tunnel port; null for a gateway. */
    readonly device: Device | null,
  ) {
    this.special = kind === 'gateway' || kind === 'tunnel';
  }

  /** Administrative state (`ip link set … up/down`). */
  get adminUp(): boolean {
    return this.admin;
  }
  set adminUp(v: boolean) {
    this.admin = v;
    this.up = v && this.link;
  }
  /** Carrier. */
  get linkUp(): boolean {
    return this.link;
  }
  set linkUp(v: boolean) {
    this.link = v;
    this.up = this.admin && v;
  }
  get isTrunk(): boolean {
    return this.allowed !== null;
  }

  /** Whether frames of `segment` may use this port (its access VLAN, or a trunk's native or allowed VLAN). */
  carries(segment: number): boolean {
    if (segment === this.vlan) return true;
    return this.allowed !== null && segment >= 1 && segment <= VLAN_MAX && this.allowed[segment] === 1;
  }

  /** Applies a VLAN config, checking every id. */
  setVlans(cfg: VlanConfig, where: string): void {
    const check = (v: number, what: string, min: number): number => {
      if (!Number.isInteger(v) || v < min || v > VLAN_MAX) throw new RangeError(`${where}: ${what} ${v} is not a VLAN id (${min}-${VLAN_MAX})`);
      return v;
    };
    if (cfg.trunk !== undefined) {
      if (cfg.vlan !== undefined) throw new RangeError(`${where}: a port is either access (vlan) or trunk (trunk), not both`);
      this.allowed = new Uint8Array(VLAN_MAX + 1);
      for (const v of cfg.trunk) this.allowed[check(v, 'trunk VLAN', 1)] = 1;
      this.vlan = check(cfg.native ?? 0, 'native VLAN', 0);
    } else {
      if (cfg.native !== undefined) throw new RangeError(`${where}: native applies to trunk ports only`);
      this.allowed = null;
      this.vlan = check(cfg.vlan ?? 0, 'access VLAN', 0);
    }
  }
}
