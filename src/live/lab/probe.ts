/**
 * The TCP probe of `seine run --live`: one TCP transfer of an exact number of bytes between two
 * namespaces, measured by what the receiver counted and what the sender's kernel says (TCP_INFO, read
 * with `ss -ti` while the connection is still established).
 *
 * Why not iperf3: its receiver stops counting when the sender says it has written the last byte (over
 * the separate control connection), so whatever is still queued or in flight is missing from its
 * "received" bytes (about two thirds of a 2 MB transfer here), and a `-n` transfer is rounded up to
 * whole blocks. This probe is the kernel's TCP and nothing else: the sender writes the bytes; the
 * receiver counts them and, once it has them all (or at the sender's FIN), answers with its count; the
 * sender then reads its socket's TCP_INFO (segments, retransmissions, MSS, path MTU, RTT) and closes,
 * and so does the receiver.
 *
 *     node probe.js tcp-recv --port 5201 --bytes 2000000 --family 4 --timeout 30
 *     node probe.js tcp-send --to 10.244.2.10 --port 5201 --bytes 2000000 --cport 20001 --timeout 30
 *
 * Each prints JSON lines on stdout: `{"event":"listening"}` (receiver, once it listens), then
 * `{"event":"done",...}`, `{"event":"timeout",...}` (a sender at its time limit, with its TCP_INFO) or
 * `{"event":"error","message":...}`; the exit status is 0 only after "done".
 */
import { execFile } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { epochNs } from '../sleep.js';

const CHUNK = Buffer.alloc(64 * 1024);

function say(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function fail(message: string): never {
  say({ event: 'error', message });
  process.exit(1);
}

const nowNs = (): number => Number(process.hrtime.bigint());
/** Nanoseconds since the epoch (the clock every namespace of the machine shares). */

/** What the time limit does: fail, or (a sender) say how far it got first. */
let onTimeout = (seconds: number): void => fail(`timed out after ${seconds} s`);

function recv(port: number, family: 4 | 6, expected: number): void {
  let bytes = 0;
  let firstNs: number | null = null;
  let lastNs: number | null = null;
  const server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    server.close();
    let answered = false;
    const answer = (): void => {
      if (answered) return;
      answered = true;
      s.write(`${JSON.stringify({ bytes })}\n`);
    };
    s.on('data', (d: Buffer) => {
      const t = nowNs();
      firstNs ??= t;
      lastNs = t;
      bytes += d.length;
      if (bytes >= expected) answer();
    });
    s.on('error', (e) => fail(`receiver: ${e.message}`));
    s.once('end', () => {
      answer();
      s.end();
    });
    s.once('close', () => {
      say({ event: 'done', bytes, firstNs, lastNs });
      process.exit(0);
    });
  });
  server.on('error', (e) => fail(`receiver: ${e.message}`));
  server.listen(port, family === 4 ? '0.0.0.0' : '::', () => say({ event: 'listening', port }));
}

function tcpInfo(cport: number): Promise<string> {
  return new Promise((res) => {
    execFile('ss', ['-tinH', 'state', 'all', `( sport = :${cport} )`], { timeout: 5000, encoding: 'utf8' }, (err, stdout) => res(err === null ? stdout : ''));
  });
}

function send(to: string, port: number, total: number, cport: number): void {
  const t0 = nowNs();
  let connectedNs: number | null = null;
  let written = 0;
  let reply = '';
  const s = connect({ host: to, port, localPort: cport, allowHalfOpen: true });
  s.on('error', (e) => fail(`sender: ${e.message}`));
  const pump = (): void => {
    while (written < total) {
      const n = Math.min(CHUNK.length, total - written);
      written += n;
      if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        s.once('drain', pump);
        return;
      }
    }
    // All written: the receiver answers with its count once it has them all (or at our FIN, if it never does).
  };
  s.once('connect', () => {
    connectedNs = nowNs();
    pump();
  });
  onTimeout = (seconds) => {
    void tcpInfo(cport).then((ss) => {
      say({
        event: 'timeout',
        message: `timed out after ${seconds} s`,
        bytes: total,
        written,
        connectNs: (connectedNs ?? t0) - t0,
        elapsedNs: connectedNs === null ? 0 : nowNs() - connectedNs,
        ss,
      });
      process.exit(2);
    });
  };
  const early = (): void => fail(`sender: the connection closed after ${written} of ${total} bytes were written, before the receiver's count arrived`);
  s.once('close', early);
  s.setEncoding('utf8');
  const onData = (d: string): void => {
    reply += d;
    const nl = reply.indexOf('\n');
    if (nl < 0) return;
    const doneNs = nowNs();
    const doneEpochNs = epochNs();
    s.off('data', onData);
    let delivered = -1;
    try {
      delivered = Number((JSON.parse(reply.slice(0, nl)) as { bytes: unknown }).bytes);
    } catch {
      /* -1: unreadable */
    }
    // The connection is still established: its TCP_INFO is whole.
    void tcpInfo(cport).then((ss) => {
      say({ event: 'done', bytes: total, written, delivered, connectNs: (connectedNs ?? t0) - t0, elapsedNs: doneNs - (connectedNs ?? t0), doneEpochNs, ss });
      s.off('close', early);
      s.once('close', () => process.exit(0));
      s.end();
      s.resume();
      setTimeout(() => process.exit(0), 2000).unref();
    });
  };
  s.on('data', onData);
}

function main(): void {
  const { values: v, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    strict: true,
    options: {
      to: { type: 'string' },
      port: { type: 'string' },
      bytes: { type: 'string' },
      cport: { type: 'string' },
      family: { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const num = (x: string | undefined, what: string, min: number, max: number): number => {
    const n = Number(x);
    if (x === undefined || !Number.isInteger(n) || n < min || n > max) fail(`--${what} expects an integer ${min}-${max}, got ${String(x)}`);
    return n;
  };
  const timeout = v.timeout === undefined ? 60 : num(v.timeout, 'timeout', 1, 3600);
  setTimeout(() => onTimeout(timeout), timeout * 1000).unref();
  const port = num(v.port, 'port', 1, 65535);
  switch (positionals[0]) {
    case 'tcp-recv':
      recv(port, v.family === '6' ? 6 : 4, v.bytes === undefined ? Infinity : num(v.bytes, 'bytes', 0, Number.MAX_SAFE_INTEGER));
      break;
    case 'tcp-send': {
      if (v.to === undefined) fail('--to expects an address');
      send(v.to, port, num(v.bytes, 'bytes', 0, Number.MAX_SAFE_INTEGER), num(v.cport, 'cport', 1, 65535));
      break;
    }
    default:
      fail('usage: probe.js tcp-recv --port P | tcp-send --to IP --port P --bytes N --cport C');
  }
}

main();
