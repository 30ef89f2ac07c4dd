/**
 * `seine bench live` as root, on a short run (2 s per measurement, one run each): the JSON's shape and
 * that every figure is a positive finite number, the charts parse as XML (Python's parser), the labs
 * leave no namespace behind — after a full run and after Ctrl-C — and usage errors exit 2 before
 * anything is made.
 *
 * Every run has its own lab tag and a temporary labs directory, so labs of other programs are neither
 * touched nor counted. Skipped, loudly, when not root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { METRICS, type BenchReport } from '../../src/live/bench/results.js';
import { labDown } from '../../src/live/lab/state.js';
import { runSeineCli, type SeineRan } from './rig.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const LIVE = process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0;
const SKIP: string | false = LIVE ? false : 'NOT ROOT (or not Linux): seine bench live needs root to build labs — SKIPPED';
if (!LIVE) process.stderr.write(`\n*** test/live/benchlive.test.ts: ${SKIP} ***\n\n`);

const TAG = Math.floor(Math.random() * 0x100000)
  .toString(16)
  .padStart(5, '0');
const DIR = mkdtempSync(join(tmpdir(), 'seine-bench-live-'));
const LABS = join(DIR, 'labs');

/** The namespaces of this file's labs that exist now. */
function ourNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`seine-b${TAG}`));
}

afterEach(() => {
  if (!LIVE) return;
  assert.deepEqual(ourNamespaces(), [], 'a run leaves no namespace of its labs behind');
  assert.deepEqual(existsSync(LABS) ? readdirSync(LABS) : [], [], 'nor any lab state');
});

after(async () => {
  if (LIVE && existsSync(LABS))
    for (const l of readdirSync(LABS))
      await labDown(l, { dir: LABS, graceMs: 500 }).catch((e: unknown) => process.stderr.write(`cleanup of ${l}: ${String(e)}\n`));
  rmSync(DIR, { recursive: true, force: true });
});

/** Runs `seine args…` with the test's labs directory; `onStderr` sees stderr as it comes. */
function seine(args: string[], onStderr?: (text: string, pid: number) => void, timeoutMs = 240_000): Promise<SeineRan> {
  return runSeineCli(args, { labsDir: LABS, timeoutMs, killSignal: 'SIGKILL', ...(onStderr !== undefined ? { onStderr } : {}) });
}

const OVS = spawnSync('sh', ['-c', 'command -v ovs-vswitchd'], { stdio: 'ignore' }).status === 0;

test('bench live --json, short: one result per datapath and setup, every figure positive and finite, ratios, charts that parse', {
  skip: SKIP,
  timeout: 300_000,
}, async () => {
  const out = join(DIR, 'out');
  const t0 = Date.now();
  const r = await seine([
    'bench',
    'live',
    '--json',
    '--duration',
    '2',
    '--runs',
    '1',
    '--pings',
    '10',
    '--esp',
    'aes-gcm-128',
    '--tag',
    TAG,
    '--out',
    out,
    '--no-progress',
  ]);
  assert.equal(r.code, 0, `exit status 0; stderr: ${r.stderr}`);
  assert.equal(r.stderr.includes('building lab'), false, '--no-progress: no progress lines');
  const rep = JSON.parse(r.stdout) as BenchReport & { lab_tag: string; failed: unknown[] };
  assert.equal(rep.lab_tag, TAG);
  assert.deepEqual(rep.failed, []);
  const setups = rep.results.map((x) => `${x.datapath}/${x.esp}`);
  assert.deepEqual(setups, ['seine/none', 'seine/aes-gcm-128', 'kernel/none', ...(OVS ? ['ovs-netdev/none'] : [])]);
  if (OVS) assert.deepEqual(rep.skipped, []);
  else
    assert.ok(
      rep.skipped.some((s) => s.datapath === 'ovs-netdev' && /openvswitch-switch/.test(s.why)),
      'OVS missing is said',
    );
  for (const x of rep.results) {
    for (const m of [...METRICS, 'machine_cpu_s_per_gb'] as const) {
      assert.ok(Number.isFinite(x[m]) && x[m] > 0, `${x.datapath}/${x.esp} ${m} = ${x[m]}`);
      const s = x.spread[m];
      assert.ok(s.min <= s.median && s.median <= s.max && s.runs >= 1, `${x.datapath}/${x.esp} ${m} spread`);
      assert.equal(s.median, x[m]);
    }
    assert.ok(x.udp64_offered_kpps >= x.udp64_kpps && x.udp1400_offered_kpps >= x.udp1400_kpps, 'no more delivered than offered');
    assert.match(x.udp_method, /sendmmsg\/recvmmsg/, 'the UDP method is recorded');
    for (const c of [x.udp_tool_cores.udp64, x.udp_tool_cores.udp1400])
      assert.ok(c.sender > 0 && c.sender <= 2.5 && c.sink > 0 && c.sink <= 2.5, `the generator's and sink's cores: ${JSON.stringify(c)}`);
    assert.equal(x.spread.rtt_ms.runs, 10, 'the RTT is the median of the 10 echoes');
    // The agents' heap per frame: seine only (a short run is mostly JIT warm-up: the figure is the bench's,
    // from default-length runs, not bounded here).
    if (x.datapath === 'seine')
      assert.ok(
        x.heap_bytes_per_frame !== null && Number.isFinite(x.heap_bytes_per_frame) && x.heap_bytes_per_frame >= 0,
        `heap per frame ${x.heap_bytes_per_frame}`,
      );
    else assert.equal(x.heap_bytes_per_frame, null);
    assert.ok(x.tcp_gbps < 200 && x.rtt_ms < 1000, 'figures in a plausible range');
  }
  assert.equal(
    rep.results.find((x) => x.esp === 'aes-gcm-128')!.udp_large_payload,
    1388,
    'ESP leaves a 1416-byte pod MTU: the large datagrams shrink, no fragments',
  );
  assert.equal(rep.results.find((x) => x.datapath === 'kernel')!.udp_large_payload, 1400);
  assert.ok(rep.ratios['seine']!.vs_kernel!.tcp_gbps! > 0);
  assert.equal(rep.ratios['kernel']!.vs_kernel, null);
  if (OVS) assert.ok(rep.ratios['seine+aes-gcm-128']!.vs_ovs_netdev!.tcp_gbps! > 0);
  assert.equal(rep.machine.cores > 0 && rep.machine.node === process.version, true);
  assert.equal(rep.settings.duration_s, 2);
  assert.ok(rep.targets.length === 5);

  // What --out holds: the same JSON and one chart per figure, each well-formed XML.
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), rep);
  for (const m of METRICS) {
    const file = join(out, `${m}.svg`);
    const py = spawnSync(
      '/usr/bin/python3',
      ['-c', 'import sys, xml.dom.minidom as x; d = x.parse(sys.argv[1]); print(d.documentElement.tagName, len(d.getElementsByTagName("rect")) - 1)', file],
      { encoding: 'utf8' },
    );
    assert.equal(py.status, 0, `${m}.svg parses: ${py.stderr}`);
    assert.equal(py.stdout.trim(), `svg ${rep.results.length}`, `${m}.svg has a bar per setup`);
  }
  process.stderr.write(
    `  (bench live, short: ${((Date.now() - t0) / 1000).toFixed(0)} s; seine ${rep.results[0]!.tcp_gbps.toFixed(2)} Gbit/s, kernel ${rep.results.find((x) => x.datapath === 'kernel')!.tcp_gbps.toFixed(2)} Gbit/s)\n`,
  );
});

test('bench live: Ctrl-C while measuring takes the lab down and exits 130', { skip: SKIP, timeout: 120_000 }, async () => {
  let sent = false;
  const r = await seine(['bench', 'live', '--only', 'kernel', '--duration', '5', '--runs', '1', '--tag', TAG, '--out', join(DIR, 'int')], (err, pid) => {
    if (!sent && /TCP 1 stream/.test(err)) {
      sent = true;
      process.kill(pid, 'SIGINT');
    }
  });
  assert.ok(sent, `the run got to measuring: ${r.stderr}`);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted \(SIGINT\); every lab taken down/);
});

test('bench live: a lab that fails to build is reported by name, exit 1, and taken down', { skip: SKIP, timeout: 120_000 }, async () => {
  // A `bridge` that fails, first on PATH: the kernel lab's static fdb entry cannot be made.
  const bin = join(DIR, 'failing-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'bridge'), '#!/bin/sh\necho "bridge: refused by the test" >&2\nexit 1\n', { mode: 0o755 });
  const r = spawnSync(
    process.execPath,
    [MAIN, 'bench', 'live', '--json', '--only', 'kernel', '--duration', '1', '--runs', '1', '--tag', TAG, '--out', join(DIR, 'fail')],
    { encoding: 'utf8', env: { ...process.env, SEINE_LABS_DIR: LABS, PATH: `${bin}:${process.env.PATH ?? ''}` }, timeout: 100_000 },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`lab b${TAG}-kernel \\(kernel\\) failed: .*bridge: refused by the test`));
  const rep = JSON.parse(r.stdout) as BenchReport & { failed: { datapath: string; why: string }[] };
  assert.deepEqual(rep.results, []);
  assert.equal(rep.failed.length, 1);
  assert.equal(rep.failed[0]!.datapath, 'kernel');
  assert.match(rep.failed[0]!.why, /the lab was taken down/);
});

test('bench: usage errors exit 2 before anything is made; bench --help', async () => {
  for (const args of [
    ['bench', 'live', '--duration', 'x'],
    ['bench', 'live', '--only', 'vpp'],
    ['bench', 'live', '--esp', 'des'],
    ['bench', 'live', '--tag', 'A!'],
    ['bench', 'nope'],
  ]) {
    const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, SEINE_LABS_DIR: LABS } });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^seine bench/);
  }
  // Not root: refused with status 2 and the reason (checked as root by dropping to nobody, where setpriv exists).
  if (LIVE && spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore' }).status === 0) {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, MAIN, 'bench', 'live', '--only', 'kernel'], {
      encoding: 'utf8',
      env: { ...process.env, SEINE_LABS_DIR: LABS },
    });
    if (!/EACCES|Cannot find module/.test(r.stderr)) {
      // nobody may not be able to read the build
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^seine bench live: needs root/);
    }
  }
  const h = spawnSync(process.execPath, [MAIN, 'bench', '--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /usage: seine bench live/);
  assert.deepEqual(existsSync(LABS) ? readdirSync(LABS) : [], []);
});
