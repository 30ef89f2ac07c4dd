/**
 * The native addon (native/seine.c): TAP devices, batched UDP and raw IP sockets inside network
 * namespaces, and libuv readiness for their file descriptors. It moves bytes and metadata; every decision
 * stays in TypeScript.
 *
 * Batches work on one slab (a `PacketPool.slab`): frame i is `slab[offsets[i], offsets[i] + caps[i])` on
 * receive and `slab[offsets[i], offsets[i] + lens[i])` on send, indexes relative to the slab view given.
 * Every window is checked before the first system call: a bad one throws RangeError and nothing moves.
 *
 * Common rules:
 * - Wrong types throw TypeError, out-of-range values RangeError. A failed system call throws an Error
 *   naming call, object, namespace, step and errno (`tapOpen tap0 in netns x: TUNSETIFF: EBUSY`), with
 *   `code` ('EBUSY'), `errno` (negative, as in Node) and `syscall`.
 * - A batch stops at EAGAIN and returns how many it did. Only an error on its first item is reported
 *   (thrown, or -errno for `udpSendBatch`/`rawSendBatch`); an error after some items ends the batch short
 *   and the next call meets it first.
 * - A socket receive reports a datagram's full length: one larger than its cap was truncated to the cap.
 *   A TAP truncates silently (the length is then the cap), so its caps must fit the largest frame
 *   (65536 + VNET_HDR_LEN with TSO/USO on).
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { NativeAead } from '../esp/aead-batch.js';

export interface TapInfo {
  fd: number;
  /** The name the kernel gave (the one asked for, or its choice for a pattern such as `tap%d`). */
  name: string;
  ifindex: number;
}

export interface UdpInfo {
  fd: number;
  /** The bound port (the kernel's choice when 0 was asked for). */
  port: number;
  /** Whether the kernel accepted UDP_GRO (only asked for when `gro` was true). */
  gro: boolean;
}

/** Readiness bits for `pollStart`/`pollUpdate` and its callback (libuv's UV_READABLE / UV_WRITABLE). */
export const POLL = { READABLE: 1, WRITABLE: 2 } as const;

/** The addon's calls; its batched AEAD (`NativeAead`) is typed and documented in esp/aead-batch.ts. */
export interface Native extends NativeAead {
  /**
   * Opens (or attaches to an existing persistent) TAP `name` inside netns (a name under /var/run/netns or
   * a /proc/PID/ns/net path; null = current), IFF_TAP|IFF_NO_PI (|IFF_VNET_HDR when vnetHdr, with
   * TUNSETVNETHDRSZ 12 = virtio_net_hdr_v1 size), O_NONBLOCK, CLOEXEC. persist → TUNSETPERSIST 1.
   */
  tapOpen(name: string, netns: string | null, vnetHdr: boolean, persist: boolean): TapInfo;
  /** TUNSETOFFLOAD; returns 0 or -errno (e.g. -EINVAL when the kernel refuses a flag). */
  tapSetOffload(fd: number, flags: number): number;
  tapSetPersist(fd: number, on: boolean): void;
  /**
   * MTU / MAC (6 bytes) / up via ioctl on a socket opened inside netns; fields left undefined are
   * untouched. A link asked to go down goes down first, one asked to go up goes up last.
   */
  linkSet(netns: string | null, name: string, mtu: number | undefined, mac: Uint8Array | undefined, up: boolean | undefined): void;
  /** ifindex of `name` inside netns, 0 when absent. */
  linkIndex(netns: string | null, name: string): number;
  /**
   * Sends rtnetlink requests (built by live/rtnl.ts: whole nlmsghdr frames, sequence 1, 2, …, each with
   * NLM_F_ACK) in one write on a NETLINK_ROUTE socket made inside netns; returns each message's errno (0:
   * done). Malformed framing throws a RangeError before anything is sent.
   */
  netlinkRoute(netns: string | null, messages: Uint8Array): number[];
  /**
   * read() repeatedly until EAGAIN or `max` frames: frame i lands at slab[offsets[i]], at most caps[i]
   * bytes; lens[i] = bytes read (a longer frame is cut to caps[i] without a sign). Returns the count (0 on
   * EAGAIN at once); throws on another error of the first read.
   */
  readBatch(fd: number, slab: Uint8Array, offsets: Int32Array, caps: Int32Array, lens: Int32Array, max: number): number;
  /**
   * write() frames i < count (slab[offsets[i]], lens[i] bytes) until EAGAIN; returns how many were
   * written. Throws when the first write fails otherwise (e.g. EIO: the TAP is down; EINVAL: a bad
   * virtio-net header), so that the caller can drop that frame.
   */
  writeBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number): number;
  /**
   * UDP socket bound to addr:port inside netns (family 4 or 6; port 0 = ephemeral, the bound port is
   * returned), O_NONBLOCK, SO_REUSEADDR, 4 MiB SO_RCVBUF/SO_SNDBUF where allowed, UDP_GRO when `gro` and
   * accepted. An IPv6 socket is IPV6_V6ONLY (peers are never v4-mapped).
   */
  udpOpen(netns: string | null, family: 4 | 6, addr: string, port: number, gro: boolean): UdpInfo;
  /**
   * recvmmsg up to `max` datagrams (MSG_DONTWAIT): datagram i at slab[offsets[i]], ≤ caps[i]; lens[i]
   * (its full length: above caps[i] it was truncated); peer address in addrs[16i..16i+16) (IPv4: first 4
   * bytes, the rest zeroed), peer port in ports[i]; segs[i] = UDP_GRO gso_size from the cmsg, or 0.
   * Returns the count (0 when none). On a GRO socket a coalesced datagram is up to 65535 bytes: a smaller
   * cap loses the segments past it.
   */
  udpRecvBatch(
    fd: number,
    slab: Uint8Array,
    offsets: Int32Array,
    caps: Int32Array,
    lens: Int32Array,
    addrs: Uint8Array,
    ports: Int32Array,
    segs: Int32Array,
    max: number,
  ): number;
  /**
   * sendmmsg of messages i < count to addrs[16i..]/ports[i]; segs[i] > 0 adds a UDP_SEGMENT cmsg with
   * that size. Returns the number sent (short, possibly 0, on EAGAIN), or -errno when the first message
   * fails (e.g. -EIO: the kernel/NIC can't segment; -EINVAL: more segments than the kernel allows).
   */
  udpSendBatch(
    fd: number,
    slab: Uint8Array,
    offsets: Int32Array,
    lens: Int32Array,
    addrs: Uint8Array,
    ports: Int32Array,
    segs: Int32Array,
    count: number,
  ): number;
  /**
   * sendmmsg of `messages` messages, each gathered from consecutive windows: message m is the next
   * iovs[m] windows (slab[offsets[i]], lens[i] bytes; windows i < count in order, sum of iovs = count),
   * sent to addrs[16m..]/ports[m] with a UDP_SEGMENT cmsg of segs[m] when > 0. So the encapsulated
   * segments of one super-frame, each in its own pool buffer, leave as one UDP GSO send without being
   * copied together. addrs/ports/segs are indexed by message but must be as long as the windows. Returns
   * messages sent (short on EAGAIN), or -errno when the first fails (-EIO/-EINVAL: no UDP GSO here).
   */
  udpSendGather(
    fd: number,
    slab: Uint8Array,
    offsets: Int32Array,
    lens: Int32Array,
    addrs: Uint8Array,
    ports: Int32Array,
    segs: Int32Array,
    count: number,
    iovs: Int32Array,
    messages: number,
  ): number;
  /**
   * Raw IP socket for `protocol` (50 ESP, 47 GRE) inside netns, O_NONBLOCK, 4 MiB SO_RCVBUF/SO_SNDBUF
   * where allowed (as `udpOpen`: ESP over IP arrives in bursts). IPv4: IP_HDRINCL — send
   * whole IPv4 packets (the kernel fills the header checksum, total length, and a zero ID/source);
   * receive returns whole IPv4 packets, header included. IPv6: no IP header on send or receive (the
   * payload only; the kernel builds the header, as RFC 3542 raw sockets do).
   */
  rawOpen(netns: string | null, family: 4 | 6, protocol: number): { fd: number };
  /** recvmmsg as `udpRecvBatch`, without ports or segments. */
  rawRecvBatch(fd: number, slab: Uint8Array, offsets: Int32Array, caps: Int32Array, lens: Int32Array, addrs: Uint8Array, max: number): number;
  /** sendmmsg as `udpSendBatch` (the destination is addrs[16i..]; IPv4 with IP_HDRINCL routes by it). */
  rawSendBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, addrs: Uint8Array, count: number): number;
  /**
   * Readiness from libuv (uv_poll_t; never a busy loop): cb(events) while `fd` is readable (1) / writable
   * (2) among `events`; returns an id for pollStop. libuv polls level-triggered: the callback comes again
   * on each loop turn while the condition holds, so drain a readable fd in it and ask for writable only
   * while a backlog waits (`pollUpdate`). A negative argument is a libuv error (-errno). One poll per fd:
   * a second pollStart on the same fd throws. The callback runs on the JS thread; an exception it throws
   * is an uncaught exception.
   */
  pollStart(fd: number, events: number, cb: (events: number) => void): number;
  /** Changes the events of an active poll; 0 pauses it (it then keeps the process alive no longer). */
  pollUpdate(id: number, events: number): void;
  /** Stops a poll (no callback after this returns); an unknown or stopped id is ignored. */
  pollStop(id: number): void;
  /** Closes the fd, stopping a poll still active on it first. */
  close(fd: number): void;
  /**
   * Starts `path` (no PATH search) with `argv` (argv[0] included) and `envp` ("K=V" strings, the whole
   * environment) through posix_spawn — no fork, so no copy of this process's page tables — with
   * stdin/stdout/stderr on pipes. Returns the pid, a pidfd (readable once the child has exited; -1 when
   * the kernel has none) and this side's pipe ends, all O_CLOEXEC. Signal mask empty and dispositions
   * default in the child. A failed exec throws (`spawnFast /x: posix_spawn: ENOENT`). The child is the
   * caller's to reap (libuv reaps only its own): `reap`, and close every fd returned.
   */
  spawnFast(path: string, argv: readonly string[], envp: readonly string[]): SpawnedFast;
  /** waitpid(pid, WNOHANG): null while the child runs, else its exit code or the number of the signal that ended it. */
  reap(pid: number): { code: number; signal: null } | { code: null; signal: number } | null;
}

/** What `spawnFast` returns: the child and this side's ends of its three pipes. */
export interface SpawnedFast {
  pid: number;
  pidfd: number;
  stdin: number;
  stdout: number;
  stderr: number;
}

/** TUNSETOFFLOAD flags (linux/if_tun.h; USO4/USO6 since Linux 6.2). */
export const TUN_F = { CSUM: 0x01, TSO4: 0x02, TSO6: 0x04, TSO_ECN: 0x08, UFO: 0x10, USO4: 0x20, USO6: 0x40 } as const;

/** Size of the virtio_net_hdr_v1 a TAP opened with vnetHdr puts before every frame. */
export const VNET_HDR_LEN = 12;

/** This file runs as dist/src/live/native.js: the package root is three levels up. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADDON = `${ROOT}native/build/Release/seine.node`;
const FAILURE = `${ROOT}native/build/failure.txt`;

let loaded: Native | null = null;
let reason: string | null | undefined;

function load(): void {
  if (reason !== undefined) return;
  if (process.platform !== 'linux') {
    reason = `seine's live mode needs Linux (this is ${process.platform})`;
    return;
  }
  if (!existsSync(ADDON)) {
    let why = '';
    try {
      why = ` (${readFileSync(FAILURE, 'utf8').split('\n', 1)[0]!})`;
    } catch {
      // No record: the install script did not run (e.g. npm install --ignore-scripts).
    }
    reason = `the native addon was not built: run npm rebuild${why}`;
    return;
  }
  try {
    loaded = createRequire(import.meta.url)(ADDON) as Native;
    reason = null;
  } catch (e) {
    reason = `the native addon did not load: ${e instanceof Error ? e.message : String(e)} (run npm rebuild)`;
  }
}

/** Why the addon cannot be used here, or null when it can. */
export function nativeUnavailable(): string | null {
  load();
  return reason ?? null;
}

/** The addon; throws Error(nativeUnavailable()) when it is absent. */
export function loadNative(): Native {
  load();
  if (loaded === null) throw new Error(reason ?? 'the native addon is unavailable');
  return loaded;
}
