// PLACEHOLDER: replaced by the native addon branch at merge.
export interface TapInfo { fd: number; name: string; ifindex: number; }
export interface UdpInfo { fd: number; port: number; gro: boolean; }
export interface Native {
  tapOpen(name: string, netns: string | null, vnetHdr: boolean, persist: boolean): TapInfo;
  tapSetOffload(fd: number, flags: number): number;
  tapSetPersist(fd: number, on: boolean): void;
  linkSet(netns: string | null, name: string, mtu: number | undefined, mac: Uint8Array | undefined, up: boolean | undefined): void;
  linkIndex(netns: string | null, name: string): number;
  readBatch(fd: number, slab: Uint8Array, offsets: Int32Array, caps: Int32Array, lens: Int32Array, max: number): number;
  writeBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number): number;
  udpOpen(netns: string | null, family: 4 | 6, addr: string, port: number, gro: boolean): UdpInfo;
  udpRecvBatch(fd: number, slab: Uint8Array, offsets: Int32Array, caps: Int32Array, lens: Int32Array, addrs: Uint8Array, ports: Int32Array, segs: Int32Array, max: number): number;
  udpSendBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, addrs: Uint8Array, ports: Int32Array, segs: Int32Array, count: number): number;
  rawOpen(netns: string | null, family: 4 | 6, protocol: number): { fd: number };
  rawRecvBatch(fd: number, slab: Uint8Array, offsets: Int32Array, caps: Int32Array, lens: Int32Array, addrs: Uint8Array, max: number): number;
  rawSendBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, addrs: Uint8Array, count: number): number;
  pollStart(fd: number, events: number, cb: (events: number) => void): number;
  pollStop(id: number): void;
  close(fd: number): void;
}
export const TUN_F = { CSUM: 0x01, TSO4: 0x02, TSO6: 0x04, TSO_ECN: 0x08, UFO: 0x10, USO4: 0x20, USO6: 0x40 } as const;
export function loadNative(): Native { throw new Error('placeholder'); }
export function nativeUnavailable(): string | null { return 'placeholder'; }
