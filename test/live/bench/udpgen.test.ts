/**
 * The bench's UDP generator and sink over loopback, without root: a known count sent arrives whole and
 * is counted once, a datagram of another length is counted apart, the sink counts what an independent
 * sender (Python's socket module) sends, the rate limit holds (an upper bound that cannot flake: never
 * more than rate × elapsed; a generous lower bound), and the scripts as `seine bench live` runs them
 * (sink says ready, sender reports, stdin's end stops the sink).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { UDPGEN_SCRIPT, udpSend, udpSink, type UdpSendReport, type UdpSinkReport } from '../../../src/live/bench/udpgen.js';
import { nativeUnavailable } from '../../../src/live/native.js';
import { sleep } from '../../../src/live/sleep.js';

const why = nativeUnavailable();
const skip: string | false = why === null ? false : `native addon unavailable: ${why}`;

/** Waits (bounded) until the sink has counted `n`, or 3 s passed. */
async function until(sink: { received: number }, n: number): Promise<void> {
  for (let i = 0; i < 300 && sink.received < n; i++) await sleep(10);
}

test('a known count sent at a moderate rate arrives whole: sent = received, bytes = count × len', { skip }, async () => {
  const sink = udpSink(null, '127.0.0.1', 0, 64);
  try {
    const s = await udpSend({ netns: null, to: '127.0.0.1', port: sink.port, len: 64, seconds: 10, rate: 50_000, count: 5000 });
    assert.equal(s.sent, 5000);
    await until(sink, 5000);
    const r = sink.stop();
    assert.equal(r.received, 5000);
    assert.equal(r.bytes, 5000 * 64);
    assert.equal(r.other_len, 0);
    assert.ok(s.cpu_s >= 0 && r.cpu_s >= 0);
  } finally {
    sink.stop();
  }
});

test('datagrams of another length than expected are counted apart; 1400-byte payloads whole', { skip }, async () => {
  const sink = udpSink(null, '127.0.0.1', 0, 64);
  try {
    const s = await udpSend({ netns: null, to: '127.0.0.1', port: sink.port, len: 1400, seconds: 10, rate: 20_000, count: 300 });
    await until(sink, s.sent);
    const r = sink.stop();
    assert.equal(r.received, 300);
    assert.equal(r.other_len, 300);
    assert.equal(r.bytes, 300 * 1400);
  } finally {
    sink.stop();
  }
});

test('the sink counts what an independent sender sends (python3 socket.sendto)', { skip }, async () => {
  const sink = udpSink(null, '127.0.0.1', 0, 100);
  try {
    const py =
      'import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(2000):\n  s.sendto(bytes(100),("127.0.0.1",int(sys.argv[1])))\n  if i%100==99: time.sleep(0.002)\n';
    const p = spawn('/usr/bin/python3', ['-c', py, String(sink.port)], { stdio: 'inherit' });
    const code = await new Promise<number | null>((res) => p.once('close', res));
    assert.equal(code, 0);
    await until(sink, 2000);
    const r = sink.stop();
    assert.equal(r.received, 2000);
    assert.equal(r.other_len, 0);
  } finally {
    sink.stop();
  }
});

test('the rate limit holds: never above rate × elapsed, and not far below it', { skip }, async () => {
  const sink = udpSink(null, '127.0.0.1', 0, 64);
  try {
    const rate = 20_000;
    const s = await udpSend({ netns: null, to: '127.0.0.1', port: sink.port, len: 64, seconds: 0.5, rate, count: 0 });
    assert.ok(s.sent <= rate * s.seconds + 1, `${s.sent} sent in ${s.seconds} s at ${rate}/s`);
    assert.ok(s.sent >= 0.3 * rate * 0.5, `${s.sent} sent in ${s.seconds} s at ${rate}/s`);
    await until(sink, s.sent);
    assert.ok(sink.stop().received <= s.sent);
  } finally {
    sink.stop();
  }
});

test('at full rate the generator offers more than a rate-limited run and stops at its duration', { skip }, async () => {
  const sink = udpSink(null, '127.0.0.1', 0, 64);
  try {
    const s = await udpSend({ netns: null, to: '127.0.0.1', port: sink.port, len: 64, seconds: 0.5, rate: 0, count: 0 });
    // 0.5 s at even 20 kpps is 10 000; batched sendmmsg over loopback does far more (hundreds of kpps here).
    assert.ok(s.sent > 10_000, `${s.sent} sent`);
    assert.ok(s.seconds >= 0.5 && s.seconds < 5, `${s.seconds} s`);
    await sleep(100);
    const r = sink.stop();
    assert.ok(r.received > 0 && r.received <= s.sent, `${r.received} of ${s.sent}`);
  } finally {
    sink.stop();
  }
});

test("the scripts as the bench runs them: the sink says ready, counts the sender's datagrams, reports when stdin ends", { skip }, async () => {
  const sink = spawn(process.execPath, [UDPGEN_SCRIPT, 'sink', '--addr', '127.0.0.1', '--port', '0', '--len', '64', '--max-seconds', '30'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  sink.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const closed = new Promise<number | null>((res) => sink.once('close', res));
  try {
    for (let i = 0; i < 500 && !out.includes('\n'); i++) await sleep(10);
    const ready = JSON.parse(out.split('\n')[0]!) as { ready: number };
    assert.ok(ready.ready > 0);
    const send = spawnSync(
      process.execPath,
      [UDPGEN_SCRIPT, 'send', '--to', '127.0.0.1', '--port', String(ready.ready), '--len', '64', '--rate', '50000', '--count', '3000', '--seconds', '10'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(send.status, 0, send.stderr);
    const s = JSON.parse(send.stdout) as UdpSendReport;
    assert.equal(s.sent, 3000);
    await sleep(200);
    sink.stdin.end();
    assert.equal(await closed, 0);
    const r = JSON.parse(out.split('\n')[1]!) as UdpSinkReport;
    assert.equal(r.received, 3000);
    assert.equal(r.bytes, 3000 * 64);
  } finally {
    sink.kill('SIGKILL');
  }
});

test('the sender refuses bad arguments with a message, not a crash', { skip }, () => {
  const r = spawnSync(process.execPath, [UDPGEN_SCRIPT, 'send', '--to', 'nowhere', '--port', '9', '--len', '64'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /not an IPv4 address: nowhere/);
  const u = spawnSync(process.execPath, [UDPGEN_SCRIPT], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(u.status, 1);
  assert.match(u.stderr, /usage: udpgen/);
});
