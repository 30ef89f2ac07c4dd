/**
 * The native addon against the real kernel: TAP devices, UDP and raw sockets inside network namespaces
 * this test creates (and deletes in `after`, also on failure). Every check reads the kernel's side —
 * ip(8)/ss(8) output, the kernel's ARP and ICMP answers, what its sockets receive — not the addon's own
 * account. Root only: without it the suite is skipped with a loud reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { HEADROOM, PacketPool } from '../../src/packet/buf.js';
import { loadNative, nativeUnavailable, POLL, TUN_F, VNET_HDR_LEN, type Native } from '../../src/live/native.js';
import { checksum } from '../../src/wire/checksum.js';
import { rd16, rd32, wr16, wr32 } from '../../src/wire/bytes.js';
import { requireTool, run } from '../helpers.js';
import { sleep } from '../../src/live/sleep.js';

const SKIP =
  process.platform !== 'linux'
    ? `SKIPPED: the native addon is Linux-only (this is ${process.platform})`
    : process.getuid?.() !== 0
      ? 'SKIPPED — NOT ROOT: these tests create network namespaces, TAP devices and raw sockets; run them as root to test the native addon'
      : false;

const EINVAL = 22;
const EIO = 5;

const KERNEL_MAC = [0x02, 0x00, 0x00, 0x99, 0x00, 0x01];
const PEER_MAC = [0x02, 0x00, 0x00, 0x99, 0x00, 0x02];
const KERNEL_IP = [10, 99, 0, 1];
const PEER_IP = [10, 99, 0, 2];
const LOOPBACK4 = [127, 0, 0, 1];
const LOOPBACK6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/** Offsets of a frame read from a TAP with a virtio-net header. */
const ETH = VNET_HDR_LEN;
const IP = ETH + 14;
const L4 = IP + 20;

/** Frame buffers the way the live datapath will hold them: windows of a PacketPool's slab. */
class Ring {
  readonly slab: Uint8Array;
  readonly offsets: Int32Array;
  readonly caps: Int32Array;
  readonly lens: Int32Array;
  readonly addrs: Uint8Array;
  readonly ports: Int32Array;
  readonly segs: Int32Array;

  constructor(
    readonly count: number,
    cap: number,
  ) {
    const pool = new PacketPool({ count, frameCapacity: cap });
    this.slab = pool.slab;
    this.offsets = Int32Array.from({ length: count }, (_, i) => i * pool.bufferSize + HEADROOM);
    this.caps = new Int32Array(count).fill(cap);
    this.lens = new Int32Array(count);
    this.addrs = new Uint8Array(16 * count);
    this.ports = new Int32Array(count);
    this.segs = new Int32Array(count);
  }

  /** A copy of received frame i (lens[i] bytes, at most its cap). */
  frame(i: number): Uint8Array {
    const off = this.offsets[i]!;
    return this.slab.slice(off, off + Math.min(this.lens[i]!, this.caps[i]!));
  }

  /** Puts message i for sending. */
  put(i: number, bytes: Uint8Array | number[], addr: number[] = [], port = 0, seg = 0): void {
    this.slab.set(bytes, this.offsets[i]!);
    this.lens[i] = bytes.length;
    this.addrs.fill(0, 16 * i, 16 * i + 16);
    this.addrs.set(addr, 16 * i);
    this.ports[i] = port;
    this.segs[i] = seg;
  }

  addr(i: number, len: number): number[] {
    return Array.from(this.addrs.subarray(16 * i, 16 * i + len));
  }
}

/** The name of the calling thread's network namespace (net:[inode]). */
function threadNetns(): string {
  return readlinkSync('/proc/thread-self/ns/net');
}

function ip(...args: string[]): string {
  return run('ip', args);
}

interface IpLink {
  ifindex: number;
  mtu: number;
  address: string;
  flags: string[];
}

function ipLink(ns: string, name: string): IpLink {
  return (JSON.parse(ip('-j', '-n', ns, 'link', 'show', name)) as IpLink[])[0]!;
}

function bytes(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

/** An ARP request from the peer for the kernel's address, behind a zero virtio-net header. */
function arpRequest(): Uint8Array {
  const f = new Uint8Array(VNET_HDR_LEN + 42);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...PEER_MAC, 0x08, 0x06], ETH);
  f.set([0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, ...PEER_MAC, ...PEER_IP, 0, 0, 0, 0, 0, 0, ...KERNEL_IP], ETH + 14);
  return f;
}

/** An ICMP echo request from the peer to the kernel's address, behind a zero virtio-net header. */
function echoRequest(id: number, seq: number, payloadLen: number): Uint8Array {
  const f = new Uint8Array(L4 + 8 + payloadLen);
  f.set([...KERNEL_MAC, ...PEER_MAC, 0x08, 0x00], ETH);
  f.set([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0, ...PEER_IP, ...KERNEL_IP], IP);
  wr16(f, IP + 2, 20 + 8 + payloadLen);
  wr16(f, IP + 4, seq);
  wr16(f, IP + 10, checksum(f, IP, 20));
  f.set([8, 0, 0, 0], L4);
  wr16(f, L4 + 4, id);
  wr16(f, L4 + 6, seq);
  f.set(bytes(payloadLen, seq), L4 + 8);
  wr16(f, L4 + 2, checksum(f, L4, 8 + payloadLen));
  return f;
}

function isEchoReply(f: Uint8Array, id: number): boolean {
  return f.length >= L4 + 8 && rd16(f, ETH + 12) === 0x0800 && f[IP + 9] === 1 && f[L4] === 0 && rd16(f, L4 + 4) === id;
}

describe('native addon against the kernel (root, network namespaces)', { skip: SKIP }, () => {
  let n: Native;
  const namespaces: string[] = [];
  const fds = new Set<number>();

  before(() => {
    const why = nativeUnavailable();
    if (why !== null) throw new Error(`${why}: the live tests need the addon`);
    requireTool('ip', 'iproute2');
    requireTool('ss', 'iproute2');
    n = loadNative();
  });

  after(() => {
    for (const fd of fds) {
      try {
        n.close(fd);
      } catch {
        // Already closed by the test.
      }
    }
    for (const ns of namespaces) {
      try {
        ip('netns', 'del', ns);
      } catch (e) {
        console.error(`could not delete netns ${ns}: ${String(e)}`);
      }
    }
  });

  /** A fresh namespace with lo up, deleted in `after`. */
  function netns(): string {
    const name = `seine-t-${randomBytes(4).toString('hex')}`;
    ip('netns', 'add', name);
    namespaces.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  }

  function keep<T extends { fd: number }>(o: T): T {
    fds.add(o.fd);
    return o;
  }

  function close(fd: number): void {
    n.close(fd);
    fds.delete(fd);
  }

  /** Resolves with the events once `fd` is ready; rejects after `ms`. The poll is stopped either way. */
  function ready(fd: number, events: number, ms: number): Promise<number> {
    return new Promise((resolve, reject) => {
      let id = 0;
      const timer = setTimeout(
        () => {
          n.pollStop(id);
          reject(new Error(`fd ${fd} not ready (${events}) within ${ms} ms`));
        },
        Math.max(ms, 0),
      );
      id = n.pollStart(fd, events, (ev) => {
        n.pollStop(id);
        clearTimeout(timer);
        resolve(ev);
      });
    });
  }

  /** Reads TAP frames until one matches (other traffic — IPv6 router solicitations, say — is passed over). */
  async function readUntil(fd: number, r: Ring, match: (f: Uint8Array) => boolean, ms = 3000): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    for (let round = 0; round < 200 && Date.now() < deadline; round++) {
      await ready(fd, POLL.READABLE, deadline - Date.now());
      const k = n.readBatch(fd, r.slab, r.offsets, r.caps, r.lens, r.count);
      for (let i = 0; i < k; i++) {
        const f = r.frame(i);
        if (match(f)) return f;
      }
    }
    throw new Error(`no matching frame on fd ${fd} within ${ms} ms`);
  }

  /** Receives datagrams until `wantBytes` arrived (rejects after `ms`); returns copies with their metadata. */
  async function recvAll(fd: number, r: Ring, wantBytes: number, ms = 3000, raw = false) {
    const got: { data: Uint8Array; len: number; addr: number[]; port: number; seg: number }[] = [];
    const deadline = Date.now() + ms;
    let bytes = 0;
    for (let round = 0; round < 200 && bytes < wantBytes; round++) {
      await ready(fd, POLL.READABLE, deadline - Date.now());
      const k = raw
        ? n.rawRecvBatch(fd, r.slab, r.offsets, r.caps, r.lens, r.addrs, r.count)
        : n.udpRecvBatch(fd, r.slab, r.offsets, r.caps, r.lens, r.addrs, r.ports, r.segs, r.count);
      for (let i = 0; i < k; i++) {
        got.push({ data: r.frame(i), len: r.lens[i]!, addr: r.addr(i, 16), port: r.ports[i]!, seg: r.segs[i]! });
        bytes += r.lens[i]!;
      }
    }
    return got;
  }

  describe('TAP', () => {
    let ns: string;
    let tap: { fd: number; name: string; ifindex: number };
    const r = new Ring(32, 65536 + VNET_HDR_LEN);

    before(() => {
      ns = netns();
      const self = threadNetns();
      tap = keep(n.tapOpen('tap0', ns, true, false));
      assert.equal(threadNetns(), self, 'the thread is back in its own namespace');
      ip('-n', ns, 'addr', 'add', '10.99.0.1/24', 'dev', 'tap0');
      n.linkSet(ns, 'tap0', 1400, Uint8Array.from(KERNEL_MAC), true);
    });

    test('tapOpen creates the TAP inside the namespace; linkSet sets MTU, MAC and up as ip(8) sees them', () => {
      assert.equal(tap.name, 'tap0');
      const link = ipLink(ns, 'tap0');
      assert.equal(tap.ifindex, link.ifindex);
      assert.equal(n.linkIndex(ns, 'tap0'), link.ifindex);
      assert.equal(n.linkIndex(ns, 'nosuch0'), 0);
      assert.equal(link.mtu, 1400);
      assert.equal(link.address, '02:00:00:99:00:01');
      assert.ok(link.flags.includes('UP') && link.flags.includes('LOWER_UP'), `flags ${link.flags.join(',')}`);
      // Fields left undefined stay as they are; down and up again.
      n.linkSet(ns, 'tap0', undefined, undefined, false);
      assert.ok(!ipLink(ns, 'tap0').flags.includes('UP'));
      n.linkSet(ns, 'tap0', undefined, undefined, true);
      const again = ipLink(ns, 'tap0');
      assert.ok(again.flags.includes('UP'));
      assert.equal(again.mtu, 1400);
      assert.equal(again.address, '02:00:00:99:00:01');
    });

    test('the kernel answers an ARP request and an ICMP echo request written behind a virtio-net header', async () => {
      r.put(0, arpRequest());
      assert.equal(n.writeBatch(tap.fd, r.slab, r.offsets, r.lens, 1), 1);
      const arp = await readUntil(tap.fd, r, (f) => f.length >= ETH + 42 && rd16(f, ETH + 12) === 0x0806 && rd16(f, ETH + 20) === 2);
      assert.equal(arp[1], 0, 'virtio-net gso_type NONE');
      assert.deepEqual(Array.from(arp.subarray(ETH, ETH + 12)), [...PEER_MAC, ...KERNEL_MAC]);
      assert.deepEqual(Array.from(arp.subarray(ETH + 22, ETH + 42)), [...KERNEL_MAC, ...KERNEL_IP, ...PEER_MAC, ...PEER_IP]);

      const req = echoRequest(0x5e1e, 1, 56);
      r.put(0, req);
      assert.equal(n.writeBatch(tap.fd, r.slab, r.offsets, r.lens, 1), 1);
      const rep = await readUntil(tap.fd, r, (f) => isEchoReply(f, 0x5e1e));
      assert.equal(rep.length, req.length);
      assert.equal(rep[1], 0, 'virtio-net gso_type NONE');
      assert.deepEqual(Array.from(rep.subarray(ETH, ETH + 12)), [...PEER_MAC, ...KERNEL_MAC]);
      assert.deepEqual(Array.from(rep.subarray(IP + 12, IP + 20)), [...KERNEL_IP, ...PEER_IP], 'addresses swapped');
      assert.equal(checksum(rep, IP, 20), 0, 'IPv4 header checksum');
      assert.equal(rep[L4], 0, 'ICMP echo reply');
      assert.equal(checksum(rep, L4, rep.length - L4), 0, 'ICMP checksum');
      assert.equal(rd16(rep, L4 + 6), 1, 'sequence');
      assert.deepEqual(rep.subarray(L4 + 8), req.subarray(L4 + 8), 'payload echoed');
    });

    test('readBatch returns several queued frames in one call', async () => {
      const id = 0x5e1f;
      for (let i = 0; i < 5; i++) r.put(i, echoRequest(id, 10 + i, 32));
      assert.equal(n.writeBatch(tap.fd, r.slab, r.offsets, r.lens, 5), 5);
      await ready(tap.fd, POLL.READABLE, 3000);
      await sleep(50); // the replies are queued while write() runs; be sure
      const k = n.readBatch(tap.fd, r.slab, r.offsets, r.caps, r.lens, r.count);
      const seqs: number[] = [];
      for (let i = 0; i < k; i++) {
        const f = r.frame(i);
        if (isEchoReply(f, id)) seqs.push(rd16(f, L4 + 6));
      }
      assert.ok(k >= 5, `one readBatch returned ${k} frames`);
      assert.deepEqual(seqs, [10, 11, 12, 13, 14]);
      assert.equal(n.readBatch(tap.fd, r.slab, r.offsets, r.caps, r.lens, r.count), 0, 'EAGAIN: nothing left');
    });

    test('a frame longer than its cap is cut to the cap without a sign (read() returns the cap)', async () => {
      const small = new Ring(8, 200);
      r.put(0, echoRequest(0x5e20, 1, 1000));
      assert.equal(n.writeBatch(tap.fd, r.slab, r.offsets, r.lens, 1), 1);
      const f = await readUntil(tap.fd, small, (g) => isEchoReply(g, 0x5e20));
      assert.equal(f.length, 200);
      assert.equal(rd16(f, IP + 2), 1028, 'the IPv4 total length says the frame was longer');
    });

    test('tapSetOffload: the kernel takes CSUM|TSO4|TSO6, reports on USO4|USO6, refuses an unknown flag', (t) => {
      assert.equal(n.tapSetOffload(tap.fd, TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6), 0);
      const uso = n.tapSetOffload(tap.fd, TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6 | TUN_F.USO4 | TUN_F.USO6);
      assert.ok(uso === 0 || uso === -EINVAL, `USO: ${uso}`);
      t.diagnostic(`TUNSETOFFLOAD with USO4|USO6: ${uso === 0 ? 'accepted' : 'refused (-EINVAL): kernel before 6.2'}`);
      try {
        // The kernel's own account of the features, where ethtool is installed.
        const k = run('ip', ['netns', 'exec', ns, 'ethtool', '-k', 'tap0']);
        assert.match(k, /tcp-segmentation-offload: on/);
        assert.match(k, /tx-checksumming: on/);
        if (uso === 0) assert.match(k, /tx-udp-segmentation: on/);
      } catch (e) {
        if (!(e instanceof Error && /ENOENT|not found|No such file/.test(e.message))) throw e;
        t.diagnostic('ethtool is not installed: the features the flags turned on were not read back');
      }
      assert.equal(n.tapSetOffload(tap.fd, 0x80), -EINVAL, 'a flag the kernel does not know');
      assert.equal(n.tapSetOffload(tap.fd, 0), 0);
    });

    test('a persistent TAP outlives its fd and keeps its ifindex; tapSetPersist(false) lets it go', () => {
      const first = n.tapOpen('ptap0', ns, true, true);
      fds.add(first.fd);
      close(first.fd);
      assert.equal(n.linkIndex(ns, 'ptap0'), first.ifindex, 'still there with no fd');
      assert.equal(ipLink(ns, 'ptap0').ifindex, first.ifindex);
      const again = keep(n.tapOpen('ptap0', ns, true, false));
      assert.equal(again.ifindex, first.ifindex);
      // The kernel refuses frames for a TAP that is down: writeBatch throws, naming the errno.
      r.put(0, arpRequest());
      assert.throws(
        () => n.writeBatch(again.fd, r.slab, r.offsets, r.lens, 1),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.match(e.message, /^writeBatch fd \d+: write: EIO$/);
          assert.equal((e as NodeJS.ErrnoException).code, 'EIO');
          assert.equal((e as NodeJS.ErrnoException).errno, -EIO);
          return true;
        },
      );
      n.tapSetPersist(again.fd, false);
      close(again.fd);
      assert.equal(n.linkIndex(ns, 'ptap0'), 0, 'gone with its last fd');
    });

    test('errors name the call, object, namespace, step and errno; the thread always returns to its namespace', () => {
      const self = threadNetns();
      assert.throws(() => n.tapOpen('tap9', 'seine-t-absent', true, false), {
        name: 'Error',
        code: 'ENOENT',
        message: 'tapOpen tap9 in netns seine-t-absent: open netns: ENOENT',
      });
      // lo exists and is no TAP: the switch into the namespace succeeded, TUNSETIFF failed.
      assert.throws(() => n.tapOpen('lo', ns, false, false), { code: 'EINVAL', message: `tapOpen lo in netns ${ns}: TUNSETIFF: EINVAL` });
      assert.throws(() => n.linkSet(ns, 'nosuch0', 1400, undefined, undefined), {
        code: 'ENODEV',
        message: `linkSet nosuch0 in netns ${ns}: SIOCSIFMTU: ENODEV`,
      });
      assert.equal(threadNetns(), self);
      assert.equal(n.linkIndex(null, 'lo'), 1, 'null: the current namespace');
    });
  });

  describe('UDP', () => {
    let ns: string;
    before(() => {
      ns = netns();
    });

    test('64 datagrams in one sendmmsg arrive through recvmmsg with their sizes, bytes and peer', async () => {
      const a = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const b = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      assert.ok(a.port > 0 && b.port > 0 && a.port !== b.port);
      assert.equal(a.gro, false);
      const ss = run('ss', ['-N', ns, '-uln']);
      assert.match(ss, new RegExp(`127\\.0\\.0\\.1:${a.port}\\b`), 'ss sees the socket in the namespace');
      assert.match(ss, new RegExp(`127\\.0\\.0\\.1:${b.port}\\b`));
      const tx = new Ring(64, 2048);
      for (let i = 0; i < 64; i++) tx.put(i, bytes(100 + i * 13, i), LOOPBACK4, b.port);
      assert.equal(n.udpSendBatch(a.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 64), 64);
      const got = await recvAll(b.fd, new Ring(64, 2048), 64 * 100 + (13 * (63 * 64)) / 2);
      assert.equal(got.length, 64);
      got.forEach((d, i) => {
        assert.equal(d.len, 100 + i * 13);
        assert.deepEqual(Array.from(d.data), bytes(100 + i * 13, i));
        assert.deepEqual(d.addr, [...LOOPBACK4, ...new Array<number>(12).fill(0)]);
        assert.equal(d.port, a.port);
        assert.equal(d.seg, 0);
      });
    });

    test('UDP_SEGMENT: one 10 × 1000-byte send arrives at a non-GRO socket as 10 datagrams of 1000', async () => {
      const a = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const b = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const tx = new Ring(1, 10000);
      tx.put(0, bytes(10000, 3), LOOPBACK4, b.port, 1000);
      assert.equal(n.udpSendBatch(a.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 1), 1);
      const got = await recvAll(b.fd, new Ring(16, 2048), 10000);
      assert.deepEqual(
        got.map((d) => d.len),
        new Array<number>(10).fill(1000),
      );
      assert.deepEqual(
        got.map((d) => d.seg),
        new Array<number>(10).fill(0),
      );
      assert.deepEqual(Array.from(Buffer.concat(got.map((d) => d.data))), bytes(10000, 3));
    });

    test('UDP_GRO: the receiver reports gso_size for what the kernel hands it coalesced', async (t) => {
      const a = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const c = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, true));
      assert.equal(c.gro, true, 'the kernel takes UDP_GRO (Linux ≥ 5.0)');
      const tx = new Ring(10, 10000);
      const rx = new Ring(16, 65536);

      // One GSO send: loopback does not segment it, so a GRO socket may take the super-datagram whole.
      tx.put(0, bytes(10000, 5), LOOPBACK4, c.port, 1000);
      assert.equal(n.udpSendBatch(a.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 1), 1);
      const gso = await recvAll(c.fd, rx, 10000);
      assert.deepEqual(Array.from(Buffer.concat(gso.map((d) => d.data))), bytes(10000, 5));
      for (const d of gso) assert.ok(d.seg === 0 ? d.len <= 1000 : d.seg === 1000 && d.len > 1000, `len ${d.len} seg ${d.seg}`);
      if (gso.length === 1) assert.deepEqual([gso[0]!.len, gso[0]!.seg], [10000, 1000]);
      t.diagnostic(`a 10 × 1000 GSO send reached the GRO socket as ${gso.map((d) => `${d.len}${d.seg ? `/gso ${d.seg}` : ''}`).join(', ')}`);

      // Ten plain datagrams: loopback has no GRO engine (netif_rx, no NAPI), so they are expected apart.
      for (let i = 0; i < 10; i++) tx.put(i, bytes(1000, 10 + i), LOOPBACK4, c.port);
      assert.equal(n.udpSendBatch(a.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 10), 10);
      const plain = await recvAll(c.fd, rx, 10000);
      assert.equal(
        plain.reduce((s, d) => s + d.len, 0),
        10000,
      );
      for (const d of plain) assert.ok(d.seg === 0 || d.len % d.seg === 0);
      t.diagnostic(`ten plain 1000-byte datagrams reached the GRO socket as ${plain.length} (${plain.some((d) => d.seg) ? 'coalesced' : 'not coalesced'})`);
    });

    test('a send the kernel refuses gives -errno from the first message (more segments than UDP_MAX_SEGMENTS)', () => {
      const a = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const tx = new Ring(2, 2048);
      tx.put(0, bytes(1000, 1), LOOPBACK4, a.port, 1); // 1000 segments of 1 byte
      tx.put(1, bytes(10, 1), LOOPBACK4, a.port);
      assert.equal(n.udpSendBatch(a.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 2), -EINVAL);
    });

    test('udpSendGather: a message gathered from windows across the slab, with UDP_SEGMENT, arrives as its datagrams; one without as one datagram', async () => {
      const a = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const b = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      // Five windows, far apart and out of order in the slab: message 0 = windows 0-2 (1000, 1000, 400
      // bytes, segment size 1000), message 1 = windows 3-4 (300 + 200 bytes, no segmentation).
      const tx = new Ring(5, 2048);
      const sizes = [1000, 1000, 400, 300, 200];
      const order = [4, 1, 3, 0, 2];
      sizes.forEach((len, i) => tx.put(order[i]!, bytes(len, 20 + i), LOOPBACK4, b.port));
      const off = Int32Array.from(sizes.map((_, i) => tx.offsets[order[i]!]!));
      const lens = Int32Array.from(sizes);
      const ports = Int32Array.of(b.port, b.port, 0, 0, 0);
      const segs = Int32Array.of(1000, 0, 0, 0, 0);
      const addrs = new Uint8Array(16 * 5);
      addrs.set(LOOPBACK4, 0);
      addrs.set(LOOPBACK4, 16);
      assert.equal(n.udpSendGather(a.fd, tx.slab, off, lens, addrs, ports, segs, 5, Int32Array.of(3, 2, 0, 0, 0), 2), 2);
      const got = await recvAll(b.fd, new Ring(8, 2048), 2900);
      assert.deepEqual(
        got.map((d) => d.len),
        [1000, 1000, 400, 500],
      );
      assert.deepEqual(Array.from(got[0]!.data), bytes(1000, 20));
      assert.deepEqual(Array.from(got[1]!.data), bytes(1000, 21));
      assert.deepEqual(Array.from(got[2]!.data), bytes(400, 22));
      assert.deepEqual(Array.from(got[3]!.data), [...bytes(300, 23), ...bytes(200, 24)]);
      // The windows must add up to the count; a message needs at least one.
      assert.throws(() => n.udpSendGather(a.fd, tx.slab, off, lens, addrs, ports, segs, 5, Int32Array.of(3, 1, 0, 0, 0), 2), RangeError);
      assert.throws(() => n.udpSendGather(a.fd, tx.slab, off, lens, addrs, ports, segs, 5, Int32Array.of(5, 0, 0, 0, 0), 2), RangeError);
    });

    test('IPv6: a datagram to [::1] and its peer address', async () => {
      const a = keep(n.udpOpen(ns, 6, '::1', 0, false));
      const b = keep(n.udpOpen(ns, 6, '::1', 0, false));
      const tx = new Ring(1, 2048);
      tx.put(0, bytes(333, 9), LOOPBACK6, b.port);
      assert.equal(n.udpSendBatch(a.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 1), 1);
      const [d] = await recvAll(b.fd, new Ring(4, 2048), 333);
      assert.ok(d !== undefined);
      assert.deepEqual(Array.from(d.data), bytes(333, 9));
      assert.deepEqual(d.addr, LOOPBACK6);
      assert.equal(d.port, a.port);
      assert.match(run('ss', ['-N', ns, '-uln']), new RegExp(`\\[::1\\]:${b.port}\\b`));
    });
  });

  describe('raw IP', () => {
    let ns: string;
    before(() => {
      ns = netns();
    });

    test('IPv4 ESP: a whole packet sent to 127.0.0.1 comes back with its header, checksum filled by the kernel', async () => {
      const s = keep(n.rawOpen(ns, 4, 50));
      const pkt = new Uint8Array(20 + 8 + 32);
      pkt.set([0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 50, 0, 0, ...LOOPBACK4, ...LOOPBACK4]);
      wr16(pkt, 2, pkt.length);
      wr32(pkt, 20, 0x1001); // SPI
      wr32(pkt, 24, 1); // sequence number
      pkt.set(bytes(32, 4), 28);
      const tx = new Ring(1, 2048);
      tx.put(0, pkt, LOOPBACK4);
      assert.equal(n.rawSendBatch(s.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, 1), 1);
      const [d] = await recvAll(s.fd, new Ring(4, 2048), pkt.length, 3000, true);
      assert.ok(d !== undefined);
      assert.equal(d.len, pkt.length);
      assert.equal(checksum(d.data, 0, 20), 0, 'the kernel filled the header checksum');
      d.data[10] = d.data[11] = 0;
      assert.deepEqual(d.data, pkt);
      assert.equal(rd32(d.data, 20), 0x1001);
      assert.deepEqual(d.addr.slice(0, 4), LOOPBACK4);
    });

    test('IPv6 ESP: no IP header on send or receive', async () => {
      const s = keep(n.rawOpen(ns, 6, 50));
      const tx = new Ring(1, 2048);
      tx.put(0, [0, 0, 0x10, 0x02, 0, 0, 0, 1, ...bytes(24, 6)], LOOPBACK6);
      assert.equal(n.rawSendBatch(s.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, 1), 1);
      const [d] = await recvAll(s.fd, new Ring(4, 2048), 32, 3000, true);
      assert.ok(d !== undefined);
      assert.deepEqual(Array.from(d.data), [0, 0, 0x10, 0x02, 0, 0, 0, 1, ...bytes(24, 6)]);
      assert.deepEqual(d.addr, LOOPBACK6);
    });
  });

  describe('polls and bad arguments', () => {
    let ns: string;
    before(() => {
      ns = netns();
    });

    test('pollStart/pollUpdate/pollStop: writable fires, a paused poll is silent, one poll per fd', async () => {
      const u = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      assert.equal(await ready(u.fd, POLL.WRITABLE, 1000), POLL.WRITABLE);
      let calls = 0;
      const id = n.pollStart(u.fd, POLL.WRITABLE, () => {
        calls++;
        n.pollUpdate(id, 0);
      });
      assert.throws(() => n.pollStart(u.fd, POLL.READABLE, () => {}), { code: 'ERR_INVALID_STATE' });
      await sleep(50);
      assert.equal(calls, 1, 'paused after the first callback');
      n.pollStop(id);
      n.pollStop(id); // twice is harmless
      assert.throws(() => n.pollUpdate(id, POLL.READABLE), RangeError);
      // close() stops a poll left on its fd.
      const v = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      n.pollStart(v.fd, POLL.READABLE, () => {});
      close(v.fd);
    });

    test('bad arguments throw TypeError or RangeError and write nothing', () => {
      const u = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const slab = new Uint8Array(4096).fill(0xa5);
      const off = Int32Array.of(0);
      const cap = Int32Array.of(100);
      const lens = new Int32Array(1);
      const addrs = new Uint8Array(16);
      const ports = new Int32Array(1);
      const segs = new Int32Array(1);
      const call =
        (f: (...a: never[]) => unknown, ...args: unknown[]) =>
        () =>
          (f as (...a: unknown[]) => unknown)(...args);
      const type: [string, () => unknown][] = [
        ['fd as a string', call(n.readBatch, String(u.fd), slab, off, cap, lens, 1)],
        ['slab as Int8Array', call(n.readBatch, u.fd, new Int8Array(64), off, cap, lens, 1)],
        ['offsets as Uint32Array', call(n.readBatch, u.fd, slab, Uint32Array.of(0), cap, lens, 1)],
        ['offsets as an array', call(n.udpRecvBatch, u.fd, slab, [0], cap, lens, addrs, ports, segs, 1)],
        ['missing arguments', call(n.udpSendBatch, u.fd, slab, off)],
        ['name with NUL', call(n.tapOpen, 'ta\u0000p', ns, true, false)],
        ['netns as a number', call(n.tapOpen, 'tap0', 7, true, false)],
        ['vnetHdr as a number', call(n.tapOpen, 'tap0', ns, 1, false)],
        ['bad address', call(n.udpOpen, ns, 4, 'not-an-address', 0, false)],
        ['IPv6 address for family 4', call(n.udpOpen, ns, 4, '::1', 0, false)],
        ['mac as an array', call(n.linkSet, ns, 'lo', undefined, [1, 2, 3, 4, 5, 6], undefined)],
        ['callback not a function', call(n.pollStart, u.fd, POLL.READABLE, 'cb')],
      ];
      for (const [what, f] of type) assert.throws(f, TypeError, what);
      const range: [string, () => unknown][] = [
        ['negative fd', call(n.readBatch, -1, slab, off, cap, lens, 1)],
        ['fractional fd', call(n.close, 1.5)],
        ['NaN max', call(n.readBatch, u.fd, slab, off, cap, lens, NaN)],
        ['max beyond offsets', call(n.readBatch, u.fd, slab, off, cap, lens, 2)],
        ['lens too short', call(n.readBatch, u.fd, slab, Int32Array.of(0, 0), Int32Array.of(1, 1), lens, 2)],
        ['cap past the slab', call(n.readBatch, u.fd, slab, Int32Array.of(4000), cap, lens, 1)],
        ['negative offset', call(n.readBatch, u.fd, slab, Int32Array.of(-1), cap, lens, 1)],
        ['negative cap', call(n.udpRecvBatch, u.fd, slab, off, Int32Array.of(-5), lens, addrs, ports, segs, 1)],
        // A window inside the backing buffer but outside the view given counts as outside.
        ['past a subarray', call(n.udpRecvBatch, u.fd, slab.subarray(100, 150), off, cap, lens, addrs, ports, segs, 1)],
        ['addrs too short', call(n.udpRecvBatch, u.fd, slab, off, cap, lens, new Uint8Array(15), ports, segs, 1)],
        ['port above 65535', call(n.udpSendBatch, u.fd, slab, off, cap, addrs, Int32Array.of(70000), segs, 1)],
        ['negative segment size', call(n.udpSendBatch, u.fd, slab, off, cap, addrs, ports, Int32Array.of(-1), 1)],
        ['send past the slab', call(n.rawSendBatch, u.fd, slab, Int32Array.of(4095), Int32Array.of(2), addrs, 1)],
        ['write past the slab', call(n.writeBatch, u.fd, slab, off, Int32Array.of(5000), 1)],
        ['name too long', call(n.tapOpen, 'a-name-too-long-for-linux', ns, true, false)],
        ['mac of 5 bytes', call(n.linkSet, ns, 'lo', undefined, new Uint8Array(5), undefined)],
        ['family 5', call(n.udpOpen, ns, 5, '127.0.0.1', 0, false)],
        ['port 65536', call(n.udpOpen, ns, 4, '127.0.0.1', 65536, false)],
        ['protocol 256', call(n.rawOpen, ns, 4, 256)],
        ['events 4', call(n.pollStart, u.fd, 4, () => {})],
      ];
      for (const [what, f] of range) assert.throws(f, RangeError, what);
      assert.ok(
        slab.every((b) => b === 0xa5),
        'nothing was written into the slab',
      );
    });

    test('a receive into a subarray of the slab lands relative to the view', async () => {
      const u = keep(n.udpOpen(ns, 4, '127.0.0.1', 0, false));
      const tx = new Ring(1, 64);
      tx.put(0, [1, 2, 3], LOOPBACK4, u.port);
      assert.equal(n.udpSendBatch(u.fd, tx.slab, tx.offsets, tx.lens, tx.addrs, tx.ports, tx.segs, 1), 1);
      await ready(u.fd, POLL.READABLE, 3000);
      const backing = new Uint8Array(256);
      const view = backing.subarray(100, 200);
      const lens = new Int32Array(1);
      const got = n.udpRecvBatch(u.fd, view, Int32Array.of(10), Int32Array.of(50), lens, new Uint8Array(16), new Int32Array(1), new Int32Array(1), 1);
      assert.equal(got, 1);
      assert.equal(lens[0], 3);
      assert.deepEqual(Array.from(backing.subarray(110, 113)), [1, 2, 3]);
      assert.ok(backing.subarray(0, 110).every((b) => b === 0));
    });
  });
});
