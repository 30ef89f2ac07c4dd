/**
 * The UDP generator and sink of `seine bench live`: a sender that offers fixed-size datagrams with
 * sendmmsg batches (at full rate or at a target rate) and a receiver that counts them with recvmmsg,
 * both over the native addon's UDP sockets.
 *
 * Why not iperf3: `iperf3 -u` sends one datagram per system call, about 50 kpps on a 2-core machine,
 * so its UDP figures measured iperf3, not the datapath. Here one system call moves up to `BATCH`
 * datagrams each way. No UDP_SEGMENT and no UDP_GRO: every datagram crosses the datapath as its own
 * packet, which is what a packet rate is about.
 *
 * Each side runs as its own node process (`node udpgen.js send|sink …`) inside a pod's namespace and
 * prints one JSON line (`UdpSendReport`, `UdpSinkReport`); the sink first prints `{"ready":port}` and
 * stops when its stdin closes (or at its deadline). The same functions serve the unit tests in one
 * process over loopback.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNative, POLL, type Native } from '../native.js';
import { sleep } from '../sleep.js';

/** Datagrams per sendmmsg/recvmmsg call. */
export const BATCH = 64;
const EAGAIN = 11;

/** This module as a script, for `node UDPGEN_SCRIPT send|sink …`. */
export const UDPGEN_SCRIPT = fileURLToPath(import.meta.url);

/** The figures' method, as recorded in the bench's JSON (`udp_method`). */
export const UDP_METHOD = `seine udpgen: sendmmsg/recvmmsg, ${BATCH} datagrams per call, one datagram per packet (no GSO/GRO), full offered rate; delivered = received / send window`;

export interface UdpSendOptions {
  /** Namespace for the socket (null = the process's own). */
  netns: string | null;
  to: string;
  port: number;
  /** UDP payload bytes. */
  len: number;
  /** How long to send. */
  seconds: number;
  /** Datagrams per second to offer; 0 = as fast as the socket takes them. */
  rate: number;
  /** Stop after this many datagrams (0 = no limit). */
  count: number;
}

export interface UdpSendReport {
  sent: number;
  seconds: number;
  /** Times a batch went out short (socket buffer full) and the sender waited until writable. */
  waits: number;
  /** The sender's own CPU seconds (user + system) over the window. */
  cpu_s: number;
}

export interface UdpSinkReport {
  received: number;
  bytes: number;
  /** Datagrams of another length than expected (0 when any length was expected). */
  other_len: number;
  /** Seconds from the sink's start to its stop; the rate's window is the sender's. */
  seconds: number;
  cpu_s: number;
}

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function ipv4Bytes(addr: string): Uint8Array {
  const p = addr.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`udpgen: not an IPv4 address: ${addr}`);
  return Uint8Array.from(p);
}

/** Waits until `fd` is writable (or 50 ms: a poll missed is a short pause, not a hang). */
function writable(n: Native, fd: number): Promise<void> {
  return new Promise((res) => {
    let id = -1;
    const done = (): void => {
      clearTimeout(timer);
      if (id >= 0) n.pollStop(id);
      res();
    };
    const timer = setTimeout(done, 50);
    id = n.pollStart(fd, POLL.WRITABLE, done);
  });
}

/**
 * Sends `len`-byte datagrams to `to:port` for `seconds` (or `count` datagrams), in batches of
 * `BATCH`. With a rate, it sends whenever it is behind `rate × elapsed` and sleeps 1 ms when ahead;
 * at full rate it yields to the event loop every few batches only.
 */
export async function udpSend(o: UdpSendOptions): Promise<UdpSendReport> {
  const n = loadNative();
  const sock = n.udpOpen(o.netns, 4, '0.0.0.0', 0, false);
  const slab = new Uint8Array(BATCH * o.len);
  for (let i = 0; i < slab.length; i++) slab[i] = i & 0xff;
  const offsets = Int32Array.from({ length: BATCH }, (_, i) => i * o.len);
  const lens = new Int32Array(BATCH).fill(o.len);
  const addrs = new Uint8Array(16 * BATCH);
  const ip = ipv4Bytes(o.to);
  for (let i = 0; i < BATCH; i++) addrs.set(ip, 16 * i);
  const ports = new Int32Array(BATCH).fill(o.port);
  const segs = new Int32Array(BATCH);
  let sent = 0,
    waits = 0,
    calls = 0;
  const cpu0 = cpuNow(),
    t0 = performance.now(),
    end = t0 + o.seconds * 1000;
  try {
    for (;;) {
      const now = performance.now();
      if (now >= end || (o.count > 0 && sent >= o.count)) break;
      let want = BATCH;
      if (o.count > 0) want = Math.min(want, o.count - sent);
      if (o.rate > 0) {
        const behind = Math.floor((o.rate * (now - t0)) / 1000) - sent;
        if (behind <= 0) {
          await sleep(1);
          continue;
        }
        want = Math.min(want, behind);
      }
      const k = n.udpSendBatch(sock.fd, slab, offsets, lens, addrs, ports, segs, want);
      if (k < 0 && k !== -EAGAIN) throw new Error(`udpgen: sendmmsg to ${o.to}:${o.port} failed (errno ${-k})`);
      if (k > 0) sent += k;
      if (k < want) {
        waits++;
        await writable(n, sock.fd);
      } else if (++calls % 16 === 0) await yieldLoop();
    }
  } finally {
    n.close(sock.fd);
  }
  return { sent, seconds: (performance.now() - t0) / 1000, waits, cpu_s: cpuNow() - cpu0 };
}

/** A sink that counts until `stop()`. */
export interface UdpSink {
  port: number;
  /** Datagrams counted so far. */
  readonly received: number;
  stop(): UdpSinkReport;
}

/**
 * Binds `addr:port` (port 0: the kernel picks) and counts every datagram that arrives, draining the
 * socket with recvmmsg whenever libuv reports it readable. `len` > 0: datagrams of another length are
 * counted apart (`other_len`).
 */
export function udpSink(netns: string | null, addr: string, port: number, len = 0): UdpSink {
  const n = loadNative();
  const sock = n.udpOpen(netns, 4, addr, port, false);
  const cap = 2048;
  const slab = new Uint8Array(BATCH * cap);
  const offsets = Int32Array.from({ length: BATCH }, (_, i) => i * cap);
  const caps = new Int32Array(BATCH).fill(cap);
  const lens = new Int32Array(BATCH);
  const addrs = new Uint8Array(16 * BATCH);
  const ports = new Int32Array(BATCH);
  const segs = new Int32Array(BATCH);
  let received = 0,
    bytes = 0,
    other = 0,
    open = true;
  const cpu0 = cpuNow(),
    t0 = performance.now();
  const drain = (): void => {
    for (;;) {
      const k = n.udpRecvBatch(sock.fd, slab, offsets, caps, lens, addrs, ports, segs, BATCH);
      for (let i = 0; i < k; i++) {
        bytes += lens[i]!;
        if (len > 0 && lens[i] !== len) other++;
      }
      received += k;
      if (k < BATCH) return;
    }
  };
  const poll = n.pollStart(sock.fd, POLL.READABLE, drain);
  return {
    port: sock.port,
    get received() {
      return received;
    },
    stop(): UdpSinkReport {
      if (open) {
        open = false;
        n.pollStop(poll);
        drain();
        n.close(sock.fd);
      }
      return { received, bytes, other_len: other, seconds: (performance.now() - t0) / 1000, cpu_s: cpuNow() - cpu0 };
    },
  };
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values: v } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      to: { type: 'string' },
      addr: { type: 'string', default: '0.0.0.0' },
      port: { type: 'string' },
      len: { type: 'string', default: '0' },
      seconds: { type: 'string', default: '1' },
      rate: { type: 'string', default: '0' },
      count: { type: 'string', default: '0' },
      'max-seconds': { type: 'string', default: '60' },
    },
  });
  const num = (s: string | undefined, what: string): number => {
    const x = Number(s);
    if (s === undefined || !Number.isFinite(x) || x < 0) throw new Error(`udpgen: --${what} needs a number ≥ 0`);
    return x;
  };
  const out = (o: object): void => {
    process.stdout.write(`${JSON.stringify(o)}\n`);
  };
  if (positionals[0] === 'send') {
    if (v.to === undefined) throw new Error('udpgen send: --to ADDR needed');
    out(
      await udpSend({
        netns: null,
        to: v.to,
        port: num(v.port, 'port'),
        len: num(v.len, 'len'),
        seconds: num(v.seconds, 'seconds'),
        rate: num(v.rate, 'rate'),
        count: num(v.count, 'count'),
      }),
    );
  } else if (positionals[0] === 'sink') {
    const sink = udpSink(null, v.addr, num(v.port, 'port'), num(v.len, 'len'));
    out({ ready: sink.port });
    // Stops when the bench closes stdin, or at the deadline should the bench be gone.
    await new Promise<void>((res) => {
      const timer = setTimeout(res, num(v['max-seconds'], 'max-seconds') * 1000);
      process.stdin
        .on('end', () => {
          clearTimeout(timer);
          res();
        })
        .on('error', () => {
          clearTimeout(timer);
          res();
        })
        .resume();
    });
    out(sink.stop());
  } else
    throw new Error(
      'usage: udpgen.js send --to ADDR --port P --len L [--seconds S] [--rate PPS] [--count N] | sink [--addr A] --port P [--len L] [--max-seconds S]',
    );
}

if (process.argv[1] === UDPGEN_SCRIPT) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
