/**
 * The `seine` command as a user runs it: the built `dist/src/cli/main.js` in a child process, from the
 * project root, on captures written with seine's own pcapng writer. Exit statuses: 0 ok, 1 damaged
 * input, 2 usage or input error; a user's mistake never shows a stack trace.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PcapngWriter } from '../src/capture/index.js';
import type { Command } from '../src/cli/command.js';
import type { DecodedFrame } from '../src/cli/decode.js';
import { compose } from '../src/wire/stack.js';
import { memorySink } from './capture/util.js';
import { CATALOGUE } from './peers/catalogue.js';

/** This file runs as dist/test/cli.test.js: the project root is two levels up. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const dir = mkdtempSync(join(tmpdir(), 'seine-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function seine(...args: string[]): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

/** One line on stderr, no stack frames, no internal-error banner. */
function assertOneLineMessage(r: Run): void {
  assert.equal(lines(r.stderr).length, 1, `stderr: ${r.stderr}`);
  assert.ok(r.stderr.endsWith('\n'));
  assert.doesNotMatch(r.stderr, /^\s+at |\.js:\d+|internal error|Error:/m, r.stderr);
}

function frameOf(name: string): Uint8Array {
  const c = CATALOGUE.find((f) => f.name === name);
  if (c === undefined) throw new Error(`no catalogue frame '${name}'`);
  return compose(c.layers);
}

const UDP = frameOf('ipv4 udp');
const VXLAN = frameOf('vxlan over ipv4 (zero outer checksum) carrying ipv4 tcp');
const GENEVE = frameOf('geneve over ipv6 with options carrying ipv4 icmp');
const GRE = frameOf('gre with key carrying ethernet');
/** The IPv4 header checksum (bytes 24-25 after a 14-byte Ethernet header) made wrong. */
const BAD_CHECKSUM = UDP.slice();
BAD_CHECKSUM[24] = BAD_CHECKSUM[24]! ^ 0x5a;
/** 14 bytes of Ethernet and 16 of an IPv4 header: the record is shorter than the frame was. */
const CUT = VXLAN.subarray(0, 30);

const IFACES = ['veth-seine0', 'br-überlay'];
/** Past 2^53, so a float would lose the last digits. */
const T0 = 1_700_000_000_123_456_789n;
const PACKETS: { iface: number; data: Uint8Array; origLen: number }[] = [
  { iface: 0, data: UDP, origLen: UDP.length },
  { iface: 1, data: VXLAN, origLen: VXLAN.length },
  { iface: 0, data: GENEVE, origLen: GENEVE.length },
  { iface: 1, data: GRE, origLen: GRE.length },
  { iface: 0, data: BAD_CHECKSUM, origLen: BAD_CHECKSUM.length },
  { iface: 1, data: CUT, origLen: VXLAN.length },
];
const ts = (i: number): bigint => T0 + BigInt(i) * 1_000_001n;

/** The capture, and where each chunk (SHB, IDBs, EPBs) ends. */
function capture(): { bytes: Uint8Array; ends: number[] } {
  const m = memorySink();
  const w = new PcapngWriter(m.sink);
  for (const name of IFACES) w.addInterface(name);
  PACKETS.forEach((p, i) => w.writePacket(p.iface, ts(i), p.data, p.origLen));
  const ends: number[] = [];
  let o = 0;
  for (const c of m.chunks) ends.push((o += c.length));
  return { bytes: m.bytes(), ends };
}

const CAP = capture();
const GOOD = join(dir, 'good.pcapng');
writeFileSync(GOOD, CAP.bytes);
/** Cut 12 bytes into the last packet's block. */
const TRUNCATED = join(dir, 'truncated.pcapng');
writeFileSync(TRUNCATED, CAP.bytes.subarray(0, CAP.ends[CAP.ends.length - 2]! + 12));
const GARBAGE = join(dir, 'garbage.bin');
let goodJson: Run | null = null;
/** `seine decode good.pcapng --json`, run once for the tests that read it. */
const decodeGoodJson = (): Run => (goodJson ??= seine('decode', GOOD, '--json'));
writeFileSync(GARBAGE, 'this is not a capture file, just some text\n'.repeat(4));

test('cli: --help and decode --help exit 0 and describe decode and --json', () => {
  for (const args of [['--help'], ['-h'], ['help'], ['decode', '--help']]) {
    const r = seine(...args);
    assert.equal(r.status, 0, args.join(' '));
    assert.match(r.stdout, /decode/);
    assert.match(r.stdout, /--json/);
    assert.match(r.stdout, /--limit/);
    assert.equal(r.stderr, '');
  }
});

test('cli: --version prints the package version', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = seine('--version');
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('cli: no arguments prints the usage and exits 2', () => {
  const r = seine();
  assert.equal(r.status, 2);
  assert.match(r.stdout + r.stderr, /usage: seine/);
});

test('cli: an unknown command exits 2 with a one-line message', () => {
  const r = seine('frobnicate');
  assert.equal(r.status, 2);
  assertOneLineMessage(r);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
  assert.equal(r.stdout, '');
});

test('cli: usage mistakes in decode exit 2 with a one-line message', () => {
  const cases: [string[], RegExp][] = [
    [['decode', GOOD, '--frobnicate'], /unknown option '--frobnicate'/],
    [['decode', '-x', GOOD], /unknown option '-x'/],
    [['decode'], /which capture/],
    [['decode', GOOD, GOOD], /one capture file at a time/],
    [['decode', GOOD, '--limit'], /--limit expects a positive integer/],
    [['decode', GOOD, '--limit', '0'], /--limit expects a positive integer, got '0'/],
    [['decode', GOOD, '--limit', 'two'], /--limit expects a positive integer, got 'two'/],
  ];
  for (const [args, message] of cases) {
    const r = seine(...args);
    assert.equal(r.status, 2, args.join(' '));
    assertOneLineMessage(r);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('cli: a missing file or a directory exits 2 naming it', () => {
  const missing = join(dir, 'no-such.pcapng');
  let r = seine('decode', missing);
  assert.equal(r.status, 2);
  assertOneLineMessage(r);
  assert.ok(r.stderr.includes(missing), r.stderr);
  assert.match(r.stderr, /no such file/);
  r = seine('decode', dir);
  assert.equal(r.status, 2);
  assertOneLineMessage(r);
  assert.ok(r.stderr.includes(dir), r.stderr);
});

test('cli: decode prints one summary line per frame', () => {
  const r = seine('decode', GOOD);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const out = lines(r.stdout);
  assert.equal(out.length, PACKETS.length);
  out.forEach((l, i) => assert.match(l, new RegExp(`^\\s*${i + 1} `), l));
  assert.ok(out[0]!.includes('1700000000.123456789'), out[0]);
  assert.match(out[0]!, /IPv4 10\.0\.0\.1 > 10\.0\.0\.2 .*UDP 33333 > 9999 len 12/);
  assert.match(out[1]!, /VXLAN vni 5001/);
  assert.match(
    out[1]!,
    /IPv4 192\.168\.10\.1 > 192\.168\.10\.2.* \/ UDP 51234 > 4789 .* \/ VXLAN vni 5001 \/ .* \/ IPv4 10\.244\.1\.5 > 10\.244\.2\.7 .* \/ TCP 45678 > 443/,
  );
  assert.match(out[2]!, /Geneve vni 7 2 options C/);
  assert.match(out[3]!, /GRE proto 0x6558 key 4660/);
  assert.match(out[4]!, /BAD-CHECKSUM/);
  assert.match(out[5]!, /!! Ipv4Truncated at byte 14$/);
  for (const l of out.slice(0, 4)) assert.doesNotMatch(l, /!!|BAD-CHECKSUM/, l);
});

test('cli: decode --json prints one JSON object per frame, layers outer to inner', () => {
  const r = decodeGoodJson();
  assert.equal(r.status, 0, r.stderr);
  const frames = lines(r.stdout).map((l) => JSON.parse(l) as DecodedFrame);
  assert.equal(frames.length, PACKETS.length);
  frames.forEach((f, i) => {
    assert.equal(f.frame, i + 1);
    assert.equal(f.timestampNs, ts(i).toString());
    assert.equal(f.interface, IFACES[PACKETS[i]!.iface]);
    assert.equal(f.len, PACKETS[i]!.data.length);
    assert.equal(f.origLen, PACKETS[i]!.origLen);
  });
  assert.equal(frames[0]!.timestampNs, '1700000000123456789');
  const names = (f: DecodedFrame): string[] => f.layers.map((l) => l.name);
  assert.deepStrictEqual(names(frames[0]!), ['eth', 'ip', 'udp', 'data']);
  assert.deepStrictEqual(names(frames[1]!), ['eth', 'ip', 'udp', 'vxlan', 'eth', 'ip', 'tcp', 'data']);
  assert.deepStrictEqual(names(frames[2]!), ['eth', 'ipv6', 'udp', 'geneve', 'eth', 'ip', 'icmp']);
  assert.deepStrictEqual(names(frames[3]!), ['eth', 'ip', 'gre', 'eth', 'ip', 'udp', 'data']);
  const vx = frames[1]!.layers;
  assert.equal(vx[3]!.fields['vxlan.vni'], 5001);
  assert.equal(vx[1]!.fields['ip.src'], '192.168.10.1');
  assert.equal(vx[5]!.fields['ip.src'], '10.244.1.5');
  assert.equal(vx[2]!.fields['udp.checksum.status'], 'not present');
  assert.equal(vx[6]!.fields['tcp.checksum.status'], 'good');
  assert.deepStrictEqual(frames[2]!.layers[3]!.fields['geneve.option.class'], [0x0104, 0xffff]);
  for (const f of frames.slice(0, 4)) assert.equal(f.drop, undefined);
});

test('cli: a bad IPv4 header checksum shows as ip.checksum.status "bad"', () => {
  const r = decodeGoodJson();
  const line = lines(r.stdout)[4]!;
  assert.ok(line.includes('"ip.checksum.status":"bad"'), line);
  const f = JSON.parse(line) as DecodedFrame;
  assert.equal(f.layers[1]!.fields['ip.checksum.status'], 'bad');
  assert.equal(f.drop, undefined);
  const good = JSON.parse(lines(r.stdout)[0]!) as DecodedFrame;
  assert.equal(good.layers[1]!.fields['ip.checksum.status'], 'good');
});

test('cli: a truncated frame in a valid capture shows its drop reason and offset', () => {
  const r = decodeGoodJson();
  assert.equal(r.status, 0);
  const f = JSON.parse(lines(r.stdout)[5]!) as DecodedFrame;
  assert.deepStrictEqual(f.drop, { reason: 'Ipv4Truncated', offset: 14 });
  assert.deepStrictEqual(
    f.layers.map((l) => l.name),
    ['eth'],
  );
  assert.equal(f.len, 30);
  assert.equal(f.origLen, VXLAN.length);
});

test('cli: --limit N stops after N frames', () => {
  for (const json of [false, true]) {
    for (const n of [1, 3]) {
      const r = seine('decode', '--limit', String(n), GOOD, ...(json ? ['--json'] : []));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(lines(r.stdout).length, n);
    }
  }
  const r = seine('decode', GOOD, '--limit', '100');
  assert.equal(lines(r.stdout).length, PACKETS.length);
});

test('cli: a capture truncated mid-record prints the frames before the damage, then exits 1', () => {
  for (const json of [false, true]) {
    const r = seine('decode', TRUNCATED, ...(json ? ['--json'] : []));
    assert.equal(r.status, 1, r.stderr);
    const out = lines(r.stdout);
    assert.equal(out.length, PACKETS.length - 1);
    if (json) out.forEach((l, i) => assert.equal((JSON.parse(l) as DecodedFrame).frame, i + 1));
    assertOneLineMessage(r);
    assert.ok(r.stderr.includes(TRUNCATED), r.stderr);
    assert.match(r.stderr, /Truncated/);
    assert.match(r.stderr, new RegExp(`after ${PACKETS.length - 1} frame`));
  }
});

test('cli: a file that is not a capture exits 1 with BadMagic', () => {
  const r = seine('decode', GARBAGE);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assertOneLineMessage(r);
  assert.match(r.stderr, /BadMagic/);
  assert.ok(r.stderr.includes(GARBAGE), r.stderr);
});

test('cli: seine mtu prints the overhead table, --json for machines, --underlay to choose, bad values exit 2', () => {
  const t = seine('mtu');
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^\| vxlan\/ipv4 \| 50 \| 1450 \| 50 \| 8950 \|$/m);
  assert.match(t.stdout, /^\| geneve\/ipv4 \+ 38B IPsec allowance \| 88 \| 1412 \| 88 \| 8912 \|$/m);
  const j = seine('mtu', '--json', '--underlay', '65535', '--underlay', '1280');
  assert.equal(j.status, 0, j.stderr);
  const doc = JSON.parse(j.stdout) as { underlays: number[]; rows: Array<{ tunnel: string; podMtu: number[] }> };
  assert.deepEqual(doc.underlays, [65535, 1280]);
  assert.deepEqual(doc.rows.find((r) => r.tunnel === 'vxlan/ipv6')!.podMtu, [65000, 1210]);
  for (const bad of [['--underlay', '500'], ['--underlay'], ['--frobnicate']]) {
    const r = seine('mtu', ...bad);
    assert.equal(r.status, 2, bad.join(' '));
    assertOneLineMessage(r);
  }
});

test('cli: the package bin is executable after the build, so `npx seine` runs it', () => {
  assert.ok((statSync(MAIN).mode & 0o111) !== 0, `${MAIN} has mode ${(statSync(MAIN).mode & 0o777).toString(8)}`);
});

test('cli: seine run prints the report and exits 0 when every expectation holds', () => {
  const r = seine('run', 'scenarios/two-nodes-vxlan.yaml');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ping-ac\s+ping\s+node1\/a → node2\/c\s+10\s+10 \(100%\)/);
  assert.match(r.stdout, /wire overhead \d+\.\d%/);
  assert.match(r.stdout, /all \d+ expectations met/);
  assert.equal(r.stderr, '', 'no progress bar when stderr is not a terminal');
});

test('cli: seine run --json is one JSON report; --seed changes the seed; --pcap writes one pcapng per capture point', () => {
  const pc = join(dir, 'pcap');
  const r = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--json', '--seed', '9', '--pcap', pc);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as {
    seed: number;
    ok: boolean;
    flows: Array<{ name: string; delivered: number }>;
    captures: Array<{ name: string; packets: number }>;
  };
  assert.equal(rep.seed, 9);
  assert.equal(rep.ok, true);
  assert.equal(rep.flows.find((f) => f.name === 'ping-ac')!.delivered, 10);
  for (const c of rep.captures) {
    const f = join(pc, `${c.name.replace('/', '-')}.pcapng`);
    assert.ok(statSync(f).size > 100, f);
    assert.equal(readFileSync(f).readUInt32LE(0), 0x0a0d0d0a, 'a pcapng section header block');
  }
  assert.deepEqual(
    rep.captures.map((c) => c.name),
    ['node1/a', 'node1/underlay', 'node2/c'],
  );
});

test('cli: seine run exits 1 when an expectation fails, 2 for a bad scenario or option, never with a stack trace', () => {
  const bad = join(dir, 'failing.yaml');
  writeFileSync(
    bad,
    'name: f\nduration: 1s\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }, { name: b }] }\ntraffic:\n  - { name: p, type: ping, from: n1/a, to: n1/b, count: 2 }\nexpect:\n  - { flow: p, latencyP50: "> 1s" }\n',
  );
  const f = seine('run', bad);
  assert.equal(f.status, 1);
  assert.match(f.stdout, /FAIL {2}p latencyP50 > 1s: 0ns/);
  const typo = join(dir, 'typo.yaml');
  writeFileSync(typo, 'name: t\nnodes:\n  - name: n1\n    podCidr: 10.0.0.0/24\n');
  const t = seine('run', typo);
  assert.equal(t.status, 2);
  assertOneLineMessage(t);
  assert.match(t.stderr, /typo\.yaml:4:5: nodes\[0\]\.podCidr: .*did you mean "podCIDR"/);
  for (const args of [
    ['run'],
    ['run', 'scenarios/none.yaml'],
    ['run', 'scenarios/two-nodes-vxlan.yaml', '--seed', 'x'],
    ['run', 'scenarios/two-nodes-vxlan.yaml', '--frobnicate'],
  ]) {
    const r = seine(...args);
    assert.equal(r.status, 2, args.join(' '));
    assertOneLineMessage(r);
  }
  const gw = join(dir, 'gw.yaml');
  writeFileSync(gw, 'name: g\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }\ncapture: [n1/gw]\n');
  const g = seine('run', gw);
  assert.equal(g.status, 2);
  assertOneLineMessage(g);
  assert.match(g.stderr, /gw\.yaml:4:\d+: capture\[0\]: .*the gateway is inside the bridge/);
});

test('cli: run --live: its options and mistakes exit 2 with a one-line message (no root needed: nothing is built)', () => {
  const help = seine('run', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /seine run --live <scenario\.yaml>/);
  assert.match(seine('--help').stdout, /run --live <scenario\.yaml>/);
  const udpToNode = join(dir, 'udp-node.yaml');
  writeFileSync(udpToNode, 'name: u\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }\ntraffic:\n  - { type: udp, from: n1/a, to: n1 }\n');
  for (const [args, re] of [
    [['run', 'scenarios/two-nodes-vxlan.yaml', '--without', 'latency'], /--without is for live runs \(add --live\)/],
    [['run', 'scenarios/two-nodes-vxlan.yaml', '--lab', 'x'], /--lab is for live runs/],
    [['run', '--live', 'scenarios/two-nodes-vxlan.yaml', '--seed', '3'], /--seed is for simulated runs/],
    [['run', '--live', 'scenarios/two-nodes-vxlan.yaml', '--without', 'latncy'], /unknown feature "latncy"/],
    [['run', '--live', 'scenarios/none.yaml'], /none\.yaml:1:1: expected a readable scenario file/],
    [['run', '--live', udpToNode], /a UDP flow needs a pod to receive it/],
  ] as Array<[string[], RegExp]>) {
    const r = seine(...args);
    assert.equal(r.status, 2, args.join(' '));
    assertOneLineMessage(r);
    assert.match(r.stderr, re);
  }
});

test('cli: seine trace prints each stage and exits 0 when delivered, 1 when dropped; --json; bad endpoints exit 2', () => {
  const ok = seine('trace', 'scenarios/two-nodes-vxlan.yaml', '--from', 'node1/a', '--to', 'node2/c');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /encapsulate\s+tunnel\s+vxlan VNI 1 to 172\.18\.0\.3/);
  assert.match(ok.stdout, /outcome: delivered/);
  const hole = seine('trace', 'scenarios/pmtu-black-hole.yaml', '--from', 'node1/client', '--to', 'node3/server', '--size', '1400', '--json');
  assert.equal(hole.status, 1);
  const j = JSON.parse(hole.stdout) as { outcome: string; reason: string; steps: Array<{ stage: string }> };
  assert.equal(j.outcome, 'dropped');
  assert.match(j.reason, /path MTU 1400/);
  assert.equal(j.steps.at(-1)!.stage, 'drop');
  for (const args of [
    ['trace', 'scenarios/two-nodes-vxlan.yaml'],
    ['trace', 'scenarios/two-nodes-vxlan.yaml', '--from', 'node1/zz', '--to', 'node2/c'],
    ['trace', 'scenarios/two-nodes-vxlan.yaml', '--from', 'node1/a', '--to', 'node2/c', '--proto', 'sctp'],
    ['trace', 'scenarios/two-nodes-vxlan.yaml', '--from', 'node1/a', '--to', 'node2/c', '--at', 'soon'],
  ]) {
    const r = seine(...args);
    assert.equal(r.status, 2, args.join(' '));
    assertOneLineMessage(r);
  }
  assert.match(seine('trace', '--help').stdout, /--from NODE\[\/POD\]/);
});

test('cli: the progress bar appears on a terminal only once a run has taken a second, and is wiped at the end', async () => {
  const { progressBar } = await import('../src/cli/run.js');
  let t = 0;
  const draw = (tty: boolean): string => {
    let err = '';
    const bar = progressBar(
      {
        out: () => {},
        err: (x) => {
          err += x;
        },
        tty,
      },
      'simulating x',
      () => t,
    );
    t = 0;
    bar.tick(0.1);
    t = 999;
    bar.tick(0.2);
    t = 1500;
    bar.tick(0.5);
    bar.done();
    return err;
  };
  const shown = draw(true);
  assert.equal(shown.split('\r').filter((x) => x !== '').length, 2, 'one bar after the first second, then the wipe');
  assert.match(shown, /simulating x \[#{15}\.{15}\] 50%/);
  assert.ok(shown.endsWith('\r\x1b[K'));
  assert.equal(draw(false), '', 'nothing when stderr is not a terminal');
});

// ---------------------------------------------------------------------------------------------------
// Issue 16: what a newcomer hit.

/** Every command the table in main.ts holds, by the name the user types. */
const COMMAND_NAMES = ['run', 'trace', 'decode', 'mtu', 'agent', 'lab up', 'lab down', 'lab status', 'lab exec', 'capture', 'bench live'];

async function commandTables(): Promise<Command[]> {
  const [run, decode, mtu, agent, lab, bench] = await Promise.all([
    import('../src/cli/run.js'),
    import('../src/cli/decode.js'),
    import('../src/cli/mtu.js'),
    import('../src/cli/agent.js'),
    import('../src/cli/lab.js'),
    import('../src/cli/benchlive.js'),
  ]);
  return [run.RUN, run.TRACE, decode.DECODE, mtu.MTU, agent.AGENT, lab.LAB_UP, lab.LAB_DOWN, lab.LAB_STATUS, lab.LAB_EXEC, lab.CAPTURE, bench.BENCH_LIVE];
}

test('cli: every command has its own help, the same by --help, -h and seine help, listing each of its options', async () => {
  const tables = await commandTables();
  assert.deepEqual(
    tables.map((c) => c.name),
    COMMAND_NAMES,
  );
  for (const c of tables) {
    const words = c.name.split(' ');
    const a = seine(...words, '--help');
    assert.equal(a.status, 0, `${c.name} --help: ${a.stderr}`);
    assert.equal(a.stderr, '');
    assert.match(a.stdout, new RegExp(`^usage: seine ${c.name} `), `${c.name} --help is its own help, not the general one`);
    assert.equal(seine(...words, '-h').stdout, a.stdout, `${c.name} -h`);
    assert.equal(seine('help', ...words).stdout, a.stdout, `help ${c.name}`);
    for (const o of [...Object.keys(c.options), 'help']) assert.match(a.stdout, new RegExp(`^ +(-\\w, )?--${o}\\b`, 'm'), `${c.name} --help lists --${o}`);
  }
  // A group's word alone lists its subcommands' help.
  const lab = seine('help', 'lab');
  assert.equal(lab.status, 0);
  for (const s of ['up', 'down', 'status', 'exec']) assert.match(lab.stdout, new RegExp(`^usage: seine lab ${s} `, 'm'));
});

test('cli: the general help lists every command and every option of each', async () => {
  const h = seine('--help');
  assert.equal(h.status, 0);
  const text = h.stdout.replace(/\n\s+/g, ' ');
  for (const c of await commandTables()) {
    const at = text.indexOf(`  ${c.name} `) >= 0 ? text.indexOf(`  ${c.name} `) : text.indexOf(` ${c.name} `);
    assert.ok(at >= 0, `the general help lists ${c.name}`);
    for (const o of Object.keys(c.options)) assert.ok(text.includes(`--${o}`), `the general help lists ${c.name}'s --${o}`);
  }
  for (const o of ['--no-progress', '--family', '--at', '--seed']) assert.ok(h.stdout.includes(o), o);
});

test('cli: --opt=value and --opt value mean the same, for every command', () => {
  const spaced = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--json', '--seed', '3');
  const joined = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--json', '--seed=3');
  assert.equal(joined.status, 0, joined.stderr);
  assert.equal(joined.stdout, spaced.stdout);
  assert.equal((JSON.parse(joined.stdout) as { seed: number }).seed, 3);
  assert.equal(seine('decode', GOOD, '--limit=2').stdout, seine('decode', GOOD, '--limit', '2').stdout);
  assert.equal(lines(seine('decode', GOOD, '--limit=2').stdout).length, 2);
  assert.equal(seine('mtu', '--underlay=1400', '--json').stdout, seine('mtu', '--underlay', '1400', '--json').stdout);
  const t = seine('trace', 'scenarios/two-nodes-vxlan.yaml', '--from=node1/a', '--to=node2/c', '--at=1s', '--family=4', '--json');
  assert.equal(t.status, 0, t.stderr);
  // A value that is itself an option is refused unless written with '='.
  const r = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--pcap', '--json');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--pcap expects DIR/);
});

test('cli: every error reads "seine <command>: ..." and an unknown option points at that command\'s help', () => {
  const cases: [string[], string][] = [
    [['decode', GOOD, '--limit', '0'], 'decode'],
    [['decode', join(dir, 'none.pcapng')], 'decode'],
    [['decode', GOOD, '--frobnicate'], 'decode'],
    [['mtu', '--underlay', '5'], 'mtu'],
    [['mtu', '--frobnicate'], 'mtu'],
    [['run'], 'run'],
    [['run', 'scenarios/none.yaml'], 'run'],
    [['run', 'scenarios/two-nodes-vxlan.yaml', '--frobnicate'], 'run'],
    [['trace', 'scenarios/two-nodes-vxlan.yaml', '--frobnicate'], 'trace'],
    [['trace', 'scenarios/two-nodes-vxlan.yaml', '--from', 'node1/zz', '--to', 'node2/c'], 'trace'],
    [['agent', '--frobnicate'], 'agent'],
    [['lab', 'up', '--frobnicate'], 'lab up'],
    [['lab', 'frobnicate'], 'lab'],
    [['capture', '--frobnicate'], 'capture'],
    [['bench', 'live', '--frobnicate'], 'bench live'],
  ];
  for (const [args, cmd] of cases) {
    const r = seine(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assertOneLineMessage(r);
    assert.ok(r.stderr.startsWith(`seine ${cmd}: `), `${args.join(' ')}: ${r.stderr}`);
    if (args.includes('--frobnicate')) assert.ok(r.stderr.endsWith(`(see seine ${cmd} --help)\n`), r.stderr);
  }
  const damaged = seine('decode', TRUNCATED);
  assert.equal(damaged.status, 1);
  assert.ok(damaged.stderr.startsWith('seine decode: '), damaged.stderr);
});

test('cli: run --pcap into a directory that cannot be made (/proc) is refused in words before the run, and returns', () => {
  // Bounded: the helper's spawnSync has a 30 s timeout, so a hang fails the test instead of hanging it.
  const r = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--pcap', '/proc/seine-no-such-dir');
  assert.equal(r.status, 2);
  assertOneLineMessage(r);
  assert.match(r.stderr, /^seine run: cannot write captures into '\/proc\/seine-no-such-dir': /);
  assert.doesNotMatch(r.stderr, /E[A-Z]{3,}/, 'said in words, not as an errno code');
  assert.equal(r.stdout, '', 'refused before anything ran');
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const f = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--pcap', join(file, 'sub'));
  assert.equal(f.status, 2);
  assert.match(f.stderr, /is a file, not a directory/);
});

test('cli: a capture that fails to write after the run says so in words, exit 2, and the report is still printed', () => {
  const pc = join(dir, 'full');
  mkdirSync(pc);
  // The first capture point's file is /dev/full: it opens, and every write fails with "no space left".
  symlinkSync('/dev/full', join(pc, 'node1-a.pcapng'));
  const r = seine('run', 'scenarios/two-nodes-vxlan.yaml', '--pcap', pc);
  assert.equal(r.status, 2);
  assert.match(r.stdout, /all \d+ expectations met/, 'the report');
  assertOneLineMessage(r);
  assert.match(r.stderr, /^seine run: cannot write '.*node1-a\.pcapng': no space left on the device/);
});

test('cli: a binary file given as a scenario is named as such, quoted in a short line', () => {
  const r = seine('run', 'scenarios/captures/catalogue.pcapng');
  assert.equal(r.status, 2);
  assertOneLineMessage(r);
  assert.match(r.stderr, /expected a scenario \(YAML text\), got binary data \(a NUL byte at byte \d+\)/);
  assert.ok(r.stderr.length < 200, `${r.stderr.length} characters`);
  // Text of control bytes (no NUL) is quoted as an excerpt of at most EXCERPT_CHARS, escapes counted.
  const ctl = join(dir, 'control.yaml');
  writeFileSync(ctl, Buffer.alloc(3000, 1));
  const c = seine('run', ctl);
  assert.equal(c.status, 2);
  assertOneLineMessage(c);
  assert.ok(c.stderr.length < 300, `${c.stderr.length} characters`);
  assert.match(c.stderr, /\(3,000 characters\)/);
});

test('cli: trace refuses a packet to itself and a NODE/ with no pod, as run refuses such a flow', () => {
  for (const [args, re] of [
    [['--from', 'node1/a', '--to', 'node1/a'], /--from and --to are the same endpoint/],
    [['--from', 'node1/', '--to', 'node2/c'], /--from expects NODE or NODE\/POD, got 'node1\/'/],
    [['--from', 'node1/a', '--to', 'node2/c/x'], /--to expects NODE or NODE\/POD/],
    [['--from', '/a', '--to', 'node2/c'], /--from expects NODE or NODE\/POD/],
  ] as Array<[string[], RegExp]>) {
    const r = seine('trace', 'scenarios/two-nodes-vxlan.yaml', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}`);
    assertOneLineMessage(r);
    assert.match(r.stderr, re);
  }
});

test('cli: mtu leaves out IPv6 underlays below 1280 and says why', () => {
  const t = seine('mtu', '--underlay', '576');
  assert.equal(t.status, 0, t.stderr);
  assert.doesNotMatch(t.stdout, /\/ipv6/);
  assert.match(t.stdout, /No IPv6 underlay at 576: IPv6 needs an MTU of at least 1280/);
  const j = JSON.parse(seine('mtu', '--json', '--underlay', '576', '--underlay', '1500').stdout) as {
    rows: Array<{ tunnel: string; podMtu: (number | null)[] }>;
  };
  assert.deepEqual(j.rows.find((r) => r.tunnel === 'vxlan/ipv6')!.podMtu, [null, 1430]);
  assert.deepEqual(j.rows.find((r) => r.tunnel === 'vxlan/ipv4')!.podMtu, [526, 1450]);
  assert.match(seine('mtu', '--underlay', '576', '--underlay', '1500').stdout, /^\| vxlan\/ipv6 \| n\/a \| n\/a \| 70 \| 1430 \|$/m);
});

test('cli: decode names the ICMP and ICMPv6 messages it knows, and what the error quotes', () => {
  const out = seine('decode', 'scenarios/captures/catalogue.pcapng').stdout;
  assert.match(out, /ICMP time exceeded \(TTL exceeded in transit\) \(for 10\.0\.1\.5 > 10\.0\.2\.7 UDP 40000 > 8080\)/);
  assert.match(out, /ICMP fragmentation needed, next-hop MTU 1450/);
  assert.match(out, /ICMPv6 packet too big, MTU 1280 \(for fd00:1::5 > fd00:2::7 UDP 40001 > 8081\)/);
  assert.doesNotMatch(out, /ICMP type 11/);
});
