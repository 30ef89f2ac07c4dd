/**
 * `seine bench live`'s numbers without root: iperf3's JSON (from real iperf3 runs over loopback, and
 * its error object), ping's output, /proc's CPU times, medians and spreads, ratios and targets, the
 * table, and the SVG charts (parsed as XML by Python's own parser, not by us).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkTargets,
  formatBenchTable,
  METRICS,
  parseIperfTcp,
  parsePingRtts,
  parseProcStat,
  procCpuTicks,
  ratiosOf,
  spreadOf,
  svgChart,
  type BenchReport,
  type BenchResult,
  type Datapath,
  type EspSetup,
  type Metric,
  type Spread,
} from '../../../src/live/bench/results.js';
import { sleep } from '../../../src/live/sleep.js';

test('spreadOf: median, min and max of the runs; min ≤ median ≤ max', () => {
  assert.deepEqual(spreadOf([3, 1, 2]), { median: 2, min: 1, max: 3, runs: 3 });
  assert.deepEqual(spreadOf([4, 1, 2, 10]), { median: 3, min: 1, max: 10, runs: 4 });
  assert.equal(spreadOf([]).runs, 0);
  assert.ok(Number.isNaN(spreadOf([]).median));
  fc.assert(
    fc.property(fc.array(fc.double({ noNaN: true, min: -1e9, max: 1e9 }), { minLength: 1, maxLength: 20 }), (xs) => {
      const s = spreadOf(xs);
      return s.min <= s.median && s.median <= s.max && s.min === Math.min(...xs) && s.max === Math.max(...xs);
    }),
  );
});

/** Runs a real iperf3 client against a real server on 127.0.0.1 (no root) and returns its -J output. */
async function iperfLoopback(clientArgs: string[]): Promise<string> {
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const server = spawn('iperf3', ['-s', '-1', '-p', port, '-B', '127.0.0.1'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      const r = spawnSync('iperf3', ['-c', '127.0.0.1', '-p', port, '-t', '1', '-J', ...clientArgs], { encoding: 'utf8', timeout: 20_000 });
      if (!/Connection refused/.test(r.stdout)) return r.stdout;
      await sleep(100);
    }
    throw new Error('iperf3 -s did not listen on 127.0.0.1');
  } finally {
    server.kill('SIGKILL');
  }
}

test('parseIperfTcp reads what real iperf3 prints (1 and 4 streams): receiver bytes over its seconds', async () => {
  for (const args of [[], ['-P', '4']]) {
    const out = await iperfLoopback(args);
    const r = parseIperfTcp(out);
    const d = JSON.parse(out) as { end: { sum_received: { bytes: number; seconds: number; bits_per_second: number } } };
    assert.equal(r.bytes, d.end.sum_received.bytes);
    assert.ok(r.bytes > 0 && r.seconds > 0.5 && r.seconds < 2, `${r.bytes} bytes in ${r.seconds} s`);
    // Our Gbit/s is iperf3's own bits_per_second of the receiver.
    assert.ok(Math.abs(r.gbps * 1e9 - d.end.sum_received.bits_per_second) / d.end.sum_received.bits_per_second < 1e-6);
  }
});

test('iperf3 errors and empty results are errors, not zeros', () => {
  assert.throws(
    () => parseIperfTcp('{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}'),
    /iperf3: unable to connect/,
  );
  assert.throws(() => parseIperfTcp('{"end":{"sum_received":{"bytes":0,"seconds":1}}}'), /got nothing/);
  assert.throws(() => parseIperfTcp('iperf3: error - something'), /no JSON/);
});

test("parsePingRtts: the replies' times (ms) out of iputils ping; too few replies is an error", () => {
  const out = [
    'PING 10.244.2.10 (10.244.2.10) 56(84) bytes of data.',
    '64 bytes from 10.244.2.10: icmp_seq=1 ttl=62 time=0.512 ms',
    '64 bytes from 10.244.2.10: icmp_seq=2 ttl=62 time=0.488 ms',
    '64 bytes from 10.244.2.10: icmp_seq=2 ttl=62 time=0.9 ms (DUP!)',
    '64 bytes from 10.244.2.10: icmp_seq=3 ttl=62 time=1.03 ms',
    '',
    '--- 10.244.2.10 ping statistics ---',
    '4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 102ms',
  ].join('\n');
  assert.deepEqual(parsePingRtts(out), [0.512, 0.488, 1.03]);
  assert.throws(() => parsePingRtts('1 bytes from x: icmp_seq=1 time=1 ms\n5 packets transmitted, 1 received, 80% packet loss'), /1 of 5 echoes/);
  // A real ping of loopback, when this machine lets an unprivileged ping run.
  const r = spawnSync('ping', ['-n', '-c', '3', '-i', '0.2', '127.0.0.1'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status === 0) {
    const rtts = parsePingRtts(r.stdout, r.stderr);
    assert.equal(rtts.length, 3);
    assert.ok(rtts.every((x) => x > 0 && x < 100));
  }
});

test('CPU times: utime+stime from /proc/PID/stat (a comm with spaces and parentheses), kernel and busy time from /proc/stat', () => {
  const stat = '1234 (node (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 5000 1000 100';
  assert.equal(procCpuTicks(stat), 325);
  assert.equal(procCpuTicks('garbage'), null);
  const own = procCpuTicks(readFileSync('/proc/self/stat', 'latin1'));
  assert.ok(own !== null && own >= 0);
  const m = parseProcStat('cpu  100 5 40 1000 7 3 2 1 0 0\ncpu0 50 2 20 500 3 1 1 0 0 0\n');
  assert.deepEqual(m, { kernel: 45, busy: 151 });
  assert.throws(() => parseProcStat('intr 1 2 3'), /no "cpu" line/);
  const real = parseProcStat(readFileSync('/proc/stat', 'latin1'));
  assert.ok(real.busy >= real.kernel && real.kernel > 0);
});

function fake(datapath: Datapath, esp: EspSetup, v: Partial<Record<Metric, number>>): BenchResult {
  const spread = {} as Record<Metric | 'machine_cpu_s_per_gb', Spread>;
  const r = { datapath, esp, tcp_gbps: 1, tcp4_gbps: 1, udp64_kpps: 100, udp1400_kpps: 50, rtt_ms: 0.5, cpu_s_per_gb: 10, ...v };
  for (const m of METRICS) spread[m] = { median: r[m], min: r[m] * 0.9, max: r[m] * 1.1, runs: 3 };
  spread.machine_cpu_s_per_gb = { median: 20, min: 19, max: 21, runs: 3 };
  return {
    ...r,
    machine_cpu_s_per_gb: 20,
    cpu_source: 'test',
    udp64_offered_kpps: 300,
    udp1400_offered_kpps: 200,
    udp_method: 'test',
    udp_tool_cores: { udp64: { sender: 0.5, sink: 0.25 }, udp1400: { sender: 0.75, sink: 0.125 } },
    udp_large_payload: 1400,
    heap_bytes_per_frame: datapath === 'seine' ? 0.5 : null,
    spread,
  };
}

const RESULTS = [
  fake('seine', 'none', { tcp_gbps: 3, udp64_kpps: 250, rtt_ms: 0.4 }),
  fake('seine', 'aes-gcm-128', { tcp_gbps: 0.9 }),
  fake('kernel', 'none', { tcp_gbps: 12, rtt_ms: 0.1 }),
  fake('ovs-netdev', 'none', { tcp_gbps: 1, udp64_kpps: 100, rtt_ms: 0.8 }),
];

test('ratios: each setup against the plaintext kernel and OVS-netdev of the same run; the targets from them', () => {
  const r = ratiosOf(RESULTS);
  assert.equal(r['seine']!.vs_ovs_netdev!.tcp_gbps, 3);
  assert.equal(r['seine']!.vs_kernel!.tcp_gbps, 0.25);
  assert.equal(r['seine+aes-gcm-128']!.vs_ovs_netdev!.tcp_gbps, 0.9);
  assert.equal(r['kernel']!.vs_kernel, null, 'no ratio of a datapath to itself');
  assert.equal(r['ovs-netdev']!.vs_ovs_netdev, null);
  const t = checkTargets(RESULTS);
  const by = (s: string): boolean | null => t.find((x) => x.what.startsWith(s))!.ok;
  assert.equal(by('TCP 1 stream: seine / OVS'), true);
  assert.equal(by('TCP 1 stream: seine / kernel'), false);
  assert.equal(by('TCP 1 stream: seine+aes'), false);
  assert.equal(by('ping RTT'), true);
  assert.equal(by('UDP 64-byte'), true);
  assert.deepEqual(
    t.map((x) => x.stretch),
    [false, true, false, false, false],
    'only the kernel ratio is a stretch goal',
  );
  // Without OVS the targets against it are not measured (null), not failed.
  const noOvs = checkTargets(RESULTS.filter((x) => x.datapath !== 'ovs-netdev'));
  assert.equal(noOvs.filter((x) => x.ok === null).length, 4);
  assert.equal(ratiosOf(RESULTS.filter((x) => x.datapath !== 'ovs-netdev'))['seine']!.vs_ovs_netdev, null);
});

const REPORT: BenchReport = {
  results: RESULTS,
  ratios: ratiosOf(RESULTS),
  targets: checkTargets(RESULTS),
  machine: { cores: 2, kernel: '6.1', node: 'v20', cpu: 'test' },
  settings: { duration_s: 10, runs: 3, pings: 20, commit: 'abc123' },
  skipped: [{ datapath: 'ovs-netdev', why: 'openvswitch-switch is not installed' }],
};

test('the table: a row per setup with median [min-max], the ratios, the targets, what was skipped', () => {
  const text = formatBenchTable(REPORT);
  const row = text.split('\n').find((l) => /^seine {2,}/.test(l))!;
  assert.match(row, /3\.00 \[2\.70-3\.30\]/);
  assert.match(text, /^seine\+aes-gcm-128 /m);
  assert.match(text, /ratio to OVS-netdev \(plaintext\), same run:\n.*\nseine +3\.00x/);
  assert.match(text, /met +TCP 1 stream: seine \/ OVS-netdev ≥ 2: 3\.00x/);
  assert.match(text, /missed +TCP 1 stream: seine \/ kernel ≥ 0\.3 \(stretch\): 0\.250x/);
  assert.match(text, /skipped: ovs-netdev: openvswitch-switch is not installed/);
  assert.match(text, /commit abc123/);
  assert.match(text, /seine: 300 at 64 bytes \(sender 0\.500, sink 0\.250\), 200 at 1400 bytes \(sender 0\.750, sink 0\.125\)/);
});

test("the SVG charts are well-formed XML (Python's parser) with a bar, a value and a label per setup", () => {
  for (const m of METRICS) {
    const svg = svgChart(m, [...RESULTS, fake('seine', 'chacha20-poly1305', { tcp_gbps: NaN })]);
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    const py = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        [
          'import sys, xml.dom.minidom as x',
          'd = x.parseString(sys.stdin.read())',
          'print(len(d.getElementsByTagName("rect")) - 1)',
          'print("|".join(t.firstChild.data for t in d.getElementsByTagName("text")))',
        ].join('\n'),
      ],
      { input: svg, encoding: 'utf8' },
    );
    assert.equal(py.status, 0, py.stderr);
    const [bars, texts] = py.stdout.trim().split('\n');
    assert.equal(Number(bars), 5, `${m}: one bar per setup`);
    for (const label of ['seine', 'kernel', 'ovs-netdev', '+aes-gcm-128', '+chacha20-poly1305', 'datapath and setup'])
      assert.ok(texts!.split('|').includes(label), `${m}: label ${label}`);
    assert.ok(texts!.includes('|' + (m === 'tcp_gbps' ? '3.00' : '')), `${m}: value labels`);
  }
  assert.match(svgChart('tcp_gbps', RESULTS), />Gbit\/s</, 'the y axis says the unit');
});
