/**
 * The live datapath end to end, driven through the `seine` command as a user drives it: `seine lab up`
 * builds two nodes (namespaces, one agent per node, pods on TAPs), and real traffic crosses them —
 * ping and an iperf3 TCP transfer between pods on different nodes over VXLAN and Geneve, each without
 * ESP and with both ciphers; pods on one node through the bridge; a node's own stack to a remote pod.
 * Then what a running node must survive: PMTU discovery with the kernel as the sender, an agent killed
 * with SIGKILL and restarted (pods keep their interfaces, connectivity is back within 2 s), a million
 * malformed frames and datagrams (counted by reason, forwarding goes on, memory stays flat), the
 * metrics endpoint read by promtool, a live capture read by tshark, and `lab down` after `kill -9` of
 * every agent.
 *
 * Root only (namespaces, TAPs, raw sockets): without root every test here skips and says so. Traffic
 * stays inside the namespaces the labs create; every lab is taken down in `after`.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../../src/live/control.js';
import type { MetricsSnapshot } from '../../src/live/metrics.js';
import { labDown, labStatus, openLab, processAlive } from '../../src/live/lab/state.js';
import { ipJson, listNetns, runInNetns } from '../../src/live/lab/netns.js';
import { SYSTEM_PYTHON } from '../helpers.js';
import { sleep } from '../../src/live/sleep.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const SKIP: string | false =
  IS_ROOT && process.platform === 'linux' ? false : 'SKIPPED — NOT ROOT: the live datapath tests create namespaces, TAPs and raw sockets; run them as root';
if (SKIP !== false) process.stderr.write(`\n*** test/live/agent.test.ts: ${SKIP} ***\n\n`);

const TAG = Math.floor(Math.random() * 0x10000)
  .toString(16)
  .padStart(4, '0');
const DIR = mkdtempSync(join(tmpdir(), 'seine-live-'));
const LABS = join(DIR, 'labs');
const ENV = { ...process.env, SEINE_LABS_DIR: LABS };
const labs = new Set<string>();

after(async () => {
  if (SKIP === false) for (const l of labs) await labDown(l, { dir: LABS, graceMs: 500 }).catch(() => undefined);
  rmSync(DIR, { recursive: true, force: true });
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}
function seine(args: string[], timeoutMs = 60_000): Promise<Ran> {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], { env: ENV, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      res({ code, stdout, stderr });
    });
  });
}

async function inNs(ns: string, argv: string[], timeoutMs = 30_000): Promise<Ran> {
  try {
    const r = await runInNetns(ns, argv, { timeoutMs });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? x.message };
  }
}

/** A two-node routed lab (node1: pods a, b; node2: pod c) with the tunnel and encryption given. */
function scenarioFile(name: string, tunnel: 'vxlan' | 'geneve', cipher: string | null, udpEncap = false): string {
  const file = join(DIR, `${name}.yaml`);
  writeFileSync(
    file,
    [
      `name: ${name}`,
      'underlay: { mtu: 1500 }',
      `tunnel: { type: ${tunnel}, mode: routed }`,
      ...(cipher !== null ? [`encryption: { cipher: ${cipher}, secret: live-test, udpEncap: ${udpEncap} }`] : []),
      'nodes:',
      '  - name: node1',
      '    podCIDR: 10.244.1.0/24',
      '    pods: [{ name: a }, { name: b }]',
      '  - name: node2',
      '    podCIDR: 10.244.2.0/24',
      '    pods: [{ name: c }]',
    ].join('\n'),
  );
  return file;
}

async function up(file: string, name: string): Promise<string> {
  labs.add(name);
  const r = await seine(['lab', 'up', file, '--json']);
  assert.equal(r.code, 0, `seine lab up ${file}: ${r.stderr}`);
  const st = JSON.parse(r.stdout) as { lab: string };
  assert.equal(st.lab, name);
  return name;
}

const ns = (lab: string, where: string): string => `seine-${lab}-${where.replace('/', '-')}`;

async function ping(lab: string, from: string, to: string, count = 3, extra: string[] = []): Promise<Ran> {
  return inNs(ns(lab, from), ['ping', '-c', String(count), '-i', '0.2', '-W', '2', ...extra, to], 20_000);
}

/** An iperf3 TCP transfer for `seconds` from one pod to another: what the receiver got, its rate, the sender's retransmissions. */
async function iperfTcp(
  lab: string,
  from: string,
  to: string,
  toIp: string,
  seconds: number,
): Promise<{ sent: number; received: number; bps: number; retransmits: number }> {
  const server = await inNs(ns(lab, to), ['iperf3', '-s', '-1', '-D', '--pidfile', join(DIR, `${lab}-iperf.pid`)], 10_000);
  assert.equal(server.code, 0, `iperf3 server: ${server.stderr}`);
  let r: Ran | null = null;
  for (let i = 0; i < 20; i++) {
    r = await inNs(ns(lab, from), ['iperf3', '-c', toIp, '-t', String(seconds), '-J', '--connect-timeout', '2000'], 30_000);
    if (!r.stdout.includes('Connection refused')) break;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  const j = JSON.parse(r!.stdout) as {
    error?: string;
    end: { sum_received: { bytes: number; bits_per_second: number }; sum_sent: { bytes: number; retransmits: number } };
  };
  assert.equal(j.error, undefined, `iperf3: ${j.error}`);
  return { sent: j.end.sum_sent.bytes, received: j.end.sum_received.bytes, bps: j.end.sum_received.bits_per_second, retransmits: j.end.sum_sent.retransmits };
}

async function stats(lab: string, node: string): Promise<MetricsSnapshot> {
  const r = await controlRequest(join(LABS, lab, `${node}.sock`), { op: 'stats' });
  return r['snapshot'] as MetricsSnapshot;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

async function agentPid(lab: string, node: string): Promise<number> {
  const r = await controlRequest(join(LABS, lab, `${node}.sock`), { op: 'status' });
  return r['pid'] as number;
}

const VARIANTS: Array<[string, 'vxlan' | 'geneve', string | null, boolean]> = [
  ['vxlan', 'vxlan', null, false],
  ['geneve', 'geneve', null, false],
  ['vxlan-aes', 'vxlan', 'aes-gcm-128', false],
  ['vxlan-chacha', 'vxlan', 'chacha20-poly1305', false],
  ['geneve-aes', 'geneve', 'aes-gcm-128', false],
  ['geneve-chacha', 'geneve', 'chacha20-poly1305', false],
  ['geneve-aes-udp', 'geneve', 'aes-gcm-128', true],
];

describe('live: two nodes, pods on TAPs, real traffic', { skip: SKIP }, () => {
  for (const [what, tunnel, cipher, udpEncap] of VARIANTS) {
    test(`${what}: ping and iperf3 TCP pod → remote pod, pod → pod on one node, node → remote pod`, { timeout: 120_000 }, async () => {
      const name = `l${TAG}-${what}`;
      const lab = await up(scenarioFile(name, tunnel, cipher, udpEncap), name);
      const remote = await ping(lab, 'node1/a', '10.244.2.2');
      assert.equal(remote.code, 0, `node1/a → node2/c: ${remote.stdout}${remote.stderr}`);
      assert.match(remote.stdout, /3 received/);
      const local = await ping(lab, 'node1/a', '10.244.1.3');
      assert.equal(local.code, 0, `node1/a → node1/b: ${local.stdout}`);
      const fromNode = await ping(lab, 'node1', '10.244.2.2');
      assert.equal(fromNode.code, 0, `node1 → node2/c: ${fromNode.stdout}`);
      const t = await iperfTcp(lab, 'node1/a', 'node2/c', '10.244.2.2', 1);
      // The receiver's count stops when the sender's time is up; what is still in flight then is not in it.
      assert.ok(t.received > 1 << 20 && t.received >= t.sent * 0.5, `iperf3 sent ${t.sent}, received ${t.received} bytes`);
      process.stderr.write(`  live ${what}: iperf3 TCP ${(t.bps / 1e6).toFixed(0)} Mbit/s, ${t.retransmits} retransmissions\n`);
      // The tunnel carried it: the peers' counters moved, and with ESP the underlay carried ESP.
      const s1 = await stats(lab, 'node1');
      const under = s1.ports.find((p) => p.port === 'underlay')!;
      assert.ok(under.txPackets > 1000, `underlay tx ${under.txPackets}`);
      // What went on the wire: ESP over IP (protocol 50), ESP in UDP port 4500, or the tunnel's own port.
      const file = join(DIR, `${name}.pcapng`);
      let captured = false;
      const cap = seine(['capture', 'node1', 'underlay', '-w', file, '--lab', lab, '--count', '4']).finally(() => {
        captured = true;
      });
      // The capture is armed once the command has started and asked the agent, half a second or more on
      // a busy machine: ping until it has its frames (a fixed wait raced it).
      for (let i = 0; i < 40 && !captured; i++) await ping(lab, 'node1/a', '10.244.2.2', 1);
      assert.equal((await cap).code, 0);
      const wire = spawnSync('tshark', ['-r', file, '-T', 'fields', '-E', 'occurrence=f', '-e', 'ip.proto', '-e', 'udp.dstport'], { encoding: 'utf8' })
        .stdout.trim()
        .split('\n');
      const want = cipher === null ? `17\t${tunnel === 'vxlan' ? 4789 : 6081}` : udpEncap ? '17\t4500' : '50\t';
      for (const w of wire) assert.equal(w.trimEnd(), want.trimEnd(), `on the wire: ${wire.join(' | ')}`);
      const r = await seine(['lab', 'down', lab]);
      assert.equal(r.code, 0, r.stderr);
      labs.delete(lab);
      assert.deepEqual(
        (await listNetns()).filter((n) => n.startsWith(`seine-${lab}`)),
        [],
      );
    });
  }
});

describe('live: a node under stress and restarts', { skip: SKIP }, () => {
  test('PMTU with the kernel as the sender: frag-needed with the pod MTU, learnt by the pod, TCP through it', { timeout: 120_000 }, async () => {
    const name = `l${TAG}-pmtu`;
    // Pods keep a 1500-byte MTU over a 1500-byte underlay: the tunnel leaves 1450.
    const file = join(DIR, `${name}.yaml`);
    writeFileSync(
      file,
      [
        `name: ${name}`,
        'underlay: { mtu: 1500 }',
        'tunnel: { type: vxlan, icmpTooBig: true, fragmentPolicy: drop }',
        'nodes:',
        '  - { name: node1, podCIDR: 10.244.1.0/24, pods: [{ name: client, mtu: 1500 }] }',
        '  - { name: node2, podCIDR: 10.244.2.0/24, pods: [{ name: server, mtu: 1500 }] }',
      ].join('\n'),
    );
    const lab = await up(file, name);
    const big = await ping(lab, 'node1/client', '10.244.2.2', 2, ['-M', 'do', '-s', '1472']);
    assert.match(big.stdout + big.stderr, /[Ff]rag needed and DF set \(mtu = 1450\)|message too long, mtu=1450/, big.stdout + big.stderr);
    const route = await inNs(ns(lab, 'node1/client'), ['ip', 'route', 'get', '10.244.2.2']);
    assert.match(route.stdout, /mtu 1450/, `ip route get: ${route.stdout}`);
    const ok = await ping(lab, 'node1/client', '10.244.2.2', 2, ['-M', 'do', '-s', '1422']);
    assert.equal(ok.code, 0, ok.stdout);
    const t = await iperfTcp(lab, 'node1/client', 'node2/server', '10.244.2.2', 1);
    assert.ok(t.received > 1 << 20 && t.received >= t.sent * 0.5, `iperf3 sent ${t.sent}, received ${t.received} bytes`);
    const s1 = await stats(lab, 'node1');
    const drops = s1.ports.reduce((k, p) => k + (p.drops['FragNeededDf'] ?? 0), 0);
    assert.ok(drops >= 1, 'the tunnel dropped the too-big DF packets and said so');
  });

  for (const cipher of [null, 'aes-gcm-128'] as const)
    test(`restart${cipher !== null ? ` with ESP (${cipher})` : ''}: an agent killed with SIGKILL comes back on the same pod interfaces; connectivity within 2 s${cipher !== null ? '; new keys' : ''}`, {
      timeout: 120_000,
    }, async () => {
      const name = `l${TAG}-restart${cipher !== null ? '-esp' : ''}`;
      const lab = await up(scenarioFile(name, 'vxlan', cipher), name);
      // With ESP, the SPI node1 sends under, from seine trace --live's encapsulation stage.
      const spi = async (): Promise<unknown> => {
        const t = JSON.parse((await seine(['trace', '--live', '--lab', lab, '--from', 'node1/a', '--to', 'node2/c', '--json'])).stdout) as {
          steps: Array<{ stage: string; detail: Record<string, unknown> }>;
        };
        return t.steps.find((x) => x.stage === 'encapsulate')?.detail['espSpi'];
      };
      const spiBefore = cipher !== null ? await spi() : null;
      assert.equal((await ping(lab, 'node1/a', '10.244.2.2', 1)).code, 0);
      const ifindex = async (): Promise<number> =>
        (JSON.parse((await inNs(ns(lab, 'node1/a'), ['ip', '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
      const before = await ifindex();
      const pid = await agentPid(lab, 'node1');
      // A namespace given as a path (as a CNI runtime gives it) works as well as a name.
      const viaPath = await ipJson<{ ifname: string }>(['link', 'show'], `/proc/${pid}/ns/net`);
      assert.deepEqual(
        viaPath
          .map((l) => l.ifname)
          .filter((n) => n !== 'lo')
          .sort(),
        ['eth0', 'seine-gw0'],
      );
      process.kill(pid, 'SIGKILL');
      const handle = openLab(lab, { dir: LABS });
      const rec = handle.state().processes.find((p) => p.pid === pid)!;
      for (let i = 0; i < 50 && processAlive(pid, rec.startTime); i++) await sleep(20);
      assert.equal(await ifindex(), before, 'the pod interface outlives its agent (persistent TAP)');
      const t0 = performance.now();
      const { child } = handle.spawn(ns(lab, 'node1'), rec.argv, { role: 'agent', node: 'node1' });
      child.unref();
      let back = -1;
      while (performance.now() - t0 < 10_000) {
        const r = await inNs(ns(lab, 'node1/a'), ['ping', '-c', '1', '-W', '0.2', '10.244.2.2'], 5000);
        if (r.code === 0) {
          back = performance.now() - t0;
          break;
        }
      }
      assert.ok(back >= 0, 'connectivity came back');
      process.stderr.write(`  live restart: connectivity back ${back.toFixed(0)} ms after the agent was started again\n`);
      assert.ok(back < 2000, `connectivity back after ${back.toFixed(0)} ms (want < 2 s)`);
      assert.equal(await ifindex(), before, 'not recreated: same ifindex');
      if (cipher !== null) {
        const spiAfter = await spi();
        // The peers announced themselves (hellos) and no packet failed its integrity check.
        const t2 = (await controlRequest(join(LABS, lab, 'node2.sock'), { op: 'stats' }))['snapshot'] as MetricsSnapshot;
        assert.ok(t2.tunnel['hellosReceived']! >= 2, `node2 heard node1's announcements again: ${JSON.stringify(t2.tunnel)}`);
        assert.equal(t2.tunnel['icvFailures'], 0);
        assert.equal(typeof spiBefore, 'number');
        assert.equal(typeof spiAfter, 'number');
        assert.notEqual(spiAfter, spiBefore, 'a restarted agent sends under new keys (a new SPI), never its old ones');
      }
    });

  test('bad input: a million malformed frames and datagrams are counted by reason, forwarding goes on, RSS stays bounded', { timeout: 300_000 }, async () => {
    const name = `l${TAG}-bad`;
    const lab = await up(scenarioFile(name, 'vxlan', null), name);
    assert.equal((await ping(lab, 'node1/a', '10.244.2.2', 1)).code, 0);
    const pid1 = await agentPid(lab, 'node1');
    // Warm up, then measure memory across the flood.
    const rss0 = rssKiB(pid1);
    // What the kernel handed the agent, counted by the kernel: a TAP counts a frame as sent (tx, seen from
    // the pod) only when the agent reads it, and drops into tx_dropped what found its queue full; the node's
    // UDP counters say how many datagrams reached the tunnel socket and how many overflowed its buffer.
    const tapTx = async (): Promise<{ tx: number; dropped: number }> => {
      const [l] = await ipJson<{ stats64: { tx: { packets: number; dropped: number } } }>(['-s', 'link', 'show', 'dev', 'eth0'], ns(lab, 'node1/a'));
      return { tx: l!.stats64.tx.packets, dropped: l!.stats64.tx.dropped };
    };
    const udpIn = async (): Promise<{ inDatagrams: number; rcvbufErrors: number }> => {
      const r = await inNs(ns(lab, 'node1'), ['cat', '/proc/net/snmp']);
      const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
      const keys = lines[0]!.split(/\s+/);
      const vals = lines[1]!.split(/\s+/).map(Number);
      return { inDatagrams: vals[keys.indexOf('InDatagrams')]!, rcvbufErrors: vals[keys.indexOf('RcvbufErrors')]! };
    };
    const tap0 = await tapTx();
    const udp0 = await udpIn();
    const N = 500_000;
    // From pod a's side of its TAP: frames with a group source MAC, and frames for the gateway whose IPv4 or
    // IPv6 header is broken (truncated, wrong version, bad header length, bad checksum).
    const frames = `
import os, random, socket, struct, sys
random.seed(7)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
gw = bytes.fromhex("020100000001")
me = bytes.fromhex("020000010001")
kinds = []
for i in range(64):
    k = i % 4
    if k == 0: f = gw + bytes.fromhex("010000000001") + b"\\x08\\x00" + os.urandom(random.randint(0, 60))
    elif k == 1: f = gw + me + b"\\x08\\x00" + os.urandom(random.randint(0, 19))
    elif k == 2: f = gw + me + b"\\x08\\x00" + bytes([0x4f]) + os.urandom(random.randint(19, 80))
    else: f = gw + me + b"\\x86\\xdd" + bytes([0x50]) + os.urandom(random.randint(0, 80))
    kinds.append(f)
n = int(sys.argv[1]); sent = 0
for i in range(n):
    try:
        s.send(kinds[i % 64]); sent += 1
    except BlockingIOError:
        pass
print(sent)
`;
    const datagrams = `
import os, random, socket, sys
random.seed(9)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
pay = [os.urandom(random.randint(0, 120)) for _ in range(64)]
n = int(sys.argv[1]); sent = 0
for i in range(n):
    try:
        s.sendto(pay[i % 64], ("172.18.0.2", 4789)); sent += 1
    except OSError:
        pass
print(sent)
`;
    const fr = inNs(ns(lab, 'node1/a'), [SYSTEM_PYTHON, '-c', frames, String(N)], 240_000);
    const dg = inNs(ns(lab, 'node2'), [SYSTEM_PYTHON, '-c', datagrams, String(N)], 240_000);
    const [a, b] = await Promise.all([fr, dg]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    // Forwarding goes on.
    const ok = await ping(lab, 'node1/a', '10.244.2.2', 3);
    assert.equal(ok.code, 0, `after the flood: ${ok.stdout}`);
    const tap1 = await tapTx();
    const udp1 = await udpIn();
    const s1 = await stats(lab, 'node1');
    const podA = s1.ports.find((p) => p.port === 'a')!;
    const gw = s1.ports.find((p) => p.port === 'gw')!;
    const under = s1.ports.find((p) => p.port === 'underlay')!;
    const sum = (d: Record<string, number>): number => Object.values(d).reduce((k, v) => k + v, 0);
    process.stderr.write(
      `  live bad input: pod a drops ${JSON.stringify(podA.drops)}; gw ${JSON.stringify(gw.drops)}; underlay ${JSON.stringify(under.drops)}\n`,
    );
    const read = tap1.tx - tap0.tx;
    const delivered = udp1.inDatagrams - udp0.inDatagrams;
    process.stderr.write(
      `  live bad input: the agent read ${read} frames from pod a's TAP (kernel dropped ${tap1.dropped - tap0.dropped} on a full queue); ${delivered} datagrams reached node1's UDP sockets (${udp1.rcvbufErrors - udp0.rcvbufErrors} overflowed)\n`,
    );
    // The flood was a flood: a tenth of each reached the agent even on two busy cores.
    assert.ok(read >= N * 0.1, `only ${read} of ${N} frames were read from the TAP`);
    assert.ok(delivered >= N * 0.1, `only ${delivered} of ${N} datagrams reached node1's sockets`);
    // Every frame the agent read was dropped with a reason. The kernel's count also holds the few good
    // frames of the pings (and their ARP/ND), hence the small allowance; the kernel's own drops on a full
    // queue never reached us. Reasons from each family are there.
    assert.ok(podA.drops['SrcMacGroup']! > 0, 'group source MACs dropped');
    assert.ok(
      (gw.drops['Ipv4Truncated'] ?? 0) + (gw.drops['Ipv4BadHeaderLen'] ?? 0) + (gw.drops['Ipv4BadVersion'] ?? 0) + (gw.drops['Ipv4BadChecksum'] ?? 0) > 0,
      'broken IPv4 dropped at the gateway',
    );
    assert.ok(sum(podA.drops) + sum(gw.drops) >= read - 100, `${sum(podA.drops) + sum(gw.drops)} drops with a reason for ${read} frames read from the TAP`);
    assert.ok(sum(under.drops) >= delivered - 100, `${sum(under.drops)} drops with a reason for ${delivered} datagrams delivered to the tunnel socket`);
    const rss1 = rssKiB(pid1);
    process.stderr.write(`  live bad input: agent RSS ${rss0} KiB before, ${rss1} KiB after ${2 * N} bad packets\n`);
    assert.ok(rss1 - rss0 < 64 * 1024, `RSS grew by ${rss1 - rss0} KiB`);
  });

  test('trace --live follows one packet across both nodes; metrics pass promtool; a live capture opens in tshark with the interface named', {
    timeout: 120_000,
  }, async () => {
    const name = `l${TAG}-obs`;
    const lab = await up(scenarioFile(name, 'vxlan', null), name);
    assert.equal((await ping(lab, 'node1/a', '10.244.2.2', 1)).code, 0);
    // seine trace --live: every stage on both nodes, delivered; and on one node through the bridge.
    const tr = await seine(['trace', '--live', '--lab', lab, '--from', 'node1/a', '--to', 'node2/c', '--json']);
    assert.equal(tr.code, 0, tr.stderr + tr.stdout);
    const trace = JSON.parse(tr.stdout) as { outcome: string; steps: Array<{ node: string; stage: string; port: string; detail: Record<string, unknown> }> };
    assert.equal(trace.outcome, 'delivered');
    const path = trace.steps.map((x) => `${x.node}:${x.stage}`);
    for (const want of [
      'node1:send',
      'node1:ingress',
      'node1:route',
      'node1:encapsulate',
      'node1:output',
      'node2:underlay',
      'node2:decapsulate',
      'node2:route',
      'node2:deliver',
    ])
      assert.ok(path.includes(want), `${want} in ${path.join(' ')}`);
    assert.ok(path.indexOf('node1:encapsulate') < path.indexOf('node2:decapsulate'), 'in time order across nodes');
    assert.equal(trace.steps.filter((x) => x.stage === 'deliver').length, 1, 'only the probe is traced, not its answer');
    // The pod's TAP has TSO (offloads on by default): its coalescing stage says the ping went as it came.
    const co = trace.steps.find((x) => x.stage === 'coalesce');
    assert.ok(
      co !== undefined && co.node === 'node2' && co.port === 'c' && co.detail['superFrame'] === false,
      `a coalesce record from node2's TAP: ${JSON.stringify(co)}`,
    );
    const enc = trace.steps.find((x) => x.stage === 'encapsulate')!;
    assert.equal(enc.detail['vni'], 1);
    assert.equal(enc.detail['outerDst'], '172.18.0.3');
    const same = JSON.parse((await seine(['trace', '--live', '--lab', lab, '--from', 'node1/a', '--to', 'node1/b', '--json'])).stdout) as typeof trace;
    assert.equal(same.outcome, 'delivered');
    assert.ok(!same.steps.some((x) => x.stage === 'encapsulate'), 'same-node traffic is switched, not tunnelled');
    const fetchJs = "fetch('http://127.0.0.1:9464/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))";
    const m = await inNs(ns(lab, 'node1'), [process.execPath, '-e', fetchJs]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, /seine_port_rx_packets_total\{port="a",kind="device",node="node1"\} \d+/);
    assert.match(m.stdout, /seine_tunnel_tx_packets_total\{peer="node2",node="node1"\} [1-9]/);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: m.stdout, encoding: 'utf8' });
    assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
    const file = join(DIR, `${name}.pcapng`);
    let captured = false;
    const cap = seine(['capture', 'node1', 'underlay', '-w', file, '--lab', lab, '--count', '6']).finally(() => {
      captured = true;
    });
    // Armed once the command has asked the agent (see above): ping until the capture has its frames.
    for (let i = 0; i < 40 && !captured; i++) await ping(lab, 'node1/a', '10.244.2.2', 1);
    const c = await cap;
    assert.equal(c.code, 0, c.stderr);
    const t = spawnSync(
      'tshark',
      [
        '-r',
        file,
        '-o',
        'ip.check_checksum:TRUE',
        '-o',
        'udp.check_checksum:TRUE',
        '-T',
        'fields',
        '-e',
        'frame.interface_name',
        '-e',
        'vxlan.vni',
        '-e',
        'icmp.type',
        '-e',
        'ip.checksum.status',
        '-e',
        'icmp.checksum.status',
        '-e',
        'udp.srcport',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(t.status, 0, t.stderr);
    const rows = t.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    assert.equal(rows.length, 6);
    for (const r of rows) {
      assert.equal(r[0], 'node1/underlay');
      assert.equal(r[1], '1');
      assert.ok(r[2] === '8' || r[2] === '0', `inner ICMP echo: ${r[2]}`);
      assert.ok(!r[3]!.split(',').includes('0') && r[4] !== '0', `checksums good: ${r.join(' ')}`);
      // The socket is bound to 4789, which the kernel puts on the wire; the capture says the same.
      assert.equal(r[5], '4789');
    }
  });

  test('SIGHUP reloads the peers without touching established flows; SIGTERM stops the agent cleanly', { timeout: 120_000 }, async () => {
    const name = `l${TAG}-hup`;
    const lab = await up(scenarioFile(name, 'vxlan', null), name);
    assert.equal((await ping(lab, 'node1/a', '10.244.2.2', 1)).code, 0);
    const file = join(LABS, lab, 'node1.yaml');
    const original = readFileSync(file, 'utf8');
    const pid = await agentPid(lab, 'node1');
    const hup = async (text: string): Promise<void> => {
      writeFileSync(file, text);
      process.kill(pid, 'SIGHUP');
      await sleep(500);
    };
    // A TCP transfer runs while a peer is added: node2, unchanged, is not touched.
    const transfer = iperfTcp(lab, 'node1/a', 'node2/c', '10.244.2.2', 2);
    await sleep(700);
    const third = '    - name: node3\n      underlayIp: 172.18.0.4\n      underlayMac: 02:02:00:00:00:03\n      podCIDRs: [10.244.3.0/24]\n      vnis: []\n';
    const withThird = original.replace(/(\n {2}peers:\n)/, `$1${third}`);
    assert.notEqual(withThird, original, 'the test found the peers list in the agent config');
    await hup(withThird);
    const t = await transfer;
    assert.equal(t.retransmits >= 0, true);
    assert.ok(t.received > 1 << 20, `the transfer went on through the reload: ${t.received} bytes`);
    let st = await controlRequest(join(LABS, lab, 'node1.sock'), { op: 'status' });
    assert.deepEqual((st['peers'] as Array<{ name: string }>).map((p) => p.name).sort(), ['node2', 'node3']);
    const route = await inNs(ns(lab, 'node1'), ['ip', 'route', 'show', '10.244.3.0/24']);
    assert.match(route.stdout, /via 10\.244\.3\.1 dev seine-gw0 onlink/);
    // node2 removed: its pods are unreachable (NoRoute at the gateway); back again: reachable.
    await hup(original.replace(/\n {4}- name: node2\n( {6}.*\n)+/, '\n'));
    st = await controlRequest(join(LABS, lab, 'node1.sock'), { op: 'status' });
    assert.deepEqual(
      (st['peers'] as Array<{ name: string }>).map((p) => p.name),
      [],
    );
    assert.notEqual((await ping(lab, 'node1/a', '10.244.2.2', 1)).code, 0);
    const s1 = await stats(lab, 'node1');
    assert.ok((s1.ports.find((p) => p.port === 'gw')!.drops['NoRoute'] ?? 0) >= 1);
    await hup(original);
    assert.equal((await ping(lab, 'node1/a', '10.244.2.2', 2)).code, 0);
    // A reload that fails keeps the peers in force.
    await hup('node: [broken');
    assert.equal((await ping(lab, 'node1/a', '10.244.2.2', 1)).code, 0);
    writeFileSync(file, original);
    // SIGTERM: the agent exits, removing its control socket; the pods keep their interfaces.
    process.kill(pid, 'SIGTERM');
    const rec = openLab(lab, { dir: LABS })
      .state()
      .processes.find((p) => p.pid === pid)!;
    for (let i = 0; i < 100 && processAlive(pid, rec.startTime); i++) await sleep(20);
    assert.equal(processAlive(pid, rec.startTime), false, 'the agent stopped on SIGTERM');
    assert.equal(existsSync(join(LABS, lab, 'node1.sock')), false, 'its control socket is gone');
    const log = readFileSync(rec.log!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; level: string });
    assert.ok(
      log.some((l) => l.msg === 'peers reloaded'),
      'structured log of each reload',
    );
    assert.ok(log.some((l) => l.msg === 'reload failed; the peers in force are kept' && l.level === 'error'));
    assert.equal(log.at(-1)!.msg, 'agent stopped');
  });

  test('lab down after kill -9 of every agent leaves no namespace, link or process', { timeout: 120_000 }, async () => {
    const name = `l${TAG}-kill`;
    const lab = await up(scenarioFile(name, 'geneve', null), name);
    assert.equal((await labStatus(lab, { dir: LABS }))!.processes.filter((p) => p.alive).length, 2);
    const procs = openLab(lab, { dir: LABS }).state().processes;
    for (const p of procs) process.kill(p.pid, 'SIGKILL');
    const r = await seine(['lab', 'down', lab, '--json']);
    assert.equal(r.code, 0, r.stderr);
    labs.delete(lab);
    assert.deepEqual(
      (await listNetns()).filter((n) => n.startsWith(`seine-${lab}`)),
      [],
    );
    for (const p of procs) assert.equal(processAlive(p.pid, p.startTime), false);
    const links = spawnSync('ip', ['-j', 'link'], { encoding: 'utf8' }).stdout;
    assert.ok(!links.includes(lab), 'no link of the lab in the root namespace');
  });
});
