/**
 * `seine bench overhead` as a user runs it (the built CLI in a child process): the files it writes, and
 * bad input — a damaged or empty capture, an unknown encapsulation, an output directory that cannot be
 * written, an interrupted run — each a clear error naming the input, exit status 2, and no output left
 * that looks complete.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PcapWriter } from '../../src/capture/index.js';
import type { OverheadReport } from '../../src/study/overhead-output.js';

/** This file runs as dist/test/study/overhead-cli.test.js: the project root is three levels up. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const dir = mkdtempSync(join(tmpdir(), 'seine-overhead-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function seine(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A short sweep: one encapsulation, one underlay, two sizes, no TCP. */
const SMALL = ['--encap', 'vxlan', '--esp', 'none,esp-aes-gcm', '--family', '4', '--mtu', '1500', '--no-tcp'];

/** One line on stderr, no stack trace. */
function oneLineError(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, stderr);
  assert.doesNotMatch(stderr, /internal error|\n\s+at /);
  return lines[0]!;
}

/** A pcap of IPv4 packets of these lengths (Ethernet; the IP total length is what counts). */
function pcapOf(lengths: number[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c.slice()));
  lengths.forEach((len, i) => {
    const f = new Uint8Array(14 + len);
    f[12] = 0x08; // IPv4
    f[14] = 0x45;
    f[16] = len >> 8;
    f[17] = len & 0xff;
    w.writePacket(0, BigInt(i) * 1000n, f);
  });
  return Buffer.concat(chunks);
}

test('bench overhead --out: the CSV, the JSON and the plots, nothing partial left behind', () => {
  const out = join(dir, 'out');
  // A previous run's plot for an underlay this run does not sweep goes; a file of the user's stays.
  mkdirSync(out);
  writeFileSync(join(out, 'efficiency-ipv6-9000.svg'), '<svg/>');
  writeFileSync(join(out, 'notes.txt'), 'mine');
  const r = seine('bench', 'overhead', ...SMALL, '--sizes', '64,1500,9000', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
  rmSync(join(out, 'notes.txt'));
  assert.match(r.stdout, /vxlan\s+IPv4\/1500\s+1450/);
  assert.match(r.stdout, /6 cells: 6 measured on the simulated datapath and equal to the arithmetic, 0 analytic only, 0 disagreeing/);
  assert.deepEqual(readdirSync(out).sort(), ['efficiency-esp-ipv4-1500.svg', 'efficiency-ipv4-1500.svg', 'overhead.csv', 'overhead.json']);
  const rep = JSON.parse(readFileSync(join(out, 'overhead.json'), 'utf8')) as OverheadReport;
  assert.equal(rep.cells.length, 6);
  assert.equal(rep.summary.agree, 6);
  assert.equal(rep.tcp, null);
  assert.equal(readFileSync(join(out, 'overhead.csv'), 'utf8').trimEnd().split('\n').length, 7);
});

test('bench overhead --json: one JSON object on stdout; --pcap: the capture as a size distribution', () => {
  const cap = join(dir, 'sizes.pcap');
  writeFileSync(cap, pcapOf([40, 1500, 1500, 576, 1500]));
  const r = seine('bench', 'overhead', ...SMALL, '--json', '--pcap', cap);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as OverheadReport;
  assert.deepEqual(rep.axes.sizes, ['pcap']);
  assert.deepEqual(rep.pcap, { file: cap, packets: 5, distinctSizes: 3, clamped: 1 });
  const c = rep.cells.find((x) => x.encryption === 'none')!;
  assert.equal(c.analytic.totals.messages, 5);
  assert.deepEqual(c.measured, c.analytic);
});

test('bench overhead: an unknown encapsulation is named, with a suggestion; exit 2', () => {
  const r = seine('bench', 'overhead', '--encap', 'vxlan,genev', '--no-tcp');
  assert.equal(r.status, 2);
  assert.match(oneLineError(r.stderr), /--encap: unknown name "genev" \(did you mean "geneve"\?\); known: none, vxlan, geneve/);
  const e = seine('bench', 'overhead', '--esp', 'ipsec');
  assert.equal(e.status, 2);
  assert.match(oneLineError(e.stderr), /--esp: unknown name "ipsec"/);
  assert.equal(seine('bench', 'overhead', '--sizes', '12').status, 2);
  assert.equal(seine('bench', 'overhead', '--frobnicate').status, 2);
});

test('bench overhead --pcap: a damaged, an empty or a missing capture is named; exit 2, nothing written', () => {
  const out = join(dir, 'never');
  const damaged = join(dir, 'damaged.pcap');
  const good = pcapOf([100, 200, 300]);
  writeFileSync(damaged, good.subarray(0, good.length - 7)); // the last record cut short
  const empty = join(dir, 'empty.pcap');
  writeFileSync(empty, pcapOf([]));
  const zero = join(dir, 'zero.pcap');
  writeFileSync(zero, new Uint8Array(0));
  for (const [file, why] of [
    [damaged, /damaged capture/],
    [empty, /no IP packets in it \(an empty capture\)/],
    [zero, /damaged capture|empty/],
    [join(dir, 'missing.pcap'), /no such file/],
  ] as const) {
    const r = seine('bench', 'overhead', ...SMALL, '--pcap', file, '--out', out);
    assert.equal(r.status, 2, `${file}: ${r.stderr}`);
    const line = oneLineError(r.stderr);
    assert.ok(line.includes(file), line);
    assert.match(line, why);
    assert.equal(existsSync(out), false, 'no output directory for a refused input');
  }
});

test('bench overhead --out: a directory that cannot be written is named before the sweep; exit 2', () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const out = join(file, 'sub'); // under a regular file: ENOTDIR even for root
  const r = seine('bench', 'overhead', ...SMALL, '--out', out);
  assert.equal(r.status, 2);
  const line = oneLineError(r.stderr);
  assert.ok(line.includes(out), line);
  assert.match(line, /cannot write there \(a part of the path is a file, not a directory\)/);
  assert.equal(r.stdout, '', 'refused before the sweep');
});

test('bench overhead --out under /proc: refused in words, at once (a recursive mkdir there never returned)', () => {
  const out = '/proc/seine-no-such-dir/out';
  // SIGKILL at the time limit: the command catches SIGTERM to clean up, which a hung mkdir never lets run.
  const r = spawnSync(process.execPath, [MAIN, 'bench', 'overhead', ...SMALL, '--out', out], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    killSignal: 'SIGKILL',
  });
  assert.equal(r.status, 2, `status ${r.status}, signal ${r.signal} (killed at the time limit: it hung)`);
  const line = oneLineError(r.stderr);
  assert.ok(line.includes(out), line);
  assert.match(line, /cannot write there \(/);
  assert.doesNotMatch(line, /\(E[A-Z]+\)/, 'the reason in words, not an errno code');
  assert.equal(r.stdout, '', 'refused before the sweep');
});

test('bench overhead --out: an interrupted run leaves neither its files nor its temporary directory', async () => {
  const out = join(dir, 'interrupted');
  mkdirSync(out);
  const child = spawn(process.execPath, [MAIN, 'bench', 'overhead', '--out', out], { cwd: ROOT, stdio: 'ignore' });
  // Once the temporary directory exists the sweep is running (the full sweep takes far longer than this).
  for (let i = 0; i < 200 && readdirSync(out).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(readdirSync(out).length, 1, 'the temporary directory appeared');
  assert.match(readdirSync(out)[0]!, /^\.overhead-partial-/);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130);
  assert.deepEqual(readdirSync(out), []);
});
